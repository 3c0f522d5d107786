//! The four narrow ports the poller runs on, so that Lambda's semantics are tested against
//! in-memory fakes and run against moto (or AWS) unchanged.
//!
//! The methods return boxed futures ([`BoxFuture`]) so that the ports are object-safe: the
//! local stack picks its invoker (in-process or `cargo lambda watch`) at run time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::InvokeError;
use crate::error::{SinkError, SourceError, StateError};

/// One shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-000000000000`.
    pub shard_id: String,
    /// The shard this one was split from or merged from.
    pub parent_shard_id: Option<String>,
    /// The other parent of a merge.
    pub adjacent_parent_shard_id: Option<String>,
    /// True once the shard has an ending sequence number (split or merged away): it is read
    /// to its end and then its children take over.
    pub closed: bool,
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    /// Oldest record.
    TrimHorizon,
    /// After the newest record.
    Latest,
    /// First record at or after this time.
    AtTimestamp(SystemTime),
    /// Just after this sequence number (resuming after a checkpoint).
    AfterSequence(String),
}

/// One Kinesis record, as GetRecords returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Sequence number: a decimal string, 56 digits in AWS, small integers in moto.
    pub sequence_number: String,
    /// Partition key.
    pub partition_key: String,
    /// The raw data (not base64).
    pub data: Vec<u8>,
    /// `ApproximateArrivalTimestamp`.
    pub approximate_arrival: SystemTime,
}

/// One GetRecords answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordsPage {
    /// Records in sequence order.
    pub records: Vec<StreamRecord>,
    /// `None` once a closed shard has been read to its end.
    pub next_iterator: Option<String>,
    /// `MillisBehindLatest`.
    pub millis_behind_latest: Option<i64>,
}

/// Reading a Kinesis stream: ListShards, GetShardIterator, GetRecords.
pub trait ShardSource: Send + Sync {
    /// All shards of the stream, open and closed.
    fn list_shards(&self) -> BoxFuture<'_, Result<Vec<ShardInfo>, SourceError>>;
    /// A shard iterator for `shard_id` starting at `start`.
    fn shard_iterator<'a>(
        &'a self,
        shard_id: &'a str,
        start: &'a IteratorStart,
    ) -> BoxFuture<'a, Result<String, SourceError>>;
    /// Up to `limit` records from `iterator`.
    fn get_records<'a>(
        &'a self,
        iterator: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<RecordsPage, SourceError>>;
}

/// What a function invocation answered.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeOutcome {
    /// The response payload (the partial batch response, when the function reports one).
    pub payload: Value,
    /// `X-Amz-Function-Error` (`Unhandled`, `Handled`): the function failed, the whole batch
    /// failed with it.
    pub function_error: Option<String>,
}

impl InvokeOutcome {
    /// A successful invocation answering `payload`.
    pub fn ok(payload: Value) -> Self {
        Self {
            payload,
            function_error: None,
        }
    }

    /// A failed invocation (`Unhandled`), with Lambda's error payload.
    pub fn unhandled(message: &str) -> Self {
        Self {
            payload: serde_json::json!({"errorType": "Unhandled", "errorMessage": message}),
            function_error: Some("Unhandled".to_owned()),
        }
    }
}

/// Invokes a function synchronously (RequestResponse), as the event source mapping does.
///
/// An `Err` of kind [`InvokeError::Function`] or [`InvokeError::Build`] means the function ran
/// and failed (a function error: the whole batch failed, retried and bisected as configured).
/// Any other `Err` means the function could not be reached (Lambda's "before invocation"
/// errors: retried with backoff until the records are older than `MaximumRecordAgeInSeconds`,
/// without using up `MaximumRetryAttempts`).
pub trait Invoker: Send + Sync {
    /// Invokes `function` with `event`.
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>>;
}

/// One discarded batch, ready for the on-failure destination.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRecord {
    /// Mapping UUID (S3 key prefix).
    pub mapping_uuid: String,
    /// Shard the records came from.
    pub shard_id: String,
    /// The invocation record (metadata) Lambda sends to SQS or SNS.
    pub metadata: Value,
    /// The Lambda event holding the discarded records (sent to S3 only).
    pub event: Value,
    /// When the record was made.
    pub at: SystemTime,
}

/// The on-failure destination (SQS queue or S3 bucket).
pub trait FailureSink: Send + Sync {
    /// Delivers one failure record.
    fn send<'a>(&'a self, record: &'a FailureRecord) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// Whether the mapping is enabled right now (`UpdateEventSourceMapping --enabled`).
pub trait MappingState: Send + Sync {
    /// Reads the current state.
    fn enabled(&self) -> BoxFuture<'_, Result<bool, StateError>>;
}

/// A state switched in memory: for tests, and for mappings that have no control-plane object.
#[derive(Debug, Clone)]
pub struct SwitchState(Arc<AtomicBool>);

impl SwitchState {
    /// A switch in the given position.
    pub fn new(enabled: bool) -> Self {
        Self(Arc::new(AtomicBool::new(enabled)))
    }

    /// Flips the switch; the poller notices at its next state poll.
    pub fn set(&self, enabled: bool) {
        self.0.store(enabled, Ordering::SeqCst);
    }
}

impl MappingState for SwitchState {
    fn enabled(&self) -> BoxFuture<'_, Result<bool, StateError>> {
        let v = self.0.load(Ordering::SeqCst);
        Box::pin(async move { Ok(v) })
    }
}
