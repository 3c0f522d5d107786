//! fleet-jobs: the pure part of fleet jobs. A job acts on many robots from one file in S3: it
//! sends one command, as shadow desired state, to every robot the file lists, at a safe rate.
//!
//! This crate decides; it does no I/O. job-worker (a function) reads the file, writes the
//! shadows and keeps the jobs table through fleet-aws's adapters, and asks this crate what each
//! line means, what to send, how fast, and when to stop. The AWS IoT Jobs names are kept where
//! the idea is the same (`maximumPerMinute`, `exponentialRate`, `thresholdPercentage`,
//! `minNumberOfExecutedThings`), so a team that knows IoT Jobs reads a job document at sight.
//!
//! Layout:
//! - [`spec`]: [`JobSpec`], the job document (`robofleet job run`, `POST /jobs`), validated
//!   field by field.
//! - [`command`]: the command contract (`schemas/job-command.schema.json`): what goes into
//!   `desired.command`, per-line parameters merged and validated before anything is sent.
//! - [`lines`]: the input file as lines with a byte cursor that always sits on a line boundary
//!   (LF or CRLF, a last line without a newline), and a line (JSONL or CSV) as a [`Target`].
//! - [`rate`]: the rollout rate: a constant cap or an exponential ramp, the adaptive factor
//!   (multiplicative decrease on throttling and errors, additive increase when they clear), and
//!   the [`Pacer`] that spaces the sends.
//! - [`gate`]: the start time and the maintenance windows: send now, or wait how long.
//! - [`state`]: the job's states and the transitions pause, resume, cancel, abort allow, its
//!   [`Counters`] and the [`AbortRule`].

pub mod command;
pub mod gate;
pub mod lines;
pub mod rate;
pub mod spec;
pub mod state;

pub use command::{CommandError, CommandTemplate, Commands};
pub use gate::Gate;
pub use lines::{Cursor, InputFormat, Line, LineBuffer, Target};
pub use rate::{Adaptive, AdaptiveState, Pacer, RatePlan};
pub use spec::{JobSpec, Machine, SpecError};
pub use state::{AbortRule, Counters, JobAction, JobState, TransitionError};
