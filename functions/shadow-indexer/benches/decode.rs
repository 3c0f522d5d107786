//! CPU per record of decode + validate + bulk request building, on realistic shadow update
//! documents of 650 B – 1 KB, in batches of 100 and 1,000. Target: ≤ 5 µs per record.
//!
//! `cargo bench -p shadow-indexer` (criterion reports time per batch and records per second).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleet_bench::samples;
use fleet_lambda::Batch;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("shadow-indexer/decode+validate+bulk");
    for n in [100usize, 1000] {
        let ev = samples::shadow_event(n, 0);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &ev, |b, ev| {
            b.iter_batched(
                || ev.clone(),
                |ev| {
                    let mut batch =
                        Batch::new(shadow_indexer::FUNCTION, ev).unwrap_or_else(|e| panic!("{e}"));
                    let items = batch.decode(shadow_indexer::decode);
                    assert_eq!(items.len(), n);
                    let (docs, _) = shadow_indexer::plan(items);
                    let refs: Vec<&fleet_aws::IndexDoc> = docs.iter().collect();
                    fleet_aws::robots::bulk_body("robots", &refs).len()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    // The same without request building, to show where the time goes.
    let mut group = c.benchmark_group("shadow-indexer/decode+validate");
    let n = 1000usize;
    let ev = samples::shadow_event(n, 0);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_with_input(BenchmarkId::from_parameter(n), &ev, |b, ev| {
        b.iter_batched(
            || ev.clone(),
            |ev| {
                let mut batch =
                    Batch::new(shadow_indexer::FUNCTION, ev).unwrap_or_else(|e| panic!("{e}"));
                batch.decode(shadow_indexer::decode).len()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
