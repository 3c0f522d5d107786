//! Step Functions' API over a [`Runner`]: what the AWS front forwards an authorized call on a
//! local stack's state machines to (`POST /_front/states`), so that a caller with its own
//! credentials (the fleet API, an operator's `robofleet job run`, a machine continuing as new)
//! starts and watches executions the way it does on Step Functions.
//!
//! awsJson1.0, `POST /` with `X-Amz-Target: AWSStepFunctions.<Operation>`:
//! - `StartExecution` (`stateMachineArn`, `name`, `input`): `{executionArn, startDate}`. A name
//!   used before with the same input while it runs answers that execution; otherwise
//!   `ExecutionAlreadyExists`, as Step Functions does for a Standard workflow;
//! - `DescribeExecution` (`executionArn`);
//! - `ListExecutions` (`stateMachineArn`, `statusFilter`, `maxResults`, `nextToken`), newest
//!   first.
//!
//! Errors are `{"__type", "message"}` with status 400: `StateMachineDoesNotExist`,
//! `ExecutionDoesNotExist`, `ExecutionAlreadyExists`, `InvalidName`, `InvalidExecutionInput`,
//! `InvalidToken`, `UnknownOperationException`. The front has already checked the signature,
//! the caller's permission and the request's shape.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AslError, ExecutionInfo, Runner, Status};

/// A running Step Functions API; it stops when dropped.
pub struct StatesApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StatesApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `runner` on a free loopback port.
pub async fn serve(runner: Runner) -> std::io::Result<StatesApi> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/", axum::routing::post(call))
        .with_state(runner);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(StatesApi { url, task })
}

fn error(code: &str, message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.0")],
        axum::Json(json!({"__type": code, "message": message.into()})),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.0")],
        axum::Json(body),
    )
        .into_response()
}

/// The API's name of a runner error (`StepFunctions.InvalidNameException` → `InvalidName`).
fn code_of(e: &AslError) -> (String, String) {
    match e {
        AslError::Failed(f) => {
            let name = f.error.strip_prefix("StepFunctions.").unwrap_or(&f.error);
            let name = name.strip_suffix("Exception").unwrap_or(name);
            (name.to_string(), f.cause.clone())
        }
        other => ("ValidationException".into(), other.to_string()),
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Running => "RUNNING",
        Status::Succeeded => "SUCCEEDED",
        Status::Failed => "FAILED",
    }
}

/// An execution as ListExecutions lists it.
fn summary(e: &ExecutionInfo) -> Value {
    let mut v = json!({
        "executionArn": e.execution_arn,
        "stateMachineArn": e.state_machine_arn,
        "name": e.name,
        "status": status_name(e.status),
        "startDate": e.start_date,
    });
    if let Some(stop) = e.stop_date {
        v["stopDate"] = json!(stop);
    }
    v
}

/// An execution as DescribeExecution shows it.
fn describe(e: &ExecutionInfo) -> Value {
    let mut v = summary(e);
    v["input"] = json!(e.input.to_string());
    if let Some(out) = &e.output {
        v["output"] = json!(out.to_string());
    }
    if let Some(error) = &e.error {
        v["error"] = json!(error);
    }
    if let Some(cause) = &e.cause {
        v["cause"] = json!(cause);
    }
    v
}

fn text<'a>(body: &'a Value, member: &str) -> Option<&'a str> {
    body.get(member).and_then(Value::as_str)
}

async fn call(State(runner): State<Runner>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(op) = target.strip_prefix("AWSStepFunctions.") else {
        return error(
            "UnknownOperationException",
            format!("X-Amz-Target {target:?} is not AWSStepFunctions.<Operation>"),
        );
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error("SerializationException", "the body is not a JSON object"),
    };
    match op {
        "StartExecution" => {
            let Some(machine) = text(&body, "stateMachineArn") else {
                return error("InvalidArn", "stateMachineArn is required");
            };
            let input = match serde_json::from_str::<Value>(text(&body, "input").unwrap_or("{}")) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        "InvalidExecutionInput",
                        format!("Invalid State Machine Execution Input: '{e}'"),
                    );
                }
            };
            match runner.start(machine, text(&body, "name"), input) {
                Ok(arn) => {
                    let started = runner.describe(&arn).map(|e| e.start_date);
                    ok(json!({"executionArn": arn, "startDate": started}))
                }
                Err(e) => {
                    let (code, message) = code_of(&e);
                    error(&code, message)
                }
            }
        }
        "DescribeExecution" => {
            let arn = text(&body, "executionArn").unwrap_or_default();
            match runner.describe(arn) {
                Some(e) => ok(describe(&e)),
                None => error(
                    "ExecutionDoesNotExist",
                    format!("Execution Does Not Exist: '{arn}'"),
                ),
            }
        }
        "ListExecutions" => list(&runner, &body),
        other => error(
            "UnknownOperationException",
            format!("the local runner does not serve {other}"),
        ),
    }
}

