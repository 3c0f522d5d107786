//! Running a batch handler under the Lambda runtime.

use std::future::Future;
use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use crate::batch::{Deadline, Finished};
use crate::error::EventError;

/// A Kinesis batch handler, built once per cold start.
pub trait BatchHandler: Send + Sync {
    /// Handles one Kinesis event within `deadline`: the response and the counts.
    fn handle_batch(
        &self,
        event: Value,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Finished, EventError>> + Send;

    /// Handles one event with `budget` to spend, returning the partial batch response as JSON:
    /// the entry point of callers without a Lambda deadline (the local stack's in-process mode).
    fn handle_within(
        &self,
        event: Value,
        budget: Duration,
    ) -> impl Future<Output = Result<Value, lambda_runtime::Error>> + Send {
        async move {
            Ok(self
                .handle_batch(event, Deadline::after(budget))
                .await?
                .response_json())
        }
    }
}

/// Serves `handler` to the Lambda runtime until the process ends. Each invocation's deadline
/// comes from its context.
pub async fn serve<H: BatchHandler + 'static>(handler: H) -> Result<(), lambda_runtime::Error> {
    // The handler lives as long as the process; leaking it gives the runtime a 'static borrow
    // without an Arc on every invocation.
    let handler: &'static H = Box::leak(Box::new(handler));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Deadline::from_epoch_ms(event.context.deadline);
        Ok::<Value, lambda_runtime::Error>(
            handler
                .handle_batch(event.payload, deadline)
                .await?
                .response_json(),
        )
    }))
    .await
}
