//! A runner for the subset of Amazon States Language that template.yaml's state machines use.
//!
//! moto's Step Functions cannot run them (it runs Lambda tasks in Docker, its ItemReader has no
//! JSONL, it has no ItemBatcher, and it calls services with fixed credentials), so the local stack
//! runs them here:
//! - the definitions come from template.yaml ([`machines`]), with `DefinitionSubstitutions` made;
//! - every task reaches AWS as the machine's role, through the AWS front ([`AwsServices`]): a
//!   Lambda invoke is authorized there (`lambda:InvokeFunction` on the function) and forwarded
//!   to the local stack's functions, an ItemReader's GetObject and a ResultWriter's PutObject
//!   are authorized and served by moto;
//! - anything outside [`model::SUBSET`] is refused by name when the definition is loaded.
//!
//! - Step Functions' API ([`api`]: StartExecution, DescribeExecution, ListExecutions) is served
//!   over the runner behind the front, which authorizes each call as its caller; a machine
//!   that continues as new calls StartExecution through it too, as its role ([`AwsServices`]).
//!
//! What it does not do: StopExecution and the rest of the API, JSONata, intrinsic functions,
//! Parallel, inline Map, Activities, callbacks (`.waitForTaskToken`), `.sync` integrations.

pub mod api;
pub mod model;
pub mod path;
pub mod run;

use std::sync::Arc;

use aws_sdk_lambda::primitives::Blob;
use futures::future::BoxFuture;
use serde_json::{Value, json};

pub use model::{Machine, SUBSET, parse};
pub use run::{ExecutionInfo, Runner, Status, execution_arn};

/// A state's error: its name (what Retry and Catch match) and cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

/// Why a definition cannot be run, or an execution failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AslError {
    /// The definition is malformed.
    #[error("state machine definition, {at}: {problem}")]
    Definition { at: String, problem: String },
    /// The definition uses something outside the runner's subset.
    #[error(
        "state machine definition, {at}: {what} is outside the subset the local runner verifies ({})",
        model::SUBSET
    )]
    Unsupported { at: String, what: String },
    /// A state failed.
    #[error("{0}")]
    Failed(Failure),
}

impl AslError {
    /// `States.Runtime`: a path that matches nothing, a parameter of the wrong type.
    pub fn runtime(cause: impl Into<String>) -> Self {
        AslError::Failed(Failure::new("States.Runtime", cause))
    }
}

/// At most 300 characters of a JSON value, for error messages.
pub(crate) fn clip(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 300 {
        return s;
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What a machine's tasks call: AWS, as the machine's role.
pub trait Services: Send + Sync {
    /// Invokes a function synchronously: its result, or its error as Step Functions names it
    /// (`errorType` for a function error, `Lambda.<Exception>` for a refused call).
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        payload: Value,
    ) -> BoxFuture<'a, Result<Value, Failure>>;
    /// Reads an object.
    fn get_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, Failure>>;
    /// Writes an object.
    fn put_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), Failure>>;
    /// Starts an execution (`arn:aws:states:::states:startExecution`) through Step Functions'
    /// API: its `{"ExecutionArn", "StartDate"}`. `None`: the services have no such API, and the
    /// runner starts the execution itself.
    fn start_execution<'a>(
        &'a self,
        _machine_arn: &'a str,
        _name: Option<&'a str>,
        _input: &'a Value,
    ) -> Option<BoxFuture<'a, Result<Value, Failure>>> {
        None
    }
}

/// [`Services`] over the AWS SDK, with the machine role's SDK config.
#[derive(Debug, Clone)]
pub struct AwsServices {
    lambda: aws_sdk_lambda::Client,
    s3: aws_sdk_s3::Client,
    sfn: aws_sdk_sfn::Client,
}

impl AwsServices {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            lambda: aws_sdk_lambda::Client::new(sdk),
            s3: fleet_aws::config::s3_client(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
        }
    }
}

fn sdk_failure<E, R>(service: &str, e: &aws_sdk_lambda::error::SdkError<E, R>) -> Failure
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_lambda::error::ProvideErrorMetadata as _;
    match e.code() {
        Some(code) => Failure::new(
            format!("{service}.{code}"),
            e.message().unwrap_or_default().to_string(),
        ),
        None => Failure::new(
            format!("{service}.SdkClientException"),
            fleet_aws::error::chain(e),
        ),
    }
}

