//! fleet-local: the whole Robofleet pipeline on one machine (`robofleet dev`).
//!
//! The cloud parts of DESIGN.md §4 each have a local stand-in, and this crate starts them, wires
//! them together from `template.yaml`, and shows what flows through them:
//!
//! - [`standins`]: moto server and osmem-server started from the project venv on free loopback
//!   ports (or attached to, given their URLs); everything started is stopped on exit.
//! - [`names`]: pure helpers that turn the evaluated template into local names and environments
//!   (stack-name prefixes, endpoint substitution). No I/O, unit-tested.
//! - [`provision`]: creates the template's tables, streams, queues, buckets, the Lambda
//!   control-plane objects (role, functions, event source mappings) and the OpenSearch index
//!   template, index and alias.
//! - [`invoke`]: runs a template function, in-process (the function crates' `Handler`) or over
//!   HTTP through `cargo lambda watch` ([`watch`]).
//! - [`scheduler`]: fires the template's EventBridge rules and schedules (`rate(...)`,
//!   6-field AWS `cron(...)`, `at(...)`).
//! - [`progress`] and [`report`]: live counters, the progress display and the JSON report.
//! - [`workload`]: the built-in demo workload published over MQTT.
//! - [`run`]: `robofleet dev` as a command ([`run::DevArgs`], [`run::run`]): workload, progress,
//!   signals, summary.
//! - [`dev`]: `robofleet dev` itself: [`dev::start`] returns a [`dev::RunningStack`] that tests
//!   drive as a library.
//! - [`rejects`]: `robofleet rejects list|replay`, the operator's view of the rejects queue.
//!
//! The MQTT broker, rules engine, shadow service and presence (`broker`, `rules`, `shadow`,
//! `presence`) and the event source mapping poller (`esm`) live in sibling modules.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod broker;
pub mod dev;
pub mod error;
pub mod esm;
pub mod invoke;
pub mod names;
pub mod presence;
pub mod progress;
pub mod provision;
pub mod rejects;
pub mod report;
pub mod rules;
pub mod run;
pub mod scheduler;
pub mod shadow;
pub mod standins;
pub mod watch;
pub mod workload;

pub use error::{DevError, InvokeError, ProvisionError, RejectsError, ScheduleError, StandinError};

/// An SDK config for `endpoint` (moto, when given) in `region`. With an endpoint and no
/// credentials in the environment, static test credentials are used, as moto accepts any.
pub async fn sdk_config(endpoint: Option<&str>, region: &str) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()));
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "robofleet-local",
            ));
        }
    }
    loader.load().await
}
