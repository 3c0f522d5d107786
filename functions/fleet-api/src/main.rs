//! The fleet-api Lambda binary: configuration, clients, runtime. Logic lives in the lib.
//!
//! The function takes two kinds of event: API Gateway's HTTP API requests (payload format 2.0),
//! and the purge events it sends itself for `DELETE /robots/{id}` ([`fleet_api::handle_event`]).

use std::sync::Arc;

use fleet_api::{Config, build, handle_event};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleet_lambda::logging::init();
    let config = Config::from_env()?;
    let sdk = fleet_aws::config::function_sdk_config().await;
    let api = Arc::new(build(config, &sdk));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let api = api.clone();
        async move {
            handle_event(api, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
