//! The engine: one supervisor per mapping, one reader per shard, `ParallelizationFactor` lanes
//! per shard, and the batch state machine (partial batch response, bisect, retries, record age,
//! on-failure destination).
//!
//! Task layout, all ended by one stop signal:
//!
//! ```text
//! mapping ─┬─ state watcher (GetEventSourceMapping every state_poll_interval)
//!          └─ supervisor: ListShards; starts a shard once its parents are drained
//!               └─ shard reader: GetShardIterator / GetRecords loop ─▶ lane 0..N (by partition key)
//!                                                                     └─ batch: window, invoke, retry
//! ```
//!
//! A shard's checkpoint is the last sequence number that is done together with every record
//! before it (lanes finish out of order; the checkpoint only moves over a done prefix).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{MappingConfig, PollerOptions, StartingPosition};
use crate::error::InvokeError;
use crate::error::{MappingError, SourceError};
use crate::event::{
    BatchVerdict, FailureCondition, LastResponse, invocation_record, kinesis_event, read_response,
    record_event_size,
};
use crate::ports::{
    FailureRecord, FailureSink, Invoker, IteratorStart, MappingState, ShardSource, StreamRecord,
};
use crate::stats::EsmStats;

/// Something that says "stop": the local stack's broadcast channel, a watch flag, or nothing.
pub trait ShutdownSignal: Send + 'static {
    /// Resolves when the poller must stop.
    fn wait(self) -> BoxFuture<'static, ()>;
}

impl ShutdownSignal for broadcast::Receiver<()> {
    fn wait(mut self) -> BoxFuture<'static, ()> {
        // A message, a closed channel or a lag all mean the sender is shutting down.
        Box::pin(async move {
            let _ = self.recv().await;
        })
    }
}

impl ShutdownSignal for watch::Receiver<bool> {
    fn wait(mut self) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.wait_for(|stop| *stop).await;
        })
    }
}

/// No outside signal: stop only through [`PollerHandle::stop`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoShutdown;

impl ShutdownSignal for NoShutdown {
    fn wait(self) -> BoxFuture<'static, ()> {
        Box::pin(futures::future::pending())
    }
}

/// Builds and starts the poller of one mapping.
pub struct Poller {
    config: MappingConfig,
    options: PollerOptions,
    source: Arc<dyn ShardSource>,
    invoker: Arc<dyn Invoker>,
    sink: Option<Arc<dyn FailureSink>>,
    state: Arc<dyn MappingState>,
    resume: BTreeMap<String, String>,
}

impl Poller {
    /// A poller for `config`, reading `source`, invoking through `invoker`, paused and resumed
    /// by `state`. Without [`Poller::on_failure`] a discarded batch is only logged, as in AWS
    /// when no destination is configured.
    pub fn new(
        config: MappingConfig,
        source: Arc<dyn ShardSource>,
        invoker: Arc<dyn Invoker>,
        state: Arc<dyn MappingState>,
    ) -> Self {
        Self {
            config,
            options: PollerOptions::default(),
            source,
            invoker,
            sink: None,
            state,
            resume: BTreeMap::new(),
        }
    }

    /// Checkpoints saved from an earlier run (shard id to the last sequence number done, as in
    /// [`EsmStats::checkpoints`]): those shards resume just after them instead of at the
    /// starting position.
    pub fn resume_from(mut self, checkpoints: BTreeMap<String, String>) -> Self {
        self.resume = checkpoints;
        self
    }

    /// The on-failure destination.
    pub fn on_failure(mut self, sink: Arc<dyn FailureSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Local pacing (poll intervals, backoff).
    pub fn options(mut self, options: PollerOptions) -> Self {
        self.options = options;
        self
    }

    /// Validates the configuration and starts the poller on the current tokio runtime.
    pub fn spawn(self, shutdown: impl ShutdownSignal) -> Result<PollerHandle, MappingError> {
        self.config.validate()?;
        let stats = Arc::new(EsmStats::default());
        for (shard, seq) in &self.resume {
            stats.set_checkpoint(shard, seq);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let (enabled_tx, enabled_rx) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            config: self.config,
            options: self.options,
            source: self.source,
            invoker: self.invoker,
            sink: self.sink,
            stats: stats.clone(),
            stop_rx,
            enabled_rx,
            enabled_tx,
            state: self.state,
            resume: self.resume,
        });
        let outside = shutdown.wait();
        let stopper = stop_tx.clone();
        let uuid = ctx.config.uuid.clone();
        let task = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            tasks.spawn(watch_state(ctx.clone()));

            tasks.spawn(supervise(ctx.clone()));
            tokio::select! {
                _ = outside => { stopper.send_replace(true); }
                _ = ctx.stopped() => {}
            }
            while tasks.join_next().await.is_some() {}
            info!(mapping = %ctx.config.uuid, "event source mapping poller stopped");
        });
        Ok(PollerHandle {
            uuid,
            stats,
            stop: stop_tx,
            task,
        })
    }
}

