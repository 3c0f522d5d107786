//! Lambda's semantics pinned down against an in-memory stream and a scripted function, on
//! tokio's paused clock (no test depends on wall-clock speed).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::error::InvokeError;

const SHARD: &str = "shardId-000000000000";

// ---------------------------------------------------------------- fake stream

struct FakeShard {
    info: ShardInfo,
    records: Vec<StreamRecord>,
}

#[derive(Default)]
struct FakeStream {
    shards: Mutex<Vec<FakeShard>>,
    next_seq: AtomicU64,
    get_records_calls: AtomicU64,
}

impl FakeStream {
    fn with_shards(ids: &[&str]) -> Arc<Self> {
        let s = Self::default();
        s.next_seq.store(1, Ordering::SeqCst);
        if let Ok(mut shards) = s.shards.lock() {
            for id in ids {
                shards.push(FakeShard {
                    info: ShardInfo {
                        shard_id: (*id).to_owned(),
                        parent_shard_id: None,
                        adjacent_parent_shard_id: None,
                        closed: false,
                    },
                    records: Vec::new(),
                });
            }
        }
        Arc::new(s)
    }

    fn one_shard() -> Arc<Self> {
        Self::with_shards(&[SHARD])
    }

    fn put_at(&self, shard: &str, key: &str, data: &str, arrival: SystemTime) -> String {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst).to_string();
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = shards.iter_mut().find(|s| s.info.shard_id == shard) else {
            panic!("no shard {shard}");
        };
        s.records.push(StreamRecord {
            sequence_number: seq.clone(),
            partition_key: key.to_owned(),
            data: data.as_bytes().to_vec(),
            approximate_arrival: arrival,
        });
        seq
    }

    fn put(&self, key: &str, data: &str) -> String {
        self.put_at(SHARD, key, data, SystemTime::now())
    }

    fn split(&self, parent: &str, children: &[&str]) {
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        for s in shards.iter_mut() {
            if s.info.shard_id == parent {
                s.info.closed = true;
            }
        }
        for c in children {
            shards.push(FakeShard {
                info: ShardInfo {
                    shard_id: (*c).to_owned(),
                    parent_shard_id: Some(parent.to_owned()),
                    adjacent_parent_shard_id: None,
                    closed: false,
                },
                records: Vec::new(),
            });
        }
    }

    fn calls(&self) -> u64 {
        self.get_records_calls.load(Ordering::SeqCst)
    }
}

impl ShardSource for FakeStream {
    fn list_shards(&self) -> BoxFuture<'_, Result<Vec<ShardInfo>, SourceError>> {
        let shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        let list = shards.iter().map(|s| s.info.clone()).collect();
        Box::pin(async move { Ok(list) })
    }

    fn shard_iterator<'a>(
        &'a self,
        shard_id: &'a str,
        start: &'a IteratorStart,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        let shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        let r = match shards.iter().find(|s| s.info.shard_id == shard_id) {
            None => Err(SourceError::NotFound(shard_id.to_owned())),
            Some(s) => {
                let pos = match start {
                    IteratorStart::TrimHorizon => 0,
                    IteratorStart::Latest => s.records.len(),
                    IteratorStart::AtTimestamp(t) => s
                        .records
                        .iter()
                        .position(|r| r.approximate_arrival >= *t)
                        .unwrap_or(s.records.len()),
                    IteratorStart::AfterSequence(seq) => s
                        .records
                        .iter()
                        .position(|r| r.sequence_number == *seq)
                        .map_or(0, |p| p + 1),
                };
                Ok(format!("{shard_id}#{pos}"))
            }
        };
        Box::pin(async move { r })
    }

    fn get_records<'a>(
        &'a self,
        iterator: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<RecordsPage, SourceError>> {
        self.get_records_calls.fetch_add(1, Ordering::SeqCst);
        let shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        let (id, pos) = iterator.split_once('#').unwrap_or((iterator, "0"));
        let pos: usize = pos.parse().unwrap_or(0);
        let r = match shards.iter().find(|s| s.info.shard_id == id) {
            None => Err(SourceError::NotFound(id.to_owned())),
            Some(s) => {
                let end = (pos + limit as usize).min(s.records.len());
                let records = s.records[pos.min(end)..end].to_vec();
                let next = if s.info.closed && end >= s.records.len() {
                    None
                } else {
                    Some(format!("{id}#{end}"))
                };
                Ok(RecordsPage {
                    records,
                    next_iterator: next,
                    millis_behind_latest: Some(0),
                })
            }
        };
        Box::pin(async move { r })
    }
}

