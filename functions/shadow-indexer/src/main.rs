//! The shadow-indexer Lambda binary: configuration, clients, runtime. Logic lives in the lib.

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use shadow_indexer::{Config, build};

// One thread: the work is I/O-bound and a current-thread runtime avoids cross-thread wake-ups,
// which dominated CPU per record with the multi-threaded runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleet_lambda::logging::init();
    let config = Config::from_env()?;
    // Stalled-stream protection guards large streaming downloads; these functions make small
    // request/response calls, and it would add a timer to every one.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .load()
        .await;
    fleet_lambda::serve(build(config, &sdk).await?).await
}