/// A running poller.
pub struct PollerHandle {
    uuid: String,
    stats: Arc<EsmStats>,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl PollerHandle {
    /// The mapping UUID.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Live counters and checkpoints.
    pub fn stats(&self) -> Arc<EsmStats> {
        self.stats.clone()
    }

    /// The checkpoint of one shard (see [`EsmStats::checkpoint`]).
    pub fn checkpoint(&self, shard_id: &str) -> Option<String> {
        self.stats.checkpoint(shard_id)
    }

    /// Asks the poller to stop; in-flight invocations are abandoned.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether every task of the poller has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the poller and waits until every task has ended.
    pub async fn shutdown(self) {
        self.stop();
        if let Err(e) = self.task.await {
            warn!(mapping = %self.uuid, error = %e, "event source mapping poller ended abnormally");
        }
    }
}

/// The poller was told to stop.
#[derive(Debug)]
struct Stopped;

struct Ctx {
    config: MappingConfig,
    options: PollerOptions,
    source: Arc<dyn ShardSource>,
    invoker: Arc<dyn Invoker>,
    sink: Option<Arc<dyn FailureSink>>,
    stats: Arc<EsmStats>,
    stop_rx: watch::Receiver<bool>,
    enabled_rx: watch::Receiver<bool>,
    enabled_tx: watch::Sender<bool>,
    state: Arc<dyn MappingState>,
    resume: BTreeMap<String, String>,
}

impl Ctx {
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    fn is_stopped(&self) -> bool {
        *self.stop_rx.borrow()
    }

    async fn sleep(&self, d: Duration) -> Result<(), Stopped> {
        tokio::select! {
            _ = tokio::time::sleep(d) => if self.is_stopped() { Err(Stopped) } else { Ok(()) },
            _ = self.stopped() => Err(Stopped),
        }
    }

    /// Reads the mapping's state now (not at the next poll): after a failed batch, whether the
    /// function disabled its own mapping meanwhile (its circuit breaker opened). An unreadable
    /// state counts as enabled.
    async fn still_enabled(&self) -> bool {
        match self.state.enabled().await {
            Ok(enabled) => {
                self.publish_enabled(enabled);
                enabled
            }
            Err(_) => true,
        }
    }

    /// Publishes the mapping's state to the shard readers and the stats; true when it changed.
    fn publish_enabled(&self, enabled: bool) -> bool {
        self.stats
            .enabled
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
        self.enabled_tx
            .send_if_modified(|cur| std::mem::replace(cur, enabled) != enabled)
    }

