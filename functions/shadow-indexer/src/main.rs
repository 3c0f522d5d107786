//! The shadow-indexer Lambda binary: configuration, clients, runtime. Logic lives in the lib.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use shadow_indexer::{Config, build};

// One thread: the work is I/O-bound and a current-thread runtime avoids cross-thread wake-ups,
// which dominated CPU per record with the multi-threaded runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fleet_lambda::logging::init();
    let config = Config::from_env()?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let handler: &'static _ = Box::leak(Box::new(build(config, &sdk).await?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = fleet_lambda::Deadline::from_epoch_ms(event.context.deadline);
        Ok::<Value, Error>(
            handler
                .handle_batch(event.payload, deadline)
                .await?
                .response_json(),
        )
    }))
    .await
}
