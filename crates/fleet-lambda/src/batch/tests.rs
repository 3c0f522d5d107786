use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use fleet_core::{MissionReport, RejectKind};
use serde_json::{Value, json};

use super::*;
use crate::rejects::MemoryRejectSink;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn record(seq: &str, key: &str, data: &str) -> Value {
    json!({
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key, "sequenceNumber": seq,
                    "data": data, "approximateArrivalTimestamp": 1732374000.25},
        "eventSource": "aws:kinesis",
        "eventID": format!("shardId-000000000000:{seq}"),
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/missions"
    })
}

fn mission(robot: &str, rev: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema": 1, "robotId": robot, "missionId": "01JD3Z8X6Y7ZQ4W5V6T7S8R9PQ", "rev": rev,
        "status": "completed", "startedAt": "2026-11-23T15:00:04Z", "endedAt": "2026-11-23T15:41:10Z",
        "areaM2": 42.5, "durationS": 2466, "battery": {"start": 100, "end": 37}, "errors": []
    }))
    .unwrap()
}

fn event(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// The decoder the mission function uses, in miniature: parse, validate, check the robot.
fn decode_mission(record: &KinesisRecord, bytes: &[u8]) -> Result<MissionReport, Reject> {
    Ok(MissionReport::from_record(bytes, &record.partition_key)?)
}

fn deadline() -> Deadline {
    Deadline::after(std::time::Duration::from_secs(60))
}

fn failures(finished: &Finished) -> Vec<String> {
    finished
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn all_good_reports_no_failure() {
    let mut batch = Batch::new(
        "t",
        event(vec![
            record("1", "rb-1", &b64(&mission("rb-1", 1))),
            record("2", "rb-2", &b64(&mission("rb-2", 1))),
        ]),
    )
    .unwrap();
    let items = batch.decode(decode_mission);
    assert_eq!(items.len(), 2);
    batch
        .for_each_by_key(items, 4, |_| async { Outcome::Succeeded })
        .await;
    let done = batch.finish(&MemoryRejectSink::default(), deadline()).await;
    assert!(failures(&done).is_empty());
    assert_eq!(done.report.succeeded, 2);
    assert_eq!(done.response_json(), json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn checkpoint_is_the_lowest_failed_sequence_number() {
    // Sequence numbers of different lengths: "9" < "10" < "11" numerically, not as strings.
    let recs = vec![
        record("9", "rb-1", &b64(&mission("rb-1", 1))),
        record("10", "rb-2", &b64(&mission("rb-2", 1))),
        record("11", "rb-3", &b64(&mission("rb-3", 1))),
        record("12", "rb-4", &b64(&mission("rb-4", 1))),
    ];
    let mut batch = Batch::new("t", event(recs)).unwrap();
    let items = batch.decode(decode_mission);
    batch
        .for_each_by_key(items, 4, |m: MissionReport| async move {
            match m.robot_id.as_str() {
                "rb-2" | "rb-4" => Outcome::Retry("throttled".into()),
                _ => Outcome::Succeeded,
            }
        })
        .await;
    let done = batch.finish(&MemoryRejectSink::default(), deadline()).await;
    assert_eq!(failures(&done), vec!["10".to_string()]);
    assert_eq!(done.report.checkpoint.as_deref(), Some("10"));
    assert_eq!(done.report.retried, 2);
    assert_eq!(done.report.succeeded, 2);
}

#[tokio::test]
async fn lowest_failed_is_found_by_number_even_when_positions_disagree() {
    // Only possible with hand-made events, but the rule is "lowest sequence number".
    let recs = vec![
        record("200", "rb-1", &b64(&mission("rb-1", 1))),
        record("100", "rb-2", &b64(&mission("rb-2", 1))),
    ];
    let mut batch = Batch::new("t", event(recs)).unwrap();
    let items = batch.decode(decode_mission);
    batch
        .for_each_by_key(items, 2, |_| async { Outcome::Retry("x".into()) })
        .await;
    let done = batch.finish(&MemoryRejectSink::default(), deadline()).await;
    assert_eq!(failures(&done), vec!["100".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn per_key_order_is_kept_while_keys_run_concurrently() {
    let mut recs = Vec::new();
    let mut seq = 0;
    for rev in 1..=5 {
        for robot in ["rb-a", "rb-b", "rb-c"] {
            seq += 1;
            recs.push(record(&seq.to_string(), robot, &b64(&mission(robot, rev))));
        }
    }
    let mut batch = Batch::new("t", event(recs)).unwrap();
    let items = batch.decode(decode_mission);
    let log: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    batch
        .for_each_by_key(items, 2, |m: MissionReport| {
            let log = log.clone();
            let in_flight = in_flight.clone();
            let max_in_flight = max_in_flight.clone();
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_in_flight.fetch_max(now, Ordering::SeqCst);
                // Later revs finish faster: a naive concurrent loop would reorder them.
                tokio::time::sleep(Duration::from_millis(60 - 10 * m.rev as u64)).await;
                log.lock()
                    .unwrap()
                    .push((m.robot_id.as_str().to_string(), m.rev));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Outcome::Succeeded
            }
        })
        .await;
    let log = log.lock().unwrap().clone();
    for robot in ["rb-a", "rb-b", "rb-c"] {
        let revs: Vec<u32> = log
            .iter()
            .filter(|(r, _)| r == robot)
            .map(|(_, rev)| *rev)
            .collect();
        assert_eq!(revs, vec![1, 2, 3, 4, 5], "order of {robot}");
    }
    assert_eq!(
        max_in_flight.load(Ordering::SeqCst),
        2,
        "bound of 2 keys in flight"
    );
    let done = batch.finish(&MemoryRejectSink::default(), deadline()).await;
    assert_eq!(done.report.succeeded, 15);
}

#[tokio::test]
async fn a_retry_stops_the_rest_of_that_key_only() {
    let recs = vec![
        record("1", "rb-1", &b64(&mission("rb-1", 1))),
        record("2", "rb-2", &b64(&mission("rb-2", 1))),
        record("3", "rb-1", &b64(&mission("rb-1", 2))),
        record("4", "rb-2", &b64(&mission("rb-2", 2))),
    ];
    let mut batch = Batch::new("t", event(recs)).unwrap();
    let items = batch.decode(decode_mission);
    let calls: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    batch
        .for_each_by_key(items, 4, |m: MissionReport| {
            let calls = calls.clone();
            async move {
                calls
                    .lock()
                    .unwrap()
                    .push((m.robot_id.as_str().into(), m.rev));
                if m.robot_id.as_str() == "rb-1" {
                    Outcome::Retry("throttled".into())
                } else {
                    Outcome::Succeeded
                }
            }
        })
        .await;
    let calls = calls.lock().unwrap().clone();
    assert!(
        !calls.contains(&("rb-1".to_string(), 2)),
        "rb-1 rev 2 must wait for rev 1"
    );
    assert!(calls.contains(&("rb-2".to_string(), 2)));
    let done = batch.finish(&MemoryRejectSink::default(), deadline()).await;
    assert_eq!(failures(&done), vec!["1".to_string()]);
}

#[tokio::test]
async fn a_panic_fails_only_its_own_record() {
    let recs = vec![
        record("1", "rb-1", &b64(&mission("rb-1", 1))),
        record("2", "rb-2", &b64(&mission("rb-2", 1))),
        record("3", "rb-3", &b64(&mission("rb-3", 1))),
    ];
    let mut batch = Batch::new("t", event(recs)).unwrap();
    // A panicking decoder for record 3 ...
    let items = batch.decode(|r, b| {
        if r.partition_key == "rb-3" {
            panic!("decoder bug");
        }
        decode_mission(r, b)
    });
    assert_eq!(items.len(), 2);
    // ... and a panicking processor for record 2.
    batch
        .for_each_by_key(items, 2, |m: MissionReport| async move {
            if m.robot_id.as_str() == "rb-2" {
                panic!("processor bug for {}", m.robot_id);
            }
            Outcome::Succeeded
        })
        .await;
    let sink = MemoryRejectSink::default();
    let done = batch.finish(&sink, deadline()).await;
    assert!(
        failures(&done).is_empty(),
        "a panic is a reject, never a stalled shard"
    );
    assert_eq!(done.report.succeeded, 1);
    assert_eq!(done.report.rejected, 2);
    let sent = sink.sent();
    assert!(sent.iter().all(|e| e.reason.kind == RejectKind::Panic));
    assert!(
        sent.iter()
            .any(|e| e.reason.detail.contains("processor bug for rb-2"))
    );
    assert!(sent.iter().any(|e| e.reason.detail.contains("decoder bug")));
}

#[tokio::test]
async fn every_malformed_kind_is_one_counted_reject_with_its_payload() {
    let mut wrong_schema: Value = serde_json::from_slice(&mission("rb-3", 1)).unwrap();
    wrong_schema["battery"]["end"] = json!(140);
    let mut missing: Value = serde_json::from_slice(&mission("rb-6", 1)).unwrap();
    missing.as_object_mut().unwrap().remove("missionId");
    let big = vec![b' '; fleet_core::MAX_PAYLOAD_BYTES + 10];
    let mut no_seq = record("", "rb-7", &b64(&mission("rb-7", 1)));
    no_seq["eventID"] = json!("");
    let recs = vec![
        record("1", "rb-1", "@@not-base64@@"),
        record("2", "rb-2", &b64(b"{\"schema\": 1, ")),
        record(
            "3",
            "rb-3",
            &b64(&serde_json::to_vec(&wrong_schema).unwrap()),
        ),
        record("4", "rb-4", &b64(&big)),
        record("5", "rb-5", &b64(&mission("rb-other", 1))),
        record("6", "rb-6", &b64(&serde_json::to_vec(&missing).unwrap())),
        no_seq,
        record("8", "rb-8", &b64(&mission("rb-8", 1))),
    ];
    let mut batch = Batch::new("mission-ingest", event(recs)).unwrap();
    let items = batch.decode(decode_mission);
    assert_eq!(items.len(), 1, "only the good record is left to process");
    batch
        .for_each_by_key(items, 4, |_| async { Outcome::Succeeded })
        .await;
    let sink = MemoryRejectSink::default();
    let done = batch.finish(&sink, deadline()).await;
    assert!(
        failures(&done).is_empty(),
        "rejects are handled, not retried: {:?}",
        failures(&done)
    );
    assert_eq!(done.report.rejected, 7);
    assert_eq!(done.report.succeeded, 1);
    let kinds: Vec<(String, RejectKind)> = sink
        .sent()
        .iter()
        .map(|e| (e.source.partition_key.clone(), e.reason.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("rb-1".into(), RejectKind::BadBase64),
            ("rb-2".into(), RejectKind::BadJson),
            ("rb-3".into(), RejectKind::SchemaViolation),
            ("rb-4".into(), RejectKind::TooLarge),
            ("rb-5".into(), RejectKind::RobotMismatch),
            ("rb-6".into(), RejectKind::MissingField),
            ("rb-7".into(), RejectKind::MissingField),
        ]
    );
    let envelope = &sink.sent()[2];
    assert_eq!(envelope.function, "mission-ingest");
    assert_eq!(envelope.source.sequence_number, "3");
    assert_eq!(envelope.source.shard_id, "shardId-000000000000");
    assert_eq!(
        envelope.payload_base64,
        Some(b64(&serde_json::to_vec(&wrong_schema).unwrap()))
    );
    assert!(
        envelope.reason.detail.contains("battery.end"),
        "{}",
        envelope.reason.detail
    );
}

#[tokio::test]
async fn a_reject_that_cannot_be_sent_is_retried_not_lost() {
    let recs = vec![
        record("1", "rb-1", &b64(&mission("rb-1", 1))),
        record("2", "rb-2", &b64(b"garbage")),
    ];
    let mut batch = Batch::new("t", event(recs)).unwrap();
    let items = batch.decode(decode_mission);
    batch
        .for_each_by_key(items, 4, |_| async { Outcome::Succeeded })
        .await;
    let sink = MemoryRejectSink::failing("sqs is down");
    let done = batch.finish(&sink, deadline()).await;
    assert_eq!(failures(&done), vec!["2".to_string()]);
    assert_eq!(done.report.retried, 1);
}

#[tokio::test]
async fn an_unprocessed_record_is_retried_and_never_reported_without_identifier() {
    let recs = vec![record("5", "rb-1", &b64(&mission("rb-1", 1)))];
    let mut batch = Batch::new("t", event(recs)).unwrap();
    let _items = batch.decode(decode_mission); // and then forgotten: a bug in a function
    let done = batch.finish(&MemoryRejectSink::default(), deadline()).await;
    assert_eq!(failures(&done), vec!["5".to_string()]);
    for f in &done.response.batch_item_failures {
        assert!(f.item_identifier.as_deref().is_some_and(|s| !s.is_empty()));
    }
}

#[tokio::test]
async fn deferred_records_are_delivered_again_but_not_counted_as_retries() {
    // The breaker opened during the batch: rb-1 was written, rb-2 not attempted, the malformed
    // record still rejected.
    let recs = vec![
        record("1", "rb-1", &b64(&mission("rb-1", 1))),
        record("2", "rb-2", &b64(&mission("rb-2", 1))),
        record("3", "rb-3", &b64(b"{not json")),
    ];
    let mut batch = Batch::new("t", event(recs)).unwrap();
    let items = batch.decode(decode_mission);
    let first = items.into_iter().next().unwrap();
    batch.set(first.position, Outcome::Succeeded);
    batch.defer_pending("circuit breaker open");
    let sink = MemoryRejectSink::default();
    let done = batch.finish(&sink, deadline()).await;
    assert_eq!(failures(&done), vec!["2".to_string()]);
    assert_eq!(
        (
            done.report.succeeded,
            done.report.deferred,
            done.report.retried,
            done.report.rejected
        ),
        (1, 1, 0, 1)
    );
    assert_eq!(sink.sent().len(), 1);
    let emf = crate::metrics::emf(&done.report, "3");
    assert_eq!(
        (emf["Deferred"].clone(), emf["Retried"].clone()),
        (json!(1), json!(0))
    );
}