    /// Waits while the mapping is disabled.
    async fn wait_enabled(&self) -> Result<(), Stopped> {
        if self.is_stopped() {
            return Err(Stopped);
        }
        let mut rx = self.enabled_rx.clone();
        tokio::select! {
            r = rx.wait_for(|e| *e) => if r.is_ok() { Ok(()) } else { Err(Stopped) },
            _ = self.stopped() => Err(Stopped),
        }
    }
}

async fn watch_state(ctx: Arc<Ctx>) {
    let mut first = true;
    let mut failing = false;
    loop {
        let read = tokio::select! {
            r = ctx.state.enabled() => r,
            _ = ctx.stopped() => return,
        };
        match read {
            Ok(enabled) => {
                if failing {
                    info!(mapping = %ctx.config.uuid, "mapping state readable again");
                    failing = false;
                }
                if ctx.publish_enabled(enabled) || first {
                    info!(mapping = %ctx.config.uuid, enabled, "event source mapping state");
                }
            }
            Err(e) => {
                // Once per outage, not once per second.
                if !failing {
                    warn!(mapping = %ctx.config.uuid, error = %e, "cannot read the mapping state; keeping the last known one");
                    failing = true;
                }
                if first {
                    // Nothing known yet: fall back to what the template declares.
                    ctx.publish_enabled(ctx.config.enabled);
                }
            }
        }
        first = false;
        if ctx.sleep(ctx.options.state_poll_interval).await.is_err() {
            return;
        }
    }
}

/// Lists shards and runs each one once its parents are drained: a child shard of a split or
/// merge is read only after every parent still in the stream has been read to its end.
async fn supervise(ctx: Arc<Ctx>) {
    let mut workers: JoinSet<(String, Result<(), Stopped>)> = JoinSet::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut initial: Option<HashSet<String>> = None;
    let mut failures = 0u32;
    loop {
        if ctx.wait_enabled().await.is_err() {
            break;
        }
        let listed = tokio::select! {
            r = ctx.source.list_shards() => r,
            _ = ctx.stopped() => break,
        };
        let wait = match listed {
            Ok(shards) => {
                failures = 0;
                let initial = initial
                    .get_or_insert_with(|| shards.iter().map(|s| s.shard_id.clone()).collect());
                let present: HashSet<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
                let mut progressed = true;
                while progressed {
                    progressed = false;
                    for shard in &shards {
                        if started.contains(&shard.shard_id) {
                            continue;
                        }
                        let parents_drained =
                            [&shard.parent_shard_id, &shard.adjacent_parent_shard_id]
                                .into_iter()
                                .flatten()
                                .filter(|p| present.contains(p.as_str()))
                                .all(|p| finished.contains(p));
                        if !parents_drained {
                            continue;
                        }
                        started.insert(shard.shard_id.clone());
                        progressed = true;
                        let start = if let Some(seq) = ctx.resume.get(&shard.shard_id) {
                            IteratorStart::AfterSequence(seq.clone())
                        } else if initial.contains(&shard.shard_id) {
                            match &ctx.config.starting_position {
                                // A closed shard is read at LATEST too: on AWS it ends at
                                // once (no NextShardIterator); moto keeps writing to a
                                // resharded parent, so skipping it would lose records.
                                StartingPosition::Latest => IteratorStart::Latest,
                                StartingPosition::TrimHorizon => IteratorStart::TrimHorizon,
                                StartingPosition::AtTimestamp(t) => IteratorStart::AtTimestamp(*t),
                            }
                        } else {
                            // A shard born after the mapping started (split or merge child).
                            IteratorStart::TrimHorizon
                        };
                        debug!(mapping = %ctx.config.uuid, shard = %shard.shard_id, ?start, "starting shard");
                        let (c, id) = (ctx.clone(), shard.shard_id.clone());
                        workers.spawn(async move {
                            let r = run_shard(c, id.clone(), start).await;
                            (id, r)
                        });
                    }
                }
                ctx.options.shard_discovery_interval
            }
            Err(e) => {
                warn!(mapping = %ctx.config.uuid, error = %e, "ListShards failed; retrying");
                failures += 1;
                ctx.options.backoff(failures - 1)
            }
        };
        let deadline = Instant::now() + wait;
        loop {
            tokio::select! {
                Some(done) = workers.join_next() => match done {
                    Ok((shard, Ok(()))) => {
                        info!(mapping = %ctx.config.uuid, shard = %shard, "shard drained");
                        finished.insert(shard);
                        break;
                    }
                    Ok((_, Err(Stopped))) => {}
                    Err(e) => warn!(mapping = %ctx.config.uuid, error = %e, "shard task ended abnormally"),
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = ctx.stopped() => break,
            }
        }
        if ctx.is_stopped() {
            break;
        }
    }
    while workers.join_next().await.is_some() {}
}

/// A record on its way through a lane, with its read position in the shard.
struct Tracked {
    pos: u64,
    record: StreamRecord,
}

/// Moves a shard's checkpoint over the done prefix of what was read.
struct Tracker {
    shard_id: String,
    stats: Arc<EsmStats>,
    inner: Mutex<TrackerInner>,
}

#[derive(Default)]
struct TrackerInner {
    next_pos: u64,
    pending: BTreeMap<u64, (String, bool)>,
}

impl Tracker {
    fn push(&self, seq: &str) -> u64 {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        let pos = inner.next_pos;
        inner.next_pos += 1;
        inner.pending.insert(pos, (seq.to_owned(), false));
        EsmStats::add(&self.stats.records_polled, 1);
        EsmStats::add(&self.stats.records_behind, 1);
        pos
    }

    fn done<'a>(&self, records: impl IntoIterator<Item = &'a Tracked>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let mut n = 0u64;
        for t in records {
            if let Some(entry) = inner.pending.get_mut(&t.pos)
                && !entry.1
            {
                entry.1 = true;
                n += 1;
            }
        }
        let mut checkpoint = None;
        while let Some(entry) = inner.pending.first_entry() {
            if !entry.get().1 {
                break;
            }
            checkpoint = Some(entry.remove().0);
        }
        drop(inner);
        EsmStats::add(&self.stats.records_done, n);
        self.stats
            .records_behind
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        if let Some(seq) = checkpoint {
            self.stats.set_checkpoint(&self.shard_id, &seq);
        }
    }
}

/// The lane of a partition key: FNV-1a, so one key always lands in one lane, in order.
pub(crate) fn lane_of(partition_key: &str, lanes: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in partition_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % lanes.max(1) as u64) as usize
}

