//! Setting a command on a robot's shadow: `UpdateThingShadow` with `desired.command`, retried
//! here (the SDK's retries are off for it, so every throttle is seen by the adaptive rule).

use std::time::Duration;

use aws_sdk_iotdataplane::config::retry::RetryConfig;
use aws_sdk_iotdataplane::error::ProvideErrorMetadata;
use aws_sdk_iotdataplane::primitives::Blob;
use fleet_aws::Backoff;
use fleet_aws::error::Failure;
use fleet_jobs::command::desired_update;
use fleet_lambda::Deadline;
use serde_json::Value;

/// Attempts per line for a throttle or a 5xx.
pub const ATTEMPTS: u32 = 5;

/// What happened to one line.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// Accepted, after `throttled` throttled attempts.
    Sent { throttled: u32 },
    /// Refused or kept failing. `trouble`: the last failure was the service's (throttle, 5xx),
    /// not a refusal of this update.
    Failed {
        reason: String,
        throttled: u32,
        trouble: bool,
    },
    /// The line names no robot or its command does not pass the schema.
    BadLine(String),
    /// A blank line.
    Blank,
    /// An earlier attempt sent it.
    AlreadySent,
    /// An earlier attempt failed it.
    AlreadyFailed(String),
    /// An earlier attempt claimed it and never answered, and the robot's shadow could not be
    /// read to tell whether the command got there (why).
    InDoubt(String),
}

/// The IoT Data Plane client.
#[derive(Debug, Clone)]
pub struct Shadows {
    client: aws_sdk_iotdataplane::Client,
    backoff: Backoff,
}

impl Shadows {
    /// Wraps a client; its own retries are turned off, this type retries (and counts).
    pub fn new(client: aws_sdk_iotdataplane::Client) -> Shadows {
        let client = aws_sdk_iotdataplane::Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        Shadows {
            client,
            backoff: Backoff::exponential(Duration::from_millis(50), Duration::from_secs(2)),
        }
    }

    /// Whether the robot already has `command`: as desired state still, or acknowledged in
    /// reported state (the robot cleared it). A robot without a shadow has not.
    pub async fn has_command(&self, robot: &str, command: &Value) -> Result<bool, String> {
        let id = command.get("id");
        let out = match self
            .client
            .get_thing_shadow()
            .thing_name(robot)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(false),
            Err(e) => {
                return Err(format!(
                    "GetThingShadow: {}",
                    fleet_aws::error::describe(&e)
                ));
            }
        };
        let doc: Value = out
            .payload()
            .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
            .unwrap_or(Value::Null);
        let state = &doc["state"];
        Ok(["desired", "reported"]
            .iter()
            .any(|side| state[side]["command"].get("id") == id))
    }

    /// Sets `command` as the robot's desired command.
    pub async fn set_command(
        &self,
        robot: &str,
        command: &Value,
        client_token: &str,
        deadline: Deadline,
    ) -> SendOutcome {
        let payload = desired_update(command, client_token).to_string();
        let mut throttled = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .update_thing_shadow()
                .thing_name(robot)
                .payload(Blob::new(payload.clone()))
                .send()
                .await;
            let e = match result {
                Ok(_) => return SendOutcome::Sent { throttled },
                Err(e) => e,
            };
            let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            let code = e.code().unwrap_or("").to_string();
            let failure = Failure::of_aws_error(&code, status);
            let reason = format!("UpdateThingShadow: {}", fleet_aws::error::describe(&e));
            let retry = match failure {
                Some(Failure::Throttled) => {
                    throttled += 1;
                    true
                }
                Some(Failure::Unavailable) => true,
                _ => false,
            };
            let delay = if retry && attempt < ATTEMPTS {
                self.backoff.next_delay(attempt, deadline)
            } else {
                None
            };
            match delay {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    return SendOutcome::Failed {
                        reason,
                        throttled,
                        trouble: retry,
                    };
                }
            }
        }
    }
}
