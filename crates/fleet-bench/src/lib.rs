//! Benchmark kit.
//!
//! - [`samples`]: realistic Kinesis events (mission reports and shadow update documents of
//!   650 B – 1 KB) shared by the criterion benches of each function and by `lambda-bench`.
//! - [`runtime_api`]: a local Lambda Runtime API that hands a function binary its events and
//!   records when it first polled and what it answered.
//! - [`proc`]: CPU time and RSS of a process, from `/proc`.
//!
//! The `lambda-bench` crate drives a function's release binary with these.

pub mod proc;
pub mod runtime_api;
pub mod samples;
