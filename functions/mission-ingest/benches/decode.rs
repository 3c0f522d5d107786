//! CPU per record of decode + validate + request building, on realistic mission reports of
//! 650 B – 1 KB, in batches of 100 and 1,000. Target: ≤ 5 µs per record.
//!
//! `cargo bench -p mission-ingest` (criterion reports time per batch and records per second).

use base64::Engine as _;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleet_lambda::Batch;
use serde_json::{Value, json};
use time::OffsetDateTime;

fn report(i: usize) -> Vec<u8> {
    let robot = format!("rb-{i:06}");
    let errors: Vec<Value> = (0..(i % 4))
        .map(|k| {
            let code = ["stuck", "brush_jammed", "cliff_sensor", "bin_full"][k];
            json!({"code": code, "at": "2026-11-23T15:20:00Z"})
        })
        .collect();
    let mut body = json!({
        "schema": 1, "robotId": robot, "missionId": format!("01JD3Z8X6Y7ZQ4W5V6T{:07}", i % 10_000_000),
        "rev": 1 + (i % 3), "status": "completed",
        "startedAt": "2026-11-23T15:00:04Z", "endedAt": "2026-11-23T15:41:10Z",
        "areaM2": 42.5 + (i % 50) as f64, "durationS": 2466, "battery": {"start": 100, "end": 37},
        "errors": errors,
    });
    // Firmware adds a little context to each report; pad to the realistic 650 B – 1 KB range.
    let len = serde_json::to_vec(&body).map(|v| v.len()).unwrap_or(0);
    let pad = 650usize.saturating_sub(len) + (i * 37) % 300;
    let code = "x".repeat(pad.clamp(1, 64));
    if let Some(e) = body["errors"].as_array_mut() {
        e.push(json!({"code": code, "at": "2026-11-23T15:21:00Z"}));
    }
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    while bytes.len() < 650 {
        if let Some(e) = body["errors"].as_array_mut() {
            e.push(json!({"code": "dock_lost", "at": "2026-11-23T15:22:00Z"}));
        }
        bytes = serde_json::to_vec(&body).unwrap_or_default();
    }
    bytes
}

fn event(n: usize) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let data = base64::engine::general_purpose::STANDARD.encode(report(i));
            json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": format!("rb-{i:06}"),
                            "sequenceNumber": format!("4959033827149025660855969253836157109592157598913{i:07}"),
                            "data": data, "approximateArrivalTimestamp": 1732374000.123},
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:4959033827149025660855969253836157109592157598913{i:07}"),
                "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/fn",
                "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/robofleet-missions"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn bench(c: &mut Criterion) {
    let sizes: Vec<usize> = (0..1000).map(|i| report(i).len()).collect();
    eprintln!(
        "mission report sizes: min {} B, max {} B",
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0)
    );
    let mut group = c.benchmark_group("mission-ingest/decode+validate+item");
    for n in [100usize, 1000] {
        let ev = event(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &ev, |b, ev| {
            b.iter_batched(
                || ev.clone(),
                |ev| {
                    let mut batch =
                        Batch::new(mission_ingest::FUNCTION, ev).unwrap_or_else(|e| panic!("{e}"));
                    let items = batch.decode(mission_ingest::decode);
                    let now = OffsetDateTime::now_utc();
                    let built: usize = items
                        .iter()
                        .map(|item| {
                            fleet_aws::missions::mission_item(&item.value, 365, 8, now).len()
                        })
                        .sum();
                    assert_eq!(items.len(), n);
                    built
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
