//! `robofleet rejects`: what is in the rejects queue, and replaying chosen records back into
//! their stream once the bug that rejected them is fixed.
//!
//! Listing peeks: it receives every message with a short visibility timeout, then makes them
//! visible again, so a list never consumes anything. Receives long-poll, and the queue counts as
//! empty only after two empty answers in a row (a short poll's empty answer does not mean an
//! empty queue); a replay that outlasts the visibility timeout keeps extending it for the
//! messages it still holds. Replay puts each selected record back with
//! its original partition key and payload into the stream named in the envelope's `streamArn`,
//! once per stream and sequence number (retries may have dead-lettered the same record twice);
//! `--delete` then removes every copy from the queue.
//!
//! The queue may also hold an event source mapping's on-failure records (a batch's metadata:
//! stream, shard, first and last sequence number). They are listed as kind `on_failure`; replay
//! reads their sequence range back from the stream (while it is within retention) and puts those
//! records again.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_kinesis::primitives::Blob;
use base64::Engine as _;
use fleet_core::{RejectEnvelope, StoredPayload};
use fleet_lambda::record::compare_sequence;
use serde::Serialize;
use serde_json::Value;

use crate::error::{RejectsError, ReplayError};

/// Visibility timeout while the tool holds messages (seconds); a replay that takes longer keeps
/// extending it (every half of it) for the messages it still holds.
const HOLD_SECS: i32 = 60;
/// Long-poll wait of each ReceiveMessage (seconds). A short poll samples only some of SQS's
/// servers, so its empty answer does not mean an empty queue.
const WAIT_SECS: i32 = 2;
/// Consecutive empty long-poll answers after which the queue counts as empty.
const EMPTY_ANSWERS: u32 = 2;

/// `robofleet rejects`.
#[derive(Debug, clap::Args)]
pub struct RejectsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RejectsCommand,
    /// Where the queue is.
    #[command(flatten)]
    pub target: RejectsTarget,
}

/// Where the rejects queue lives. The `robofleet` command fills what is not given from the
/// `robofleet dev` report, so the local stack needs no flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RejectsTarget {
    /// AWS endpoint (moto for the local stack); default: the dev report's, else the SDK's own.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint: Option<String>,
    /// The rejects queue URL; default: the dev report's.
    #[arg(long, global = true)]
    pub queue_url: Option<String>,
    /// Profile and region (the local stack: the dev report's region).
    #[command(flatten)]
    pub aws: fleet_aws::config::AwsAccess,
}

/// The rejects subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RejectsCommand {
    /// List what is in the queue (reason, robot, stream position).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put chosen records back into their stream.
    Replay {
        /// Only rejects of this kind (bad_json, schema_violation, robot_mismatch, on_failure, ...).
        #[arg(long)]
        kind: Option<String>,
        /// Only rejects of this robot (partition key).
        #[arg(long)]
        robot: Option<String>,
        /// Every reject in the queue.
        #[arg(long)]
        all: bool,
        /// Delete the replayed messages (all copies) from the queue.
        #[arg(long)]
        delete: bool,
        /// Show what would be replayed, put nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A Kinesis batch an event source mapping gave up on (`KinesisBatchInfo` of the on-failure
/// invocation record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchFailure {
    /// Stream ARN.
    pub stream_arn: String,
    /// Shard.
    pub shard_id: String,
    /// First sequence number of the batch.
    pub start_sequence_number: String,
    /// Last sequence number of the batch.
    pub end_sequence_number: String,
    /// Records in the batch.
    pub batch_size: u64,
    /// Why (`RetryAttemptsExhausted`, `RecordAgeExceeded`, ...).
    pub condition: String,
    /// Function ARN or name.
    pub function: String,
}