fn list(runner: &Runner, body: &Value) -> Response {
    let Some(machine) = text(body, "stateMachineArn") else {
        return error("InvalidArn", "stateMachineArn is required");
    };
    if !runner.has_machine(machine) {
        return error(
            "StateMachineDoesNotExist",
            format!("State Machine Does Not Exist: '{machine}'"),
        );
    }
    let filter = text(body, "statusFilter");
    let max = body
        .get("maxResults")
        .and_then(Value::as_u64)
        .filter(|n| (1..=1000).contains(n))
        .unwrap_or(100) as usize;
    let skip = match text(body, "nextToken") {
        None => 0,
        Some(t) => match t.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return error("InvalidToken", format!("Invalid Token: '{t}'")),
        },
    };
    let mut executions: Vec<ExecutionInfo> = runner
        .executions()
        .into_iter()
        .filter(|e| e.state_machine_arn == machine)
        .filter(|e| filter.is_none_or(|f| f == status_name(e.status)))
        .collect();
    executions.sort_by(|a, b| {
        b.start_date
            .total_cmp(&a.start_date)
            .then_with(|| b.name.cmp(&a.name))
    });
    let page: Vec<Value> = executions
        .iter()
        .skip(skip)
        .take(max)
        .map(summary)
        .collect();
    let mut out = json!({"executions": page});
    if skip + max < executions.len() {
        out["nextToken"] = json!((skip + max).to_string());
    }
    ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::future::BoxFuture;

    use super::*;
    use crate::asl::{Failure, Services, parse};

    struct Nothing;

    impl Services for Nothing {
        fn invoke<'a>(&'a self, _: &'a str, _: Value) -> BoxFuture<'a, Result<Value, Failure>> {
            Box::pin(async { Ok(json!({})) })
        }
        fn get_object<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Vec<u8>, Failure>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn put_object<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: Vec<u8>,
        ) -> BoxFuture<'a, Result<(), Failure>> {
            Box::pin(async { Ok(()) })
        }
    }

    const ARN: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:t";

    async fn post(url: &str, op: &str, body: Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{url}/"))
            .header("x-amz-target", format!("AWSStepFunctions.{op}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    #[tokio::test]
    async fn starts_describes_and_lists_executions_and_names_refusals_as_step_functions_does() {
        let runner = Runner::new();
        let machine = parse(&json!({
            "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": true}}
        }))
        .unwrap();
        runner.add_machine(ARN, machine, Arc::new(Nothing));
        let api = serve(runner.clone()).await.unwrap();

        let (status, started) = post(
            &api.url,
            "StartExecution",
            json!({"stateMachineArn": ARN, "name": "a", "input": "{\"n\":1}"}),
        )
        .await;
        assert_eq!(status, 200, "{started}");
        let arn = started["executionArn"].as_str().unwrap().to_string();
        assert_eq!(arn, "arn:aws:states:us-east-1:123456789012:execution:t:a");
        assert!(started["startDate"].as_f64().unwrap() > 1.7e9);
        // Same name, same input, still running: the same execution. Another input: refused.
        let (_, again) = post(
            &api.url,
            "StartExecution",
            json!({"stateMachineArn": ARN, "name": "a", "input": "{\"n\":1}"}),
        )
        .await;
        assert_eq!(again["executionArn"], arn.as_str());
        let (status, clash) = post(
            &api.url,
            "StartExecution",
            json!({"stateMachineArn": ARN, "name": "a", "input": "{\"n\":2}"}),
        )
        .await;
        assert_eq!(
            (status, clash["__type"].as_str()),
            (400, Some("ExecutionAlreadyExists"))
        );

        let (_, running) = post(&api.url, "DescribeExecution", json!({"executionArn": arn})).await;
        assert_eq!(running["status"], "RUNNING");
        assert_eq!(running["input"], "{\"n\":1}");
        runner.wait_idle().await;
        let (_, done) = post(&api.url, "DescribeExecution", json!({"executionArn": arn})).await;
        assert_eq!(done["status"], "SUCCEEDED");
        assert_eq!(done["output"], "{\"n\":1}");
        assert!(done["stopDate"].as_f64().unwrap() >= done["startDate"].as_f64().unwrap());

        for name in ["b", "c"] {
            post(
                &api.url,
                "StartExecution",
                json!({"stateMachineArn": ARN, "name": name}),
            )
            .await;
        }
        let (_, page) = post(
            &api.url,
            "ListExecutions",
            json!({"stateMachineArn": ARN, "maxResults": 2}),
        )
        .await;
        let names: Vec<&str> = page["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["c", "b"], "newest first");
        let (_, rest) = post(
            &api.url,
            "ListExecutions",
            json!({"stateMachineArn": ARN, "nextToken": page["nextToken"]}),
        )
        .await;
        assert_eq!(rest["executions"][0]["name"], "a");
        assert!(rest.get("nextToken").is_none());
        let (_, succeeded) = post(
            &api.url,
            "ListExecutions",
            json!({"stateMachineArn": ARN, "statusFilter": "SUCCEEDED"}),
        )
        .await;
        assert_eq!(succeeded["executions"].as_array().unwrap().len(), 1);

        for (op, body, code) in [
            (
                "StartExecution",
                json!({"stateMachineArn": format!("{ARN}x")}),
                "StateMachineDoesNotExist",
            ),
            (
                "StartExecution",
                json!({"stateMachineArn": ARN, "name": "no spaces"}),
                "InvalidName",
            ),
            (
                "StartExecution",
                json!({"stateMachineArn": ARN, "input": "{oops"}),
                "InvalidExecutionInput",
            ),
            (
                "DescribeExecution",
                json!({"executionArn": format!("{arn}x")}),
                "ExecutionDoesNotExist",
            ),
            (
                "ListExecutions",
                json!({"stateMachineArn": ARN, "nextToken": "x"}),
                "InvalidToken",
            ),
            (
                "StopExecution",
                json!({"executionArn": arn}),
                "UnknownOperationException",
            ),
        ] {
            let (status, err) = post(&api.url, op, body).await;
            assert_eq!(
                (status, err["__type"].as_str()),
                (400, Some(code)),
                "{op}: {err}"
            );
        }
    }
}
