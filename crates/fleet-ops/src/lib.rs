//! fleet-ops: the operator's tools. They work against a real AWS account, and against the local
//! stack in the same way (its endpoints come from the `robofleet dev` report).
//!
//! - [`rejects`]: `robofleet rejects list|replay`, what the functions dead-lettered, and putting
//!   chosen records back into their stream after a fix.
//! - [`breaker`]: `robofleet breaker status|open|close`, the circuit breakers during an incident.
//! - [`plan`]: `robofleet plan`, the capacity and cost planner for a fleet.
//!
//! Each tool is a library call that the `robofleet` command wraps in a subcommand; errors are in
//! [`error`], one enum per tool.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod breaker;
pub mod error;
pub mod jobs;
pub mod plan;
pub mod reindex;
pub mod rejects;
pub mod status;

pub use error::{BreakerError, RejectsError, ReplayError};

/// The region when neither `--region`, `AWS_REGION` nor the dev report names one.
pub const DEFAULT_REGION: &str = "us-east-1";
