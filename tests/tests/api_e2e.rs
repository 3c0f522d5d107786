//! End to end: the fleet API on the local stack, over data the real pipeline wrote.
//!
//! Simulated robots publish over MQTT (shadow updates, presence, mission reports); the rules,
//! streams and functions store them; then callers with their own IAM roles call every route of
//! template.yaml's HTTP API through the AWS front (SigV4 for `execute-api`, `execute-api:Invoke`
//! per route), which invokes the fleet-api function with API Gateway's event. Each route and
//! each error class is checked; missions are paged to the end.
//!
//! Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use fleet_aws::api::{ApiReply, FleetApiClient};
use fleet_local::dev::RunningStack;
use fleet_local::front::FrontAdmin;
use fleet_sim::{Progress, SimArgs};
use reqwest::Method;
use serde_json::{Value, json};

mod common;
use common::root;

const ACCOUNT: &str = fleet_local::names::LOCAL_ACCOUNT_ID;

async fn caller(stack: &RunningStack, name: &str, actions: &[&str]) -> FleetApiClient {
    let region = stack.sdk.region().unwrap().to_string();
    let resources: Vec<String> = actions
        .iter()
        .map(|a| format!("arn:aws:execute-api:{region}:{ACCOUNT}:*/$default/{a}"))
        .collect();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": resources}
    ]});
    let creds = FrontAdmin::new(&stack.endpoints.aws)
        .register_principal(
            &format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
            &[policy],
            "api-e2e",
        )
        .await
        .unwrap();
    let provider = SharedCredentialsProvider::new(Credentials::new(
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token,
        None,
        "front",
    ));
    FleetApiClient::new(&stack.endpoints.apis["FleetHttpApi"], provider, region)
}

/// The robot's items in the missions table.
async fn missions_in_table(dynamodb: &aws_sdk_dynamodb::Client, table: &str, robot: &str) -> usize {
    dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ROBOT#{robot}")),
        )
        .send()
        .await
        .unwrap()
        .items()
        .len()
}