/// What one queue message holds.
#[derive(Debug, Clone, PartialEq)]
pub enum RejectItem {
    /// A reject envelope from a function.
    Envelope(Box<RejectEnvelope>),
    /// An on-failure record from an event source mapping.
    Batch(BatchFailure),
    /// Something else; kept so that nothing is hidden.
    Unreadable {
        /// Why it could not be read.
        problem: String,
        /// The start of the body.
        body: String,
    },
}

/// One message of the rejects queue.
#[derive(Debug, Clone)]
pub struct QueuedReject {
    /// SQS message id.
    pub message_id: String,
    /// Receipt handle of this receive.
    pub receipt_handle: String,
    /// Its content.
    pub item: RejectItem,
}

impl QueuedReject {
    /// Kind as listed: the envelope's reason kind, `on_failure`, or `unreadable`.
    pub fn kind(&self) -> String {
        match &self.item {
            RejectItem::Envelope(e) => e.reason.kind.as_str().to_string(),
            RejectItem::Batch(_) => "on_failure".to_string(),
            RejectItem::Unreadable { .. } => "unreadable".to_string(),
        }
    }

    /// Robot (partition key), when known.
    pub fn robot(&self) -> Option<&str> {
        match &self.item {
            RejectItem::Envelope(e) => Some(e.source.partition_key.as_str()),
            _ => None,
        }
    }

    /// Replay identity: `<streamArn>#<sequence>` (a batch: `<streamArn>#<shard>#<start>-<end>`).
    pub fn dedupe_key(&self) -> Option<String> {
        match &self.item {
            RejectItem::Envelope(e) => Some(e.dedupe_key()),
            RejectItem::Batch(b) => Some(format!(
                "{}#{}#{}-{}",
                b.stream_arn, b.shard_id, b.start_sequence_number, b.end_sequence_number
            )),
            RejectItem::Unreadable { .. } => None,
        }
    }

    /// The listing row.
    pub fn row(&self) -> RejectRow {
        let mut row = RejectRow {
            message_id: self.message_id.clone(),
            kind: self.kind(),
            robot: self.robot().map(str::to_string),
            ..RejectRow::default()
        };
        match &self.item {
            RejectItem::Envelope(e) => {
                row.function = Some(e.function.clone());
                row.stream_arn = Some(e.source.stream_arn.clone());
                row.shard_id = Some(e.source.shard_id.clone());
                row.sequence_number = Some(e.source.sequence_number.clone());
                row.detail = e.reason.detail.clone();
                row.rejected_at = Some(fleet_core::timefmt::format_rfc3339(e.rejected_at));
                row.payload = match (&e.payload_base64, &e.payload_s3) {
                    (Some(b64), _) => {
                        decode_payload(b64).map(|p| String::from_utf8_lossy(&p).into_owned())
                    }
                    (None, Some(s)) => {
                        Some(format!("s3://{}/{} ({} bytes)", s.bucket, s.key, s.bytes))
                    }
                    (None, None) => None,
                };
            }
            RejectItem::Batch(b) => {
                row.function = Some(b.function.clone());
                row.stream_arn = Some(b.stream_arn.clone());
                row.shard_id = Some(b.shard_id.clone());
                row.sequence_number = Some(format!(
                    "{}..{}",
                    b.start_sequence_number, b.end_sequence_number
                ));
                row.detail = format!("{} ({} records)", b.condition, b.batch_size);
            }
            RejectItem::Unreadable { problem, body } => {
                row.detail = format!("{problem}: {body}");
            }
        }
        row
    }
}

/// One listed reject, for humans and `--json`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RejectRow {
    /// SQS message id.
    pub message_id: String,
    /// Reason kind.
    pub kind: String,
    /// Robot.
    pub robot: Option<String>,
    /// Function that rejected it.
    pub function: Option<String>,
    /// Stream ARN.
    pub stream_arn: Option<String>,
    /// Shard.
    pub shard_id: Option<String>,
    /// Sequence number (or range).
    pub sequence_number: Option<String>,
    /// Reason detail.
    pub detail: String,
    /// When.
    pub rejected_at: Option<String>,
    /// The payload as text (lossy UTF-8).
    pub payload: Option<String>,
}