/// Reads one shard to its end (or until stopped), feeding the lanes.
async fn run_shard(ctx: Arc<Ctx>, shard_id: String, start: IteratorStart) -> Result<(), Stopped> {
    let tracker = Arc::new(Tracker {
        shard_id: shard_id.clone(),
        stats: ctx.stats.clone(),
        inner: Mutex::new(TrackerInner::default()),
    });
    let n = ctx.config.parallelization_factor.max(1) as usize;
    let mut lanes = JoinSet::new();
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel::<Vec<Tracked>>(4);
        senders.push(tx);
        lanes.spawn(run_lane(ctx.clone(), shard_id.clone(), tracker.clone(), rx));
    }
    let limit = (ctx.config.batch_size.saturating_mul(n as u32)).clamp(1, 10_000);
    let mut iterator: Option<String> = None;
    let mut last_read: Option<String> = None;
    let mut failures = 0u32;
    loop {
        ctx.wait_enabled().await?;
        let it = match iterator.take() {
            Some(it) => it,
            None => {
                let from = match &last_read {
                    Some(seq) => IteratorStart::AfterSequence(seq.clone()),
                    None => start.clone(),
                };
                let got = tokio::select! {
                    r = ctx.source.shard_iterator(&shard_id, &from) => r,
                    _ = ctx.stopped() => return Err(Stopped),
                };
                match got {
                    Ok(it) => it,
                    Err(SourceError::NotFound(what)) => {
                        warn!(mapping = %ctx.config.uuid, shard = %shard_id, %what, "shard is gone; treating it as drained");
                        break;
                    }
                    Err(e) => {
                        warn!(mapping = %ctx.config.uuid, shard = %shard_id, error = %e, "GetShardIterator failed; retrying");
                        failures += 1;
                        ctx.sleep(ctx.options.backoff(failures - 1)).await?;
                        continue;
                    }
                }
            }
        };
        EsmStats::add(&ctx.stats.get_records_calls, 1);
        let got = tokio::select! {
            r = ctx.source.get_records(&it, limit) => r,
            _ = ctx.stopped() => return Err(Stopped),
        };
        match got {
            Ok(page) => {
                failures = 0;
                if let Some(ms) = page.millis_behind_latest {
                    ctx.stats.set_millis_behind(&shard_id, ms);
                }
                let empty = page.records.is_empty();
                let mut chunks: Vec<Vec<Tracked>> = (0..n).map(|_| Vec::new()).collect();
                for record in page.records {
                    let pos = tracker.push(&record.sequence_number);
                    last_read = Some(record.sequence_number.clone());
                    chunks[lane_of(&record.partition_key, n)].push(Tracked { pos, record });
                }
                for (lane, chunk) in chunks.into_iter().enumerate() {
                    if chunk.is_empty() {
                        continue;
                    }
                    tokio::select! {
                        r = senders[lane].send(chunk) => if r.is_err() { return Err(Stopped) },
                        _ = ctx.stopped() => return Err(Stopped),
                    }
                }
                match page.next_iterator {
                    Some(next) => iterator = Some(next),
                    None => break,
                }
                let pause = if empty {
                    ctx.options.idle_poll_interval
                } else {
                    ctx.options.busy_poll_interval
                };
                ctx.sleep(pause).await?;
            }
            Err(SourceError::ExpiredIterator) => {
                debug!(mapping = %ctx.config.uuid, shard = %shard_id, "iterator expired; renewing");
            }
            Err(SourceError::NotFound(what)) => {
                warn!(mapping = %ctx.config.uuid, shard = %shard_id, %what, "shard is gone; treating it as drained");
                break;
            }
            Err(e) => {
                warn!(mapping = %ctx.config.uuid, shard = %shard_id, error = %e, "GetRecords failed; retrying");
                failures += 1;
                iterator = Some(it);
                ctx.sleep(ctx.options.backoff(failures - 1)).await?;
            }
        }
    }
    // The shard is closed and fully read: let the lanes finish what they hold.
    ctx.stats.set_millis_behind(&shard_id, 0);
    drop(senders);
    while let Some(r) = lanes.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(Stopped)) => return Err(Stopped),
            Err(e) => {
                warn!(mapping = %ctx.config.uuid, shard = %shard_id, error = %e, "lane ended abnormally")
            }
        }
    }
    Ok(())
}

