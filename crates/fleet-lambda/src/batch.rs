//! One Kinesis batch, from event to partial batch response.
//!
//! ```text
//! Batch::new(event)            split into records (bad base64, too large → rejected)
//!   .decode(|record, bytes| …) per record, panics caught (bad JSON, schema, wrong robot → rejected)
//!   .for_each_by_key(items, n, |item| async { … Outcome })   or   .set(position, outcome)
//!   .finish(&rejects_sink, deadline) rejects sent, lowest failed sequence number reported, logs + metrics
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::streams::KinesisEventResponse;
use fleet_core::{RejectEnvelope, RejectKind, RejectReason, RejectSource};
use futures::{FutureExt as _, StreamExt as _};
use serde::Serialize;
use serde_json::Value;

use crate::error::EventError;
use crate::metrics;
use crate::outcome::{Outcome, Reject};
use crate::record::{KinesisRecord, compare_sequence, parse_event};
use crate::rejects::RejectSink;

/// When the invocation must be done by. Retries inside an invocation stop early enough to
/// answer Lambda before its timeout.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline `d` from now.
    pub fn after(d: Duration) -> Self {
        Deadline(Instant::now() + d)
    }

    /// From Lambda's context deadline (milliseconds since the epoch).
    pub fn from_epoch_ms(deadline_ms: u64) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Deadline::after(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// Time left.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// A decoded record waiting to be processed.
#[derive(Debug)]
pub struct Item<T> {
    /// Position of the record in the batch.
    pub position: usize,
    /// The record's partition key (the robot).
    pub key: String,
    /// The decoded value.
    pub value: T,
}

/// Counts of one batch, logged as one line and emitted as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// The function that handled the batch.
    pub function: String,
    /// Records in the batch.
    pub records: usize,
    /// Records written.
    pub succeeded: usize,
    /// Duplicates and stale replays (success).
    pub duplicates: usize,
    /// Records dead-lettered to the rejects queue.
    pub rejected: usize,
    /// Records that need a retry (at or after the reported checkpoint).
    pub retried: usize,
    /// Records not attempted because the downstream's circuit breaker is open.
    pub deferred: usize,
    /// Rejected records by kind.
    pub rejected_by_kind: std::collections::BTreeMap<String, usize>,
    /// The sequence number reported to Lambda, if any.
    pub checkpoint: Option<String>,
    /// Wall time spent on the batch.
    pub duration_ms: u64,
}

/// The result of a batch: the response for Lambda and the report.
#[derive(Debug)]
pub struct Finished {
    /// The partial batch response.
    pub response: KinesisEventResponse,
    /// The counts.
    pub report: BatchReport,
}

impl Finished {
    /// The response as JSON, as the Lambda runtime sends it.
    pub fn response_json(&self) -> Value {
        serde_json::to_value(&self.response).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

/// One batch in progress.
#[derive(Debug)]
pub struct Batch {
    function: &'static str,
    records: Vec<KinesisRecord>,
    outcomes: Vec<Option<Outcome>>,
    started: Instant,
}

impl Batch {
    /// Splits the event into records. Records that are broken at the stream level (bad base64,
    /// too large, no sequence number) are rejected right away.
    pub fn new(function: &'static str, event: Value) -> Result<Self, EventError> {
        let started = Instant::now();
        let records = parse_event(event)?;
        let outcomes = records
            .iter()
            .map(|r| {
                r.payload
                    .as_ref()
                    .err()
                    .map(|e| Outcome::Rejected(e.clone()))
            })
            .collect();
        Ok(Batch {
            function,
            records,
            outcomes,
            started,
        })
    }

    /// The records, in batch order.
    pub fn records(&self) -> &[KinesisRecord] {
        &self.records
    }

    /// Decodes every record still pending with `decode`. A record that fails to decode (or
    /// whose decoder panics) is rejected; the rest come back as items to process.
    pub fn decode<T>(
        &mut self,
        decode: impl Fn(&KinesisRecord, &[u8]) -> Result<T, Reject>,
    ) -> Vec<Item<T>> {
        let mut items = Vec::with_capacity(self.records.len());
        for (record, outcome) in self.records.iter_mut().zip(self.outcomes.iter_mut()) {
            if outcome.is_some() {
                continue;
            }
            let Some(bytes) = record.bytes() else {
                continue;
            };
            let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| decode(record, bytes)))
                .unwrap_or_else(|panic| Err(panic_reject(panic, "decoding")));
            // The decoded bytes are not needed again (a reject envelope carries the base64 as
            // received): free them now rather than hold a second copy of the batch.
            record.payload = Ok(Vec::new());
            match decoded {
                Ok(value) => items.push(Item {
                    position: record.position,
                    key: record.partition_key.clone(),
                    value,
                }),
                Err(reject) => *outcome = Some(Outcome::Rejected(reject)),
            }
        }
        items
    }