/// Parses one queue message body.
pub fn parse_body(body: &str) -> RejectItem {
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            return RejectItem::Unreadable {
                problem: format!("not json ({e})"),
                body: body.chars().take(200).collect(),
            };
        }
    };
    if value.get("reason").is_some() && value.get("payloadBase64").is_some() {
        return match serde_json::from_value::<RejectEnvelope>(value) {
            Ok(e) => RejectItem::Envelope(Box::new(e)),
            Err(e) => RejectItem::Unreadable {
                problem: format!("not a reject envelope ({e})"),
                body: body.chars().take(200).collect(),
            },
        };
    }
    if let Some(info) = value.get("KinesisBatchInfo") {
        let s = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let ctx = value.get("requestContext").cloned().unwrap_or(Value::Null);
        return RejectItem::Batch(BatchFailure {
            stream_arn: s(info, "streamArn"),
            shard_id: s(info, "shardId"),
            start_sequence_number: s(info, "startSequenceNumber"),
            end_sequence_number: s(info, "endSequenceNumber"),
            batch_size: info.get("batchSize").and_then(Value::as_u64).unwrap_or(0),
            condition: s(&ctx, "condition"),
            function: s(&ctx, "functionArn"),
        });
    }
    RejectItem::Unreadable {
        problem: "neither a reject envelope nor an on-failure record".into(),
        body: body.chars().take(200).collect(),
    }
}

fn decode_payload(b64: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Which rejects a replay takes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this robot.
    pub robot: Option<String>,
    /// Everything (still filtered by kind/robot when given).
    pub all: bool,
}

impl Selection {
    /// Whether a selection was made at all.
    pub fn is_empty(&self) -> bool {
        !self.all && self.kind.is_none() && self.robot.is_none()
    }

    /// Whether `r` is selected.
    pub fn matches(&self, r: &QueuedReject) -> bool {
        if self.is_empty() {
            return false;
        }
        let kind_ok = self.kind.as_ref().is_none_or(|k| &r.kind() == k);
        let robot_ok = self
            .robot
            .as_ref()
            .is_none_or(|robot| r.robot() == Some(robot.as_str()));
        kind_ok && robot_ok
    }
}

/// One record to put back, with every queue message that carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayPlanItem {
    /// `<streamArn>#<sequence>`.
    pub key: String,
    /// The first message's content.
    pub item: RejectItem,
    /// Receipt handles of all copies.
    pub receipts: Vec<String>,
}

/// Groups the selected rejects by stream and sequence number: one replay per record, however
/// many copies the queue holds. Unreadable messages are never replayed.
pub fn plan_replay(rejects: &[QueuedReject], selection: &Selection) -> Vec<ReplayPlanItem> {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: BTreeMap<String, ReplayPlanItem> = BTreeMap::new();
    for r in rejects.iter().filter(|r| selection.matches(r)) {
        let Some(key) = r.dedupe_key() else { continue };
        by_key
            .entry(key.clone())
            .and_modify(|p| p.receipts.push(r.receipt_handle.clone()))
            .or_insert_with(|| {
                order.push(key.clone());
                ReplayPlanItem {
                    key,
                    item: r.item.clone(),
                    receipts: vec![r.receipt_handle.clone()],
                }
            });
    }
    order
        .into_iter()
        .filter_map(|k| by_key.remove(&k))
        .collect()
}

/// Outcome of one replayed record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// `<streamArn>#<sequence>`.
    pub key: String,
    /// Target stream name.
    pub stream: String,
    /// Records put (1 for an envelope; the batch's records for an on-failure record).
    pub records_put: usize,
    /// New sequence numbers.
    pub new_sequence_numbers: Vec<String>,
    /// Queue messages deleted.
    pub deleted: usize,
    /// The error, if the replay failed (the messages then stay in the queue).
    pub error: Option<String>,
}

