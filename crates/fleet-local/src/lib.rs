//! fleet-local: `robofleet dev`, the whole Robofleet pipeline on one machine, from template.yaml.
//!
//! This crate is the orchestrator. The stand-ins themselves live in their own crates, by the AWS
//! service they stand in for: IoT Core in `fleet-iot` (broker, rules engine, shadow service,
//! presence), Lambda's event sources in `fleet-esm` (pollers with Lambda's semantics, the
//! scheduler, invokers). This crate starts them in order, wires them together from the template
//! and shows what flows through them; it is the only crate that links the function crates and
//! the simulator.
//!
//! - [`standins`]: osmem-server started from the project venv on a free loopback port (or
//!   attached to); everything started is stopped on exit.
//! - [`front`]: the AWS front (moto inside), started or attached to; the template's roles,
//!   resource policies and encrypted resources registered with it; per-role credentials.
//! - [`names`]: pure helpers that turn the evaluated template into local names and environments
//!   (stack-name prefixes, endpoint substitution). No I/O, unit-tested.
//! - [`provision`]: creates the template's tables, streams, queues, buckets, the Lambda
//!   control-plane objects (role, functions, event source mappings) and the OpenSearch index
//!   template, index and alias.
//! - [`functions`]: the registry of the workspace's functions (binary, environment, downstream,
//!   in-process handler).
//! - [`dev`]: [`dev::start`] brings the stack up and returns a [`dev::RunningStack`] that tests
//!   drive as a library.
//! - [`run`]: `robofleet dev` as a command ([`run::DevArgs`], [`run::run`]): workload, progress,
//!   signals, summary.
//! - [`progress`] and [`report`]: the progress line, the closing summary and the JSON report.
//! - [`workload`]: the built-in demo workload published over MQTT.
//! - the template's state machines run in the stack's ASL runner, behind the front's Step
//!   Functions API (`robofleet job run` and `POST /jobs` start them; fleet-ops has the command).
//! - [`error`]: one error enum per job, gathered in [`DevError`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod dev;
pub mod error;
pub mod front;
pub mod functions;
pub mod names;
pub mod progress;
pub mod provision;
pub mod report;
pub mod run;
pub mod standins;
pub mod workload;

pub use error::{DevError, ProvisionError, ReportError, StandinError};
