//! The fleet-api Lambda binary: configuration, clients, runtime. Logic lives in the lib.

use fleet_api::{Config, build};
use lambda_http::{Request, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    fleet_lambda::logging::init();
    let config = Config::from_env()?;
    let sdk = fleet_aws::config::function_sdk_config().await;
    let api: &'static fleet_api::Api = Box::leak(Box::new(build(config, &sdk)));
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(api.handle(request).await)
    }))
    .await
}
