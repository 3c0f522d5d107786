//! The stream-scaler Lambda binary: configuration, clients, runtime. Logic lives in the lib.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use stream_scaler::{Config, build};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleet_lambda::logging::init();
    let config = Config::from_env()?;
    let sdk = fleet_aws::config::function_sdk_config().await;
    let handler: &'static stream_scaler::Handler = Box::leak(Box::new(build(config, &sdk)));
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        handler
            .handle(stream_scaler::now())
            .await
            .map_err(|report| {
                lambda_runtime::Error::from(format!("stream-scaler: some part failed: {report}"))
            })
    }))
    .await
}
