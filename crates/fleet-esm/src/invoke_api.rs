//! The Lambda Invoke API over an [`Invoker`]: what the AWS front forwards an authorized
//! `Invoke` to (`POST /_front/lambda`), so that a caller with its own credentials (a state
//! machine's role, a tool) reaches the local stack's functions the way it reaches Lambda.
//!
//! `POST /2015-03-31/functions/{FunctionName}/invocations`, `FunctionName` as Lambda takes it:
//! a name, `name:qualifier`, or a full or partial ARN. Answers as Lambda does:
//! - 200 with the function's result;
//! - 200 with `X-Amz-Function-Error: Unhandled` and `{"errorType", "errorMessage"}` when the
//!   function failed (the caller's retry and catch rules match `errorType`);
//! - 202 for `X-Amz-Invocation-Type: Event` (run in the background), 204 for `DryRun`;
//! - 404 `ResourceNotFoundException` for a function this stack does not have, 400
//!   `InvalidRequestContentException` for a body that is not JSON, 500 `ServiceException` when
//!   the function could not be reached.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::InvokeError;
use crate::ports::Invoker;

/// A running Invoke API; it stops when dropped.
pub struct InvokeApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InvokeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `invoker` on a free loopback port.
pub async fn serve(invoker: Arc<dyn Invoker>) -> std::io::Result<InvokeApi> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route(
            "/2015-03-31/functions/{function}/invocations",
            axum::routing::post(invoke),
        )
        .with_state(invoker);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(InvokeApi { url, task })
}

/// The function's name in any of the forms `FunctionName` takes: `arn:aws:lambda:REGION:ACCOUNT:
/// function:NAME[:QUALIFIER]`, `ACCOUNT:function:NAME[:QUALIFIER]`, `NAME[:QUALIFIER]`.
pub fn function_name(function: &str) -> &str {
    let rest = match function.find(":function:") {
        Some(i) => &function[i + ":function:".len()..],
        None => function,
    };
    rest.split(':').next().unwrap_or(rest)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-ErrorType", v);
    }
    (
        status,
        headers,
        axum::Json(json!({"Type": "User", "message": message})),
    )
        .into_response()
}

fn function_error(kind: &str, payload: &Value) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(kind) {
        headers.insert("X-Amz-Function-Error", v);
    }
    (StatusCode::OK, headers, axum::Json(payload.clone())).into_response()
}

async fn invoke(
    State(invoker): State<Arc<dyn Invoker>>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let name = function_name(&function).to_string();
    let event: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                );
            }
        }
    };
    let kind = headers
        .get("X-Amz-Invocation-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    match kind {
        "DryRun" => return StatusCode::NO_CONTENT.into_response(),
        "Event" => {
            tokio::spawn(async move {
                if let Err(e) = invoker.invoke(&name, event).await {
                    tracing::warn!(function = name, error = %e, "asynchronous invocation failed");
                }
            });
            return StatusCode::ACCEPTED.into_response();
        }
        "RequestResponse" => {}
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("InvocationType {other:?} is not RequestResponse, Event or DryRun"),
            );
        }
    }
    match invoker.invoke(&name, event).await {
        Ok(outcome) => match outcome.function_error {
            Some(kind) => function_error(&kind, &outcome.payload),
            None => (StatusCode::OK, axum::Json(outcome.payload)).into_response(),
        },
        Err(InvokeError::Function {
            error_type,
            message,
            ..
        }) => function_error(
            "Unhandled",
            &json!({"errorType": error_type, "errorMessage": message}),
        ),
        Err(InvokeError::UnknownFunction(f)) => error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {f}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            &e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::InvokeOutcome;

    struct Fns;

    impl Invoker for Fns {
        fn invoke<'a>(
            &'a self,
            function: &'a str,
            event: Value,
        ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
            Box::pin(async move {
                match function {
                    "echo" => Ok(InvokeOutcome::ok(json!({"got": event}))),
                    "abort" => Err(InvokeError::Function {
                        function: function.into(),
                        error_type: "JobAborted".into(),
                        message: "over the threshold".into(),
                    }),
                    other => Err(InvokeError::UnknownFunction(other.into())),
                }
            })
        }
    }

    #[test]
    fn every_form_of_function_name_names_the_function() {
        for f in [
            "echo",
            "echo:live",
            "123456789012:function:echo",
            "arn:aws:lambda:us-east-1:123456789012:function:echo",
            "arn:aws:lambda:us-east-1:123456789012:function:echo:live",
        ] {
            assert_eq!(function_name(f), "echo", "{f}");
        }
        for f in ["my-function", "my-function:live"] {
            assert_eq!(function_name(f), "my-function", "{f}");
        }
    }

    #[tokio::test]
    async fn results_function_errors_and_unknown_functions_answer_as_lambda_does() {
        let api = serve(Arc::new(Fns)).await.unwrap();
        let client = crate::HttpInvoker::new(&api.url);
        let ok = client
            .invoke(
                "arn:aws:lambda:us-east-1:123456789012:function:echo:live",
                json!({"a": 1}),
            )
            .await
            .unwrap();
        assert_eq!(ok.payload, json!({"got": {"a": 1}}));
        assert_eq!(ok.function_error, None);
        let failed = client.invoke("abort", json!({})).await.unwrap();
        assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
        assert_eq!(failed.payload["errorType"], "JobAborted");
        assert_eq!(failed.payload["errorMessage"], "over the threshold");
        let missing = client.invoke("nope", json!({})).await.unwrap_err();
        assert!(missing.to_string().contains("404"), "{missing}");
        let raw = reqwest::Client::new()
            .post(client.url("echo"))
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), 400);
        assert_eq!(
            raw.headers()["x-amzn-ErrorType"],
            "InvalidRequestContentException"
        );
    }
}
