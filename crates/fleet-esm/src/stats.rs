//! Live counters of one mapping, shared with the progress display and the dev report.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// Counters of one event source mapping. All are monotonic except `records_behind`,
/// `millis_behind_latest` and `enabled`, which are gauges.
#[derive(Debug, Default)]
pub struct EsmStats {
    /// Records read from the stream.
    pub records_polled: AtomicU64,
    /// GetRecords calls made (a disabled mapping makes none).
    pub get_records_calls: AtomicU64,
    /// Function invocations.
    pub invocations: AtomicU64,
    /// Invocations that never reached the function (transport errors, unknown function).
    pub invoke_errors: AtomicU64,
    /// Items the function named in `batchItemFailures`.
    pub item_failures: AtomicU64,
    /// Batches that failed in whole or in part.
    pub batches_failed: AtomicU64,
    /// Retries of a failed batch (each one uses up one of `MaximumRetryAttempts`).
    pub retries: AtomicU64,
    /// Failed batches split in two (`BisectBatchOnFunctionError`).
    pub bisections: AtomicU64,
    /// Failed batches whose mapping was disabled meanwhile: left waiting, no retry, no bisect.
    pub paused_batches: AtomicU64,
    /// Records that completed: processed, or discarded after failing.
    pub records_done: AtomicU64,
    /// Records sent to the on-failure destination.
    pub sent_to_on_failure: AtomicU64,
    /// Failure records (batches) sent to the on-failure destination.
    pub on_failure_batches: AtomicU64,
    /// Records discarded with no on-failure destination configured.
    pub discarded: AtomicU64,
    /// Records read but not completed yet: the local backlog.
    pub records_behind: AtomicU64,
    /// `MillisBehindLatest`: the largest over the shards being read (each shard's latest
    /// GetRecords answer).
    pub millis_behind_latest: AtomicI64,
    /// Whether the mapping is enabled (as last read).
    pub enabled: AtomicBool,
    checkpoints: Mutex<BTreeMap<String, String>>,
    behind: Mutex<BTreeMap<String, i64>>,
}

/// A copy of [`EsmStats`] at one moment, for reports and assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EsmStatsSnapshot {
    /// See [`EsmStats::records_polled`].
    pub records_polled: u64,
    /// See [`EsmStats::get_records_calls`].
    pub get_records_calls: u64,
    /// See [`EsmStats::invocations`].
    pub invocations: u64,
    /// See [`EsmStats::invoke_errors`].
    pub invoke_errors: u64,
    /// See [`EsmStats::item_failures`].
    pub item_failures: u64,
    /// See [`EsmStats::batches_failed`].
    pub batches_failed: u64,
    /// See [`EsmStats::retries`].
    pub retries: u64,
    /// See [`EsmStats::bisections`].
    pub bisections: u64,
    /// See [`EsmStats::paused_batches`].
    pub paused_batches: u64,
    /// See [`EsmStats::records_done`].
    pub records_done: u64,
    /// See [`EsmStats::sent_to_on_failure`].
    pub sent_to_on_failure: u64,
    /// See [`EsmStats::on_failure_batches`].
    pub on_failure_batches: u64,
    /// See [`EsmStats::discarded`].
    pub discarded: u64,
    /// See [`EsmStats::records_behind`].
    pub records_behind: u64,
    /// See [`EsmStats::millis_behind_latest`].
    pub millis_behind_latest: i64,
    /// See [`EsmStats::enabled`].
    pub enabled: bool,
    /// Checkpoint per shard: the last sequence number completed, with everything before it.
    pub checkpoints: BTreeMap<String, String>,
}

impl EsmStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_millis_behind(&self, shard_id: &str, millis: i64) {
        if let Ok(mut map) = self.behind.lock() {
            map.insert(shard_id.to_owned(), millis);
            let max = map.values().copied().max().unwrap_or(0);
            self.millis_behind_latest.store(max, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_checkpoint(&self, shard_id: &str, sequence: &str) {
        if let Ok(mut map) = self.checkpoints.lock() {
            map.insert(shard_id.to_owned(), sequence.to_owned());
        }
    }

    /// The checkpoint of one shard: the last sequence number that is done together with all
    /// records before it. A restart would resume just after it.
    pub fn checkpoint(&self, shard_id: &str) -> Option<String> {
        self.checkpoints
            .lock()
            .ok()
            .and_then(|m| m.get(shard_id).cloned())
    }

    /// All checkpoints, by shard id.
    pub fn checkpoints(&self) -> BTreeMap<String, String> {
        self.checkpoints
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// A consistent-enough copy of every counter.
    pub fn snapshot(&self) -> EsmStatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EsmStatsSnapshot {
            records_polled: g(&self.records_polled),
            get_records_calls: g(&self.get_records_calls),
            invocations: g(&self.invocations),
            invoke_errors: g(&self.invoke_errors),
            item_failures: g(&self.item_failures),
            batches_failed: g(&self.batches_failed),
            retries: g(&self.retries),
            bisections: g(&self.bisections),
            paused_batches: g(&self.paused_batches),
            records_done: g(&self.records_done),
            sent_to_on_failure: g(&self.sent_to_on_failure),
            on_failure_batches: g(&self.on_failure_batches),
            discarded: g(&self.discarded),
            records_behind: g(&self.records_behind),
            millis_behind_latest: self.millis_behind_latest.load(Ordering::Relaxed),
            enabled: self.enabled.load(Ordering::Relaxed),
            checkpoints: self.checkpoints(),
        }
    }
}
