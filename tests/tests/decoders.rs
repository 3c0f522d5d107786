//! Property tests of every decoder: arbitrary bytes and arbitrary JSON, as record data and as
//! whole events, through the batch kit and each function's decoder (mission-ingest and
//! shadow-indexer). No input may panic; every record ends either
//! accepted or rejected with a reason, and the response never names an empty identifier.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use fleet_lambda::Batch;
use proptest::prelude::*;
use serde_json::{Value, json};

#[path = "../../crates/fleet-core/tests/common/arb_json.rs"]
mod arb_json;
use arb_json::arb_json;

fn event_with(data: Vec<String>) -> Value {
    let records: Vec<Value> = data
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"kinesis": {"partitionKey": "rb-1", "sequenceNumber": (i + 1).to_string(), "data": d},
                   "eventID": format!("shardId-000000000000:{}", i + 1), "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/s"})
        })
        .collect();
    json!({ "Records": records })
}

fn check(event: Value) {
    check_with(
        mission_ingest::FUNCTION,
        event.clone(),
        mission_ingest::decode,
    );
    check_with(shadow_indexer::FUNCTION, event, shadow_indexer::decode);
}

fn check_with<T>(
    function: &'static str,
    event: Value,
    decode: impl Fn(&fleet_lambda::KinesisRecord, &[u8]) -> Result<T, fleet_lambda::Reject>,
) {
    let Ok(mut batch) = Batch::new(function, event) else {
        return;
    };
    let n = batch.records().len();
    let items = batch.decode(decode);
    assert!(items.len() <= n);
    for item in &items {
        batch.set(item.position, fleet_lambda::Outcome::Succeeded);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sink = fleet_lambda::MemoryRejectSink::default();
    let done = rt.block_on(batch.finish(
        &sink,
        fleet_lambda::Deadline::after(std::time::Duration::from_secs(60)),
    ));
    assert_eq!(done.report.records, n);
    assert_eq!(
        done.report.succeeded + done.report.rejected,
        n,
        "every record accepted or rejected"
    );
    for e in sink.sent() {
        assert!(!e.reason.detail.is_empty(), "a reject always says why");
        // The kit would survive a panic, but a decoder must never panic in the first place.
        assert_ne!(
            e.reason.kind,
            fleet_core::RejectKind::Panic,
            "decoder panicked: {}",
            e.reason.detail
        );
    }
    for f in &done.response.batch_item_failures {
        assert!(f.item_identifier.as_deref().is_some_and(|s| !s.is_empty()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_record_data(data in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8)) {
        check(event_with(data.iter().map(|d| base64::engine::general_purpose::STANDARD.encode(d)).collect()));
    }

    #[test]
    fn arbitrary_strings_as_record_data(data in prop::collection::vec(".{0,200}", 1..8)) {
        check(event_with(data));
    }

    #[test]
    fn arbitrary_json_as_record_payload(values in prop::collection::vec(arb_json(), 1..8)) {
        check(event_with(values.iter().map(|v| base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(v).unwrap())).collect()));
    }

    #[test]
    fn arbitrary_json_as_the_whole_event(event in arb_json()) {
        check(event);
    }

    #[test]
    fn arbitrary_json_as_records(records in prop::collection::vec(arb_json(), 0..8)) {
        check(json!({ "Records": records }));
    }
}