/// Gathers batches for one lane (BatchSize, MaximumBatchingWindowInSeconds, 6 MB) and runs
/// them one after the other, so the records of one partition key stay in order.
async fn run_lane(
    ctx: Arc<Ctx>,
    shard_id: String,
    tracker: Arc<Tracker>,
    mut rx: mpsc::Receiver<Vec<Tracked>>,
) -> Result<(), Stopped> {
    let batch_size = ctx.config.batch_size.max(1) as usize;
    let window = ctx.config.max_batching_window;
    let mut buf: VecDeque<Tracked> = VecDeque::new();
    loop {
        if buf.is_empty() {
            let got = tokio::select! {
                r = rx.recv() => r,
                _ = ctx.stopped() => return Err(Stopped),
            };
            match got {
                Some(chunk) => buf.extend(chunk),
                None => return Ok(()),
            }
        }
        // The window opens with the first record in hand.
        let deadline = Instant::now() + window;
        let mut batch: Vec<Tracked> = Vec::new();
        let mut bytes = 0usize;
        loop {
            let mut full = false;
            while batch.len() < batch_size {
                let Some(next) = buf.front() else { break };
                let size = record_event_size(&ctx.config, &shard_id, &next.record);
                if !batch.is_empty() && bytes + size > ctx.options.max_payload_bytes {
                    full = true;
                    break;
                }
                bytes += size;
                if let Some(t) = buf.pop_front() {
                    batch.push(t);
                }
            }
            if full || batch.len() >= batch_size {
                break;
            }
            if window.is_zero() {
                match rx.try_recv() {
                    Ok(chunk) => buf.extend(chunk),
                    Err(_) => break,
                }
            } else {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(chunk) => buf.extend(chunk),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = ctx.stopped() => return Err(Stopped),
                }
            }
        }
        process_batch(&ctx, &shard_id, &tracker, batch).await?;
    }
}

/// A batch (or a half of one) and how it has fared so far.
struct Unit {
    records: Vec<Tracked>,
    /// Retries used (of `MaximumRetryAttempts`); a bisect does not use one.
    retries: u32,
    /// Invocations that carried these records (`approximateInvokeCount`).
    invokes: u32,
    last: LastResponse,
}

/// An `Err` from the invoker that means the function ran and failed.
fn is_function_error(e: &InvokeError) -> bool {
    matches!(e, InvokeError::Function { .. } | InvokeError::Build { .. })
}