async fn call(api: &FleetApiClient, method: Method, path: &str, body: Option<&Value>) -> ApiReply {
    api.send(method.clone(), path, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A problem document of `status` whose detail mentions `needle`.
fn problem(reply: &ApiReply, status: u16, kind: &str, needle: &str) {
    let doc = reply.json();
    assert_eq!(reply.status, status, "{doc}");
    assert_eq!(reply.content_type, "application/problem+json", "{doc}");
    assert_eq!(
        doc["type"],
        format!("urn:robofleet:problem:{kind}"),
        "{doc}"
    );
    assert_eq!(doc["status"], status);
    assert!(
        doc["detail"].as_str().unwrap_or("").contains(needle),
        "{needle:?} not in {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_answers_from_what_the_pipeline_wrote() {
    let (stack, name, logs) = common::stack("e2e-api").await;
    assert!(
        stack.endpoints.apis.contains_key("FleetHttpApi"),
        "{:?}",
        stack.endpoints
    );

    // The pipeline writes: 4 robots, missions, shadow updates, presence; verified stored.
    let prefix = format!("{name}-rb");
    let targets = common::targets(&stack);
    let args = SimArgs::from_flags([
        "--mode",
        "steady",
        "--robots",
        "4",
        "--rate",
        "6",
        "--duration",
        "12s",
        "--mission-share",
        "0.6",
        "--commands",
        "0",
        "--prefix",
        &prefix,
        "--verify",
        "--grace",
        "90s",
    ])
    .unwrap();
    let report = fleet_sim::run(args, targets, Progress::Silent)
        .await
        .unwrap();
    assert!(report.passed(), "{}", report.summary());
    assert!(stack.wait_drained(Duration::from_secs(60)).await);

    let operator = caller(&stack, &format!("{name}-operator"), &["*"]).await;
    let reader = caller(&stack, &format!("{name}-reader"), &["GET/*"]).await;
    let robots: Vec<String> = (0..4)
        .map(|k| fleet_sim::args::robot_id(&prefix, k))
        .collect();

    // The truth, from the missions table.
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = &stack.resources.tables["MissionsTable"];
    let mut truth = std::collections::BTreeMap::new();
    for robot in &robots {
        truth.insert(
            robot.clone(),
            missions_in_table(&dynamodb, table, robot).await,
        );
    }
    let total: usize = truth.values().sum();
    assert!(total > 0, "the simulation stored missions: {truth:?}");

    // GET /robots/{id}: state, connection, last missions; for every robot.
    for robot in &robots {
        let r = call(&reader, Method::GET, &format!("/robots/{robot}"), None).await;
        let doc = r.json();
        assert_eq!(r.status, 200, "{doc}");
        assert_eq!(r.content_type, "application/json");
        assert_eq!(doc["robotId"], robot.as_str());
        assert!(doc["state"]["reported"]["battery"].is_number(), "{doc}");
        assert!(doc["state"]["version"].as_u64().unwrap() >= 1, "{doc}");
        let status = doc["connection"]["status"].as_str().unwrap();
        assert!(
            status == "connected" || status == "disconnected",
            "presence was indexed: {doc}"
        );
        assert!(doc["connection"]["lastSeenAt"].is_string(), "{doc}");
        let last = doc["lastMissions"].as_array().unwrap();
        assert_eq!(last.len(), truth[robot].min(5), "{doc}");
    }

    // GET /robots: fleet search over the robots' summaries (state and presence in one document).
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/robots?limit=3".to_string(),
            Some(c) => format!("/robots?limit=3&cursor={c}"),
        };
        let r = call(&reader, Method::GET, &path, None).await;
        let doc = r.json();
        assert_eq!(r.status, 200, "{doc}");
        assert_eq!(doc["total"], 4, "{doc}");
        let counted: u64 = doc["countsByStatus"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(counted, 4, "{doc}");
        for robot in doc["robots"].as_array().unwrap() {
            assert!(robot["battery"].is_number(), "{robot}");
            assert_ne!(robot["connection"]["status"], "unknown", "{robot}");
            found.push(robot["robotId"].as_str().unwrap().to_string());
        }
        match doc["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(found, robots, "every robot once, sorted by id");
    let one = call(
        &reader,
        Method::GET,
        &format!("/robots/{}", robots[0]),
        None,
    )
    .await
    .json();
    let status = one["state"]["reported"]["status"]
        .as_str()
        .unwrap()
        .to_string();
    let battery = one["state"]["reported"]["battery"].as_f64().unwrap();
    for (query, expect_robot0) in [
        (format!("status={status}"), true),
        // The range is 0 to 100: a robot at 100 is below nothing.
        (
            format!("batteryBelow={}", (battery + 1.0).min(100.0)),
            battery < 100.0,
        ),
        (format!("batteryBelow={battery}"), false),
        ("lastSeenBefore=2000-01-01T00:00:00Z".to_string(), false),
        ("lastSeenBefore=2100-01-01T00:00:00Z".to_string(), true),
        ("firmware=0.0.0-none".to_string(), false),
    ] {
        let r = call(&reader, Method::GET, &format!("/robots?{query}"), None).await;
        let doc = r.json();
        assert_eq!(r.status, 200, "{query}: {doc}");
        let ids: Vec<&str> = doc["robots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["robotId"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids.contains(&robots[0].as_str()),
            expect_robot0,
            "{query}: {doc}"
        );
    }
    if let Some(c) = cursor {
        let r = call(
            &reader,
            Method::GET,
            &format!("/robots?status=x&cursor={c}"),
            None,
        )
        .await;
        problem(&r, 400, "invalid-parameter", "cursor");
    }
    let r = call(&reader, Method::GET, "/robots?batteryBelow=lots", None).await;
    problem(&r, 400, "invalid-parameter", "batteryBelow");

    // GET /robots/{id}/missions: paged to the end, newest first, each mission once.
    for robot in &robots {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                None => format!("/robots/{robot}/missions?limit=2"),
                Some(c) => format!("/robots/{robot}/missions?limit=2&cursor={c}"),
            };
            let r = call(&reader, Method::GET, &path, None).await;
            let doc = r.json();
            assert_eq!(r.status, 200, "{doc}");
            let page = doc["missions"].as_array().unwrap();
            assert!(page.len() <= 2);
            seen.extend(page.iter().cloned());
            pages += 1;
            match doc["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
            assert!(pages < 100, "the cursor does not end");
        }
        assert_eq!(seen.len(), truth[robot], "{robot}: {seen:?}");
        let ids: std::collections::BTreeSet<_> =
            seen.iter().map(|m| m["missionId"].to_string()).collect();
        assert_eq!(ids.len(), seen.len(), "a mission came twice");
        let started: Vec<&str> = seen
            .iter()
            .map(|m| m["startedAt"].as_str().unwrap())
            .collect();
        assert!(
            started.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {started:?}"
        );
        assert!(
            seen.iter()
                .all(|m| m["robotId"] == robot.as_str() && m.get("pk").is_none())
        );
        // A cursor of one robot is refused on another.
        if let Some(c) = cursor {
            let other = &robots[(robots.iter().position(|r| r == robot).unwrap() + 1) % 4];
            let r = call(
                &reader,
                Method::GET,
                &format!("/robots/{other}/missions?cursor={c}"),
                None,
            )
            .await;
            problem(&r, 400, "invalid-parameter", "cursor");
        }
    }
    // A window: nothing started in the year 2000.
    let r = call(
        &reader,
        Method::GET,
        &format!(
            "/robots/{}/missions?from=2000-01-01T00:00:00Z&to=2000-12-31T00:00:00Z",
            robots[0]
        ),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"missions": [], "nextCursor": null}))
    );

    // Errors, each class: 400, 404, 415, 422, 409, 403.
    let r = call(
        &reader,
        Method::GET,
        &format!("/robots/{}/missions?limit=0", robots[0]),
        None,
    )
    .await;
    problem(&r, 400, "invalid-parameter", "limit");
    let r = call(
        &reader,
        Method::GET,
        &format!("/robots/{}/missions?from=yesterday", robots[0]),
        None,
    )
    .await;
    problem(&r, 400, "invalid-parameter", "from");
    let r = call(&reader, Method::GET, "/robots/no$such$robot", None).await;
    problem(&r, 400, "invalid-parameter", "id");
    let r = call(
        &reader,
        Method::GET,
        &format!("/robots/{name}-never-seen"),
        None,
    )
    .await;
    problem(&r, 404, "not-found", "no robot");
    let r = call(&reader, Method::GET, "/nowhere", None).await;
    assert_eq!((r.status, r.json()), (404, json!({"message": "Not Found"})));

    // POST /robots/{id}/commands: the reader may not; the operator sets desired state.
    let dock = json!({"action": "dock"});
    let r = call(
        &reader,
        Method::POST,
        &format!("/robots/{}/commands", robots[1]),
        Some(&dock),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.json());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("execute-api:Invoke")
    );
    let r = call(
        &operator,
        Method::POST,
        &format!("/robots/{}/commands", robots[1]),
        Some(&dock),
    )
    .await;
    let doc = r.json();
    assert_eq!(r.status, 202, "{doc}");
    let id = doc["command"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("cmd-"), "{doc}");
    let shadows = aws_sdk_iotdataplane::Client::from_conf(
        aws_sdk_iotdataplane::config::Builder::from(&stack.sdk)
            .endpoint_url(&stack.endpoints.iot_data)
            .build(),
    );
    let shadow = shadows
        .get_thing_shadow()
        .thing_name(&robots[1])
        .send()
        .await
        .unwrap();
    let shadow: Value = serde_json::from_slice(shadow.payload().unwrap().as_ref()).unwrap();
    assert_eq!(shadow["state"]["desired"]["command"]["id"], id.as_str());
    assert_eq!(shadow["state"]["desired"]["command"]["action"], "dock");
    let r = call(
        &operator,
        Method::POST,
        &format!("/robots/{}/commands", robots[1]),
        Some(&json!({"action": "explode"})),
    )
    .await;
    problem(&r, 422, "invalid-command", "action");
    let r = call(
        &operator,
        Method::POST,
        &format!("/robots/{name}-never-seen/commands"),
        Some(&dock),
    )
    .await;
    problem(&r, 404, "not-found", "no robot");
    let r = operator
        .send_raw(
            Method::POST,
            &format!("/robots/{}/commands", robots[1]),
            Some((b"{not json".to_vec(), "application/json")),
        )
        .await
        .unwrap();
    problem(&r, 400, "invalid-body", "not JSON");
    let r = operator
        .send_raw(
            Method::POST,
            &format!("/robots/{}/commands", robots[1]),
            Some((b"action=dock".to_vec(), "application/x-www-form-urlencoded")),
        )
        .await
        .unwrap();
    problem(&r, 415, "unsupported-media-type", "application/json");

    // Jobs: a job in the jobs table, read and moved through the API.
    let jobs =
        fleet_aws::jobs::JobsTable::new(dynamodb.clone(), &stack.resources.tables["JobsTable"]);
    let job_id = format!("{name}-job");
    let spec: fleet_jobs::JobSpec = serde_json::from_value(json!({
        "command": {"action": "dock"},
        "input": {"bucket": "b", "key": "inputs/x.jsonl", "format": "jsonl"}
    }))
    .unwrap();
    jobs.create(&job_id, &spec).await.unwrap();
    let r = call(&reader, Method::GET, &format!("/jobs/{job_id}"), None).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["state"], "scheduled");
    assert_eq!(r.json()["action"], "dock");
    let r = call(
        &operator,
        Method::POST,
        &format!("/jobs/{job_id}/resume"),
        None,
    )
    .await;
    problem(&r, 409, "conflict", "cannot resume");
    for (action, state) in [
        ("pause", "paused"),
        ("resume", "running"),
        ("cancel", "aborted"),
    ] {
        let r = call(
            &operator,
            Method::POST,
            &format!("/jobs/{job_id}/{action}"),
            None,
        )
        .await;
        assert_eq!(
            (r.status, r.json()["state"].clone()),
            (200, json!(state)),
            "{action}"
        );
    }
    let r = call(
        &operator,
        Method::POST,
        &format!("/jobs/{job_id}/cancel"),
        None,
    )
    .await;
    problem(&r, 409, "conflict", "cannot");
    let r = call(&reader, Method::GET, &format!("/jobs/{name}-no-job"), None).await;
    problem(&r, 404, "not-found", "no job");

    // POST /jobs: a robot list in the jobs bucket, a job submitted through the API, started on
    // the cursor loop (StartExecution as the API's role, through the front) and run to the end.
    let jobs_bucket = stack.resources.buckets["JobsBucket"].clone();
    let s3 = fleet_aws::config::s3_client(&stack.sdk);
    let put_list = |key: &'static str, robots: &[String]| {
        let body: String = robots
            .iter()
            .map(|r| format!("{{\"robotId\":\"{r}\"}}\n"))
            .collect();
        s3.put_object()
            .bucket(&jobs_bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
    };
    put_list("inputs/api-reboot.jsonl", &robots[..3])
        .await
        .unwrap();
    let submitted = format!("{name}-api-reboot");
    let doc = json!({
        "jobId": submitted,
        "command": {"action": "reboot"},
        "input": {"bucket": jobs_bucket, "key": "inputs/api-reboot.jsonl", "format": "jsonl"},
        "rollout": {"maximumPerMinute": 6000},
    });
    let r = call(&operator, Method::POST, "/jobs", Some(&doc)).await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/jobs/{submitted}").as_str())
    );
    assert_eq!(r.json()["machine"], "loop");
    assert!(
        r.json()["executionArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":execution:{name}-job-loop:{submitted}-0")),
        "{}",
        r.json()
    );
    // The same request again: the job as it is, nothing new; another document: 409.
    let again = call(&operator, Method::POST, "/jobs", Some(&doc)).await;
    assert_eq!(again.status, 200, "{}", again.json());
    assert_eq!(again.json()["jobId"], submitted.as_str());
    let mut other = doc.clone();
    other["command"] = json!({"action": "dock"});
    let r = call(&operator, Method::POST, "/jobs", Some(&other)).await;
    problem(&r, 409, "conflict", "another job document");
    let mut on_map = doc.clone();
    on_map["machine"] = json!("map");
    let r = call(&operator, Method::POST, "/jobs", Some(&on_map)).await;
    problem(&r, 409, "conflict", "the loop machine");
    // Refused before anything is written: a missing input, an input outside inputs/, a bad
    // document, a reader's POST.
    let mut missing = doc.clone();
    missing["jobId"] = json!(format!("{name}-missing"));
    missing["input"]["key"] = json!("inputs/not-there.jsonl");
    let r = call(&operator, Method::POST, "/jobs", Some(&missing)).await;
    problem(&r, 422, "invalid-job", "does not exist");
    let mut outside = doc.clone();
    outside["input"]["key"] = json!("reports/x.jsonl");
    let r = call(&operator, Method::POST, "/jobs", Some(&outside)).await;
    problem(&r, 422, "invalid-job", "inputs/");
    let mut bad = doc.clone();
    bad["command"] = json!({"action": "schedule"});
    let r = call(&operator, Method::POST, "/jobs", Some(&bad)).await;
    problem(&r, 422, "invalid-job", "command");
    let r = call(&reader, Method::POST, "/jobs", Some(&doc)).await;
    assert_eq!(r.status, 403, "{}", r.json());
    assert!(
        jobs.get(&format!("{name}-missing"))
            .await
            .unwrap()
            .is_none(),
        "a refused job leaves nothing behind"
    );
    // The job runs to the end; each robot it lists has the command in its desired state.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let r = call(&reader, Method::GET, &format!("/jobs/{submitted}"), None).await;
        let view = r.json();
        if view["state"] == "succeeded" {
            break view;
        }
        assert!(
            Instant::now() < deadline && view["state"] != "failed" && view["state"] != "aborted",
            "the submitted job did not succeed: {view}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        (done["succeeded"].as_u64(), done["failed"].as_u64()),
        (Some(3), Some(0)),
        "{done}"
    );
    for robot in &robots[..3] {
        let shadow = shadows
            .get_thing_shadow()
            .thing_name(robot)
            .send()
            .await
            .unwrap();
        let doc: Value = serde_json::from_slice(shadow.payload().unwrap().as_ref()).unwrap();
        let id = doc.pointer("/state/desired/command/id").cloned();
        let acked = doc.pointer("/state/reported/command/id").cloned();
        let want = json!(format!("job-{submitted}"));
        assert!(
            id.as_ref() == Some(&want) || acked.as_ref() == Some(&want),
            "{robot} did not get the job's command: {doc}"
        );
    }

    // DELETE /robots/{id}: a robot with missions, a named shadow, presence and a certificate is
    // purged from every store; a late record in the streams does not bring it back; a second
    // DELETE changes nothing; the audit trail records it.
    let gone = robots[3].clone();
    let iot = aws_sdk_iot::Client::new(&stack.sdk);
    iot.create_thing().thing_name(&gone).send().await.unwrap();
    let cert = iot
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .unwrap();
    let (cert_arn, cert_id) = (
        cert.certificate_arn().unwrap().to_string(),
        cert.certificate_id().unwrap().to_string(),
    );
    let policy = format!("{name}-robot");
    iot.create_policy()
        .policy_name(&policy)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    iot.attach_policy()
        .policy_name(&policy)
        .target(&cert_arn)
        .send()
        .await
        .unwrap();
    iot.attach_thing_principal()
        .thing_name(&gone)
        .principal(&cert_arn)
        .send()
        .await
        .unwrap();
    shadows
        .update_thing_shadow()
        .thing_name(&gone)
        .shadow_name("lidar")
        .payload(aws_sdk_iotdataplane::primitives::Blob::new(
            json!({"state": {"reported": {"rpm": 300}}}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    assert!(stack.wait_drained(Duration::from_secs(60)).await);
    let os = fleet_aws::OpenSearchHttp::from_sdk(&stack.sdk, &stack.endpoints.opensearch);
    let alias = stack.resources.opensearch.alias.clone();
    let index_docs = async |robot: &str| -> Vec<String> {
        let _ = os
            .call(Method::POST, &format!("/{alias}/_refresh"), None)
            .await;
        let found = os
            .call(
                Method::POST,
                &format!("/{alias}/_search"),
                Some(&json!({"size": 100, "query": {"term": {"robotId": robot}}})),
            )
            .await
            .unwrap()
            .json();
        let mut ids: Vec<String> = found["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let before = index_docs(&gone).await;
    assert_eq!(
        before,
        vec![
            gone.clone(),
            format!("{gone}#$robot"),
            format!("{gone}#lidar"),
            format!("{gone}#presence"),
        ]
    );
    let r = call(&operator, Method::DELETE, &format!("/robots/{gone}"), None).await;
    let doc = r.json();
    assert_eq!(r.status, 202, "{doc}");
    assert_eq!(
        (doc["mode"].clone(), doc["statusUrl"].clone()),
        (
            json!("decommission"),
            json!(format!("/robots/{gone}/decommission"))
        )
    );
    let started = Instant::now();
    let status = loop {
        let r = call(
            &reader,
            Method::GET,
            &format!("/robots/{gone}/decommission"),
            None,
        )
        .await;
        let doc = r.json();
        assert_eq!(r.status, 200, "{doc}");
        if doc["state"] != "purging" {
            break doc;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{doc}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(
        status["counts"]["missions"], truth[&gone] as u64,
        "{status}"
    );
    assert_eq!(status["counts"]["indexDocuments"], 4, "{status}");
    assert_eq!(status["counts"]["shadows"], 2, "{status}");
    assert_eq!(status["counts"]["certificates"], 1, "{status}");
    // Gone from every purged store.
    assert!(index_docs(&gone).await.is_empty());
    assert_eq!(missions_in_table(&dynamodb, table, &gone).await, 0);
    for name in [None, Some("lidar")] {
        let e = shadows
            .get_thing_shadow()
            .thing_name(&gone)
            .set_shadow_name(name.map(str::to_string))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            aws_sdk_iotdataplane::error::ProvideErrorMetadata::code(&e),
            Some("ResourceNotFoundException")
        );
    }
    let described = iot
        .describe_certificate()
        .certificate_id(&cert_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.certificate_description().unwrap().status(),
        Some(&aws_sdk_iot::types::CertificateStatus::Revoked)
    );
    assert!(
        iot.list_thing_principals()
            .thing_name(&gone)
            .send()
            .await
            .unwrap()
            .principals()
            .is_empty()
    );
    assert!(
        iot.list_attached_policies()
            .target(&cert_arn)
            .send()
            .await
            .unwrap()
            .policies()
            .is_empty()
    );
    let r = call(&reader, Method::GET, &format!("/robots/{gone}"), None).await;
    problem(&r, 404, "not-found", "no robot");
    // Late records still in the streams: a shadow update and a mission report of the robot.
    let kinesis = aws_sdk_kinesis::Client::new(&stack.sdk);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let late_shadow = json!({
        "current": {"state": {"reported": {"battery": 1}}, "metadata": {}, "version": 999},
        "timestamp": now_s, "thingName": gone,
    });
    let mut late_mission: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/examples/mission-report.completed.json"))
            .unwrap(),
    )
    .unwrap();
    late_mission["robotId"] = json!(gone);
    for (stream, body) in [
        ("ShadowsStream", late_shadow),
        ("MissionsStream", late_mission),
    ] {
        kinesis
            .put_record()
            .stream_name(&stack.resources.streams[stream].name)
            .partition_key(&gone)
            .data(aws_sdk_kinesis::primitives::Blob::new(body.to_string()))
            .send()
            .await
            .unwrap();
    }
    assert!(stack.wait_drained(Duration::from_secs(60)).await);
    assert!(
        index_docs(&gone).await.is_empty(),
        "a late record brought the robot back"
    );
    assert_eq!(
        missions_in_table(&dynamodb, table, &gone).await,
        0,
        "a late mission report came back"
    );
    // A second DELETE is a no-op; the audit trail has the request and the purge.
    let r = call(&operator, Method::DELETE, &format!("/robots/{gone}"), None).await;
    assert_eq!((r.status, r.json()["state"].clone()), (202, json!("done")));
    let status = call(
        &reader,
        Method::GET,
        &format!("/robots/{gone}/decommission"),
        None,
    )
    .await
    .json();
    let events: Vec<&str> = status["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["requested", "purged"], "{status}");
    assert!(
        status["audit"][0]["detail"]["caller"]
            .as_str()
            .unwrap()
            .contains(&format!("{name}-operator"))
    );
    let r = call(
        &reader,
        Method::GET,
        &format!("/robots/{}/decommission", robots[0]),
        None,
    )
    .await;
    problem(&r, 404, "not-found", "not decommissioned");
    let r = call(
        &operator,
        Method::DELETE,
        &format!("/robots/{}?mode=wipe", robots[0]),
        None,
    )
    .await;
    problem(&r, 400, "invalid-parameter", "mode");

    // The contract: requests generated from openapi/fleet-api.yaml, valid and invalid, signed,
    // against this API; every answer declared, no 5xx (tools/api_contract.py).
    let contract_job = format!("{name}-contract");
    jobs.create(&contract_job, &spec).await.unwrap();
    put_list("inputs/contract.jsonl", &robots[2..3])
        .await
        .unwrap();
    let creds = FrontAdmin::new(&stack.endpoints.aws)
        .register_principal(
            &format!("arn:aws:iam::{ACCOUNT}:role/{name}-contract"),
            &[json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}
            ]})],
            "api-contract",
        )
        .await
        .unwrap();
    let report = logs.path().join("contract.json");
    let python = PathBuf::from(fleet_testkit::venv()).join("bin/python");
    let out = tokio::process::Command::new(python)
        .arg(root().join("tools/api_contract.py"))
        .args(["--url", &stack.endpoints.apis["FleetHttpApi"]])
        .args(["--region", stack.sdk.region().unwrap().as_ref()])
        .args(["--robot", &robots[2], "--job", &contract_job])
        .arg("--job-input")
        .arg(format!("s3://{jobs_bucket}/inputs/contract.jsonl"))
        .args(["--delete-robot", &robots[3]])
        .args(["--max-examples", "15"])
        .arg("--json")
        .arg(&report)
        .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
        .env(
            "AWS_SESSION_TOKEN",
            creds.session_token.as_deref().unwrap_or(""),
        )
        .output()
        .await
        .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "the contract test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let contract: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(contract["operations"], 11);
    assert!(
        contract["requests"].as_u64().unwrap() >= 11 * 15,
        "{contract}"
    );
    // The known ids reached the data: a 200 for the robot and its missions, a 202 command.
    for (op, status) in [
        ("GET /robots", "200"),
        ("GET /robots/{id}", "200"),
        ("GET /robots/{id}/missions", "200"),
        ("POST /robots/{id}/commands", "202"),
        ("GET /jobs/{id}", "200"),
        ("POST /jobs", "201"),
    ] {
        assert!(
            contract["statuses"][op][status].as_u64().unwrap_or(0) >= 1,
            "{op}: {}",
            contract["statuses"][op]
        );
    }

    // Latency per route, locally (debug build, through the front): printed for the record.
    for (label, path) in [
        ("GET /robots", "/robots?limit=50".to_string()),
        ("GET /robots/{id}", format!("/robots/{}", robots[0])),
        (
            "GET /robots/{id}/missions",
            format!("/robots/{}/missions", robots[0]),
        ),
        ("GET /jobs/{id}", format!("/jobs/{job_id}")),
    ] {
        let mut ms: Vec<f64> = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            assert_eq!(call(&reader, Method::GET, &path, None).await.status, 200);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "{label}: p50 {:.1} ms, p99 {:.1} ms (30 calls)",
            ms[ms.len() / 2],
            ms[ms.len() * 99 / 100]
        );
    }
    // POST /jobs: 30 one-robot jobs (validate, HeadObject, conditional put, StartExecution).
    let mut ms: Vec<f64> = Vec::new();
    for k in 0..30 {
        let job = json!({
            "jobId": format!("{name}-latency-{k}"),
            "command": {"action": "dock"},
            "input": {"bucket": jobs_bucket, "key": "inputs/contract.jsonl", "format": "jsonl"},
        });
        let t = Instant::now();
        let r = call(&operator, Method::POST, "/jobs", Some(&job)).await;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, 201, "{}", r.json());
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "POST /jobs: p50 {:.1} ms, p99 {:.1} ms (30 calls)",
        ms[ms.len() / 2],
        ms[ms.len() * 99 / 100]
    );
    stack.shutdown().await;
}