/// The clients and queue a rejects command works on.
pub struct RejectsClient {
    sqs: aws_sdk_sqs::Client,
    kinesis: aws_sdk_kinesis::Client,
    s3: aws_sdk_s3::Client,
    queue_url: String,
    polling: Polling,
}

/// How the tool reads and holds the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    /// Visibility timeout of received messages (seconds).
    pub hold_secs: i32,
    /// Long-poll wait of each receive (seconds, 1-20).
    pub wait_secs: i32,
    /// Consecutive empty answers that mean "empty".
    pub empty_answers: u32,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            hold_secs: HOLD_SECS,
            wait_secs: WAIT_SECS,
            empty_answers: EMPTY_ANSWERS,
        }
    }
}

/// Messages the tool holds invisible: while it lives, a task extends their visibility every
/// half of the hold, so a replay longer than the visibility timeout does not let them be
/// received again (and replayed twice by a second operator). Drop it to stop extending.
pub struct Held {
    receipts: std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Stops extending `receipt` (deleted or released).
    pub fn forget(&self, receipt: &str) {
        if let Ok(mut r) = self.receipts.lock() {
            r.remove(receipt);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sets the visibility timeout of `receipts`, ten to a call.
async fn set_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipts: &[String],
    secs: i32,
) -> Result<(), RejectsError> {
    for chunk in receipts.chunks(10) {
        let mut req = sqs.change_message_visibility_batch().queue_url(queue_url);
        for (i, r) in chunk.iter().enumerate() {
            let entry = aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(r)
                .visibility_timeout(secs)
                .build()
                .map_err(aws_err("ChangeMessageVisibilityBatch"))?;
            req = req.entries(entry);
        }
        let out = req
            .send()
            .await
            .map_err(aws_err("ChangeMessageVisibilityBatch"))?;
        for f in out.failed() {
            tracing::warn!(
                code = f.code(),
                message = f.message().unwrap_or_default(),
                "a message's visibility could not be changed (its receipt expired?)"
            );
        }
    }
    Ok(())
}

fn aws_err<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> RejectsError {
    move |e| RejectsError::Aws {
        what,
        source: Box::new(e),
    }
}

impl RejectsClient {
    /// Clients over `sdk` for `queue_url`.
    pub fn new(sdk: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            kinesis: aws_sdk_kinesis::Client::new(sdk),
            s3: fleet_aws::config::s3_client(sdk),
            queue_url: queue_url.into(),
            polling: Polling::default(),
        }
    }

    /// The same clients with other polling settings (tests use short ones).
    pub fn with_polling(mut self, polling: Polling) -> Self {
        self.polling = polling;
        self
    }

    /// Holds `receipts` invisible until the returned guard is dropped.
    pub fn hold(&self, receipts: &[String]) -> Held {
        let held = std::sync::Arc::new(std::sync::Mutex::new(
            receipts.iter().cloned().collect::<BTreeSet<String>>(),
        ));
        let every =
            std::time::Duration::from_secs_f64(f64::from(self.polling.hold_secs.max(1)) / 2.0);
        let (sqs, queue_url, hold, receipts) = (
            self.sqs.clone(),
            self.queue_url.clone(),
            self.polling.hold_secs,
            held.clone(),
        );
        let task = tokio::spawn(async move {
            // At once (a fetch may have taken a while), then every half of the hold.
            loop {
                let now: Vec<String> = receipts
                    .lock()
                    .map(|r| r.iter().cloned().collect())
                    .unwrap_or_default();
                if let Err(e) = set_visibility(&sqs, &queue_url, &now, hold).await {
                    tracing::warn!(error = %e, "extending the visibility of held rejects failed");
                }
                tokio::time::sleep(every).await;
            }
        });
        Held {
            receipts: held,
            task,
        }
    }

    /// Builds the clients for a target: its endpoint (or the SDK's own), its region, its queue.
    pub async fn from_target(target: &RejectsTarget) -> Result<Self, RejectsError> {
        let queue_url = target.queue_url.clone().ok_or(RejectsError::NoQueue)?;
        let sdk = target
            .aws
            .sdk_config(target.aws_endpoint.as_deref())
            .await
            .map_err(RejectsError::Credentials)?;
        Ok(Self::new(&sdk, queue_url))
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Receives every message (holding them invisible for [`Polling::hold_secs`]). Each receive
    /// long-polls; the queue counts as drained after [`Polling::empty_answers`] empty answers in
    /// a row, so messages that arrive (or become visible) after one empty answer are still
    /// taken. Call [`Self::release`] with the ones not deleted.
    pub async fn fetch_all(&self) -> Result<Vec<QueuedReject>, RejectsError> {
        let mut out: Vec<QueuedReject> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut empty = 0;
        while empty < self.polling.empty_answers {
            let resp = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(self.polling.hold_secs)
                .wait_time_seconds(self.polling.wait_secs)
                .send()
                .await
                .map_err(aws_err("ReceiveMessage"))?;
            let messages = resp.messages.unwrap_or_default();
            let mut new = 0;
            for m in messages {
                let id = m.message_id.unwrap_or_default();
                let receipt = m.receipt_handle.unwrap_or_default();
                if seen.insert(id.clone()) {
                    new += 1;
                    out.push(QueuedReject {
                        item: parse_body(m.body.as_deref().unwrap_or_default()),
                        message_id: id,
                        receipt_handle: receipt,
                    });
                } else if let Some(r) = out.iter_mut().find(|r| r.message_id == id) {
                    // Seen again (its visibility ran out during a long sweep): only the newest
                    // receipt handle can delete or release it.
                    r.receipt_handle = receipt;
                }
            }
            // An answer with nothing new counts as empty: a sweep longer than the visibility
            // timeout sees its first messages again, and must still end.
            if new == 0 {
                empty += 1;
            } else {
                empty = 0;
            }
        }
        Ok(out)
    }

    /// Makes messages visible again.
    pub async fn release(&self, receipts: &[String]) -> Result<(), RejectsError> {
        set_visibility(&self.sqs, &self.queue_url, receipts, 0).await
    }

    /// Deletes messages.
    pub async fn delete(&self, receipts: &[String]) -> Result<usize, RejectsError> {
        let mut deleted = 0;
        for chunk in receipts.chunks(10) {
            let mut req = self.sqs.delete_message_batch().queue_url(&self.queue_url);
            for (i, r) in chunk.iter().enumerate() {
                let entry = aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .map_err(aws_err("DeleteMessageBatch"))?;
                req = req.entries(entry);
            }
            let resp = req.send().await.map_err(aws_err("DeleteMessageBatch"))?;
            deleted += resp.successful.len();
        }
        Ok(deleted)
    }

    /// Lists the queue without consuming it.
    pub async fn list(&self) -> Result<Vec<QueuedReject>, RejectsError> {
        let all = self.fetch_all().await?;
        let receipts: Vec<String> = all.iter().map(|r| r.receipt_handle.clone()).collect();
        self.release(&receipts).await?;
        Ok(all)
    }

    /// Replays the selected rejects; see the module docs.
    pub async fn replay(
        &self,
        selection: &Selection,
        delete: bool,
        dry_run: bool,
    ) -> Result<Vec<ReplayOutcome>, RejectsError> {
        if selection.is_empty() {
            return Err(RejectsError::NoSelection);
        }
        let all = self.fetch_all().await?;
        let receipts: Vec<String> = all.iter().map(|r| r.receipt_handle.clone()).collect();
        let held = self.hold(&receipts);
        let plan = plan_replay(&all, selection);
        let mut outcomes = Vec::with_capacity(plan.len());
        let mut handled: BTreeSet<String> = BTreeSet::new();
        for p in &plan {
            let mut outcome = ReplayOutcome {
                key: p.key.clone(),
                stream: String::new(),
                records_put: 0,
                new_sequence_numbers: Vec::new(),
                deleted: 0,
                error: None,
            };
            let result = if dry_run {
                Ok(Vec::new())
            } else {
                self.put_back(&p.item, &mut outcome.stream).await
            };
            if dry_run {
                outcome.stream = stream_of(&p.item).unwrap_or_default().to_string();
            }
            match result {
                Ok(seqs) => {
                    outcome.records_put = seqs.len();
                    outcome.new_sequence_numbers = seqs;
                    if delete && !dry_run {
                        p.receipts.iter().for_each(|r| held.forget(r));
                        outcome.deleted = self.delete(&p.receipts).await?;
                        handled.extend(p.receipts.iter().cloned());
                    }
                }
                Err(e) => outcome.error = Some(fleet_aws::error::chain(&e)),
            }
            outcomes.push(outcome);
        }
        drop(held);
        let rest: Vec<String> = all
            .iter()
            .map(|r| r.receipt_handle.clone())
            .filter(|h| !handled.contains(h))
            .collect();
        self.release(&rest).await?;
        Ok(outcomes)
    }

    async fn put_back(
        &self,
        item: &RejectItem,
        stream_out: &mut String,
    ) -> Result<Vec<String>, ReplayError> {
        match item {
            RejectItem::Envelope(e) => {
                let stream = stream_name_from_arn(&e.source.stream_arn)
                    .ok_or_else(|| ReplayError::NotAStream(e.source.stream_arn.clone()))?;
                *stream_out = stream.to_string();
                let payload = match (&e.payload_base64, &e.payload_s3) {
                    (Some(b64), _) => decode_payload(b64).ok_or(ReplayError::BadPayload)?,
                    (None, Some(stored)) => self.stored_payload(stored).await?,
                    (None, None) => return Err(ReplayError::BadPayload),
                };
                let seq = self.put(stream, &e.source.partition_key, payload).await?;
                Ok(vec![seq])
            }
            RejectItem::Batch(b) => {
                let stream = stream_name_from_arn(&b.stream_arn)
                    .ok_or_else(|| ReplayError::NotAStream(b.stream_arn.clone()))?;
                *stream_out = stream.to_string();
                let records = self.read_range(stream, b).await?;
                let mut seqs = Vec::with_capacity(records.len());
                for (key, data) in records {
                    seqs.push(self.put(stream, &key, data).await?);
                }
                Ok(seqs)
            }
            RejectItem::Unreadable { .. } => Err(ReplayError::Unreadable),
        }
    }

    /// A payload the function kept in S3 because it was too large for the envelope.
    async fn stored_payload(&self, stored: &StoredPayload) -> Result<Vec<u8>, ReplayError> {
        let object = self
            .s3
            .get_object()
            .bucket(&stored.bucket)
            .key(&stored.key)
            .send()
            .await
            .map_err(|e| ReplayError::S3 {
                bucket: stored.bucket.clone(),
                key: stored.key.clone(),
                source: Box::new(e),
            })?;
        let bytes = object.body.collect().await.map_err(|e| ReplayError::S3 {
            bucket: stored.bucket.clone(),
            key: stored.key.clone(),
            source: Box::new(e),
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn put(&self, stream: &str, key: &str, data: Vec<u8>) -> Result<String, ReplayError> {
        self.kinesis
            .put_record()
            .stream_name(stream)
            .partition_key(key)
            .data(Blob::new(data))
            .send()
            .await
            .map(|r| r.sequence_number)
            .map_err(kinesis_err("PutRecord", stream))
    }

    /// Reads `start..=end` of one shard back (partition key, data).
    async fn read_range(
        &self,
        stream: &str,
        b: &BatchFailure,
    ) -> Result<Vec<(String, Vec<u8>)>, ReplayError> {
        let it = self
            .kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&b.shard_id)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&b.start_sequence_number)
            .send()
            .await
            .map_err(kinesis_err("GetShardIterator", stream))?;
        let mut iterator = it.shard_iterator;
        let end = b.end_sequence_number.as_str();
        let mut out = Vec::new();
        let mut empty_pages = 0;
        while let Some(iter) = iterator.take() {
            let page = self
                .kinesis
                .get_records()
                .shard_iterator(iter)
                .limit(1000)
                .send()
                .await
                .map_err(kinesis_err("GetRecords", stream))?;
            if page.records.is_empty() {
                empty_pages += 1;
                if empty_pages > 3 {
                    break;
                }
            }
            for r in page.records {
                let past_end = compare_sequence(&r.sequence_number, end) == Some(Ordering::Greater);
                if past_end {
                    return Ok(out);
                }
                let done = r.sequence_number == end;
                out.push((r.partition_key.unwrap_or_default(), r.data.into_inner()));
                if done {
                    return Ok(out);
                }
            }
            iterator = page.next_shard_iterator;
        }
        if out.is_empty() {
            return Err(ReplayError::Trimmed);
        }
        Ok(out)
    }
}

fn kinesis_err<E: std::error::Error + Send + Sync + 'static>(
    call: &'static str,
    stream: &str,
) -> impl FnOnce(E) -> ReplayError {
    let stream = stream.to_string();
    move |e| ReplayError::Kinesis {
        call,
        stream,
        source: Box::new(e),
    }
}

fn stream_of(item: &RejectItem) -> Option<&str> {
    match item {
        RejectItem::Envelope(e) => stream_name_from_arn(&e.source.stream_arn),
        RejectItem::Batch(b) => stream_name_from_arn(&b.stream_arn),
        RejectItem::Unreadable { .. } => None,
    }
}

/// Runs `robofleet rejects` and prints its output.
pub async fn run(args: RejectsArgs) -> Result<(), RejectsError> {
    let client = RejectsClient::from_target(&args.target).await?;
    match args.command {
        RejectsCommand::List { json } => {
            let rows: Vec<RejectRow> = client.list().await?.iter().map(QueuedReject::row).collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                print!("{}", render_table(&rows));
                println!("{} message(s) in {}", rows.len(), client.queue_url());
            }
        }
        RejectsCommand::Replay {
            kind,
            robot,
            all,
            delete,
            dry_run,
            json,
        } => {
            let selection = Selection { kind, robot, all };
            let outcomes = client.replay(&selection, delete, dry_run).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&outcomes).unwrap_or_default()
                );
            } else {
                for o in &outcomes {
                    match &o.error {
                        None if dry_run => println!("would replay {} into {}", o.key, o.stream),
                        None => println!(
                            "replayed {} into {} as {} (deleted {} message(s))",
                            o.key,
                            o.stream,
                            o.new_sequence_numbers.join(","),
                            o.deleted
                        ),
                        Some(e) => println!("FAILED {}: {e} (left in the queue)", o.key),
                    }
                }
                let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
                println!(
                    "{} record(s) {}, {} failed",
                    outcomes.len() - failed,
                    if dry_run { "selected" } else { "replayed" },
                    failed
                );
            }
        }
    }
    Ok(())
}