impl Services for AwsServices {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        payload: Value,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let out = self
                .lambda
                .invoke()
                .function_name(function)
                .payload(Blob::new(payload.to_string()))
                .send()
                .await
                .map_err(|e| sdk_failure("Lambda", &e))?;
            let body = out
                .payload()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default();
            let value: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
            };
            if out.function_error().is_some() {
                let error = value
                    .get("errorType")
                    .and_then(Value::as_str)
                    .unwrap_or("Lambda.Unknown")
                    .to_string();
                return Err(Failure::new(error, value.to_string()));
            }
            Ok(value)
        })
    }

    fn get_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, Failure>> {
        Box::pin(async move {
            let out = self
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| sdk_failure("S3", &e))?;
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| Failure::new("S3.SdkClientException", e.to_string()))?;
            Ok(body.into_bytes().to_vec())
        })
    }

    fn put_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            self.s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .map_err(|e| sdk_failure("S3", &e))?;
            Ok(())
        })
    }

    fn start_execution<'a>(
        &'a self,
        machine_arn: &'a str,
        name: Option<&'a str>,
        input: &'a Value,
    ) -> Option<BoxFuture<'a, Result<Value, Failure>>> {
        Some(Box::pin(async move {
            let out = self
                .sfn
                .start_execution()
                .state_machine_arn(machine_arn)
                .set_name(name.map(str::to_string))
                .input(input.to_string())
                .send()
                .await
                .map_err(|e| {
                    // A task names the API's errors StepFunctions.<Name>Exception.
                    let mut f = sdk_failure("StepFunctions", &e);
                    if !f.error.ends_with("Exception") {
                        f.error.push_str("Exception");
                    }
                    f
                })?;
            Ok(json!({
                "ExecutionArn": out.execution_arn,
                "StartDate": out.start_date.as_secs_f64(),
            }))
        }))
    }
}

/// A state machine of a template: its ARN, its role, and its parsed definition.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    pub logical_id: String,
    pub arn: String,
    pub role_arn: String,
    pub machine: Machine,
}

/// Replaces `${Name}` in every string of `definition` with its `DefinitionSubstitutions` value.
fn substitute(definition: &Value, subs: &serde_json::Map<String, Value>) -> Value {
    match definition {
        Value::String(s) if s.contains("${") => {
            let mut out = s.clone();
            for (k, v) in subs {
                let value = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                out = out.replace(&format!("${{{k}}}"), &value);
            }
            Value::String(out)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), substitute(v, subs)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, subs)).collect()),
        other => other.clone(),
    }
}

/// Every state machine of `stack`, parsed: SAM's `AWS::Serverless::StateMachine` with an inline
/// `Definition` and a `Role`. A definition that is not inline, a machine without a role, or a
/// definition outside the subset is an error naming the machine.
pub fn machines(stack: &fleet_template::Stack) -> Result<Vec<MachineSpec>, AslError> {
    let mut out = Vec::new();
    for r in stack.resources() {
        match r.type_.as_str() {
            "AWS::Serverless::StateMachine" => {}
            "AWS::StepFunctions::StateMachine" => {
                return Err(AslError::Unsupported {
                    at: r.logical_id.clone(),
                    what: "AWS::StepFunctions::StateMachine (declare it as AWS::Serverless::StateMachine with an inline Definition)".into(),
                });
            }
            _ => continue,
        }
        let p = &r.properties;
        let at = |problem: &str| AslError::Definition {
            at: r.logical_id.clone(),
            problem: problem.to_string(),
        };
        if p.get("Type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "STANDARD")
        {
            return Err(AslError::Unsupported {
                at: r.logical_id.clone(),
                what: format!("state machine Type {}", p["Type"]),
            });
        }
        let definition = p.get("Definition").ok_or_else(|| {
            at("an inline Definition is required (DefinitionUri is not read locally)")
        })?;
        let subs = p
            .get("DefinitionSubstitutions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let definition = substitute(definition, &subs);
        let machine = parse(&definition).map_err(|e| match e {
            AslError::Definition { at: inner, problem } => AslError::Definition {
                at: format!("{}: {inner}", r.logical_id),
                problem,
            },
            AslError::Unsupported { at: inner, what } => AslError::Unsupported {
                at: format!("{}: {inner}", r.logical_id),
                what,
            },
            other => other,
        })?;
        let role_arn = p
            .get("Role")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                at("a Role is required (SAM's generated roles are not evaluated locally)")
            })?
            .to_string();
        out.push(MachineSpec {
            logical_id: r.logical_id.clone(),
            arn: stack.arn(r).unwrap_or_default(),
            role_arn,
            machine,
        });
    }
    Ok(out)
}

/// Registers every machine of `specs` with `runner`, each with the services `services_for`
/// gives its role ARN.
pub fn register(
    runner: &Runner,
    specs: &[MachineSpec],
    services_for: impl Fn(&str) -> Arc<dyn Services>,
) {
    for s in specs {
        runner.add_machine(&s.arn, s.machine.clone(), services_for(&s.role_arn));
    }
}

#[cfg(test)]
mod tests;
