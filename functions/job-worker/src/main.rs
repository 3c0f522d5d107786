//! The job-worker Lambda binary: configuration, clients, runtime. Logic lives in the lib.

use fleet_lambda::Deadline;
use job_worker::{Config, Event, build};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fleet_lambda::logging::init();
    let config = Config::from_env()?;
    let sdk = fleet_aws::config::function_sdk_config().await;
    let handler: &'static job_worker::Handler = Box::leak(Box::new(build(config, &sdk)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        let deadline = Deadline::from_epoch_ms(event.context.deadline);
        handler
            .handle(event.payload, deadline)
            .await
            .map_err(lambda_runtime::Diagnostic::from)
    }))
    .await
}