/// Runs one batch to completion with Lambda's rules.
///
/// - Success: the whole batch is done (checkpoint at its last record).
/// - Partial batch response (only with `ReportBatchItemFailures`): records before the lowest
///   failed sequence number are done; the rest is retried ("Configuring partial batch response
///   with Kinesis Data Streams": Lambda checkpoints at the lowest failed sequence number and
///   retries from it). With `BisectBatchOnFunctionError` as well, "the batch is bisected at the
///   returned sequence number and Lambda retries only the remaining records": that split is a
///   bisect and does not use a retry.
/// - Function error, or an invalid partial batch response: the whole batch failed. With
///   `BisectBatchOnFunctionError` and more than one record it is split in two and the halves
///   run first half first; "Splitting batches doesn't consume the retry quota" (Lambda guide,
///   "Retain discarded batch records for a Kinesis Data Streams event source"). Otherwise it
///   is retried, each retry using one of `MaximumRetryAttempts`; once they are used up the
///   batch goes to the on-failure destination (`RetryAttemptsExhausted`) and the shard moves on.
/// - Before every invocation, records older than `MaximumRecordAgeInSeconds` (by
///   `approximateArrivalTimestamp`) go to the on-failure destination (`RecordAgeExceeded`)
///   instead of the function.
/// - The invoker could not reach the function ("before invocation" errors): retried with
///   backoff without using a retry, until the records are too old.
async fn process_batch(
    ctx: &Ctx,
    shard_id: &str,
    tracker: &Tracker,
    batch: Vec<Tracked>,
) -> Result<(), Stopped> {
    let cfg = &ctx.config;
    let stats = &ctx.stats;
    let mut queue = VecDeque::from([Unit {
        records: batch,
        retries: 0,
        invokes: 0,
        last: LastResponse::default(),
    }]);
    while let Some(mut unit) = queue.pop_front() {
        let mut unreachable = 0u32;
        loop {
            if let Some(max_age) = cfg.max_record_age {
                let now = SystemTime::now();
                let (old, fresh): (Vec<Tracked>, Vec<Tracked>) =
                    unit.records.into_iter().partition(|t| {
                        now.duration_since(t.record.approximate_arrival)
                            .is_ok_and(|age| age > max_age)
                    });
                unit.records = fresh;
                if !old.is_empty() {
                    let condition = FailureCondition::RecordAgeExceeded;
                    discard(
                        ctx,
                        shard_id,
                        tracker,
                        &old,
                        condition,
                        unit.invokes,
                        &unit.last,
                    )
                    .await?;
                }
            }
            if unit.records.is_empty() {
                break;
            }
            ctx.wait_enabled().await?;
            let refs: Vec<&StreamRecord> = unit.records.iter().map(|t| &t.record).collect();
            let event = kinesis_event(cfg, shard_id, &refs);
            EsmStats::add(&stats.invocations, 1);
            let result = tokio::select! {
                r = ctx.invoker.invoke(&cfg.function_name, event) => r,
                _ = ctx.stopped() => return Err(Stopped),
            };
            let verdict = match result {
                Ok(out) => {
                    unit.invokes += 1;
                    unit.last = LastResponse {
                        status_code: Some(200),
                        function_error: out.function_error.clone(),
                    };
                    match out.function_error {
                        Some(kind) => BatchVerdict::Failure {
                            reason: format!("function error {kind}: {}", out.payload),
                        },
                        None if cfg.report_batch_item_failures => {
                            read_response(&out.payload, &refs)
                        }
                        None => BatchVerdict::Success,
                    }
                }
                Err(e) if is_function_error(&e) => {
                    unit.invokes += 1;
                    unit.last = LastResponse {
                        status_code: Some(200),
                        function_error: Some("Unhandled".to_owned()),
                    };
                    BatchVerdict::Failure {
                        reason: e.to_string(),
                    }
                }
                Err(e) => {
                    EsmStats::add(&stats.invoke_errors, 1);
                    warn!(mapping = %cfg.uuid, shard = %shard_id, error = %e, "function not reachable; retrying without using a retry attempt");
                    unreachable += 1;
                    ctx.sleep(ctx.options.backoff(unreachable - 1)).await?;
                    continue;
                }
            };
            unreachable = 0;
            // The mapping was disabled while the batch ran (the function's circuit breaker
            // opened and paused it): as in Lambda, what is left waits in the stream, and is
            // delivered again once the mapping runs, without using a retry or a bisect.
            if !matches!(verdict, BatchVerdict::Success) && !ctx.still_enabled().await {
                let done = match &verdict {
                    BatchVerdict::Partial { first_failed, .. } => *first_failed,
                    _ => 0,
                };
                let rest = unit.records.split_off(done);
                tracker.done(&unit.records);
                unit.records = rest;
                EsmStats::add(&stats.paused_batches, 1);
                debug!(mapping = %cfg.uuid, shard = %shard_id, waiting = unit.records.len(), "mapping disabled during the batch; the rest waits");
                continue;
            }
            match verdict {
                BatchVerdict::Success => {
                    tracker.done(&unit.records);
                    break;
                }
                BatchVerdict::Partial {
                    first_failed,
                    reported,
                } => {
                    EsmStats::add(&stats.item_failures, reported as u64);
                    EsmStats::add(&stats.batches_failed, 1);
                    let rest = unit.records.split_off(first_failed);
                    tracker.done(&unit.records);
                    unit.records = rest;
                    debug!(mapping = %cfg.uuid, shard = %shard_id, done = first_failed, retry = unit.records.len(), "partial batch failure");
                    if cfg.bisect_on_error && first_failed > 0 {
                        EsmStats::add(&stats.bisections, 1);
                        continue;
                    }
                }
                BatchVerdict::Failure { reason } => {
                    EsmStats::add(&stats.batches_failed, 1);
                    debug!(mapping = %cfg.uuid, shard = %shard_id, size = unit.records.len(), %reason, "batch failed");
                }
            }
            if cfg.bisect_on_error && unit.records.len() > 1 {
                EsmStats::add(&stats.bisections, 1);
                let second = unit.records.split_off(unit.records.len() / 2);
                let (retries, invokes) = (unit.retries, unit.invokes);
                queue.push_front(Unit {
                    records: second,
                    retries,
                    invokes,
                    last: unit.last.clone(),
                });
                queue.push_front(Unit {
                    records: unit.records,
                    retries,
                    invokes,
                    last: unit.last,
                });
                break;
            }
            if cfg
                .max_retry_attempts
                .is_some_and(|max| unit.retries >= max)
            {
                let condition = FailureCondition::RetryAttemptsExhausted;
                discard(
                    ctx,
                    shard_id,
                    tracker,
                    &unit.records,
                    condition,
                    unit.invokes,
                    &unit.last,
                )
                .await?;
                break;
            }
            unit.retries += 1;
            EsmStats::add(&stats.retries, 1);
            ctx.sleep(ctx.options.backoff(unit.retries - 1)).await?;
        }
    }
    Ok(())
}

