//! Helpers shared by the tests that talk to the local stand-ins.
//!
//! - the stand-ins' endpoints ([`aws_endpoint`], [`opensearch_url`]) and an SDK config for them
//!   ([`sdk_config`]);
//! - fresh resources per test: [`unique_name`], and [`tables`] for the template's tables;
//! - [`mosquitto::Mosquitto`], a real external broker on a free port;
//! - [`free_port`].
//!
//! `make test` starts one moto server and one osmem-server for the whole run and exports their
//! URLs (`tools/standins.sh`); every test then creates its own fresh table, stream, queue or index
//! with [`unique_name`], so tests run in parallel without seeing each other's data.
//!
//! Outside `make test`, `source tools/dev-env.sh` starts the same stand-ins and exports the same
//! variables.
#![allow(clippy::expect_used)]

pub mod mosquitto;
pub mod tables;

use std::sync::atomic::{AtomicU32, Ordering};

/// Environment variable holding the moto server URL.
pub const AWS_ENDPOINT_VAR: &str = "ROBOFLEET_TEST_AWS_ENDPOINT";
/// Environment variable holding the osmem-server (OpenSearch stand-in) URL.
pub const OPENSEARCH_URL_VAR: &str = "ROBOFLEET_TEST_OPENSEARCH_URL";
/// Environment variable holding the project's Python venv (moto_server, osmem-server, cargo-lambda).
pub const VENV_VAR: &str = "ROBOFLEET_VENV";

/// The region every local test uses.
pub const REGION: &str = "us-east-1";

fn required(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs the local stand-ins. Run it through `make test`, \
             or `source tools/dev-env.sh` first"
        ),
    }
}

/// URL of the moto server (DynamoDB, Kinesis, SQS, S3, Lambda control plane, IoT).
pub fn aws_endpoint() -> String {
    required(AWS_ENDPOINT_VAR)
}

/// URL of the osmem-server (OpenSearch-compatible).
pub fn opensearch_url() -> String {
    required(OPENSEARCH_URL_VAR)
}

/// Absolute path of the project's Python venv.
pub fn venv() -> String {
    required(VENV_VAR)
}

/// A name no other test in this run (or a parallel run) uses: `<prefix>-<pid>-<n>-<random>`.
/// Lowercase and short enough for tables, streams, queues, buckets and OpenSearch indices.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{n}-{}", std::process::id(), &rand[..8])
}

pub use mosquitto::Mosquitto;

/// A TCP port that was free a moment ago on 127.0.0.1 ([`fleet_process::free_port`]).
pub fn free_port() -> u16 {
    fleet_process::free_port().expect("binding 127.0.0.1:0 must work on a test machine")
}

/// An SDK config pointed at the moto server, region us-east-1, with static test credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_for(&aws_endpoint()).await
}

/// An SDK config pointed at `endpoint`, region us-east-1, with static test credentials.
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    fleet_aws::config::sdk_config(Some(endpoint), REGION).await
}