// ---------------------------------------------------------------- fake function

struct Call {
    seqs: Vec<String>,
    keys: Vec<String>,
    at: Instant,
    checkpoint: Option<String>,
}

type Script = Box<dyn Fn(usize, &[String]) -> Result<InvokeOutcome, InvokeError> + Send + Sync>;

struct FakeFunction {
    script: Script,
    delay: Option<Box<dyn Fn(usize) -> Duration + Send + Sync>>,
    calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    stats: OnceLock<Arc<EsmStats>>,
}

impl FakeFunction {
    fn new(
        script: impl Fn(usize, &[String]) -> Result<InvokeOutcome, InvokeError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            delay: None,
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            stats: OnceLock::new(),
        })
    }

    fn ok() -> Arc<Self> {
        Self::new(|_, _| Ok(InvokeOutcome::ok(json!({"batchItemFailures": []}))))
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.calls
            .lock()
            .map(|c| c.iter().map(|c| c.seqs.clone()).collect())
            .unwrap_or_default()
    }

    fn sizes(&self) -> Vec<usize> {
        self.batches().iter().map(Vec::len).collect()
    }

    fn delivered(&self) -> Vec<String> {
        self.batches().concat()
    }
}

impl Invoker for FakeFunction {
    fn invoke<'a>(
        &'a self,
        _function: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
        Box::pin(async move {
            let items = event["Records"].as_array().cloned().unwrap_or_default();
            let seqs: Vec<String> = items
                .iter()
                .map(|r| {
                    r["kinesis"]["sequenceNumber"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            let keys = items
                .iter()
                .map(|r| {
                    r["kinesis"]["partitionKey"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            let checkpoint = self.stats.get().and_then(|s| s.checkpoint(SHARD));
            let n = {
                let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
                calls.push(Call {
                    seqs: seqs.clone(),
                    keys,
                    at: Instant::now(),
                    checkpoint,
                });
                calls.len() - 1
            };
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            if let Some(delay) = &self.delay {
                tokio::time::sleep(delay(n)).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            (self.script)(n, &seqs)
        })
    }
}

fn failures(ids: &[&str]) -> InvokeOutcome {
    let items: Vec<Value> = ids.iter().map(|i| json!({"itemIdentifier": i})).collect();
    InvokeOutcome::ok(json!({ "batchItemFailures": items }))
}

// ---------------------------------------------------------------- fake sink

#[derive(Default)]
struct FakeSink(Mutex<Vec<FailureRecord>>);

impl FakeSink {
    fn records(&self) -> Vec<FailureRecord> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl FailureSink for FakeSink {
    fn send<'a>(&'a self, record: &'a FailureRecord) -> BoxFuture<'a, Result<(), SinkError>> {
        if let Ok(mut r) = self.0.lock() {
            r.push(record.clone());
        }
        Box::pin(async { Ok(()) })
    }
}

// ---------------------------------------------------------------- harness

fn config() -> MappingConfig {
    let mut c = MappingConfig::new("esm-test", "fn", "stream");
    c.starting_position = StartingPosition::TrimHorizon;
    c.report_batch_item_failures = true;
    c
}

struct Run {
    handle: PollerHandle,
    sink: Arc<FakeSink>,
}

fn start(
    config: MappingConfig,
    stream: &Arc<FakeStream>,
    function: &Arc<FakeFunction>,
    state: SwitchState,
) -> Run {
    let sink = Arc::new(FakeSink::default());
    let handle = Poller::new(config, stream.clone(), function.clone(), Arc::new(state))
        .on_failure(sink.clone())
        .spawn(NoShutdown)
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let _ = function.stats.set(handle.stats());
    Run { handle, sink }
}

/// Waits (in paused time) until `cond` holds; fails after ten virtual minutes.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test(start_paused = true)]
async fn partial_failure_checkpoints_at_the_lowest_failed_sequence_number() {
    let stream = FakeStream::one_shard();
    for i in 0..5 {
        stream.put(&format!("k{i}"), "x");
    }
    let f = FakeFunction::new(|n, _| {
        Ok(if n == 0 {
            failures(&["4", "3"])
        } else {
            failures(&[])
        })
    });
    let run = start(config(), &stream, &f, SwitchState::new(true));
    until("redelivered", || {
        f.batches().len() >= 2 && run.handle.checkpoint(SHARD).as_deref() == Some("5")
    })
    .await;
    assert_eq!(
        f.batches(),
        vec![
            strings(&["1", "2", "3", "4", "5"]),
            strings(&["3", "4", "5"])
        ]
    );
    let second = f
        .calls
        .lock()
        .map(|c| c[1].checkpoint.clone())
        .unwrap_or_default();
    assert_eq!(second.as_deref(), Some("2"), "checkpoint before the retry");
    let s = run.handle.stats().snapshot();
    assert_eq!(
        (s.item_failures, s.batches_failed, s.retries, s.records_done),
        (2, 1, 1, 5)
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(f.batches().len(), 2, "nothing is delivered again");
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn without_report_batch_item_failures_the_response_is_ignored() {
    let stream = FakeStream::one_shard();
    stream.put("k", "x");
    stream.put("k", "y");
    let f = FakeFunction::new(|_, _| Ok(failures(&["1"])));
    let mut c = config();
    c.report_batch_item_failures = false;
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("done", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("2")
    })
    .await;
    assert_eq!(f.batches(), vec![strings(&["1", "2"])]);
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn invalid_or_empty_item_identifiers_fail_the_whole_batch() {
    for bad in [json!(""), json!(null), json!("99")] {
        let stream = FakeStream::one_shard();
        for _ in 0..3 {
            stream.put("k", "x");
        }
        let b = bad.clone();
        let f = FakeFunction::new(move |n, _| {
            Ok(if n == 0 {
                InvokeOutcome::ok(
                    json!({"batchItemFailures": [{"itemIdentifier": "2"}, {"itemIdentifier": b}]}),
                )
            } else {
                failures(&[])
            })
        });
        let run = start(config(), &stream, &f, SwitchState::new(true));
        until("done", || {
            run.handle.checkpoint(SHARD).as_deref() == Some("3")
        })
        .await;
        assert_eq!(
            f.batches(),
            vec![strings(&["1", "2", "3"]); 2],
            "{bad}: whole batch retried"
        );
        let s = run.handle.stats().snapshot();
        assert_eq!(
            (s.batches_failed, s.retries, s.item_failures),
            (1, 1, 0),
            "{bad}"
        );
        run.handle.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn bisect_splits_a_failing_batch_first_half_first() {
    let stream = FakeStream::one_shard();
    for _ in 0..8 {
        stream.put("k", "x");
    }
    let f = FakeFunction::new(|_, seqs| {
        Ok(if seqs.iter().any(|s| s == "6") {
            InvokeOutcome::unhandled("poison")
        } else {
            failures(&[])
        })
    });
    let mut c = config();
    c.bisect_on_error = true;
    c.max_retry_attempts = Some(1);
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("done", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("8")
    })
    .await;
    assert_eq!(f.sizes(), vec![8, 4, 4, 2, 1, 1, 1, 2]);
    assert_eq!(f.batches()[1], strings(&["1", "2", "3", "4"]));
    let s = run.handle.stats().snapshot();
    // Splitting does not use the retry quota: only the lone poison record is retried.
    assert_eq!((s.bisections, s.retries, s.sent_to_on_failure), (3, 1, 1));
    let sent = run.sink.records();
    assert_eq!(sent.len(), 1);
    let info = &sent[0].metadata["KinesisBatchInfo"];
    assert_eq!(
        (
            info["startSequenceNumber"].as_str(),
            info["batchSize"].as_u64()
        ),
        (Some("6"), Some(1))
    );
    assert_eq!(
        sent[0].metadata["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn bisect_with_a_partial_response_retries_only_the_remaining_records() {
    let stream = FakeStream::one_shard();
    for _ in 0..4 {
        stream.put("k", "x");
    }
    let f = FakeFunction::new(|_, seqs| {
        Ok(if seqs.first().is_some_and(|s| s == "1") {
            failures(&["3"])
        } else {
            failures(&[])
        })
    });
    let mut c = config();
    c.bisect_on_error = true;
    c.max_retry_attempts = Some(0);
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("done", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("4")
    })
    .await;
    assert_eq!(
        f.batches(),
        vec![strings(&["1", "2", "3", "4"]), strings(&["3", "4"])]
    );
    let s = run.handle.stats().snapshot();
    assert_eq!((s.bisections, s.retries, s.sent_to_on_failure), (1, 0, 0));
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_send_the_metadata_to_on_failure_and_move_on() {
    let stream = FakeStream::one_shard();
    for _ in 0..3 {
        stream.put("k", "x");
    }
    let f = FakeFunction::new(|_, seqs| {
        Ok(if seqs.iter().any(|s| s == "1") {
            InvokeOutcome::unhandled("boom")
        } else {
            failures(&[])
        })
    });
    let mut c = config();
    c.batch_size = 3;
    c.max_retry_attempts = Some(2);
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("discarded", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("3")
    })
    .await;
    assert_eq!(
        f.batches(),
        vec![strings(&["1", "2", "3"]); 3],
        "first try and two retries"
    );
    let sent = run.sink.records();
    assert_eq!(sent.len(), 1);
    let m = &sent[0].metadata;
    assert_eq!(m["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(m["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(
        m["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:fn"
    );
    assert_eq!(
        m["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
    );
    assert_eq!(m["version"], "1.0");
    let info = &m["KinesisBatchInfo"];
    assert_eq!(info["shardId"], SHARD);
    assert_eq!(info["startSequenceNumber"], "1");
    assert_eq!(info["endSequenceNumber"], "3");
    assert_eq!(info["batchSize"], 3);
    assert_eq!(
        info["streamArn"],
        "arn:aws:kinesis:us-east-1:123456789012:stream/stream"
    );
    assert!(m.get("payload").is_none(), "SQS gets metadata only");
    assert_eq!(
        sent[0].event["Records"].as_array().map(Vec::len),
        Some(3),
        "S3 gets the event"
    );
    // The shard moves on.
    stream.put("k", "after");
    until("next record", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("4")
    })
    .await;
    assert_eq!(f.batches().last(), Some(&strings(&["4"])));
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_over_age_record_is_skipped_to_on_failure() {
    let stream = FakeStream::one_shard();
    stream.put_at(
        SHARD,
        "k",
        "old",
        SystemTime::now() - Duration::from_secs(7200),
    );
    stream.put("k", "new");
    let f = FakeFunction::ok();
    let mut c = config();
    c.max_record_age = Some(Duration::from_secs(60));
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("done", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("2")
    })
    .await;
    assert_eq!(f.batches(), vec![strings(&["2"])]);
    let sent = run.sink.records();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].metadata["requestContext"]["condition"],
        "RecordAgeExceeded"
    );
    assert_eq!(
        sent[0].metadata["requestContext"]["approximateInvokeCount"],
        0
    );
    assert_eq!(
        sent[0].metadata["KinesisBatchInfo"]["startSequenceNumber"],
        "1"
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_disabled_mapping_is_not_polled_and_resumes_from_its_checkpoint() {
    let stream = FakeStream::one_shard();
    for _ in 0..3 {
        stream.put("k", "x");
    }
    let f = FakeFunction::ok();
    let state = SwitchState::new(false);
    let run = start(config(), &stream, &f, state.clone());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        (stream.calls(), f.batches().len()),
        (0, 0),
        "disabled: no GetRecords, no invoke"
    );

    state.set(true);
    until("first records", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("3")
    })
    .await;
    state.set(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = stream.calls();
    stream.put("k", "4");
    stream.put("k", "5");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(stream.calls(), calls, "paused: no GetRecords");
    assert_eq!(f.delivered(), strings(&["1", "2", "3"]));
    assert!(!run.handle.stats().snapshot().enabled);

    state.set(true);
    until("resumed", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("5")
    })
    .await;
    assert_eq!(
        f.delivered(),
        strings(&["1", "2", "3", "4", "5"]),
        "resumes after the checkpoint"
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_batching_window_waits_for_more_records() {
    let stream = FakeStream::one_shard();
    for _ in 0..3 {
        stream.put("k", "x");
    }
    let f = FakeFunction::ok();
    let mut c = config();
    c.batch_size = 10;
    c.max_batching_window = Duration::from_secs(5);
    let t0 = Instant::now();
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("invoked", || !f.batches().is_empty()).await;
    let at = f.calls.lock().map(|c| c[0].at).unwrap_or(t0);
    let waited = at - t0;
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(7),
        "{waited:?}"
    );
    assert_eq!(f.sizes(), vec![3]);
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_batching_window_is_cut_short_when_the_batch_is_full() {
    let stream = FakeStream::one_shard();
    for _ in 0..5 {
        stream.put("k", "x");
    }
    let f = FakeFunction::ok();
    let mut c = config();
    c.batch_size = 3;
    c.max_batching_window = Duration::from_secs(20);
    let t0 = Instant::now();
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("both batches", || f.batches().len() == 2).await;
    let ats: Vec<Duration> = f
        .calls
        .lock()
        .map(|c| c.iter().map(|c| c.at - t0).collect())
        .unwrap_or_default();
    assert_eq!(f.sizes(), vec![3, 2]);
    assert!(
        ats[0] < Duration::from_secs(2),
        "full batch goes at once: {ats:?}"
    );
    assert!(
        ats[1] >= Duration::from_secs(20),
        "the remainder waits for the window: {ats:?}"
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn parallelization_keeps_each_partition_key_in_order() {
    let stream = FakeStream::one_shard();
    let keys = ["rb-1", "rb-2", "rb-3", "rb-4", "rb-5", "rb-6"];
    for i in 0..60 {
        stream.put(keys[i % keys.len()], "x");
    }
    let mut f = FakeFunction::new(|_, _| Ok(failures(&[])));
    if let Some(inner) = Arc::get_mut(&mut f) {
        inner.delay = Some(Box::new(|n| {
            Duration::from_millis(((n * 37) % 11) as u64 * 100)
        }));
    }
    let mut c = config();
    c.batch_size = 2;
    c.parallelization_factor = 4;
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("all", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("60")
    })
    .await;
    let calls = f
        .calls
        .lock()
        .map(|c| {
            c.iter()
                .map(|c| (c.seqs.clone(), c.keys.clone()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for key in keys {
        let seen: Vec<u64> = calls
            .iter()
            .flat_map(|(s, k)| {
                s.iter()
                    .zip(k)
                    .filter(|(_, k)| *k == key)
                    .map(|(s, _)| s.parse().unwrap_or(0))
            })
            .collect();
        assert_eq!(seen.len(), 10, "{key} delivered once each");
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "{key} in order: {seen:?}"
        );
    }
    assert!(
        f.max_in_flight.load(Ordering::SeqCst) >= 2,
        "lanes run concurrently"
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn parent_shards_are_drained_before_their_children() {
    let stream = FakeStream::with_shards(&["shardId-000000000000"]);
    for _ in 0..3 {
        stream.put("k", "parent");
    }
    stream.split(SHARD, &["shardId-000000000001", "shardId-000000000002"]);
    let c1 = stream.put_at("shardId-000000000001", "k", "child", SystemTime::now());
    let c2 = stream.put_at("shardId-000000000002", "k", "child", SystemTime::now());
    let f = FakeFunction::ok();
    let run = start(config(), &stream, &f, SwitchState::new(true));
    until("children", || f.delivered().len() == 5).await;
    let d = f.delivered();
    assert_eq!(
        &d[..3],
        &strings(&["1", "2", "3"])[..],
        "parent first: {d:?}"
    );
    assert!(d[3..].contains(&c1) && d[3..].contains(&c2));
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_function_is_retried_without_using_retry_attempts() {
    let stream = FakeStream::one_shard();
    stream.put("k", "x");
    let f = FakeFunction::new(|n, _| {
        if n < 3 {
            Err(InvokeError::Http {
                function: "fn".into(),
                detail: "connection refused".into(),
            })
        } else {
            Ok(failures(&[]))
        }
    });
    let mut c = config();
    c.max_retry_attempts = Some(0);
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("done", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("1")
    })
    .await;
    let s = run.handle.stats().snapshot();
    assert_eq!(
        (s.invoke_errors, s.retries, s.sent_to_on_failure),
        (3, 0, 0)
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn latest_skips_what_was_written_before_the_start() {
    let stream = FakeStream::one_shard();
    stream.put("k", "before");
    let f = FakeFunction::ok();
    let mut c = config();
    c.starting_position = StartingPosition::Latest;
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("polled", || stream.calls() > 0).await;
    stream.put("k", "after");
    until("after", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("2")
    })
    .await;
    assert_eq!(f.delivered(), strings(&["2"]));
    run.handle.shutdown().await;
}

#[test]
fn one_partition_key_always_maps_to_one_lane() {
    for lanes in 1..=10 {
        let a = poller::lane_of("rb-000123", lanes);
        assert!(a < lanes);
        assert_eq!(a, poller::lane_of("rb-000123", lanes));
    }
    let spread: std::collections::HashSet<usize> = (0..100)
        .map(|i| poller::lane_of(&format!("rb-{i}"), 4))
        .collect();
    assert_eq!(spread.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn saved_checkpoints_resume_just_after_them() {
    let stream = FakeStream::one_shard();
    for _ in 0..4 {
        stream.put("k", "x");
    }
    let f = FakeFunction::ok();
    let sink = Arc::new(FakeSink::default());
    let saved = std::collections::BTreeMap::from([(SHARD.to_owned(), "2".to_owned())]);
    let handle = Poller::new(
        config(),
        stream.clone(),
        f.clone(),
        Arc::new(SwitchState::new(true)),
    )
    .on_failure(sink)
    .resume_from(saved)
    .spawn(NoShutdown)
    .unwrap_or_else(|e| panic!("spawn: {e}"));
    until("done", || handle.checkpoint(SHARD).as_deref() == Some("4")).await;
    assert_eq!(f.delivered(), strings(&["3", "4"]));
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn at_timestamp_starts_at_the_first_record_at_or_after_it() {
    let stream = FakeStream::one_shard();
    let t = SystemTime::now();
    stream.put_at(SHARD, "k", "old", t - Duration::from_secs(600));
    stream.put_at(SHARD, "k", "new", t - Duration::from_secs(60));
    let f = FakeFunction::ok();
    let mut c = config();
    c.starting_position = StartingPosition::AtTimestamp(t - Duration::from_secs(300));
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("done", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("2")
    })
    .await;
    assert_eq!(f.delivered(), strings(&["2"]));
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_shutdown_stops_every_task() {
    let stream = FakeStream::one_shard();
    stream.put("k", "x");
    let f = FakeFunction::ok();
    let (tx, rx) = tokio::sync::broadcast::channel::<()>(1);
    let handle = Poller::new(
        config(),
        stream.clone(),
        f.clone(),
        Arc::new(SwitchState::new(true)),
    )
    .spawn(rx)
    .unwrap_or_else(|e| panic!("spawn: {e}"));
    until("delivered", || {
        handle.checkpoint(SHARD).as_deref() == Some("1")
    })
    .await;
    assert!(!handle.is_finished());
    let _ = tx.send(());
    until("stopped", || handle.is_finished()).await;
    let calls = stream.calls();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(stream.calls(), calls, "no polling after shutdown");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_configuration_is_refused_at_spawn() {
    let stream = FakeStream::one_shard();
    let mut c = config();
    c.max_retry_attempts = Some(20_000);
    let r = Poller::new(
        c,
        stream,
        FakeFunction::ok(),
        Arc::new(SwitchState::new(true)),
    )
    .spawn(NoShutdown);
    let Err(e) = r else {
        panic!("spawn accepted MaximumRetryAttempts 20000")
    };
    assert!(e.to_string().contains("MaximumRetryAttempts"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn latest_passes_a_closed_parent_and_reads_its_children() {
    let stream = FakeStream::one_shard();
    stream.put("k", "old");
    stream.split(SHARD, &["shardId-000000000001"]);
    let f = FakeFunction::ok();
    let mut c = config();
    c.starting_position = StartingPosition::Latest;
    let run = start(c, &stream, &f, SwitchState::new(true));
    until("child polled", || stream.calls() >= 2).await;
    let seq = stream.put_at("shardId-000000000001", "k", "new", SystemTime::now());
    until("child record", || f.delivered() == vec![seq.clone()]).await;
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_cut_before_the_payload_limit() {
    let stream = FakeStream::one_shard();
    let big = "x".repeat(600);
    for _ in 0..5 {
        stream.put("k", &big);
    }
    let f = FakeFunction::ok();
    let sink = Arc::new(FakeSink::default());
    let opts = PollerOptions {
        max_payload_bytes: 2600,
        ..PollerOptions::default()
    };
    let handle = Poller::new(
        config(),
        stream.clone(),
        f.clone(),
        Arc::new(SwitchState::new(true)),
    )
    .on_failure(sink)
    .options(opts)
    .spawn(NoShutdown)
    .unwrap_or_else(|e| panic!("spawn: {e}"));
    until("done", || handle.checkpoint(SHARD).as_deref() == Some("5")).await;
    assert_eq!(f.sizes(), vec![2, 2, 1], "each event stays under the limit");
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_function_that_disables_its_mapping_costs_no_retry_and_no_bisect() {
    // The function's circuit breaker opens during the first batch: it disables the mapping and
    // reports its records as failed. They wait, untouched, and are delivered again once the
    // mapping is enabled.
    let stream = FakeStream::one_shard();
    for _ in 0..4 {
        stream.put("k", "x");
    }
    let state = SwitchState::new(true);
    let switch = state.clone();
    let f = FakeFunction::new(move |n, seqs| {
        if n == 0 {
            switch.set(false);
            let all: Vec<&str> = seqs.iter().map(String::as_str).collect();
            Ok(failures(&all[..1]))
        } else {
            Ok(InvokeOutcome::ok(json!({"batchItemFailures": []})))
        }
    });
    let mut c = config();
    c.bisect_on_error = true;
    c.max_retry_attempts = Some(0);
    let run = start(c, &stream, &f, state.clone());
    until("the first batch", || f.batches().len() == 1).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let s = run.handle.stats().snapshot();
    assert_eq!(
        (s.retries, s.bisections, s.paused_batches),
        (0, 0, 1),
        "{s:?}"
    );
    assert_eq!(f.batches().len(), 1, "nothing invoked while disabled");
    assert!(run.sink.records().is_empty(), "nothing sent to on-failure");
    state.set(true);
    until("delivered again", || {
        run.handle.checkpoint(SHARD).as_deref() == Some("4")
    })
    .await;
    assert_eq!(f.batches(), vec![strings(&["1", "2", "3", "4"]); 2]);
    let s = run.handle.stats().snapshot();
    assert_eq!((s.retries, s.bisections), (0, 0));
    run.handle.shutdown().await;
}
