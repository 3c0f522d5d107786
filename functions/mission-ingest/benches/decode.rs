//! CPU per record of decode + validate + request building, on realistic mission reports of
//! 650 B – 1 KB, in batches of 100 and 1,000. Target: ≤ 5 µs per record.
//!
//! `cargo bench -p mission-ingest` (criterion reports time per batch and records per second).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleet_bench::samples;
use fleet_lambda::Batch;
use time::OffsetDateTime;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("mission-ingest/decode+validate+item");
    for n in [100usize, 1000] {
        let ev = samples::mission_event(n, 0);
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

    // The same without request building, to show where the time goes.
    let mut group = c.benchmark_group("mission-ingest/decode+validate");
    let n = 1000usize;
    let ev = samples::mission_event(n, 0);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_with_input(BenchmarkId::from_parameter(n), &ev, |b, ev| {
        b.iter_batched(
            || ev.clone(),
            |ev| {
                let mut batch =
                    Batch::new(mission_ingest::FUNCTION, ev).unwrap_or_else(|e| panic!("{e}"));
                batch.decode(mission_ingest::decode).len()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
