//! The breaker-probe Lambda binary: configuration, clients, runtime. Logic lives in the lib.

use breaker_probe::{Config, build};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleet_lambda::logging::init();
    let config = Config::from_env()?;
    let sdk = fleet_aws::config::function_sdk_config().await;
    let handler: &'static breaker_probe::Handler = Box::leak(Box::new(build(config, &sdk)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = fleet_lambda::Deadline::from_epoch_ms(event.context.deadline);
        Ok::<Value, lambda_runtime::Error>(
            handler
                .handle(&event.context.request_id, deadline.remaining())
                .await,
        )
    }))
    .await
}
