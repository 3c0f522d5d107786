//! fleet-esm: what invokes the functions, as Lambda does. It stands in for Lambda's event
//! source mappings on Kinesis, for EventBridge schedules, and for the Invoke API.
//!
//! SAM's local mode cannot run event source mappings, so the local stack runs a [`Poller`] for
//! every `Events: Kinesis` of template.yaml. It reads each shard (ListShards, GetShardIterator,
//! GetRecords; parents of a split or merge are drained before their children), gathers batches
//! (`BatchSize`, `MaximumBatchingWindowInSeconds`, the 6 MB payload limit), invokes the function
//! with the exact Lambda Kinesis event, and applies Lambda's failure handling: partial batch
//! response, `BisectBatchOnFunctionError` (the bisect is [`event::BatchVerdict`] read in
//! [`poller`]), `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`, the on-failure destination
//! (SQS: metadata only; S3: metadata and the event), and `ParallelizationFactor` lanes that keep
//! each partition key in order. The mapping's Enabled state is read from the Lambda control
//! plane, so `UpdateEventSourceMapping --no-enabled` pauses it and re-enabling resumes from its
//! checkpoint.
//!
//! How the parts fit: a poller reads through a [`ShardSource`] and calls the function through
//! an [`Invoker`]; the [`scheduler`] calls the same [`Invoker`] for the template's schedules.
//! An invoker runs the handler in this process ([`invoke::InProcessInvoker`]) or POSTs to the
//! Invoke API of `cargo lambda watch` ([`HttpInvoker`], started by [`watch`]). This crate links
//! no function: the local stack registers the handlers.
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
//! - [`invoke`]: in-process, renaming and counting invokers.
//! - [`watch`]: starting `cargo lambda watch` with the functions' environments.
//! - [`scheduler`]: EventBridge rules and Scheduler schedules (`rate`, `cron`, `at`).
//! - [`error`]: one error enum per port, and for invoking, scheduling and watching.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod asl;
pub mod aws;
pub mod config;
pub mod error;
pub mod event;
pub mod http;
pub mod invoke;
pub mod invoke_api;
pub mod poller;
pub mod ports;
pub mod runtime_proxy;
pub mod scheduler;
pub mod stats;
pub mod watch;

#[cfg(test)]
mod tests;

pub use aws::{KinesisSource, LambdaMappingState, S3FailureSink, SqsFailureSink, failure_sink};
pub use config::{MappingConfig, OnFailure, PollerOptions, StartingPosition};
pub use error::{
    InvokeError, MappingError, ScheduleError, SinkError, SourceError, StateError, WatchError,
};
pub use http::HttpInvoker;
pub use poller::{NoShutdown, Poller, PollerHandle, ShutdownSignal};
pub use ports::{
    FailureRecord, FailureSink, InvokeOutcome, Invoker, IteratorStart, MappingState, RecordsPage,
    ShardInfo, ShardSource, StreamRecord, SwitchState,
};
pub use stats::{EsmStats, EsmStatsSnapshot};
