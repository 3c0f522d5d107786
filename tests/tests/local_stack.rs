//! End to end: the local stack started as a library (`fleet_local::dev::start`) on the shared
//! moto / osmem stand-ins (a fresh `--stack-name` per test), fed over MQTT with a standard client
//! (rumqttc), and checked through the AWS SDK and OpenSearch queries: missions stored once at
//! their latest rev, robots indexed at their latest shadow version, the malformed record in the
//! rejects queue with its payload and reason, and no record lost.
//!
//! Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fleet_local::dev::{self, DevOptions, RunningStack};
use fleet_ops::rejects::{RejectItem, RejectsClient, Selection};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

/// Generous: the first run compiles nothing, but moto on a loaded 2-core machine is slow.
const SETTLE: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn options(stack: &str, log_dir: &Path) -> DevOptions {
    let mut o = DevOptions::new(root().join("template.yaml"), stack);
    o.aws_endpoint = Some(fleet_testkit::aws_endpoint());
    o.log_dir = Some(log_dir.to_path_buf());
    o.drain = Duration::from_secs(60);
    o
}

fn mission(robot: &str, mission_id: &str, rev: u32, battery_end: u32) -> Value {
    json!({
        "schema": 1, "robotId": robot, "missionId": mission_id, "rev": rev,
        "status": "completed", "startedAt": "2026-11-23T15:00:04Z", "endedAt": "2026-11-23T15:41:10Z",
        "areaM2": 42.5, "durationS": 2466, "battery": {"start": 100, "end": battery_end}, "errors": []
    })
}

fn mission_topic(robot: &str) -> String {
    format!("$aws/rules/mission_reports/robots/{robot}/missions")
}

