//! The SQS rejects sink against moto: batching, and payloads too large for one SQS message
//! kept in S3 (defect 8: a poison record of any size Kinesis accepts is dead-lettered once).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use fleet_aws::{PayloadStore, SqsRejectSink};
use fleet_core::{RejectEnvelope, RejectKind, RejectReason, RejectSource};
use fleet_lambda::{Deadline, RejectSink as _};
use fleet_testkit::{
    sdk_config,
    tables::{create_bucket, create_queue, drain_queue},
    unique_name,
};

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

fn envelope(seq: usize, payload_len: usize) -> RejectEnvelope {
    RejectEnvelope {
        function: "mission-ingest".into(),
        source: RejectSource {
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/missions".into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: seq.to_string(),
            partition_key: "rb-1".into(),
            approximate_arrival_timestamp: None,
        },
        reason: RejectReason {
            kind: RejectKind::BadJson,
            detail: "not json".into(),
        },
        payload_base64: Some("A".repeat(payload_len)),
        payload_s3: None,
        rejected_at: time::OffsetDateTime::now_utc(),
    }
}

#[tokio::test]
async fn envelopes_arrive_whole_in_batches_of_ten() {
    let sdk = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = create_queue(&sqs, &unique_name("rejects")).await;
    let sink = SqsRejectSink::new(sqs.clone(), &url);
    // 23 envelopes, some large enough to force smaller batches.
    let envelopes: Vec<RejectEnvelope> = (0..23)
        .map(|i| envelope(i, if i % 5 == 0 { 60_000 } else { 100 }))
        .collect();
    let results = sink.send(&envelopes, deadline()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let bodies = drain_queue(&sqs, &url, 23).await;
    assert_eq!(bodies.len(), 23);
    let mut seqs: Vec<usize> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<RejectEnvelope>(b)
                .unwrap()
                .source
                .sequence_number
                .parse()
                .unwrap()
        })
        .collect();
    seqs.sort();
    assert_eq!(seqs, (0..23).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_missing_queue_fails_every_envelope() {
    let sdk = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = format!(
        "{}/123456789012/{}",
        fleet_testkit::aws_endpoint(),
        unique_name("nope")
    );
    let results = SqsRejectSink::new(sqs, url)
        .send(&[envelope(1, 10), envelope(2, 10)], deadline())
        .await;
    assert!(results.iter().all(Result::is_err));
}

/// A reject of a Kinesis record of `bytes` bytes.
fn record_reject(seq: usize, bytes: usize) -> (RejectEnvelope, Vec<u8>) {
    let payload: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let mut e = envelope(seq, 0);
    e.payload_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&payload));
    (e, payload)
}

#[tokio::test]
async fn a_700_kib_record_goes_inline_and_a_1_mib_record_is_kept_in_s3() {
    let sdk = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let url = create_queue(&sqs, &unique_name("rejects")).await;
    let bucket = create_bucket(&s3, &unique_name("payloads")).await;
    let sink = SqsRejectSink::new(sqs.clone(), &url)
        .with_payload_store(PayloadStore::new(s3.clone(), &bucket));
    let (small, small_payload) = record_reject(1, 700 * 1024);
    let (large, large_payload) = record_reject(2, 1024 * 1024);
    let results = sink.send(&[small, large.clone()], deadline()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let bodies = drain_queue(&sqs, &url, 2).await;
    let mut envelopes: Vec<RejectEnvelope> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    envelopes.sort_by(|a, b| a.source.sequence_number.cmp(&b.source.sequence_number));
    // 700 KiB: base64 inline, in one SQS message.
    let inline = &envelopes[0];
    assert!(inline.payload_s3.is_none());
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(inline.payload_base64.as_deref().unwrap())
            .unwrap(),
        small_payload
    );
    // 1 MiB: too large for an envelope; the payload is in S3, the envelope points at it.
    let stored = &envelopes[1];
    assert!(stored.payload_base64.is_none());
    let pointer = stored.payload_s3.as_ref().unwrap();
    assert_eq!(pointer.bucket, bucket);
    assert_eq!(pointer.key, PayloadStore::key(&large));
    assert_eq!(pointer.bytes, large_payload.len() as u64);
    let object = s3
        .get_object()
        .bucket(&pointer.bucket)
        .key(&pointer.key)
        .send()
        .await
        .unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.as_ref(), large_payload.as_slice());
}

#[tokio::test]
async fn without_a_payload_bucket_a_1_mib_reject_fails_and_names_the_limit() {
    let sdk = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = create_queue(&sqs, &unique_name("rejects")).await;
    let (large, _) = record_reject(3, 1024 * 1024);
    let results = SqsRejectSink::new(sqs, &url)
        .send(&[large], deadline())
        .await;
    let err = results[0].as_ref().unwrap_err();
    assert!(err.0.contains("SQS limit"), "{err:?}");
}
