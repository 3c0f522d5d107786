//! Benchmark kit.
//!
//! - [`samples`]: realistic Kinesis events (mission reports and shadow update documents of
//!   650 B – 1 KB) shared by the criterion benches of each function and by `lambda-bench`.
//! - `lambda-bench` (binary): starts a function's release binary against a local Lambda Runtime
//!   API and the stand-ins, and measures from outside the process: init time (process start to
//!   the first poll of the runtime API), CPU time per record over batches of 1,000, and peak RSS.

pub mod proc;
pub mod runtime_api;
pub mod samples;