/// Sends discarded records to the on-failure destination (retrying until it takes them, so
/// the checkpoint never passes an unrecorded failure), then marks them done.
async fn discard(
    ctx: &Ctx,
    shard_id: &str,
    tracker: &Tracker,
    records: &[Tracked],
    condition: FailureCondition,
    invokes: u32,
    last: &LastResponse,
) -> Result<(), Stopped> {
    let cfg = &ctx.config;
    let refs: Vec<&StreamRecord> = records.iter().map(|t| &t.record).collect();
    let n = records.len() as u64;
    match &ctx.sink {
        Some(sink) => {
            let at = SystemTime::now();
            let record = FailureRecord {
                mapping_uuid: cfg.uuid.clone(),
                shard_id: shard_id.to_owned(),
                metadata: invocation_record(cfg, shard_id, &refs, condition, invokes, last, at),
                event: kinesis_event(cfg, shard_id, &refs),
                at,
            };
            let mut attempt = 0u32;
            loop {
                let sent = tokio::select! {
                    r = sink.send(&record) => r,
                    _ = ctx.stopped() => return Err(Stopped),
                };
                match sent {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(mapping = %cfg.uuid, shard = %shard_id, error = %e, "on-failure destination refused the record; retrying");
                        ctx.sleep(ctx.options.backoff(attempt)).await?;
                        attempt += 1;
                    }
                }
            }
            EsmStats::add(&ctx.stats.sent_to_on_failure, n);
            EsmStats::add(&ctx.stats.on_failure_batches, 1);
            warn!(mapping = %cfg.uuid, shard = %shard_id, records = n, condition = condition.as_str(), "records sent to the on-failure destination");
        }
        None => {
            EsmStats::add(&ctx.stats.discarded, n);
            warn!(mapping = %cfg.uuid, shard = %shard_id, records = n, condition = condition.as_str(), "records discarded: the mapping has no on-failure destination");
        }
    }
    tracker.done(records);
    Ok(())
}