    /// Defers every record that has no outcome yet (the downstream's circuit breaker is open):
    /// reported to Lambda for delivery again, not attempted now.
    pub fn defer_pending(&mut self, reason: &str) {
        for outcome in &mut self.outcomes {
            if outcome.is_none() {
                *outcome = Some(Outcome::Deferred(reason.to_string()));
            }
        }
    }

    /// Turns every retry into a deferral (the downstream's breaker opened during the batch).
    pub fn defer_retries(&mut self, reason: &str) {
        for outcome in &mut self.outcomes {
            if matches!(outcome, Some(Outcome::Retry(_)) | None) {
                *outcome = Some(Outcome::Deferred(reason.to_string()));
            }
        }
    }

    /// Records the outcome of one record.
    pub fn set(&mut self, position: usize, outcome: Outcome) {
        if let Some(slot) = self.outcomes.get_mut(position) {
            *slot = Some(outcome);
        }
    }

    /// Processes items one at a time per partition key, in batch order, with up to
    /// `concurrency` keys in flight. After a retry, the rest of that key's records are not
    /// attempted (they are re-delivered after the checkpoint anyway), so a key's records are
    /// never applied out of order. A panic fails only its own record.
    pub async fn for_each_by_key<T, F, Fut>(
        &mut self,
        items: Vec<Item<T>>,
        concurrency: usize,
        f: F,
    ) where
        F: Fn(T) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut groups: Vec<Vec<Item<T>>> = Vec::new();
        for item in items {
            let next = groups.len();
            let g = *index.entry(item.key.clone()).or_insert(next);
            if g == groups.len() {
                groups.push(Vec::new());
            }
            groups[g].push(item);
        }
        let f = &f;
        let results: Vec<Vec<(usize, Outcome)>> = futures::stream::iter(groups)
            .map(|group| async move {
                let mut out = Vec::with_capacity(group.len());
                let mut blocked = false;
                for item in group {
                    if blocked {
                        out.push((
                            item.position,
                            Outcome::Retry(
                                "an earlier record of the same robot needs a retry".into(),
                            ),
                        ));
                        continue;
                    }
                    let outcome = AssertUnwindSafe(f(item.value))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| {
                            Outcome::Rejected(panic_reject(panic, "processing"))
                        });
                    blocked = outcome.needs_retry();
                    out.push((item.position, outcome));
                }
                out
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for (position, outcome) in results.into_iter().flatten() {
            self.set(position, outcome);
        }
    }

