//! The real handler, fed every sample event in `events/shadow-indexer/` against osmem-server and
//! moto (a fresh alias and rejects queue per fixture). Asserts the Lambda response, the indexed
//! documents and their external versions, and the rejects queue against `expected.json`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fleet_core::RejectEnvelope;
use fleet_lambda::{BatchHandler as _, Deadline};
use fleet_testkit::tables::{create_bucket, create_queue, drain_queue};
use fleet_testkit::{opensearch_url, sdk_config, unique_name};
use serde_json::Value;
use shadow_indexer::{Config, build};

fn load(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/shadow-indexer")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn run_fixture(name: &str) {
    let expected = load("expected.json")["fixtures"][name].clone();
    let sdk = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = create_queue(&sqs, &unique_name("rejects")).await;
    let bucket = create_bucket(&aws_sdk_s3::Client::new(&sdk), &unique_name("payloads")).await;
    let alias = unique_name("robots");
    let config = Config {
        opensearch_endpoint: opensearch_url(),
        robots_alias: alias.clone(),
        rejects_queue_url: queue.clone(),
        reject_payloads_bucket: bucket,
        breaker: Default::default(),
        tombstones_table: None,
    };
    let handler = build(config, &sdk).await.unwrap();

    let done = handler
        .handle_batch(load(name), Deadline::after(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        done.response_json(),
        serde_json::json!({"batchItemFailures": []}),
        "{name}"
    );
    let records = expected["records"].as_array().unwrap();
    let count = |o: &str| records.iter().filter(|r| r["outcome"] == o).count();
    assert_eq!(done.report.rejected, count("reject"), "{name}: rejected");
    // One document per id per batch: of the records the fixture indexes (against a fresh
    // index, one at a time), only the newest of each document is written; the others are
    // superseded within the batch, and count as duplicates like the 409 conflicts. Counted
    // apart, so a wrong "newest version only" rule shows.
    let written: BTreeSet<&str> = records
        .iter()
        .filter(|r| r["outcome"] == "index")
        .filter_map(|r| r["docId"].as_str())
        .collect();
    assert_eq!(done.report.succeeded, written.len(), "{name}: indexed");
    assert_eq!(
        done.report.duplicates,
        count("index") + count("conflict") - written.len(),
        "{name}: conflicts and superseded"
    );

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
    for body in drain_queue(&sqs, &queue, 100).await {
        let env: RejectEnvelope = serde_json::from_str(&body).unwrap();
        let kind = want
            .remove(&env.source.sequence_number)
            .unwrap_or_else(|| panic!("unexpected reject {body}"));
        assert_eq!(env.reason.kind.as_str(), kind, "{name}");
        assert_eq!(env.function, "shadow-indexer");
    }
    assert!(
        want.is_empty(),
        "{name}: rejects missing from the queue: {want:?}"
    );

    for f in expected["final"].as_array().unwrap() {
        let id = f["docId"].as_str().unwrap();
        let doc = fleet_testkit::get_doc(&fleet_testkit::opensearch(), &alias, id).await;
        assert_eq!(doc["found"], true, "{name}: {id} not indexed: {doc}");
        assert_eq!(doc["_version"], f["externalVersion"], "{name}: {id}");
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
async fn an_opensearch_outage_is_an_item_failure_at_the_first_record() {
    let sdk = sdk_config().await;
    let port = fleet_testkit::free_port();
    let config = Config {
        opensearch_endpoint: format!("http://127.0.0.1:{port}"),
        robots_alias: "robots".into(),
        rejects_queue_url: format!("{}/123456789012/none", fleet_testkit::aws_endpoint()),
        reject_payloads_bucket: "none".into(),
        breaker: Default::default(),
        tombstones_table: None,
    };
    let handler = build(config, &sdk).await.unwrap();
    let event = load("valid.json");
    let done = handler
        .handle_batch(event.clone(), Deadline::after(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        done.response_json()["batchItemFailures"][0]["itemIdentifier"],
        event["Records"][0]["kinesis"]["sequenceNumber"]
    );
    assert_eq!(done.report.succeeded, 0);
}

/// Defect 7: an OpenSearch that accepts the connection and never answers (the template check
/// and the bulk request hang). Every request is bounded by the time left, so the invocation
/// answers with a partial batch response before its deadline.
#[tokio::test]
async fn a_hanging_opensearch_gives_a_partial_batch_response_before_the_deadline() {
    let sdk = sdk_config().await;
    let config = Config {
        opensearch_endpoint: fleet_testkit::black_hole().await,
        robots_alias: "robots".into(),
        rejects_queue_url: format!("{}/123456789012/none", fleet_testkit::aws_endpoint()),
        reject_payloads_bucket: "none".into(),
        breaker: Default::default(),
        tombstones_table: None,
    };
    let handler = build(config, &sdk).await.unwrap();
    let event = load("valid.json");
    let budget = Duration::from_secs(3);
    let started = std::time::Instant::now();
    let done = handler
        .handle_batch(event.clone(), Deadline::after(budget))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < budget,
        "answered after {took:?}, past the {budget:?} deadline"
    );
    assert_eq!(
        done.response_json()["batchItemFailures"][0]["itemIdentifier"],
        event["Records"][0]["kinesis"]["sequenceNumber"]
    );
    assert_eq!(done.report.succeeded, 0);
}
