//! The SQS rejects sink against moto.

#![allow(clippy::unwrap_used)]

use fleet_aws::SqsRejectSink;
use fleet_core::{RejectEnvelope, RejectKind, RejectReason, RejectSource};
use fleet_lambda::RejectSink as _;
use fleet_testkit::{
    sdk_config,
    tables::{create_queue, drain_queue},
    unique_name,
};

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
        payload_base64: "A".repeat(payload_len),
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
    let results = sink.send(&envelopes).await;
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
        .send(&[envelope(1, 10), envelope(2, 10)])
        .await;
    assert!(results.iter().all(Result::is_err));
}
