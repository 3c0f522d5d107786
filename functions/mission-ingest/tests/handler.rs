//! The real handler, fed every sample event in `events/mission-ingest/` against moto (a fresh
//! table and rejects queue per fixture). Asserts the Lambda response, the stored missions and
//! the rejects queue against `events/mission-ingest/expected.json`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use fleet_core::RejectEnvelope;
use fleet_lambda::{BatchHandler as _, Deadline};
use fleet_testkit::tables::{create_bucket, create_missions_table, create_queue, drain_queue};
use fleet_testkit::{sdk_config, unique_name};
use mission_ingest::{Config, build};
use serde_json::Value;

fn events_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/mission-ingest")
}

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(events_dir().join(name)).unwrap()).unwrap()
}

async fn run_fixture(name: &str) {
    let expected = load("expected.json")["fixtures"][name].clone();
    let sdk = sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let table = unique_name("missions");
    create_missions_table(&dynamodb, &table).await;
    let queue = create_queue(&sqs, &unique_name("rejects")).await;
    let bucket = create_bucket(&aws_sdk_s3::Client::new(&sdk), &unique_name("payloads")).await;
    let config = Config {
        missions_table: table.clone(),
        rejects_queue_url: queue.clone(),
        reject_payloads_bucket: bucket,
        mission_ttl_days: 365,
        day_shards: 8,
        breaker: Default::default(),
        tombstones_table: None,
    };
    let handler = build(config, &sdk).await;

    let done = handler
        .handle_batch(load(name), Deadline::after(Duration::from_secs(60)))
        .await
        .unwrap();
    // Every record is either handled or dead-lettered: nothing to retry.
    assert_eq!(
        done.response_json(),
        serde_json::json!({"batchItemFailures": []}),
        "{name}"
    );

    let records = expected["records"].as_array().unwrap();
    let count = |o: &str| records.iter().filter(|r| r["outcome"] == o).count();
    assert_eq!(done.report.records, records.len(), "{name}");
    assert_eq!(done.report.rejected, count("reject"), "{name}: rejected");
    assert_eq!(done.report.succeeded, count("write"), "{name}: written");
    assert_eq!(
        done.report.duplicates,
        count("duplicate") + count("stale"),
        "{name}: duplicates"
    );

    // The rejects queue holds one envelope per rejected record, with its kind and payload.
    let mut want: BTreeMap<String, String> = records
        .iter()
        .filter(|r| r["outcome"] == "reject")
        .map(|r| {
            (
                r["sequenceNumber"].as_str().unwrap().to_string(),
                r["rejectKind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let event = load(name);
    for body in drain_queue(&sqs, &queue, 100).await {
        let env: RejectEnvelope = serde_json::from_str(&body).unwrap();
        let kind = want
            .remove(&env.source.sequence_number)
            .unwrap_or_else(|| panic!("unexpected reject {body}"));
        assert_eq!(env.reason.kind.as_str(), kind, "{name}");
        assert_eq!(env.function, "mission-ingest");
        let original = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kinesis"]["sequenceNumber"] == env.source.sequence_number.as_str())
            .unwrap();
        assert_eq!(
            env.payload_base64.as_deref(),
            original["kinesis"]["data"].as_str()
        );
    }
    assert!(
        want.is_empty(),
        "{name}: rejects missing from the queue: {want:?}"
    );

    // The table holds exactly the final state.
    let items = dynamodb
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .items()
        .to_vec();
    let finals = expected["final"].as_array().unwrap();
    assert_eq!(items.len(), finals.len(), "{name}: items {items:?}");
    for f in finals {
        let item = items
            .iter()
            .find(|i| {
                i["pk"] == AttributeValue::S(f["pk"].as_str().unwrap().into())
                    && i["sk"] == AttributeValue::S(f["sk"].as_str().unwrap().into())
            })
            .unwrap_or_else(|| panic!("{name}: no item for {f}"));
        assert_eq!(
            item["rev"],
            AttributeValue::N(f["rev"].to_string()),
            "{name}: {f}"
        );
        if let Some(status) = f["status"].as_str() {
            assert_eq!(
                item["status"],
                AttributeValue::S(status.into()),
                "{name}: {f}"
            );
        }
        assert!(item.contains_key("gsi1pk") && item.contains_key("expiresAt"));
    }
}

#[tokio::test]
async fn mixed_batch_through_the_real_handler() {
    run_fixture("mixed.json").await;
}

#[tokio::test]
async fn every_other_sample_event_through_the_real_handler() {
    for name in [
        "valid.json",
        "duplicate.json",
        "out-of-order.json",
        "malformed.json",
    ] {
        run_fixture(name).await;
    }
}

#[tokio::test]
async fn an_unreachable_table_is_an_item_failure_at_the_lowest_sequence_number() {
    // A refused connection stands for a service that keeps failing: the handler retries with
    // backoff inside the invocation, then reports the lowest sequence number.
    let port = fleet_testkit::free_port();
    let sdk = fleet_testkit::sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
    let handler = build(config_for_stub(port), &sdk).await;
    let done = handler
        .handle_batch(load("valid.json"), Deadline::after(Duration::from_secs(3)))
        .await
        .unwrap();
    let first = load("valid.json")["Records"][0]["kinesis"]["sequenceNumber"].clone();
    assert_eq!(
        done.response_json()["batchItemFailures"][0]["itemIdentifier"],
        first
    );
    assert_eq!(done.response.batch_item_failures.len(), 1);
    assert_eq!(done.report.succeeded, 0);
}

fn config_for_stub(port: u16) -> Config {
    Config {
        missions_table: "t".into(),
        rejects_queue_url: format!("http://127.0.0.1:{port}/q"),
        reject_payloads_bucket: "b".into(),
        mission_ttl_days: 0,
        day_shards: 4,
        breaker: Default::default(),
        tombstones_table: None,
    }
}

/// Calls a stub received, by `x-amz-target` (`DynamoDB_20120810.PutItem`, `AmazonSQS.…`).
type Calls = Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

fn calls_to(calls: &Calls, prefix: &str) -> usize {
    calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

/// An AWS JSON-protocol endpoint (DynamoDB, SQS) that answers each call with
/// `answer(target, n)`, `n` counting the earlier calls of that target: a status and a JSON body.
/// Returns its port and the calls it saw.
async fn stub_aws<F>(answer: F) -> (u16, Calls)
where
    F: Fn(&str, usize) -> (u16, String) + Send + Sync + 'static,
{
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let answer = Arc::new(answer);
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let (seen, answer) = (seen.clone(), answer.clone());
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let n = {
                    let mut calls = seen.lock().unwrap();
                    let count = calls.entry(target.clone()).or_default();
                    *count += 1;
                    *count - 1
                };
                let (status, body) = answer(&target, n);
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/x-amz-json-1.0")],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, calls)
}

const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";

/// A DynamoDB endpoint that answers the first `throttled` PutItem calls with DynamoDB's own
/// throttling error (400 `ProvisionedThroughputExceededException`) and every later one with
/// success. Returns its port and the calls it saw.
async fn throttling_dynamodb(throttled: usize) -> (u16, Calls) {
    stub_aws(move |target, n| match (target, n < throttled) {
        (PUT_ITEM, true) => (
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#.into(),
        ),
        (PUT_ITEM, false) => (200, "{}".into()),
        _ => (400, "{}".into()),
    })
    .await
}

/// One valid mission report.
fn one_report() -> Value {
    let mut event = load("valid.json");
    let first = event["Records"][0].clone();
    event["Records"] = Value::Array(vec![first]);
    event
}

#[tokio::test]
async fn throttling_that_outlasts_the_budget_is_an_item_failure() {
    let (port, calls) = throttling_dynamodb(usize::MAX).await;
    let sdk = fleet_testkit::sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
    let handler = build(config_for_stub(port), &sdk).await;
    let done = handler
        .handle_batch(one_report(), Deadline::after(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(done.response.batch_item_failures.len(), 1);
    assert_eq!((done.report.succeeded, done.report.rejected), (0, 0));
    assert!(
        calls_to(&calls, PUT_ITEM) > 1,
        "a throttled write is retried before it is given back to Lambda"
    );
}

#[tokio::test]
async fn throttling_that_clears_within_the_budget_stores_the_mission() {
    let (port, calls) = throttling_dynamodb(2).await;
    let sdk = fleet_testkit::sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
    let handler = build(config_for_stub(port), &sdk).await;
    let done = handler
        .handle_batch(one_report(), Deadline::after(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        done.response_json()["batchItemFailures"],
        serde_json::json!([])
    );
    assert_eq!(done.report.succeeded, 1);
    assert_eq!(
        calls_to(&calls, PUT_ITEM),
        3,
        "two throttled calls, then the write"
    );
}

/// A DynamoDB (and SQS) endpoint that refuses every PutItem with `code` and `status`, and
/// refuses the reject sends (SQS `SendMessageBatch`) too, so nothing else depends on them;
/// `calls_to(&calls, "AmazonSQS.")` counts those sends.
async fn refusing_dynamodb(code: &'static str, status: u16) -> (u16, Calls) {
    stub_aws(move |target, _| {
        if target.starts_with("AmazonSQS.") {
            (
                503,
                r#"{"__type":"com.amazonaws.sqs#ServiceUnavailable","message":"stub"}"#.into(),
            )
        } else {
            (
                status,
                format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"refused by the stub"}}"#),
            )
        }
    })
    .await
}

/// Defect 6: a deployment's mistake (access denied, a missing KMS grant or table, refused
/// credentials) and an outage are retried: the record waits in the stream. Only a refusal of
/// the record itself (a validation error) is a reject.
#[tokio::test]
async fn every_error_class_is_retried_except_a_refusal_of_the_record() {
    let cases: &[(&str, u16, bool)] = &[
        ("AccessDeniedException", 400, false),
        ("ResourceNotFoundException", 400, false),
        ("KMSAccessDeniedException", 400, false),
        ("UnrecognizedClientException", 400, false),
        ("InternalServerError", 500, false),
        ("ProvisionedThroughputExceededException", 400, false),
        ("ValidationException", 400, true),
    ];
    for (code, status, is_reject) in cases {
        let (port, calls) = refusing_dynamodb(code, *status).await;
        let sdk = fleet_testkit::sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
        let handler = build(config_for_stub(port), &sdk).await;
        let done = handler
            .handle_batch(one_report(), Deadline::after(Duration::from_secs(3)))
            .await
            .unwrap();
        // The stub's SQS fails every send, so even a reject ends as an item failure; what tells
        // the classes apart is whether the handler tried to dead-letter the record.
        assert_eq!(done.response.batch_item_failures.len(), 1, "{code}");
        assert_eq!(done.report.succeeded, 0, "{code}");
        assert_eq!(
            calls_to(&calls, "AmazonSQS.") > 0,
            *is_reject,
            "{code}: dead-lettered = {is_reject} expected"
        );
    }
}

/// Defect 7: a downstream that accepts the connection and never answers. Every attempt is
/// bounded by the time left, so the invocation answers with a partial batch response before
/// its deadline instead of being killed by Lambda's timeout.
#[tokio::test]
async fn a_hanging_dynamodb_gives_a_partial_batch_response_before_the_deadline() {
    let hole = fleet_testkit::black_hole().await;
    let port: u16 = hole.rsplit(':').next().unwrap().parse().unwrap();
    let sdk = fleet_testkit::sdk_config_for(&hole).await;
    let handler = build(config_for_stub(port), &sdk).await;
    let budget = Duration::from_secs(3);
    let started = std::time::Instant::now();
    let done = handler
        .handle_batch(one_report(), Deadline::after(budget))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < budget,
        "answered after {took:?}, past the {budget:?} deadline"
    );
    assert_eq!(done.response.batch_item_failures.len(), 1);
    assert_eq!(done.report.succeeded, 0);
}