/// The stream name inside a Kinesis stream ARN (`arn:aws:kinesis:r:a:stream/NAME`).
pub fn stream_name_from_arn(arn: &str) -> Option<&str> {
    arn.rsplit_once(":stream/")
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty())
}

/// The listing as a text table.
pub fn render_table(rows: &[RejectRow]) -> String {
    let mut out = format!(
        "{:<20} {:<16} {:<28} {:<22} {:<24} {}\n",
        "KIND", "ROBOT", "STREAM", "SHARD", "SEQUENCE", "DETAIL"
    );
    for r in rows {
        let stream = r
            .stream_arn
            .as_deref()
            .and_then(stream_name_from_arn)
            .unwrap_or("-");
        let detail: String = r.detail.chars().take(80).collect();
        out.push_str(&format!(
            "{:<20} {:<16} {:<28} {:<22} {:<24} {}\n",
            r.kind,
            r.robot.as_deref().unwrap_or("-"),
            stream,
            r.shard_id.as_deref().unwrap_or("-"),
            r.sequence_number.as_deref().unwrap_or("-"),
            detail
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stream_name_comes_from_the_arn() {
        assert_eq!(
            stream_name_from_arn("arn:aws:kinesis:us-east-1:123456789012:stream/s-missions"),
            Some("s-missions")
        );
        assert_eq!(stream_name_from_arn("not-an-arn"), None);
    }

    fn envelope(seq: &str, robot: &str, kind: &str) -> String {
        json!({
            "function": "mission-ingest",
            "source": {
                "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s-missions",
                "shardId": "shardId-000000000000",
                "sequenceNumber": seq,
                "partitionKey": robot,
                "approximateArrivalTimestamp": "2026-11-24T10:00:00Z"
            },
            "reason": {"kind": kind, "detail": "payload is not valid json"},
            "payloadBase64": base64::engine::general_purpose::STANDARD.encode("{not json"),
            "rejectedAt": "2026-11-24T10:00:01Z"
        })
        .to_string()
    }

    fn queued(id: &str, body: &str) -> QueuedReject {
        QueuedReject {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            item: parse_body(body),
        }
    }

    #[test]
    fn envelopes_parse_into_rows_with_robot_position_and_payload() {
        let r = queued("m1", &envelope("7", "rb-000001", "bad_json"));
        let row = r.row();
        assert_eq!(row.kind, "bad_json");
        assert_eq!(row.robot.as_deref(), Some("rb-000001"));
        assert_eq!(row.sequence_number.as_deref(), Some("7"));
        assert_eq!(row.payload.as_deref(), Some("{not json"));
        assert!(render_table(&[row]).contains("s-missions"));
    }

    #[test]
    fn on_failure_records_are_listed_as_batches() {
        let body = json!({
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": "arn:aws:lambda:us-east-1:1:function:f"},
            "KinesisBatchInfo": {"shardId": "shardId-000000000001", "startSequenceNumber": "10", "endSequenceNumber": "12",
                                  "batchSize": 3, "streamArn": "arn:aws:kinesis:us-east-1:1:stream/s-shadows"}
        })
        .to_string();
        let r = queued("m1", &body);
        assert_eq!(r.kind(), "on_failure");
        assert_eq!(r.row().sequence_number.as_deref(), Some("10..12"));
    }

    #[test]
    fn garbage_is_listed_not_hidden() {
        assert_eq!(queued("m", "hello").kind(), "unreadable");
        assert_eq!(queued("m", "{\"a\":1}").kind(), "unreadable");
    }

    #[test]
    fn replay_plan_dedupes_on_stream_and_sequence_and_keeps_all_receipts() {
        let rejects = vec![
            queued("a", &envelope("7", "rb-000001", "bad_json")),
            queued("b", &envelope("7", "rb-000001", "bad_json")),
            queued("c", &envelope("9", "rb-000002", "robot_mismatch")),
            queued("d", "garbage"),
        ];
        let all = Selection {
            all: true,
            ..Selection::default()
        };
        let plan = plan_replay(&rejects, &all);
        assert_eq!(plan.len(), 2);
        assert_eq!(
            plan[0].receipts,
            vec!["rh-a".to_string(), "rh-b".to_string()]
        );
        assert!(plan[0].key.ends_with("#7"));

        let by_kind = Selection {
            kind: Some("robot_mismatch".into()),
            ..Selection::default()
        };
        assert_eq!(plan_replay(&rejects, &by_kind).len(), 1);
        let by_robot = Selection {
            robot: Some("rb-000001".into()),
            ..Selection::default()
        };
        assert_eq!(plan_replay(&rejects, &by_robot)[0].receipts.len(), 2);
        assert!(plan_replay(&rejects, &Selection::default()).is_empty());
    }
}
