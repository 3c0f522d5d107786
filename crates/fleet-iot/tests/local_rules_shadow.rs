//! Integration tests of the embedded broker, presence, the rules engine (against moto Kinesis
//! and SQS) and the shadow service (MQTT face and the real aws-sdk-iotdataplane client).
//! The moto tests need the stand-ins: `source tools/dev-env.sh` or `make test`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use fleet_iot::broker::{BrokerAddr, BrokerOptions, EmbeddedBroker, mqtt_options};
use fleet_iot::rules::{ActionDef, RuleDef, RulesEngine, RunnerConfig, Sinks, run};
use fleet_iot::shadow::ShadowService;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(20);

struct TestClient {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, Bytes)>,
    task: tokio::task::JoinHandle<()>,
}

impl TestClient {
    async fn connect(broker: &BrokerAddr, id: &str, subs: &[&str]) -> Self {
        let (client, mut eventloop) = AsyncClient::new(mqtt_options(broker, id), 10_000);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic, p.payload));
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = ready_tx.send("connack");
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send("suback");
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        tokio::time::timeout(WAIT, ready_rx.recv())
            .await
            .expect("connack in time");
        for s in subs {
            client
                .subscribe(*s, QoS::AtLeastOnce)
                .await
                .expect("subscribe");
            tokio::time::timeout(WAIT, ready_rx.recv())
                .await
                .expect("suback in time");
        }
        Self { client, rx, task }
    }

    async fn next(&mut self) -> (String, Value) {
        let (topic, payload) = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a message in time")
            .expect("client alive");
        let v = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        (topic, v)
    }

    /// The next message on `topic`, skipping others.
    async fn next_on(&mut self, topic: &str) -> Value {
        loop {
            let (t, v) = self.next().await;
            if t == topic {
                return v;
            }
        }
    }

    async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish");
    }
}

async fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start(BrokerOptions::default())
        .await
        .expect("embedded broker starts")
}

