//! Kinesis event source mappings with Lambda's semantics, for the local stack.
//!
//! SAM's local mode cannot run event source mappings, so the local stack runs this poller for
//! every `Events: Kinesis` of template.yaml. It reads each shard (ListShards, GetShardIterator,
//! GetRecords; parents of a split or merge are drained before their children), gathers batches
//! (`BatchSize`, `MaximumBatchingWindowInSeconds`, the 6 MB payload limit), invokes the function
//! with the exact Lambda Kinesis event, and applies Lambda's failure handling: partial batch
//! response, `BisectBatchOnFunctionError`, `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`,
//! the on-failure destination (SQS: metadata only; S3: metadata and the event), and
//! `ParallelizationFactor` lanes that keep each partition key in order. The mapping's Enabled
//! state is read from the Lambda control plane, so `UpdateEventSourceMapping --no-enabled`
//! pauses it and re-enabling resumes from its checkpoint.
//!
//! Layout:
//! - [`config`]: [`MappingConfig`] (the mapping's properties) and [`PollerOptions`] (pacing).
//! - [`ports`]: the four narrow ports [`ShardSource`], [`Invoker`], [`FailureSink`],
//!   [`MappingState`], and an in-memory [`SwitchState`].
//! - [`event`]: the JSON: event, partial batch response, invocation record, S3 key.
//! - [`poller`]: the engine: [`Poller`] builds and spawns, [`PollerHandle`] observes and stops.
//! - [`stats`]: [`EsmStats`] counters and checkpoints.
//! - [`aws`]: the ports over aws-sdk-kinesis, aws-sdk-sqs, aws-sdk-s3 and aws-sdk-lambda.
//! - [`http`]: [`HttpInvoker`], the Invoke API of `cargo lambda watch`.
//! - [`error`]: one error enum per port.

pub mod aws;
pub mod config;
pub mod error;
pub mod event;
pub mod http;
pub mod poller;
pub mod ports;
pub mod stats;

#[cfg(test)]
mod tests;

pub use aws::{KinesisSource, LambdaMappingState, S3FailureSink, SqsFailureSink, failure_sink};
pub use config::{MappingConfig, OnFailure, PollerOptions, StartingPosition};
pub use error::{ConfigError, SinkError, SourceError, StateError};
pub use http::HttpInvoker;
pub use poller::{NoShutdown, Poller, PollerHandle, ShutdownSignal};
pub use ports::{
    FailureRecord, FailureSink, InvokeOutcome, Invoker, IteratorStart, MappingState, RecordsPage,
    ShardInfo, ShardSource, StreamRecord, SwitchState,
};
pub use stats::{EsmStats, EsmStatsSnapshot};