/// Publishes every message with QoS 1 and returns once the broker acknowledged them all.
async fn publish_all(mqtt_url: &str, client_id: &str, messages: &[(String, Vec<u8>)]) {
    let target = fleet_sim::MqttTarget::parse_url(mqtt_url).unwrap();
    let (host, port) = (target.host, target.port);
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let acked = Arc::new(AtomicUsize::new(0));
    let seen = acked.clone();
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                // A refused connection shows up as missing acks below, with the count.
                Err(e) => {
                    eprintln!("mqtt connection error: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    for (topic, payload) in messages {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
        // Keep the shadow updates of one robot in order through the broker.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::SeqCst) < messages.len() {
        assert!(
            Instant::now() < deadline,
            "the broker acknowledged {} of {} publishes",
            acked.load(Ordering::SeqCst),
            messages.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    driver.abort();
}

struct Workload {
    messages: Vec<(String, Vec<u8>)>,
    mission_a: String,
    mission_messages: usize,
}

/// Three robots: robot 1 sends mission A at rev 1 and rev 2, a duplicate of rev 2 and a stale
/// replay of rev 1; robots 2 and 3 one mission each; robot 2 also one malformed report. Robot 1
/// updates its shadow twice, robot 2 once.
fn workload() -> Workload {
    let a = ulid::Ulid::new().to_string();
    let b = ulid::Ulid::new().to_string();
    let c = ulid::Ulid::new().to_string();
    let m = |robot: &str, id: &str, rev: u32, end: u32| {
        (
            mission_topic(robot),
            mission(robot, id, rev, end).to_string().into_bytes(),
        )
    };
    let shadow = |robot: &str, reported: Value| {
        (
            format!("$aws/things/{robot}/shadow/update"),
            json!({"state": {"reported": reported}})
                .to_string()
                .into_bytes(),
        )
    };
    let missions = vec![
        m("rb-000001", &a, 1, 60),
        m("rb-000001", &a, 2, 37),
        m("rb-000001", &a, 2, 37),
        m("rb-000001", &a, 1, 60),
        m("rb-000002", &b, 1, 50),
        m("rb-000003", &c, 1, 40),
        (mission_topic("rb-000002"), b"{not json".to_vec()),
    ];
    let mission_messages = missions.len();
    let mut messages = missions;
    messages.push(shadow(
        "rb-000001",
        json!({"battery": 80, "status": "idle"}),
    ));
    messages.push(shadow(
        "rb-000001",
        json!({"battery": 70, "status": "cleaning"}),
    ));
    messages.push(shadow(
        "rb-000002",
        json!({"battery": 55, "status": "docked"}),
    ));
    Workload {
        messages,
        mission_a: a,
        mission_messages,
    }
}

async fn missions(
    stack: &RunningStack,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let table = stack
        .resources
        .tables
        .get("MissionsTable")
        .expect("the template declares MissionsTable");
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

async fn robot_doc(stack: &RunningStack, id: &str) -> Option<Value> {
    // Tolerant: the cluster may be switched under the test (no answer is "not yet").
    let os = fleet_testkit::opensearch_at(&stack.endpoints.opensearch);
    fleet_testkit::try_get_doc(&os, &stack.resources.opensearch.index, id)
        .await
        .ok()?
        .get("_source")
        .cloned()
}

/// The rejects client with 1 s long polls (the tool's default is 2 s): two empty answers in
/// a row still end a listing.
fn rejects(stack: &RunningStack) -> RejectsClient {
    RejectsClient::new(
        &stack.sdk,
        stack
            .resources
            .rejects_queue_url
            .clone()
            .expect("a rejects queue"),
    )
    .with_polling(fleet_ops::rejects::Polling {
        wait_secs: 1,
        ..Default::default()
    })
}

/// Polls `check` until it returns true or [`SETTLE`] passes.
async fn eventually<F, Fut>(what: &str, stack: &RunningStack, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not reached within {} s; stats: {:?}",
                SETTLE.as_secs(),
                stack.counters()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Publishes the workload and checks every store; returns the original sequence number of the
/// malformed record.
async fn exercise(stack: &RunningStack) -> String {
    let w = workload();
    publish_all(&stack.endpoints.mqtt, "e2e-publisher", &w.messages).await;

    eventually("three missions stored", stack, || async {
        missions(stack).await.len() == 3
    })
    .await;
    eventually("robot 1 indexed at shadow version 2", stack, || async {
        robot_doc(stack, "rb-000001")
            .await
            .and_then(|d| d["version"].as_u64())
            == Some(2)
    })
    .await;
    eventually("robot 2 indexed", stack, || async {
        robot_doc(stack, "rb-000002").await.is_some()
    })
    .await;
    let client = rejects(stack);
    eventually(
        "the malformed record in the rejects queue",
        stack,
        || async { client.list().await.map(|l| !l.is_empty()).unwrap_or(false) },
    )
    .await;
    assert!(
        stack.wait_drained(SETTLE).await,
        "the streams did not drain: {:?}",
        stack.counters()
    );

    // Missions: one item per mission, mission A at its latest rev despite the duplicate and the
    // stale replay.
    let items = missions(stack).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let a = items
        .iter()
        .find(|i| {
            i.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("ROBOT#rb-000001")
        })
        .expect("robot 1's mission");
    assert_eq!(
        a.get("rev").and_then(|v| v.as_n().ok()).map(String::as_str),
        Some("2")
    );
    assert!(
        a.get("sk")
            .and_then(|v| v.as_s().ok())
            .is_some_and(|sk| sk.ends_with(&w.mission_a))
    );

    // Robots: latest reported state.
    let r1 = robot_doc(stack, "rb-000001").await.unwrap();
    assert_eq!(r1["reported"]["battery"], 70);
    assert_eq!(r1["reported"]["status"], "cleaning");
    assert_eq!(r1["docType"], "shadow");
    let r2 = robot_doc(stack, "rb-000002").await.unwrap();
    assert_eq!(r2["version"], 1);

    // Rejects: exactly the malformed record, with its payload and reason.
    let listed = client.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let RejectItem::Envelope(env) = &listed[0].item else {
        panic!("not an envelope: {:?}", listed[0].item)
    };
    assert_eq!(env.reason.kind.as_str(), "bad_json");
    assert_eq!(env.source.partition_key, "rb-000002");
    assert_eq!(env.function, "mission-ingest");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env.payload_base64.as_deref().unwrap())
        .unwrap();
    assert_eq!(payload, b"{not json");
    assert!(
        env.source
            .stream_arn
            .ends_with(&stack.resources.streams["MissionsStream"].name)
    );

    // No record lost so far.
    let s = stack.counters();
    assert_eq!(s.backlog, 0, "{s:?}");
    assert_eq!(s.rule_errors, 0, "{s:?}");
    let missions_done: u64 = s
        .mappings
        .values()
        .filter(|m| m.stream.ends_with("-missions"))
        .map(|m| m.records_done)
        .sum();
    assert_eq!(missions_done, w.mission_messages as u64, "{s:?}");
    env.source.sequence_number.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_broker_pipeline_stores_indexes_rejects_and_replays() {
    let logs = tempfile::tempdir().unwrap();
    let name = fleet_testkit::unique_name("e2e");
    let stack = dev::start(options(&name, logs.path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(stack.endpoints.mqtt.starts_with("mqtt://127.0.0.1:"));
    assert!(stack.endpoints.iot_data.starts_with("http://127.0.0.1:"));
    // Fresh, stack-prefixed resources from the template.
    assert_eq!(
        stack.resources.tables["MissionsTable"],
        format!("{name}-MissionsTable")
    );
    assert_eq!(stack.resources.opensearch.alias, format!("{name}-robots"));
    assert_eq!(
        stack.resources.streams["MissionsStream"].shards, 4,
        "ON_DEMAND gets 4 local shards"
    );
    // The table as declared: its GSI and TTL.
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = ddb
        .describe_table()
        .table_name(&stack.resources.tables["MissionsTable"])
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let gsis: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name())
        .collect();
    assert_eq!(gsis, ["byDay"]);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&stack.resources.tables["MissionsTable"])
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some("expiresAt"));
    // The event source mappings exist in moto's Lambda control plane, enabled.
    let lambda = aws_sdk_lambda::Client::new(&stack.sdk);
    for uuid in stack.resources.event_source_mappings.values() {
        let m = lambda
            .get_event_source_mapping()
            .uuid(uuid)
            .send()
            .await
            .unwrap();
        assert_eq!(m.state.as_deref(), Some("Enabled"));
    }

    let original_seq = exercise(&stack).await;

    // A standard SDK client on the IoT Data Plane face: the update flows through the shadow
    // documents topic, the rules engine and the shadows stream into the index.
    let iot_conf = aws_sdk_iotdataplane::config::Builder::from(&stack.sdk)
        .endpoint_url(&stack.endpoints.iot_data)
        .build();
    aws_sdk_iotdataplane::Client::from_conf(iot_conf)
        .update_thing_shadow()
        .thing_name("rb-000003")
        .payload(aws_sdk_iotdataplane::primitives::Blob::new(
            json!({"state": {"reported": {"battery": 33}}}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    eventually("robot 3 indexed through the data plane", &stack, || async {
        robot_doc(&stack, "rb-000003")
            .await
            .is_some_and(|d| d["reported"]["battery"] == 33)
    })
    .await;
    // The embedded broker reports connects and disconnects as IoT Core presence events.
    eventually("the publisher's presence indexed", &stack, || async {
        robot_doc(&stack, "e2e-publisher#presence")
            .await
            .is_some_and(|d| d["docType"] == "presence")
    })
    .await;

    // Replay the reject after a "fix": it goes back into its stream, and (still malformed) comes
    // back as a new reject with a new sequence number; the old message is deleted.
    let client = rejects(&stack);
    let outcomes = client
        .replay(
            &Selection {
                kind: Some("bad_json".into()),
                ..Selection::default()
            },
            true,
            false,
        )
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].records_put, 1);
    assert_eq!(outcomes[0].deleted, 1);
    assert!(outcomes[0].error.is_none());
    eventually("the replayed record rejected again", &stack, || async {
        client.list().await.map(|l| {
            l.len() == 1
                && matches!(&l[0].item, RejectItem::Envelope(e) if e.source.sequence_number != original_seq)
        })
        .unwrap_or(false)
    })
    .await;

    let summary = stack.shutdown().await;
    assert_eq!(summary.records_lost, 0, "{summary:?}");
    assert_eq!(summary.backlog, 0, "{summary:?}");
    assert_eq!(summary.missions_stored, 3, "{summary:?}");
    assert_eq!(summary.rejects_queued, 1, "{summary:?}");
    assert_eq!(
        summary.streams["MissionsStream"].records_processed, 8,
        "{summary:?}"
    );
    assert!(summary.robots_indexed >= 2, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mosquitto_as_external_broker_carries_the_same_pipeline() {
    let broker = fleet_testkit::Mosquitto::start("");
    let logs = tempfile::tempdir().unwrap();
    let mut opts = options(&fleet_testkit::unique_name("e2e-mq"), logs.path());
    opts.mqtt_url = Some(broker.url());
    let stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stack.endpoints.mqtt, broker.url());
    exercise(&stack).await;
    let summary = stack.shutdown().await;
    assert_eq!(summary.records_lost, 0, "{summary:?}");
    assert_eq!(summary.backlog, 0, "{summary:?}");
    assert_eq!(summary.missions_stored, 3, "{summary:?}");
    assert_eq!(
        summary.streams["MissionsStream"].records_processed, 7,
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_file_holds_the_endpoints_at_start_and_the_summary_at_exit() {
    let logs = tempfile::tempdir().unwrap();
    let report = logs.path().join("report.json");
    // Template parameters change the local stack as they would the cloud one.
    let mut opts = options(&fleet_testkit::unique_name("e2e-rep"), logs.path());
    opts.parameter_overrides = vec![
        ("StreamMode".into(), "PROVISIONED".into()),
        ("MissionsShardCount".into(), "3".into()),
    ];
    let mut stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stack.resources.streams["MissionsStream"].shards, 3);
    assert_eq!(
        stack.resources.streams["MissionsStream"].mode,
        "PROVISIONED"
    );
    stack.write_report(&report).unwrap();
    let running = fleet_local::report::DevReport::read(&report).unwrap();
    assert_eq!(running.state, "running");
    assert_eq!(running.endpoints, stack.endpoints);
    assert!(running.resources.rejects_queue_url.is_some());
    assert!(running.summary.is_none());
    let summary = stack.shutdown().await;
    let stopped = fleet_local::report::DevReport::read(&report).unwrap();
    assert_eq!(stopped.state, "stopped");
    assert_eq!(stopped.summary, Some(summary));
}

/// The poller watches its mapping in moto's Lambda control plane: `UpdateEventSourceMapping
/// --no-enabled` pauses it (the stream backs up), `--enabled` resumes it (the backlog drains).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabling_the_mapping_in_moto_pauses_the_poller_and_enabling_resumes_it() {
    let logs = tempfile::tempdir().unwrap();
    let stack = dev::start(options(&fleet_testkit::unique_name("e2e-esm"), logs.path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mapping, _) = stack
        .counters()
        .mappings
        .into_iter()
        .find(|(_, m)| m.stream.ends_with("-shadows"))
        .expect("a mapping on the shadows stream");
    let uuid = stack.resources.event_source_mappings[&mapping].clone();
    let lambda = aws_sdk_lambda::Client::new(&stack.sdk);
    eventually("the mapping reported enabled", &stack, || async {
        stack.counters().mappings[&mapping].enabled
    })
    .await;

    lambda
        .update_event_source_mapping()
        .uuid(&uuid)
        .enabled(false)
        .send()
        .await
        .unwrap();
    eventually("the poller paused", &stack, || async {
        !stack.counters().mappings[&mapping].enabled
    })
    .await;
    let update = (
        "$aws/things/rb-000009/shadow/update".to_string(),
        json!({"state": {"reported": {"battery": 9}}})
            .to_string()
            .into_bytes(),
    );
    publish_all(&stack.endpoints.mqtt, "robofleet-local-e2e-esm", &[update]).await;
    eventually("the shadows stream backed up", &stack, || async {
        stack.counters().backlog >= 1
    })
    .await;
    assert!(robot_doc(&stack, "rb-000009").await.is_none());

    lambda
        .update_event_source_mapping()
        .uuid(&uuid)
        .enabled(true)
        .send()
        .await
        .unwrap();
    eventually("the backlog drained into the index", &stack, || async {
        robot_doc(&stack, "rb-000009")
            .await
            .is_some_and(|d| d["reported"]["battery"] == 9)
    })
    .await;
    assert!(stack.wait_drained(SETTLE).await);
    let summary = stack.shutdown().await;
    assert_eq!(summary.records_lost, 0, "{summary:?}");
    assert_eq!(summary.backlog, 0, "{summary:?}");
}

/// `--invoke watch`: the function binaries of this build, as processes behind the Lambda
/// Runtime API of `cargo lambda watch` (from the venv), invoked over its Invoke API. Nothing is
/// compiled for it: `make test` builds every binary (`cargo build --workspace --bins`) first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn functions_run_behind_the_runtime_api_of_cargo_lambda_watch() {
    let logs = tempfile::tempdir().unwrap();
    let mut opts = options(&fleet_testkit::unique_name("e2e-watch"), logs.path());
    opts.invoke = dev::InvokeMode::Watch;
    opts.venv = Some(PathBuf::from(fleet_testkit::venv()));
    let stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        stack
            .endpoints
            .lambda
            .as_deref()
            .is_some_and(|l| l.starts_with("http://127.0.0.1:"))
    );
    exercise(&stack).await;
    let summary = stack.shutdown().await;
    assert_eq!(summary.records_lost, 0, "{summary:?}");
    assert_eq!(summary.missions_stored, 3, "{summary:?}");
    assert_eq!(summary.invocation_errors, 0, "{summary:?}");
}

/// The AWS front's denials of `service` so far (every test shares one front; only this test's
/// scratch template lacks a grant, so the count moves only for it).
async fn denied(stack: &RunningStack, service: &str) -> u64 {
    let stats = stack.front().stats().await.unwrap();
    stats["by_service"][service]["denied"].as_u64().unwrap_or(0)
}

/// Defect 6 and the front's IAM: a scratch copy of the template without mission-ingest's
/// `dynamodb:PutItem` grant. The function's writes are refused with AccessDenied, which is the
/// deployment's fault, not the record's: nothing is dead-lettered and the records wait in the
/// stream. Once the grant is back (the role registered again with the real template's
/// policies), the same records are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_grant_is_refused_and_the_records_wait_in_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let grant = "              - Sid: WriteMissions\n                Effect: Allow\n                Action: dynamodb:PutItem # conditional put only (fleet-aws MissionStore)\n                Resource: !GetAtt MissionsTable.Arn\n";
    assert!(
        real.contains(grant),
        "the WriteMissions statement moved; update this test"
    );
    let scratch = dir.path().join("template.yaml");
    std::fs::write(&scratch, real.replace(grant, "")).unwrap();

    let name = fleet_testkit::unique_name("e2e-iam");
    let mut opts = options(&name, dir.path());
    opts.template = scratch;
    opts.index_template = Some(root().join("opensearch/robots-template.json"));
    let stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));
    let denied_before = denied(&stack, "dynamodb").await;

    let id = ulid::Ulid::new().to_string();
    let report = (
        mission_topic("rb-000009"),
        mission("rb-000009", &id, 1, 50).to_string().into_bytes(),
    );
    publish_all(&stack.endpoints.mqtt, "e2e-iam-publisher", &[report]).await;
    eventually("mission-ingest refused by IAM", &stack, || async {
        denied(&stack, "dynamodb").await > denied_before && stack.counters().item_failures > 0
    })
    .await;
    // Refused, retried, never rejected: the record is still in the stream.
    let stats = stack.counters();
    let m = &stats.mappings["MissionIngestFunctionMissionsStream"];
    assert_eq!(m.records_done, 0, "{stats:?}");
    assert_eq!(m.sent_to_on_failure, 0, "{stats:?}");
    assert!(missions(&stack).await.is_empty());
    assert!(rejects(&stack).list().await.unwrap().is_empty());

    // The grant comes back: the role of the real template, registered again.
    let real_stack = fleet_template::load(
        &root().join("template.yaml"),
        &fleet_template::LoadOptions {
            stack_name: name.clone(),
            parameter_overrides: dev::local_overrides(&name, &[]),
            ..fleet_template::LoadOptions::default()
        },
    )
    .unwrap();
    let model = fleet_local::front::access_model(&real_stack).unwrap();
    let role = &model.roles["MissionIngestRole"];
    stack
        .front()
        .register_principal(&role.arn, &role.policies, &name)
        .await
        .unwrap();
    eventually(
        "the waiting record stored once the grant is back",
        &stack,
        || async { missions(&stack).await.len() == 1 },
    )
    .await;
    let summary = stack.shutdown().await;
    assert_eq!(summary.records_lost, 0, "{summary:?}");
}

/// Defect 13: the OpenSearch cluster is lost and a new, empty one stands in its place under a
/// running pipeline (same domain endpoint, new osmem behind it). The indexer must not let its
/// next write create a concrete `robots` index: it installs the template and the alias again,
/// and the documents land in `<alias>-v1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_stood_up_again_gets_its_template_and_alias_back() {
    let logs = tempfile::tempdir().unwrap();
    let name = fleet_testkit::unique_name("e2e-os");
    let stack = dev::start(options(&name, logs.path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let shadow = |robot: &str, battery: u32| {
        (
            format!("$aws/things/{robot}/shadow/update"),
            json!({"state": {"reported": {"battery": battery}}})
                .to_string()
                .into_bytes(),
        )
    };
    publish_all(
        &stack.endpoints.mqtt,
        "e2e-os-1",
        &[shadow("rb-000001", 90)],
    )
    .await;
    eventually("robot 1 indexed on the first cluster", &stack, || async {
        robot_doc(&stack, "rb-000001").await.is_some()
    })
    .await;

    // The cluster is replaced: a new, empty osmem behind the same domain endpoint.
    let venv = PathBuf::from(fleet_testkit::venv());
    let new_cluster = fleet_local::standins::start_osmem(&venv, logs.path())
        .await
        .unwrap();
    let domain = format!(
        "arn:aws:es:us-east-1:123456789012:domain/{}",
        fleet_local::names::local_domain_name(&name)
    );
    let url = stack
        .front()
        .opensearch_domain(&domain, Some(&new_cluster.url))
        .await
        .unwrap();
    assert_eq!(url, stack.endpoints.opensearch, "the endpoint stays");

    publish_all(
        &stack.endpoints.mqtt,
        "e2e-os-2",
        &[shadow("rb-000002", 70)],
    )
    .await;
    eventually("robot 2 indexed on the new cluster", &stack, || async {
        robot_doc(&stack, "rb-000002").await.is_some()
    })
    .await;
    // On the new cluster: the alias points at <alias>-v1, made from the template; no index is
    // named like the alias.
    let os = fleet_testkit::opensearch_at(&stack.endpoints.opensearch);
    let alias = &stack.resources.opensearch.alias;
    assert_eq!(
        fleet_testkit::alias_indices(&os, alias).await,
        [format!("{alias}-v1")]
    );
    let template = os
        .call(
            reqwest::Method::GET,
            &format!("/_index_template/{alias}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(template.status, 200, "{}", template.text());
    let summary = stack.shutdown().await;
    assert_eq!(summary.records_lost, 0, "{summary:?}");
    new_cluster.stop().await;
}

/// The circuit breaker's IAM, through the AWS front: a consumer's role may pause its own
/// mappings only (`lambda:FunctionArn` condition); and the operator's `robofleet breaker
/// open|close` pauses and resumes a downstream's mappings on the local stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_role_pauses_only_its_own_mappings_and_an_operator_overrides_the_breaker() {
    use fleet_breaker::MappingSwitch as _;
    let logs = tempfile::tempdir().unwrap();
    let name = fleet_testkit::unique_name("e2e-iam-brk");
    let stack = dev::start(options(&name, logs.path()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tpl = fleet_template::load(
        &root().join("template.yaml"),
        &fleet_template::LoadOptions {
            stack_name: name.clone(),
            parameter_overrides: dev::local_overrides(&name, &[]),
            ..fleet_template::LoadOptions::default()
        },
    )
    .unwrap();
    let model = fleet_local::front::access_model(&tpl).unwrap();
    let role = &model.roles["ShadowIndexerRole"];
    let creds = stack
        .front()
        .register_principal(&role.arn, &role.policies, &name)
        .await
        .unwrap();
    let as_indexer =
        fleet_aws::config::sdk_config_as(&stack.endpoints.aws, "us-east-1", creds.to_sdk()).await;
    let switch = fleet_breaker::LambdaSwitch::new(aws_sdk_lambda::Client::new(&as_indexer));
    let own = vec![format!("{name}-shadow-indexer:live")];
    let other = vec![format!("{name}-mission-ingest:live")];
    assert_eq!(switch.set_enabled(&own, false).await.unwrap(), 1);
    assert_eq!(switch.set_enabled(&own, true).await.unwrap(), 1);
    let refused = switch.set_enabled(&other, false).await.unwrap_err();
    assert!(refused.0.contains("AccessDenied"), "{refused}");

    // The operator holds the robots index's breaker open, then closes it.
    let target = fleet_ops::breaker::BreakerTarget {
        aws_endpoint: Some(stack.endpoints.aws.clone()),
        table: Some(stack.resources.tables["BreakerTable"].clone()),
        stack: Some(name.clone()),
        aws: fleet_aws::config::AwsAccess {
            profile: None,
            region: Some("us-east-1".into()),
        },
    };
    let run = |command| {
        fleet_ops::breaker::run(fleet_ops::breaker::BreakerArgs {
            command,
            target: target.clone(),
        })
    };
    run(fleet_ops::breaker::BreakerCommand::Open {
        downstream: "robots-index".into(),
    })
    .await
    .unwrap();
    let dev_switch = fleet_breaker::LambdaSwitch::new(aws_sdk_lambda::Client::new(&stack.sdk));
    assert!(
        dev_switch
            .mappings(&own)
            .await
            .unwrap()
            .iter()
            .all(|(_, on)| !on)
    );
    let store = fleet_breaker::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        stack.resources.tables["BreakerTable"].clone(),
    );
    use fleet_breaker::StateStore as _;
    let state = store.load("robots-index").await.unwrap();
    assert_eq!(state.status, fleet_breaker::Status::Open);
    assert!(state.forced_by.is_some());
    // The scheduled probe does not close a forced breaker.
    let probe = stack
        .invoke("BreakerProbeFunction", json!({}))
        .await
        .unwrap();
    assert_eq!(probe["runs"][0]["after"], "open", "{probe}");
    run(fleet_ops::breaker::BreakerCommand::Close {
        downstream: "robots-index".into(),
    })
    .await
    .unwrap();
    assert!(
        dev_switch
            .mappings(&own)
            .await
            .unwrap()
            .iter()
            .all(|(_, on)| *on)
    );
    assert_eq!(
        store.load("robots-index").await.unwrap().status,
        fleet_breaker::Status::Closed
    );
    stack.shutdown().await;
}

/// Per-minute AWS/Kinesis metrics for `stream`, put through the front's test-only endpoint
/// (AWS refuses PutMetricData into AWS/ namespaces): `(minute start, MiB, records, throttled)`.
async fn inject_stream_metrics(aws: &str, stream: &str, minutes: &[(i64, f64, f64, f64)]) {
    let mut data = Vec::new();
    for (start, mib, records, throttled) in minutes {
        let dims = json!({ "StreamName": stream });
        data.push(json!({"metricName": "IncomingBytes", "dimensions": dims, "timestamp": start, "value": mib * 1_048_576.0, "unit": "Bytes"}));
        data.push(json!({"metricName": "IncomingRecords", "dimensions": dims, "timestamp": start, "value": records, "unit": "Count"}));
        data.push(json!({"metricName": "WriteProvisionedThroughputExceeded", "dimensions": dims, "timestamp": start, "value": throttled, "unit": "Count"}));
    }
    let r = reqwest::Client::new()
        .post(format!("{aws}/_front/metrics"))
        .json(&json!({"namespace": "AWS/Kinesis", "metricData": data}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_scaler_scales_a_provisioned_stack_and_prewarms_its_table_as_its_own_role() {
    let logs = tempfile::tempdir().unwrap();
    let name = fleet_testkit::unique_name("e2e-scale");
    let day = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    let mut o = options(&name, logs.path());
    for (k, v) in [
        ("StreamMode", "PROVISIONED".to_string()),
        ("MissionsShardCount", "1".to_string()),
        ("ShadowsShardCount", "1".to_string()),
        (
            "MissionsTableWarmRules",
            format!("{day} 00:00-23:59 UTC 6000wcu"),
        ),
    ] {
        o.parameter_overrides.push((k.to_string(), v));
    }
    let stack = dev::start(o).await.unwrap_or_else(|e| panic!("{e}"));
    let missions = stack.resources.streams["MissionsStream"].name.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let minute = now - now.rem_euclid(60);
    let minutes: Vec<_> = (1..=5)
        .map(|i| {
            (
                minute - i * 60,
                0.9 * 60.0,
                40_000.0,
                if i <= 2 { 2_000.0 } else { 0.0 },
            )
        })
        .collect();
    inject_stream_metrics(&stack.endpoints.aws, &missions, &minutes).await;
    // The function runs as StreamScalerRole: every call below went through the front's IAM.
    let report = stack
        .invoke("StreamScalerFunction", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let scaled = report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == missions.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{report}"));
    // A concurrent scheduled run may have made the call first: then this one saw it and stood
    // down or kept still. Either way the stream has 2 shards and one call was counted.
    let kinesis = aws_sdk_kinesis::Client::new(&stack.sdk);
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(&missions)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        2,
        "{scaled}"
    );
    let table = &stack.resources.tables["MissionsTable"];
    let d = aws_sdk_dynamodb::Client::new(&stack.sdk)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let t = d.table().unwrap();
    assert_eq!(
        t.warm_throughput().unwrap().write_units_per_second(),
        Some(6000),
        "{report}"
    );
    assert_eq!(
        t.global_secondary_indexes()[0]
            .warm_throughput()
            .unwrap()
            .write_units_per_second(),
        Some(6000)
    );
    stack.shutdown().await;
}
