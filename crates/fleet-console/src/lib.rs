//! fleet-console: what Robofleet's long-running tools (`robofleet dev`, `robofleet sim`, and the
//! operator tools) share on the terminal, so they look and parse alike.
//!
//! - [`duration`]: the one parser of duration flags (`250ms`, `90s`, `5m`, `1h30m`, `1.5s`, or
//!   plain seconds).
//! - [`progress`]: the live progress line. On a terminal it is a spinner redrawn in place;
//!   without one (CI, a pipe, a log file) it is a plain line every few seconds; inside another
//!   tool it can be silent. Summaries go to stdout, progress to stderr, so `--json` output
//!   stays clean.
//! - [`progress::Rate`]: events per second over a sliding window, for the progress line.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod duration;
pub mod progress;

pub use duration::parse_duration;
pub use progress::{Progress, ProgressLine, Rate};