    /// Sends the rejects (within `deadline`), builds Lambda's response, logs one line per reject
    /// and one per batch, and writes the metrics line.
    pub async fn finish<S: RejectSink>(mut self, sink: &S, deadline: Deadline) -> Finished {
        let rejected_at = time::OffsetDateTime::now_utc();
        let mut to_send: Vec<(usize, RejectEnvelope)> = Vec::new();
        for (record, outcome) in self.records.iter().zip(self.outcomes.iter_mut()) {
            match outcome {
                None => {
                    *outcome = Some(Outcome::Retry(
                        "the function left this record unprocessed".into(),
                    ))
                }
                Some(Outcome::Rejected(reject)) => to_send.push((
                    record.position,
                    envelope(self.function, record, reject, rejected_at),
                )),
                Some(_) => {}
            }
        }
        if !to_send.is_empty() {
            let envelopes: Vec<RejectEnvelope> = to_send.iter().map(|(_, e)| e.clone()).collect();
            let results = sink.send(&envelopes, deadline).await;
            for ((position, env), result) in to_send.iter().zip(results) {
                let record = &self.records[*position];
                match result {
                    Ok(()) => tracing::warn!(
                        function = self.function,
                        robot = %record.partition_key,
                        sequence_number = record.sequence_number.as_deref().unwrap_or(""),
                        shard_id = %record.shard_id,
                        kind = env.reason.kind.as_str(),
                        reason = %env.reason.detail,
                        "record rejected"
                    ),
                    Err(e) if record.sequence_number.is_some() => {
                        tracing::error!(function = self.function, robot = %record.partition_key,
                            sequence_number = record.sequence_number.as_deref().unwrap_or(""),
                            error = %e, "reject could not be sent; the record will be retried");
                        self.outcomes[*position] = Some(Outcome::Retry(e.to_string()));
                    }
                    Err(e) => {
                        // No sequence number: Lambda cannot be asked to retry it. Keep the data
                        // in the log rather than lose it.
                        tracing::error!(function = self.function, error = %e,
                            payload_base64 = %record.data_base64,
                            "reject of a record without sequence number could not be sent");
                    }
                }
            }
        }

        let mut report = BatchReport {
            function: self.function.to_string(),
            records: self.records.len(),
            ..Default::default()
        };
        let mut lowest: Option<&KinesisRecord> = None;
        for (record, outcome) in self.records.iter().zip(&self.outcomes) {
            match outcome {
                Some(Outcome::Succeeded) => report.succeeded += 1,
                Some(Outcome::Duplicate) => report.duplicates += 1,
                Some(Outcome::Rejected(r)) => {
                    report.rejected += 1;
                    *report
                        .rejected_by_kind
                        .entry(r.kind.as_str().to_string())
                        .or_default() += 1;
                }
                Some(Outcome::Retry(_)) | Some(Outcome::Deferred(_)) | None => {
                    if matches!(outcome, Some(Outcome::Deferred(_))) {
                        report.deferred += 1;
                    } else {
                        report.retried += 1;
                    }
                    if record.sequence_number.is_some() && lowest.is_none_or(|l| earlier(record, l))
                    {
                        lowest = Some(record);
                    }
                }
            }
        }
        let mut response = KinesisEventResponse::default();
        if let Some(seq) = lowest.and_then(|r| r.sequence_number.clone()) {
            report.checkpoint = Some(seq.clone());
            response.add_failure(seq);
        }
        report.duration_ms = self.started.elapsed().as_millis() as u64;
        tracing::info!(
            function = self.function,
            records = report.records,
            succeeded = report.succeeded,
            duplicates = report.duplicates,
            rejected = report.rejected,
            retried = report.retried,
            deferred = report.deferred,
            checkpoint = report.checkpoint.as_deref().unwrap_or(""),
            duration_ms = report.duration_ms,
            "batch done"
        );
        metrics::emit(&report);
        Finished { response, report }
    }
}

/// Whether `a` comes before `b` in the shard: by sequence number, or by batch position when
/// the numbers can't be compared.
fn earlier(a: &KinesisRecord, b: &KinesisRecord) -> bool {
    match (&a.sequence_number, &b.sequence_number) {
        (Some(sa), Some(sb)) => match compare_sequence(sa, sb) {
            Some(order) => order.is_lt(),
            None => a.position < b.position,
        },
        _ => a.position < b.position,
    }
}

fn envelope(
    function: &str,
    record: &KinesisRecord,
    reject: &Reject,
    rejected_at: time::OffsetDateTime,
) -> RejectEnvelope {
    RejectEnvelope {
        function: function.to_string(),
        source: RejectSource {
            stream_arn: record.stream_arn.clone(),
            shard_id: record.shard_id.clone(),
            sequence_number: record.sequence_number.clone().unwrap_or_default(),
            partition_key: record.partition_key.clone(),
            approximate_arrival_timestamp: record
                .approximate_arrival
                .and_then(fleet_core::timefmt::from_unix_seconds_f64),
        },
        reason: RejectReason {
            kind: reject.kind,
            detail: reject.detail.clone(),
        },
        payload_base64: Some(record.data_base64.clone()),
        payload_s3: None,
        rejected_at,
    }
}

fn panic_reject(panic: Box<dyn std::any::Any + Send>, stage: &str) -> Reject {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string());
    Reject::new(
        RejectKind::Panic,
        format!("panic while {stage} the record: {message}"),
    )
}

#[cfg(test)]
mod tests;
