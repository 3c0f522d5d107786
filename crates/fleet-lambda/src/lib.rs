//! The Lambda batch kit: what every Kinesis stream consumer in Robofleet shares.
//!
//! A Kinesis batch is handled in four steps, each in its own module:
//!
//! 1. [`record`]: the event is split into records **one by one**. A record whose data is not
//!    base64, too large, or otherwise broken becomes one rejected item; it never fails the
//!    invocation (the runtime's whole-event deserialisation is a known poison-pill trap).
//! 2. [`batch`]: the function decodes each record into its domain type and processes the batch,
//!    either record by record (records of one partition key in order, keys concurrently with a
//!    bound) or in one bulk call. Panics inside one record's processing are caught and turn that
//!    record into a reject.
//! 3. [`outcome`]: each record ends as succeeded, duplicate, rejected (permanent, sent to the
//!    rejects queue with its payload through a [`rejects::RejectSink`]) or retry (transient).
//! 4. The response follows Lambda's Kinesis checkpoint rule: on any retry, the lowest failed
//!    sequence number is reported, so Lambda re-delivers it and everything after it.
//!
//! [`metrics`] writes CloudWatch Embedded Metric Format lines (no API calls), [`logging`] sets up
//! JSON logs, and [`config`] reads a function's environment with errors that name the variable.

pub mod batch;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod outcome;
pub mod record;
pub mod rejects;
pub mod serve;

pub use batch::{Batch, BatchReport, Deadline};
pub use error::{ConfigError, EventError};
pub use outcome::{Outcome, Reject};
pub use record::{KinesisRecord, parse_event};
pub use rejects::{MemoryRejectSink, RejectSink, RejectSinkError};
pub use serve::{BatchHandler, serve};

/// The allocator settings template.yaml gives every function (Globals): commit arena memory as
/// it is touched and return freed pages at once. mimalloc reads them at process start, so they
/// must be in the environment, not set from code. Without them peak RSS in lambda-bench was
/// 30 MiB instead of 18.6 MiB.
pub const ALLOCATOR_ENV: &[(&str, &str)] = &[
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ("MIMALLOC_PURGE_DELAY", "0"),
];

/// mimalloc as the global allocator (feature `mimalloc`, on in the function crates): decoding a
/// batch and building its requests is mostly small, short-lived allocations, which glibc malloc
/// serves slower. It applies to every binary linking the kit with the feature: the functions,
/// their benches and tests, and the local stack that runs them in-process.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
