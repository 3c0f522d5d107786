#![recursion_limit = "256"]
//! The mission-ingest Lambda binary: configuration, clients, runtime. Logic lives in the lib.

use mission_ingest::{Config, build};

// One thread: the work is I/O-bound and a current-thread runtime avoids cross-thread wake-ups,
// which dominated CPU per record with the multi-threaded runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleet_lambda::logging::init();
    let config = Config::from_env()?;
    let sdk = fleet_aws::config::function_sdk_config().await;
    fleet_lambda::serve(build(config, &sdk).await).await
}
