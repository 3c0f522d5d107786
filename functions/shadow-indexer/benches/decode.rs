//! CPU per record of decode + validate + bulk request building, on realistic shadow update
//! documents of 650 B – 1 KB, in batches of 100 and 1,000. Target: ≤ 5 µs per record.
//!
//! `cargo bench -p shadow-indexer` (criterion reports time per batch and records per second).

use base64::Engine as _;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleet_lambda::Batch;
use serde_json::{Value, json};

fn documents(i: usize) -> Vec<u8> {
    let version = 17 + (i % 50) as u64;
    let ts = 1_795_446_000 + i as i64;
    let status = ["cleaning", "docked", "charging"][i % 3];
    let reported = |battery: u64| {
        json!({"battery": battery, "status": status,
               "position": {"x": 3.25 + (i % 7) as f64, "y": 1.5, "room": "kitchen"},
               "firmware": "4.2.1", "errorCodes": [], "missionId": "01JD3Z8X6Y7ZQ4W5V6T7S8R9PQ"})
    };
    let meta = json!({"reported": {"battery": {"timestamp": ts}, "status": {"timestamp": ts},
                                    "position": {"x": {"timestamp": ts}, "y": {"timestamp": ts}}}});
    let body = json!({
        "previous": {"state": {"desired": {"mode": "eco"}, "reported": reported(81)}, "metadata": meta, "version": version - 1},
        "current": {"state": {"desired": {"mode": "eco"}, "reported": reported(80)}, "metadata": meta, "version": version},
        "timestamp": ts, "clientToken": format!("tok-{i}"), "thingName": format!("rb-{:06}", i % 400)
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn event(n: usize) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let data = base64::engine::general_purpose::STANDARD.encode(documents(i));
            json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": format!("rb-{:06}", i % 400),
                            "sequenceNumber": format!("4959033827149025660855969253836157109592157598913{i:07}"),
                            "data": data, "approximateArrivalTimestamp": 1732374000.123},
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:4959033827149025660855969253836157109592157598913{i:07}"),
                "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/fn",
                "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/robofleet-shadows"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn bench(c: &mut Criterion) {
    let sizes: Vec<usize> = (0..1000).map(|i| documents(i).len()).collect();
    eprintln!(
        "shadow document sizes: min {} B, max {} B",
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0)
    );
    let mut group = c.benchmark_group("shadow-indexer/decode+validate+bulk");
    for n in [100usize, 1000] {
        let ev = event(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &ev, |b, ev| {
            b.iter_batched(
                || ev.clone(),
                |ev| {
                    let mut batch =
                        Batch::new(shadow_indexer::FUNCTION, ev).unwrap_or_else(|e| panic!("{e}"));
                    let items = batch.decode(shadow_indexer::decode);
                    assert_eq!(items.len(), n);
                    let (docs, _) = shadow_indexer::plan(&items);
                    let refs: Vec<&fleet_aws::IndexDoc> = docs.iter().collect();
                    fleet_aws::robots::bulk_body("robots", &refs).len()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