#[tokio::test]
async fn dollar_topics_route_through_the_embedded_broker_but_not_to_wildcard_filters() {
    let b = broker().await;
    let mut exact = TestClient::connect(
        &b.addr,
        "robofleet-local-t-exact",
        &["$aws/things/+/shadow/update"],
    )
    .await;
    let mut wild = TestClient::connect(&b.addr, "robofleet-local-t-wild", &["#"]).await;
    let publisher = TestClient::connect(&b.addr, "robofleet-local-t-pub", &[]).await;
    publisher
        .publish("$aws/things/rb-1/shadow/update", r#"{"state":{}}"#)
        .await;
    publisher.publish("plain/topic", "{}").await;
    publisher
        .publish("$aws/things/rb-2/shadow/update", r#"{"state":{}}"#)
        .await;
    // The sentinel: messages of one publisher reach a subscriber in order, so once '#' has it,
    // it has everything published before it that it would ever get.
    publisher.publish("plain/sentinel", "{}").await;
    let (topic, _) = exact.next().await;
    assert_eq!(topic, "$aws/things/rb-1/shadow/update");
    // the '#' subscriber sees the plain topics only
    let (topic, _) = wild.next().await;
    assert_eq!(topic, "plain/topic");
    let (topic, _) = wild.next().await;
    assert_eq!(topic, "plain/sentinel", "'#' must not match $ topics");
    assert!(
        b.stats
            .dollar_withheld
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test]
async fn presence_events_for_connect_and_disconnect() {
    let b = broker().await;
    let mut sub = TestClient::connect(
        &b.addr,
        "robofleet-local-t-presence",
        &["$aws/events/presence/#"],
    )
    .await;

    let robot = TestClient::connect(&b.addr, "rb-presence-1", &[]).await;
    let v = sub
        .next_on("$aws/events/presence/connected/rb-presence-1")
        .await;
    assert_eq!(v["clientId"], "rb-presence-1");
    assert_eq!(v["eventType"], "connected");
    assert_eq!(v["ipAddress"], "127.0.0.1");
    assert!(v["timestamp"].as_u64().expect("ms timestamp") > 1_600_000_000_000);
    assert!(v["sessionIdentifier"].as_str().is_some());
    assert!(v["principalIdentifier"].as_str().is_some());
    let connected_version = v["versionNumber"].as_u64().expect("version");

    robot.client.disconnect().await.expect("disconnect");
    let v = sub
        .next_on("$aws/events/presence/disconnected/rb-presence-1")
        .await;
    assert_eq!(v["eventType"], "disconnected");
    assert_eq!(v["disconnectReason"], "CLIENT_INITIATED_DISCONNECT");
    assert_eq!(v["clientInitiatedDisconnect"], true);
    assert!(v["versionNumber"].as_u64().expect("version") > connected_version);

    // a dropped socket is a lost connection
    let lost = TestClient::connect(&b.addr, "rb-presence-2", &[]).await;
    sub.next_on("$aws/events/presence/connected/rb-presence-2")
        .await;
    lost.task.abort();
    drop(lost);
    let v = sub
        .next_on("$aws/events/presence/disconnected/rb-presence-2")
        .await;
    assert_eq!(v["disconnectReason"], "CONNECTION_LOST");
}

#[tokio::test]
async fn internal_clients_get_no_presence_events() {
    let b = broker().await;
    let mut sub = TestClient::connect(
        &b.addr,
        "robofleet-local-t-presence2",
        &["$aws/events/presence/#"],
    )
    .await;
    let internal = TestClient::connect(&b.addr, "robofleet-local-something", &[]).await;
    internal.client.disconnect().await.expect("disconnect");
    let _robot = TestClient::connect(&b.addr, "rb-after-internal", &[]).await;
    let (topic, _) = sub.next().await;
    assert_eq!(topic, "$aws/events/presence/connected/rb-after-internal");
}

// ---------------------------------------------------------------------------------------------
// Rules engine against moto

async fn kinesis_stream(client: &aws_sdk_kinesis::Client, name: &str) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(2)
        .send()
        .await
        .expect("create stream");
    for _ in 0..100 {
        let s = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .expect("describe");
        if s.stream_description_summary()
            .map(|d| d.stream_status().as_str())
            == Some("ACTIVE")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stream {name} never became active");
}

async fn read_all(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    want: usize,
) -> Vec<(String, Vec<u8>)> {
    let shards = client
        .list_shards()
        .stream_name(name)
        .send()
        .await
        .expect("shards");
    let mut iters = Vec::new();
    for s in shards.shards() {
        let it = client
            .get_shard_iterator()
            .stream_name(name)
            .shard_id(s.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator");
        iters.push(it.shard_iterator().map(str::to_owned));
    }
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < want && tokio::time::Instant::now() < deadline {
        for it in iters.iter_mut() {
            let Some(i) = it.clone() else { continue };
            let r = client
                .get_records()
                .shard_iterator(i)
                .send()
                .await
                .expect("get records");
            for rec in r.records() {
                out.push((
                    rec.partition_key().unwrap_or_default().to_owned(),
                    rec.data().as_ref().to_vec(),
                ));
            }
            *it = r.next_shard_iterator().map(str::to_owned);
        }
        if out.len() < want {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}

#[tokio::test]
async fn basic_ingest_messages_reach_kinesis_with_thing_partition_keys() {
    let sdk = fleet_testkit::sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let stream = fleet_testkit::unique_name("rules-missions");
    kinesis_stream(&kinesis, &stream).await;

    let b = broker().await;
    let sinks = Sinks {
        streams: HashMap::from([("missions".to_owned(), stream.clone())]),
        queues: HashMap::new(),
    };
    let rules = vec![RuleDef {
        name: "mission_reports".into(),
        sql: "SELECT * FROM 'robots/+/missions'".into(),
        sql_version: Some("2016-03-23".into()),
        actions: vec![ActionDef::Kinesis {
            stream_name: "missions".into(),
            partition_key: Some("${topic(2)}".into()),
        }],
        error_action: None,
        enabled: true,
    }];
    let engine = Arc::new(RulesEngine::new(rules, &sinks).expect("rules load"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let runner = run(
        engine,
        RunnerConfig::new(b.addr.clone()),
        kinesis.clone(),
        sqs,
        stop_rx,
    );
    assert!(runner.wait_ready(WAIT).await, "rules engine subscribed");

    let robot = TestClient::connect(&b.addr, "rb-rules-pub", &[]).await;
    let n = 60;
    for i in 0..n {
        let thing = format!("rb-{}", i % 4);
        let body = json!({"robotId": thing, "missionId": format!("m-{i}"), "rev": 1});
        robot
            .publish(
                &format!("$aws/rules/mission_reports/robots/{thing}/missions"),
                body.to_string(),
            )
            .await;
    }
    // a malformed mission travels as raw bytes, and an unknown rule is dropped and counted
    robot
        .publish(
            "$aws/rules/mission_reports/robots/rb-9/missions",
            &b"\xffnot json"[..],
        )
        .await;
    robot
        .publish("$aws/rules/no_such_rule/robots/rb-1/missions", "{}")
        .await;

    let records = read_all(&kinesis, &stream, n + 1).await;
    assert_eq!(records.len(), n + 1, "every message becomes one record");
    let mut seen = std::collections::HashSet::new();
    for (pk, data) in &records {
        if data.as_slice() == b"\xffnot json" {
            assert_eq!(pk, "rb-9");
            continue;
        }
        let v: Value = serde_json::from_slice(data).expect("json record");
        assert_eq!(
            v["robotId"],
            Value::String(pk.clone()),
            "partition key = thing"
        );
        seen.insert(v["missionId"].as_str().expect("id").to_owned());
    }
    assert_eq!(seen.len(), n);
    let stats = runner.stats.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats
        .dropped_unknown_rule
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stats
            .dropped_unknown_rule
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats.records_put.load(std::sync::atomic::Ordering::Relaxed),
        (n + 1) as u64
    );
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(WAIT, runner.handle)
        .await
        .expect("stops")
        .expect("no panic");
}

#[tokio::test]
async fn failed_kinesis_action_goes_to_the_error_action_queue() {
    let sdk = fleet_testkit::sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = fleet_testkit::unique_name("rules-errors");
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let b = broker().await;
    let sinks = Sinks {
        streams: HashMap::from([(
            "missions".to_owned(),
            fleet_testkit::unique_name("does-not-exist"),
        )]),
        queues: HashMap::from([("errors".to_owned(), queue_url.clone())]),
    };
    let rules = vec![RuleDef {
        name: "shadows".into(),
        sql: "SELECT *, topic(3) AS thingName FROM '$aws/things/+/shadow/update/documents'".into(),
        sql_version: None,
        actions: vec![ActionDef::Kinesis {
            stream_name: "missions".into(),
            partition_key: Some("${topic(3)}".into()),
        }],
        error_action: Some(ActionDef::Sqs {
            queue_name: "errors".into(),
            use_base64: false,
        }),
        enabled: true,
    }];
    let engine = Arc::new(RulesEngine::new(rules, &sinks).expect("rules load"));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut config = RunnerConfig::new(b.addr.clone());
    config.max_attempts = 2;
    let runner = run(engine, config, kinesis, sqs.clone(), stop_rx);
    assert!(runner.wait_ready(WAIT).await);
    let publisher = TestClient::connect(&b.addr, "robofleet-local-t-doc", &[]).await;
    let doc = json!({"current": {"state": {}, "version": 1}, "timestamp": 1});
    publisher
        .publish(
            "$aws/things/rb-err/shadow/update/documents",
            doc.to_string(),
        )
        .await;

    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let r = sqs
            .receive_message()
            .queue_url(&queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if let Some(m) = r.messages().first() {
            break m.body().expect("body").to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no error message arrived"
        );
    };
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["ruleName"], "shadows");
    assert_eq!(v["topic"], "$aws/things/rb-err/shadow/update/documents");
    assert_eq!(v["clientId"], "rb-err");
    assert_eq!(v["failures"][0]["failedAction"], "KinesisAction");
    let original = base64::engine::general_purpose::STANDARD
        .decode(v["base64OriginalPayload"].as_str().expect("b64"))
        .expect("decodes");
    assert_eq!(
        serde_json::from_slice::<Value>(&original).expect("json"),
        doc
    );
    assert_eq!(
        runner
            .stats
            .errors
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Shadow service

async fn shadow_stack() -> (
    EmbeddedBroker,
    fleet_iot::shadow::ShadowHandle,
    watch::Sender<bool>,
) {
    let b = broker().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let h = ShadowService::start(&b.addr, addr, stop_rx)
        .await
        .expect("shadow service");
    assert!(h.wait_ready(WAIT).await, "shadow service subscribed");
    (b, h, stop_tx)
}

#[tokio::test]
async fn mqtt_update_is_accepted_and_documented() {
    let (b, _h, _stop) = shadow_stack().await;
    let mut robot = TestClient::connect(
        &b.addr,
        "rb-1",
        &[
            "$aws/things/rb-1/shadow/update/+",
            "$aws/things/rb-1/shadow/get/+",
        ],
    )
    .await;
    robot
        .publish(
            "$aws/things/rb-1/shadow/update",
            json!({"state": {"reported": {"battery": 91}}, "clientToken": "tok-1"}).to_string(),
        )
        .await;
    let acc = robot
        .next_on("$aws/things/rb-1/shadow/update/accepted")
        .await;
    assert_eq!(acc["version"], 1);
    assert_eq!(acc["clientToken"], "tok-1");
    assert_eq!(acc["state"]["reported"]["battery"], 91);
    let docs = robot
        .next_on("$aws/things/rb-1/shadow/update/documents")
        .await;
    assert!(docs.get("previous").is_none());
    assert_eq!(docs["current"]["state"]["reported"]["battery"], 91);
    assert_eq!(docs["current"]["version"], 1);

    robot
        .publish("$aws/things/rb-1/shadow/update", "not json")
        .await;
    let rej = robot
        .next_on("$aws/things/rb-1/shadow/update/rejected")
        .await;
    assert_eq!(rej["code"], 400);

    robot.publish("$aws/things/rb-1/shadow/get", "").await;
    let got = robot.next_on("$aws/things/rb-1/shadow/get/accepted").await;
    assert_eq!(got["state"]["reported"]["battery"], 91);
}

fn blob(v: &Value) -> aws_sdk_iotdataplane::primitives::Blob {
    aws_sdk_iotdataplane::primitives::Blob::new(v.to_string().into_bytes())
}

fn parse(b: Option<&aws_sdk_iotdataplane::primitives::Blob>) -> Value {
    serde_json::from_slice(b.expect("payload").as_ref()).expect("json payload")
}

#[tokio::test]
async fn iot_data_plane_sdk_against_the_http_face() {
    let (b, h, _stop) = shadow_stack().await;
    let mut robot = TestClient::connect(
        &b.addr,
        "rb-7",
        &["$aws/things/rb-7/shadow/#", "robots/rb-7/commands"],
    )
    .await;
    let iot = aws_sdk_iotdataplane::Client::new(&fleet_testkit::sdk_config_for(&h.http_url).await);

    // missing shadow: ResourceNotFoundException
    let err = iot
        .get_thing_shadow()
        .thing_name("rb-7")
        .send()
        .await
        .expect_err("404");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );

    // reported via MQTT, then a command via the API: the robot sees a delta
    robot
        .publish(
            "$aws/things/rb-7/shadow/update",
            json!({"state": {"reported": {"mode": "idle"}}}).to_string(),
        )
        .await;
    robot
        .next_on("$aws/things/rb-7/shadow/update/documents")
        .await;
    let out = iot
        .update_thing_shadow()
        .thing_name("rb-7")
        .payload(blob(
            &json!({"state": {"desired": {"mode": "clean"}}, "clientToken": "cmd-1"}),
        ))
        .send()
        .await
        .expect("update");
    let acc = parse(out.payload());
    assert_eq!(acc["version"], 2);
    assert_eq!(acc["clientToken"], "cmd-1");
    let acc_mqtt = robot
        .next_on("$aws/things/rb-7/shadow/update/accepted")
        .await;
    assert_eq!(acc_mqtt["version"], 2);
    let docs = robot
        .next_on("$aws/things/rb-7/shadow/update/documents")
        .await;
    assert_eq!(docs["previous"]["version"], 1);
    assert_eq!(docs["current"]["state"]["desired"]["mode"], "clean");
    let delta = robot.next_on("$aws/things/rb-7/shadow/update/delta").await;
    assert_eq!(delta["state"], json!({"mode": "clean"}));
    assert_eq!(delta["clientToken"], "cmd-1");

    // version conflict
    let err = iot
        .update_thing_shadow()
        .thing_name("rb-7")
        .payload(blob(
            &json!({"state": {"desired": {"mode": "x"}}, "version": 1}),
        ))
        .send()
        .await
        .expect_err("409");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_conflict_exception()),
        "{err:?}"
    );
    // bad request
    let err = iot
        .update_thing_shadow()
        .thing_name("rb-7")
        .payload(aws_sdk_iotdataplane::primitives::Blob::new(b"{}".to_vec()))
        .send()
        .await
        .expect_err("400");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_request_exception()),
        "{err:?}"
    );

    // get shows the delta
    let got = parse(
        iot.get_thing_shadow()
            .thing_name("rb-7")
            .send()
            .await
            .expect("get")
            .payload(),
    );
    assert_eq!(got["state"]["delta"], json!({"mode": "clean"}));
    assert_eq!(got["version"], 2);

    // named shadows
    for name in ["schedule", "maps"] {
        iot.update_thing_shadow()
            .thing_name("rb-7")
            .shadow_name(name)
            .payload(blob(&json!({"state": {"reported": {"n": 1}}})))
            .send()
            .await
            .expect("named update");
    }
    let named = robot
        .next_on("$aws/things/rb-7/shadow/name/schedule/update/accepted")
        .await;
    assert_eq!(named["version"], 1);
    let list = iot
        .list_named_shadows_for_thing()
        .thing_name("rb-7")
        .send()
        .await
        .expect("list");
    assert_eq!(list.results(), ["maps", "schedule"]);
    let page = iot
        .list_named_shadows_for_thing()
        .thing_name("rb-7")
        .page_size(1)
        .send()
        .await
        .expect("page");
    assert_eq!(page.results(), ["maps"]);
    let next = iot
        .list_named_shadows_for_thing()
        .thing_name("rb-7")
        .page_size(1)
        .set_next_token(page.next_token().map(str::to_owned))
        .send()
        .await
        .expect("page 2");
    assert_eq!(next.results(), ["schedule"]);
    assert!(next.next_token().is_none());

    // publish through the API
    iot.publish()
        .topic("robots/rb-7/commands")
        .qos(1)
        .payload(aws_sdk_iotdataplane::primitives::Blob::new(
            b"{\"go\":1}".to_vec(),
        ))
        .send()
        .await
        .expect("publish");
    let cmd = robot.next_on("robots/rb-7/commands").await;
    assert_eq!(cmd, json!({"go": 1}));

    // delete, then it is gone and a re-created shadow starts at version 1
    let del = iot
        .delete_thing_shadow()
        .thing_name("rb-7")
        .send()
        .await
        .expect("delete");
    assert_eq!(parse(Some(del.payload()))["version"], 2);
    robot
        .next_on("$aws/things/rb-7/shadow/delete/accepted")
        .await;
    let err = iot
        .get_thing_shadow()
        .thing_name("rb-7")
        .send()
        .await
        .expect_err("gone");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    let out = iot
        .update_thing_shadow()
        .thing_name("rb-7")
        .payload(blob(&json!({"state": {"reported": {"mode": "idle"}}})))
        .send()
        .await
        .expect("recreate");
    assert_eq!(parse(out.payload())["version"], 1);
}

/// Every message of eight concurrent publishers reaches Kinesis through the broker front and the
/// rules engine. Small in `make test` (2,000 messages); a throughput probe with
/// `RULES_THROUGHPUT_N=20000 cargo test -p fleet-iot --test local_rules_shadow -- --nocapture
/// rules_throughput`, which prints the rates of each stage (not asserted: see docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_throughput() {
    use std::sync::atomic::Ordering::Relaxed;
    let n: usize = std::env::var("RULES_THROUGHPUT_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let sdk = fleet_testkit::sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let stream = fleet_testkit::unique_name("rules-tput");
    kinesis_stream(&kinesis, &stream).await;
    let b = broker().await;
    let sinks = Sinks {
        streams: HashMap::from([("missions".to_owned(), stream.clone())]),
        queues: HashMap::new(),
    };
    let rules = vec![RuleDef {
        name: "mission_reports".into(),
        sql: "SELECT * FROM 'robots/+/missions'".into(),
        sql_version: Some("2016-03-23".into()),
        actions: vec![ActionDef::Kinesis {
            stream_name: "missions".into(),
            partition_key: Some("${topic(2)}".into()),
        }],
        error_action: None,
        enabled: true,
    }];
    let engine = Arc::new(RulesEngine::new(rules, &sinks).expect("rules load"));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut config = RunnerConfig::new(b.addr.clone());
    config.max_in_flight_batches = std::env::var("RULES_THROUGHPUT_IN_FLIGHT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let runner = run(
        engine,
        config,
        kinesis.clone(),
        aws_sdk_sqs::Client::new(&sdk),
        stop_rx,
    );
    assert!(runner.wait_ready(WAIT).await);
    let body =
        json!({"schema": 1, "robotId": "rb-000001", "missionId": "01JD3Z0000000000000000000",
        "rev": 1, "status": "completed", "startedAt": "2026-11-23T15:00:04Z",
        "endedAt": "2026-11-23T15:41:10Z", "areaM2": 42.5, "durationS": 2466,
        "battery": {"start": 100, "end": 37}, "errors": []})
        .to_string();
    let publishers = 8;
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let url = b.addr.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let c = TestClient::connect(&url, &format!("rb-tput-{p}"), &[]).await;
            for i in 0..n / publishers {
                c.client
                    .publish(
                        format!(
                            "$aws/rules/mission_reports/robots/rb-{}/missions",
                            (i * publishers + p) % 500
                        ),
                        QoS::AtMostOnce,
                        false,
                        body.clone().into_bytes(),
                    )
                    .await
                    .expect("publish");
            }
            // let the event loop drain before dropping the client
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(c);
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let published = start.elapsed();
    let total = (n / publishers * publishers) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while runner.stats.records_put.load(Relaxed) < total && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = start.elapsed();
    let s = &runner.stats;
    println!(
        "published {total} in {:.2}s ({:.0}/s); rules engine received {}, put {} records in {} PutRecords calls, all done in {:.2}s ({:.0} records/s)",
        published.as_secs_f64(),
        total as f64 / published.as_secs_f64(),
        s.messages_in.load(Relaxed),
        s.records_put.load(Relaxed),
        s.put_records_calls.load(Relaxed),
        done.as_secs_f64(),
        s.records_put.load(Relaxed) as f64 / done.as_secs_f64(),
    );
    assert_eq!(
        s.records_put.load(Relaxed),
        total,
        "every message reached Kinesis"
    );
}

#[tokio::test]
async fn mqtt5_clients_use_dollar_topics_and_get_presence() {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::{AsyncClient as Client5, Event as Event5, MqttOptions as Options5};
    let b = broker().await;
    let mut sub = TestClient::connect(
        &b.addr,
        "robofleet-local-t-v5",
        &["$aws/events/presence/#", "$aws/things/rb-v5/shadow/update"],
    )
    .await;
    let (client, mut eventloop) = Client5::new(Options5::new("rb-v5", "127.0.0.1", b.port), 100);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event5::Incoming(P5::Publish(p)) = ev {
                let _ = tx.send(String::from_utf8_lossy(&p.topic).into_owned());
            }
        }
    });
    let v = sub.next_on("$aws/events/presence/connected/rb-v5").await;
    assert_eq!(v["clientId"], "rb-v5");
    client
        .subscribe(
            "$aws/things/rb-v5/shadow/update/accepted",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        )
        .await
        .expect("v5 subscribe");
    client
        .publish(
            "$aws/things/rb-v5/shadow/update",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "{}",
        )
        .await
        .expect("v5 publish");
    sub.next_on("$aws/things/rb-v5/shadow/update").await;
    // a v4 client publishes on the topic the v5 client subscribed to
    sub.publish("$aws/things/rb-v5/shadow/update/accepted", "{}")
        .await;
    let topic = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("alive");
    assert_eq!(topic, "$aws/things/rb-v5/shadow/update/accepted");
    task.abort();
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_reports_duplicate_clientid() {
    let b = broker().await;
    let mut sub = TestClient::connect(
        &b.addr,
        "robofleet-local-t-dup",
        &["$aws/events/presence/#"],
    )
    .await;
    let first = TestClient::connect(&b.addr, "rb-dup", &[]).await;
    sub.next_on("$aws/events/presence/connected/rb-dup").await;
    let _second = TestClient::connect(&b.addr, "rb-dup", &[]).await;
    let v = sub
        .next_on("$aws/events/presence/disconnected/rb-dup")
        .await;
    assert_eq!(v["disconnectReason"], "DUPLICATE_CLIENTID");
    drop(first);
}

#[tokio::test]
async fn overlapping_rules_each_fire_once_per_message() {
    use std::sync::atomic::Ordering::Relaxed;
    let sdk = fleet_testkit::sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let stream = fleet_testkit::unique_name("rules-overlap");
    kinesis_stream(&kinesis, &stream).await;
    let b = broker().await;
    let sinks = Sinks {
        streams: HashMap::from([("s".to_owned(), stream.clone())]),
        queues: HashMap::new(),
    };
    let rule = |name: &str, sql: &str, pk: &str| RuleDef {
        name: name.into(),
        sql: sql.into(),
        sql_version: Some("2016-03-23".into()),
        actions: vec![ActionDef::Kinesis {
            stream_name: "s".into(),
            partition_key: Some(pk.into()),
        }],
        error_action: None,
        enabled: true,
    };
    let engine = Arc::new(
        RulesEngine::new(
            vec![
                rule("all", "SELECT * FROM 'robots/#'", "all-${topic(2)}"),
                rule(
                    "telemetry",
                    "SELECT * FROM 'robots/+/telemetry'",
                    "tel-${topic(2)}",
                ),
            ],
            &sinks,
        )
        .expect("rules load"),
    );
    let (_stop_tx, stop_rx) = watch::channel(false);
    let runner = run(
        engine,
        RunnerConfig::new(b.addr.clone()),
        kinesis.clone(),
        aws_sdk_sqs::Client::new(&sdk),
        stop_rx,
    );
    assert!(runner.wait_ready(WAIT).await);
    let p = TestClient::connect(&b.addr, "rb-ovl", &[]).await;
    p.publish("robots/rb-ovl/telemetry", "{}").await;
    let mut keys: Vec<String> = read_all(&kinesis, &stream, 2)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    assert_eq!(keys, ["all-rb-ovl", "tel-rb-ovl"]);
    // The sentinel matches the first rule only. The runner handles its MQTT messages in order
    // and sends each stream's records in order, so once the sentinel's record is in the
    // stream, a second delivery of the first message would be too.
    p.publish("robots/rb-ovl/sentinel", "{}").await;
    let keys: Vec<String> = read_all(&kinesis, &stream, 3)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(
        runner.stats.messages_in.load(Relaxed),
        2,
        "delivered once despite overlapping FROMs"
    );
    assert_eq!(runner.stats.records_put.load(Relaxed), 3);
}

/// A fake Kinesis endpoint (real HTTP, real SDK) whose first PutRecords fails every second
/// entry: the runner must resend only those.
#[tokio::test]
async fn put_records_partial_failures_are_retried_for_the_failed_entries_only() {
    use axum::http::HeaderMap;
    use std::sync::Mutex;
    let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let app = {
        let calls = calls.clone();
        axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
            let calls = calls.clone();
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                assert!(target.ends_with("PutRecords"), "unexpected call {target}");
                let req: Value = serde_json::from_slice(&body).expect("json request");
                let keys: Vec<String> = req["Records"]
                    .as_array()
                    .expect("records")
                    .iter()
                    .map(|r| r["PartitionKey"].as_str().expect("key").to_owned())
                    .collect();
                let first = {
                    let mut c = calls.lock().expect("lock");
                    c.push(keys.clone());
                    c.len() == 1
                };
                let results: Vec<Value> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, _)| {
                        if first && !i.is_multiple_of(2) {
                            json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"})
                        } else {
                            json!({"SequenceNumber": format!("{i}"), "ShardId": "shardId-000000000000"})
                        }
                    })
                    .collect();
                let failed = results.iter().filter(|r| r.get("ErrorCode").is_some()).count();
                (
                    [("content-type", "application/x-amz-json-1.1")],
                    json!({"FailedRecordCount": failed, "Records": results}).to_string(),
                )
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("fake kinesis") });

    let b = broker().await;
    let sinks = Sinks {
        streams: HashMap::from([("s".to_owned(), "fake-stream".to_owned())]),
        queues: HashMap::new(),
    };
    let rules = vec![RuleDef {
        name: "r".into(),
        sql: "SELECT * FROM 'robots/+/m'".into(),
        sql_version: None,
        actions: vec![ActionDef::Kinesis {
            stream_name: "s".into(),
            partition_key: Some("${topic(2)}".into()),
        }],
        error_action: None,
        enabled: true,
    }];
    let engine = Arc::new(RulesEngine::new(rules, &sinks).expect("rules load"));
    let sdk = fleet_testkit::sdk_config_for(&fake).await;
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut config = RunnerConfig::new(b.addr.clone());
    config.batch_window = Duration::from_millis(300);
    let runner = run(
        engine,
        config,
        aws_sdk_kinesis::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
        stop_rx,
    );
    assert!(runner.wait_ready(WAIT).await);
    let p = TestClient::connect(&b.addr, "robofleet-local-t-partial", &[]).await;
    for i in 0..6 {
        p.publish(&format!("robots/k{i}/m"), "{}").await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while runner
        .stats
        .records_put
        .load(std::sync::atomic::Ordering::Relaxed)
        < 6
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "records never all put"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2, "one call, then one retry: {calls:?}");
    assert_eq!(calls[0], ["k0", "k1", "k2", "k3", "k4", "k5"]);
    assert_eq!(calls[1], ["k1", "k3", "k5"]);
    assert_eq!(
        runner
            .stats
            .records_retried
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        runner
            .stats
            .errors
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_128_kib_message_passes_the_broker_front() {
    let b = broker().await;
    let mut sub = TestClient::connect(&b.addr, "robofleet-local-t-big", &["$aws/rules/#"]).await;
    let p = TestClient::connect(&b.addr, "rb-big", &[]).await;
    let body = json!({"pad": "x".repeat(128 * 1024 - 20)}).to_string();
    assert!(body.len() <= 128 * 1024);
    p.publish(
        "$aws/rules/mission_reports/robots/rb-big/missions",
        body.clone(),
    )
    .await;
    let (topic, v) = sub.next().await;
    assert_eq!(topic, "$aws/rules/mission_reports/robots/rb-big/missions");
    assert_eq!(v.to_string().len(), body.len());
}

/// The same parts against an external broker: mosquitto (installed by `make test`). A shadow
/// update travels robot → shadow service → `/update/documents` → rules engine → moto Kinesis.
#[tokio::test]
async fn shadow_documents_reach_kinesis_through_mosquitto() {
    let mosquitto = fleet_testkit::Mosquitto::start("");
    let url = BrokerAddr::new("127.0.0.1", mosquitto.port);
    shadow_chain_to_kinesis(&url, "rb-mosq").await;
}

#[tokio::test]
async fn shadow_documents_reach_kinesis_through_the_embedded_broker() {
    let b = broker().await;
    shadow_chain_to_kinesis(&b.addr, "rb-embedded").await;
}

async fn shadow_chain_to_kinesis(url: &BrokerAddr, thing: &str) {
    let url = url.clone();
    let sdk = fleet_testkit::sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let stream = fleet_testkit::unique_name("rules-chain");
    kinesis_stream(&kinesis, &stream).await;
    let (_stop_tx, stop_rx) = watch::channel(false);
    let shadow = ShadowService::start(&url, "127.0.0.1:0".parse().expect("addr"), stop_rx.clone())
        .await
        .expect("shadow service");
    assert!(shadow.wait_ready(WAIT).await);
    let sinks = Sinks {
        streams: HashMap::from([("shadows".to_owned(), stream.clone())]),
        queues: HashMap::new(),
    };
    let rules = vec![RuleDef {
        name: "shadow_documents".into(),
        sql: "SELECT *, topic(3) AS thingName FROM '$aws/things/+/shadow/update/documents'".into(),
        sql_version: Some("2016-03-23".into()),
        actions: vec![ActionDef::Kinesis {
            stream_name: "shadows".into(),
            partition_key: Some("${topic(3)}".into()),
        }],
        error_action: None,
        enabled: true,
    }];
    let engine = Arc::new(RulesEngine::new(rules, &sinks).expect("rules load"));
    let runner = run(
        engine,
        RunnerConfig::new(url.clone()),
        kinesis.clone(),
        aws_sdk_sqs::Client::new(&sdk),
        stop_rx,
    );
    assert!(runner.wait_ready(WAIT).await);

    let robot = TestClient::connect(&url, thing, &[]).await;
    robot
        .publish(
            &format!("$aws/things/{thing}/shadow/update"),
            json!({"state": {"reported": {"battery": 55}}}).to_string(),
        )
        .await;
    let records = read_all(&kinesis, &stream, 1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, thing);
    let v: Value = serde_json::from_slice(&records[0].1).expect("json");
    assert_eq!(v["thingName"], thing);
    assert_eq!(v["current"]["state"]["reported"]["battery"], 55);
    assert_eq!(v["current"]["version"], 1);
    // the shadow-indexer's decoder (fleet-core) accepts what the local stack produced
    fleet_core::shadow::ShadowRecord::from_record(&records[0].1, &records[0].0)
        .expect("fleet-core accepts the local shadow documents record");
}

/// Many clients connect through the front, and each gets its presence event. 200 in
/// `make test`; a connection-count probe with `MANY_CONNECTIONS=5000 cargo test -p fleet-iot
/// --test local_rules_shadow -- --nocapture many_connections` (mind `ulimit -n`: two sockets
/// per client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections() {
    use std::sync::atomic::Ordering::Relaxed;
    let n: usize = std::env::var("MANY_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let b = broker().await;
    let start = std::time::Instant::now();
    let mut clients = Vec::new();
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(100) {
        let mut set = Vec::new();
        for &i in chunk {
            let url = b.addr.clone();
            set.push(tokio::spawn(async move {
                TestClient::connect(&url, &format!("rb-many-{i}"), &[]).await
            }));
        }
        for t in set {
            clients.push(t.await.expect("client"));
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.presence.connected.load(Relaxed) < n as u64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{n} clients connected in {:.2}s; open {}, presence connected events {}",
        start.elapsed().as_secs_f64(),
        b.stats.connections_open.load(Relaxed),
        b.presence.connected.load(Relaxed)
    );
    assert_eq!(b.presence.connected.load(Relaxed), n as u64);
}

#[tokio::test]
async fn shared_subscriptions_on_dollar_topics_split_the_messages() {
    let b = broker().await;
    let filter = "$share/workers/$aws/things/+/shadow/update";
    let mut w1 =
        TestClient::connect(&b.addr, "robofleet-local-t-w1", &[filter, "sentinel/w1"]).await;
    let mut w2 =
        TestClient::connect(&b.addr, "robofleet-local-t-w2", &[filter, "sentinel/w2"]).await;
    let p = TestClient::connect(&b.addr, "robofleet-local-t-wp", &[]).await;
    for i in 0..10 {
        p.publish(&format!("$aws/things/rb-{i}/shadow/update"), "{}")
            .await;
    }
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while got < 10 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some((t, _)) = w1.rx.recv() => { assert!(t.starts_with("$aws/things/")); got += 1; }
            Some((t, _)) = w2.rx.recv() => { assert!(t.starts_with("$aws/things/")); got += 1; }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    assert_eq!(got, 10, "each message reaches exactly one worker");
    // A sentinel per worker, published after the ten: when each has its own, any second copy
    // of the ten would have reached it first.
    p.publish("sentinel/w1", "{}").await;
    p.publish("sentinel/w2", "{}").await;
    let (t1, _) = w1.next().await;
    let (t2, _) = w2.next().await;
    assert_eq!((t1.as_str(), t2.as_str()), ("sentinel/w1", "sentinel/w2"));
}

/// Presence events from the front travel through the template's presence rule into Kinesis, in
/// a shape the shadow-indexer's decoder (fleet-core) accepts.
#[tokio::test]
async fn presence_events_reach_kinesis_and_decode() {
    let sdk = fleet_testkit::sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let stream = fleet_testkit::unique_name("rules-presence");
    kinesis_stream(&kinesis, &stream).await;
    let b = broker().await;
    let sinks = Sinks {
        streams: HashMap::from([("shadows".to_owned(), stream.clone())]),
        queues: HashMap::new(),
    };
    let rules = vec![RuleDef {
        name: "presence_events".into(),
        sql: "SELECT * FROM '$aws/events/presence/+/+'".into(),
        sql_version: Some("2016-03-23".into()),
        actions: vec![ActionDef::Kinesis {
            stream_name: "shadows".into(),
            partition_key: Some("${topic(5)}".into()),
        }],
        error_action: None,
        enabled: true,
    }];
    let engine = Arc::new(RulesEngine::new(rules, &sinks).expect("rules load"));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let runner = run(
        engine,
        RunnerConfig::new(b.addr.clone()),
        kinesis.clone(),
        aws_sdk_sqs::Client::new(&sdk),
        stop_rx,
    );
    assert!(runner.wait_ready(WAIT).await);
    let robot = TestClient::connect(&b.addr, "rb-presence-k", &[]).await;
    robot.client.disconnect().await.expect("disconnect");
    let records = read_all(&kinesis, &stream, 2).await;
    assert_eq!(records.len(), 2);
    let mut kinds = Vec::new();
    for (pk, data) in &records {
        assert_eq!(pk, "rb-presence-k");
        match fleet_core::shadow::ShadowRecord::from_record(data, pk).expect("decodes") {
            fleet_core::shadow::ShadowRecord::Presence(p) => kinds.push(p.event_type.as_str()),
            other => panic!("not a presence event: {other:?}"),
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["connected", "disconnected"]);
}

#[tokio::test]
async fn shutdown_flushes_the_batch_in_hand() {
    use std::sync::atomic::Ordering::Relaxed;
    let sdk = fleet_testkit::sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let stream = fleet_testkit::unique_name("rules-drain");
    kinesis_stream(&kinesis, &stream).await;
    let b = broker().await;
    let sinks = Sinks {
        streams: HashMap::from([("s".to_owned(), stream.clone())]),
        queues: HashMap::new(),
    };
    let rules = vec![RuleDef {
        name: "r".into(),
        sql: "SELECT * FROM 'robots/+/m'".into(),
        sql_version: None,
        actions: vec![ActionDef::Kinesis {
            stream_name: "s".into(),
            partition_key: Some("${topic(2)}".into()),
        }],
        error_action: None,
        enabled: true,
    }];
    let engine = Arc::new(RulesEngine::new(rules, &sinks).expect("rules load"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut config = RunnerConfig::new(b.addr.clone());
    config.batch_window = Duration::from_secs(30);
    let runner = run(
        engine,
        config,
        kinesis.clone(),
        aws_sdk_sqs::Client::new(&sdk),
        stop_rx,
    );
    assert!(runner.wait_ready(WAIT).await);
    let p = TestClient::connect(&b.addr, "robofleet-local-t-drain", &[]).await;
    for i in 0..3 {
        p.publish(&format!("robots/d{i}/m"), "{}").await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while runner.stats.messages_in.load(Relaxed) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        runner.stats.records_put.load(Relaxed),
        0,
        "still inside the 30 s window"
    );
    stop_tx.send(true).expect("stop");
    let stats = runner.stats.clone();
    tokio::time::timeout(WAIT, runner.handle)
        .await
        .expect("stops without waiting for the window")
        .expect("no panic");
    assert_eq!(stats.records_put.load(Relaxed), 3);
    assert_eq!(read_all(&kinesis, &stream, 3).await.len(), 3);
}

async fn queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(fleet_testkit::unique_name(prefix))
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned()
}

async fn one_message(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if let Some(m) = r.messages().first() {
            return m.body().expect("body").to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message on {url}"
        );
    }
}

#[tokio::test]
async fn sqs_actions_send_base64_and_failures_reach_the_error_action() {
    let sdk = fleet_testkit::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ok_queue = queue(&sqs, "rules-sqs-ok").await;
    let err_queue = queue(&sqs, "rules-sqs-err").await;
    let missing = format!("{}-missing", ok_queue);
    let b = broker().await;
    let sinks = Sinks {
        streams: HashMap::new(),
        queues: HashMap::from([
            ("ok".to_owned(), ok_queue.clone()),
            ("missing".to_owned(), missing.clone()),
            ("errors".to_owned(), err_queue.clone()),
        ]),
    };
    let rules = vec![RuleDef {
        name: "alerts".into(),
        sql: "SELECT robotId, battery.end AS batteryEnd FROM 'robots/+/telemetry' WHERE battery.end < 20"
            .into(),
        sql_version: Some("2016-03-23".into()),
        actions: vec![
            ActionDef::Sqs {
                queue_name: "ok".into(),
                use_base64: true,
            },
            ActionDef::Sqs {
                queue_name: "missing".into(),
                use_base64: false,
            },
        ],
        error_action: Some(ActionDef::Sqs {
            queue_name: "errors".into(),
            use_base64: false,
        }),
        enabled: true,
    }];
    let engine = Arc::new(RulesEngine::new(rules, &sinks).expect("rules load"));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut config = RunnerConfig::new(b.addr.clone());
    config.max_attempts = 2;
    let runner = run(
        engine,
        config,
        aws_sdk_kinesis::Client::new(&sdk),
        sqs.clone(),
        stop_rx,
    );
    assert!(runner.wait_ready(WAIT).await);
    let p = TestClient::connect(&b.addr, "rb-sqs", &[]).await;
    p.publish(
        "robots/rb-sqs/telemetry",
        json!({"robotId": "rb-sqs", "battery": {"end": 80}}).to_string(),
    )
    .await;
    p.publish(
        "robots/rb-sqs/telemetry",
        json!({"robotId": "rb-sqs", "battery": {"end": 12}}).to_string(),
    )
    .await;

    let body = one_message(&sqs, &ok_queue).await;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .expect("base64 body");
    let v: Value = serde_json::from_slice(&decoded).expect("json");
    assert_eq!(v, json!({"robotId": "rb-sqs", "batteryEnd": 12}));

    let err: Value = serde_json::from_str(&one_message(&sqs, &err_queue).await).expect("json");
    assert_eq!(err["ruleName"], "alerts");
    assert_eq!(err["clientId"], "rb-sqs");
    assert_eq!(err["failures"][0]["failedAction"], "SqsAction");
    assert_eq!(err["failures"][0]["failedResource"], missing.as_str());
    assert!(
        !err["failures"][0]["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    let original = base64::engine::general_purpose::STANDARD
        .decode(err["base64OriginalPayload"].as_str().expect("b64"))
        .expect("decodes");
    let original: Value = serde_json::from_slice(&original).expect("json");
    assert_eq!(original["battery"]["end"], 12);
    assert_eq!(
        runner
            .stats
            .sqs_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
