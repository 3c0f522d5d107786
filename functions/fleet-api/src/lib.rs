//! The fleet API: the Lambda function behind the API Gateway HTTP API (IAM-authorized routes,
//! payload format 2.0), described by `openapi/fleet-api.yaml`.
//!
//! - `GET /robots?status&batteryBelow&lastSeenBefore&firmware&limit&cursor`: fleet search over
//!   the robots' summary documents ([`search`]), with counts by reported status.
//! - `GET /robots/{id}`: reported state, connection state and the last missions. The state and
//!   the connection come from the robots index (one `_mget` of the robot's shadow and presence
//!   documents), the missions from the missions table.
//! - `GET /robots/{id}/missions?from&to&limit&cursor`: the robot's missions, newest first, one
//!   DynamoDB `Query` per page; the cursor is opaque and bound to the robot and the window.
//! - `POST /robots/{id}/commands`: a command (schemas/job-command.schema.json) set as the
//!   robot's desired state, as a job would set it.
//! - `POST /jobs`: a job document submitted and its state machine started ([`jobs`]).
//! - `GET /jobs/{id}`, `POST /jobs/{id}/pause|resume|cancel`: the jobs table.
//!
//! Every error is an RFC 9457 problem document ([`problem`]).

pub mod jobs;
pub mod missions;
pub mod params;
pub mod problem;
pub mod purge;
pub mod search;

use std::time::Duration;

use aws_sdk_iotdataplane::error::ProvideErrorMetadata;
use fleet_aws::jobs::{JobView, JobsError, JobsTable};
use fleet_aws::opensearch::OpenSearchHttp;
use fleet_core::ids::RobotId;
use fleet_jobs::{Commands, JobAction};
use lambda_http::http::{HeaderValue, Method, Response, StatusCode, header};
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Map, Value, json};

pub use missions::{MissionPage, MissionQuery, Missions};
pub use problem::Problem;

/// Missions shown by `GET /robots/{id}`.
pub const LAST_MISSIONS: i32 = 5;
/// How long one call to the robots index may take (HTTP API integrations end at 30 s).
pub const INDEX_TIMEOUT: Duration = Duration::from_secs(5);

/// The function's configuration (template.yaml sets exactly [`Config::ENV_VARS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub missions_table: String,
    pub opensearch_endpoint: String,
    pub robots_alias: String,
    pub jobs_table: String,
    /// Tombstones and the audit trail of decommissions (fleet_aws::tombstones).
    pub tombstones_table: String,
    /// The function that purges a robot: this one (`<stack>-fleet-api:live`), invoked
    /// asynchronously with a purge event.
    pub purge_function: String,
    /// The jobs bucket: a job's input must be under its `inputs/`.
    pub jobs_bucket: String,
    /// The cursor loop's and the Distributed Map's state machine ARNs.
    pub job_loop_machine: String,
    pub job_map_machine: String,
}

/// A missing environment variable.
#[derive(Debug, thiserror::Error)]
#[error("fleet-api: environment variable {0} is not set")]
pub struct ConfigError(pub &'static str);

impl Config {
    /// The environment variables read.
    pub const ENV_VARS: &'static [&'static str] = &[
        "MISSIONS_TABLE",
        "OPENSEARCH_ENDPOINT",
        "ROBOTS_ALIAS",
        "JOBS_TABLE",
        "TOMBSTONES_TABLE",
        "PURGE_FUNCTION",
        "JOBS_BUCKET",
        "JOB_LOOP_MACHINE",
        "JOB_MAP_MACHINE",
    ];

    /// From the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any lookup (the local stack passes the template's variables).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let need = |k: &'static str| get(k).filter(|v| !v.is_empty()).ok_or(ConfigError(k));
        Ok(Config {
            missions_table: need("MISSIONS_TABLE")?,
            opensearch_endpoint: need("OPENSEARCH_ENDPOINT")?,
            robots_alias: need("ROBOTS_ALIAS")?,
            jobs_table: need("JOBS_TABLE")?,
            tombstones_table: need("TOMBSTONES_TABLE")?,
            purge_function: need("PURGE_FUNCTION")?,
            jobs_bucket: need("JOBS_BUCKET")?,
            job_loop_machine: need("JOB_LOOP_MACHINE")?,
            job_map_machine: need("JOB_MAP_MACHINE")?,
        })
    }
}

/// The API's handler and its clients.
#[derive(Debug)]
pub struct Api {
    missions: Missions,
    index: OpenSearchHttp,
    alias: String,
    jobs: JobsTable,
    shadows: aws_sdk_iotdataplane::Client,
    commands: Commands,
    purge: purge::Purger,
    submitter: jobs::Submitter,
}

/// Builds the API with the SDK's IoT Data Plane client.
pub fn build(config: Config, sdk: &aws_config::SdkConfig) -> Api {
    build_with_shadows(config, sdk, aws_sdk_iotdataplane::Client::new(sdk))
}

/// Builds the API with its own IoT Data Plane client (the local stack points it at the front's
/// IoT endpoint).
pub fn build_with_shadows(
    config: Config,
    sdk: &aws_config::SdkConfig,
    shadows: aws_sdk_iotdataplane::Client,
) -> Api {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let index = OpenSearchHttp::from_sdk(sdk, &config.opensearch_endpoint);
    let jobs = JobsTable::new(dynamodb.clone(), &config.jobs_table);
    Api {
        submitter: jobs::Submitter {
            jobs: jobs.clone(),
            s3: fleet_aws::config::s3_client(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            bucket: config.jobs_bucket.clone(),
            loop_machine: config.job_loop_machine.clone(),
            map_machine: config.job_map_machine.clone(),
        },
        missions: Missions::new(dynamodb.clone(), &config.missions_table),
        purge: purge::Purger {
            tombstones: fleet_aws::tombstones::Tombstones::new(
                dynamodb.clone(),
                &config.tombstones_table,
            ),
            dynamodb: dynamodb.clone(),
            missions_table: config.missions_table.clone(),
            index: index.clone(),
            alias: config.robots_alias.clone(),
            shadows: shadows.clone(),
            iot: aws_sdk_iot::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            function: config.purge_function,
        },
        index,
        alias: config.robots_alias,
        jobs,
        shadows,
        commands: Commands::new(),
    }
}

type Answer = Result<(StatusCode, Value), Problem>;

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn robot_id(raw: &str) -> Result<RobotId, Problem> {
    RobotId::parse(raw).map_err(|e| Problem::invalid_parameter("id", e))
}

impl Api {
    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let path = request.uri().path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = request.method().clone();
        let answer = match segments.as_slice() {
            ["robots"] => match method {
                Method::GET => self.search(&request).await,
                _ => Err(Problem::method_not_allowed(method.as_str(), &path)),
            },
            ["robots", id] => match method {
                Method::GET => self.robot(id).await,
                Method::DELETE => match robot_id(id) {
                    Ok(id) => self.purge.request(&id, &request).await,
                    Err(p) => Err(p),
                },
                _ => Err(Problem::method_not_allowed(method.as_str(), &path)),
            },
            ["robots", id, "decommission"] => match method {
                Method::GET => match robot_id(id) {
                    Ok(id) => self.purge.status(&id).await,
                    Err(p) => Err(p),
                },
                _ => Err(Problem::method_not_allowed(method.as_str(), &path)),
            },
            ["robots", id, "missions"] => match method {
                Method::GET => self.missions(id, &request).await,
                _ => Err(Problem::method_not_allowed(method.as_str(), &path)),
            },
            ["robots", id, "commands"] => match method {
                Method::POST => self.command(id, &request).await,
                _ => Err(Problem::method_not_allowed(method.as_str(), &path)),
            },
            ["jobs"] => match method {
                Method::POST => self.submit_job(&request).await,
                _ => Err(Problem::method_not_allowed(method.as_str(), &path)),
            },
            ["jobs", id] => match method {
                Method::GET => self.job(id).await,
                _ => Err(Problem::method_not_allowed(method.as_str(), &path)),
            },
            ["jobs", id, action @ ("pause" | "resume" | "cancel")] => match method {
                Method::POST => self.job_action(id, action).await,
                _ => Err(Problem::method_not_allowed(method.as_str(), &path)),
            },
            _ => Err(Problem::not_found(format!("no route {method} {path}"))),
        };
        match answer {
            Ok((status, body)) => {
                let mut response = json_response(status, &body);
                // 201 is a new job: where it lives.
                if status == StatusCode::CREATED
                    && let Some(Ok(location)) = body["jobId"]
                        .as_str()
                        .map(|id| HeaderValue::from_str(&format!("/jobs/{id}")))
                {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                response
            }
            Err(problem) => {
                if problem.status.is_server_error() {
                    tracing::warn!(%method, %path, detail = %problem.detail, "request failed");
                }
                problem.response(&path)
            }
        }
    }

    async fn robot(&self, raw_id: &str) -> Answer {
        let id = robot_id(raw_id)?;
        let presence_id = format!(
            "{}#{}",
            id.as_str(),
            fleet_core::shadow::PRESENCE_DOC_SUFFIX
        );
        let body = json!({ "ids": [id.as_str(), presence_id] });
        let mget = format!("/{}/_mget", self.alias);
        let last = MissionQuery {
            robot: id.clone(),
            from: None,
            to: None,
            limit: LAST_MISSIONS,
            cursor: None,
        };
        let (found, missions) =
            tokio::join!(self.index_post(&mget, &body), self.missions.page(&last));
        let (found, missions) = (found?, missions?);
        let doc = |i: usize| {
            let d = &found["docs"][i];
            (d["found"] == true).then(|| d["_source"].clone())
        };
        let (shadow, presence) = (doc(0), doc(1));
        if shadow.is_none() && presence.is_none() && missions.missions.is_empty() {
            return Err(Problem::not_found(format!(
                "no robot {} (no shadow, presence or mission is known)",
                id.as_str()
            )));
        }
        Ok((
            StatusCode::OK,
            robot_view(id.as_str(), shadow, presence, missions.missions),
        ))
    }

    async fn search(&self, request: &Request) -> Answer {
        let query = search::SearchQuery::from_params(&request.query_string_parameters())?;
        let path = format!("/{}/_search", self.alias);
        let answer = self.index_post(&path, &query.body()).await?;
        Ok((StatusCode::OK, query.page(&answer)))
    }

    /// A JSON request to the robots index; any failure is 503 `unavailable`.
    async fn index_post(&self, path: &str, body: &Value) -> Result<Value, Problem> {
        let reply = self
            .index
            .send(
                reqwest::Method::POST,
                path,
                Some((body.to_string().into(), "application/json")),
                INDEX_TIMEOUT,
            )
            .await
            .map_err(|e| Problem::unavailable(format!("the robots index: {e}")))?;
        reply
            .ok_json()
            .map_err(|e| Problem::unavailable(format!("the robots index answered {e}")))
    }

    async fn missions(&self, raw_id: &str, request: &Request) -> Answer {
        let query =
            MissionQuery::from_params(robot_id(raw_id)?, &request.query_string_parameters())?;
        let page = self.missions.page(&query).await?;
        Ok((StatusCode::OK, page.to_json()))
    }

    async fn command(&self, raw_id: &str, request: &Request) -> Answer {
        let id = robot_id(raw_id)?;
        let body = json_body(request)?;
        let Value::Object(mut command) = body else {
            return Err(Problem::invalid_body("the body must be a JSON object"));
        };
        if !command.contains_key("id") {
            command.insert(
                "id".into(),
                json!(format!(
                    "cmd-{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                )),
            );
        }
        let command = Value::Object(command);
        self.commands
            .check(&command)
            .map_err(|e| Problem::invalid_command(e.to_string()))?;
        let command_id = command["id"].as_str().unwrap_or_default().to_string();
        // The robot must exist: a shadow update would otherwise create a shadow for a name.
        self.shadows
            .get_thing_shadow()
            .thing_name(id.as_str())
            .send()
            .await
            .map_err(|e| shadow_problem(id.as_str(), &e))?;
        let update = fleet_jobs::command::desired_update(&command, &command_id);
        let answer = self
            .shadows
            .update_thing_shadow()
            .thing_name(id.as_str())
            .payload(aws_sdk_iotdataplane::primitives::Blob::new(
                update.to_string(),
            ))
            .send()
            .await
            .map_err(|e| shadow_problem(id.as_str(), &e))?;
        let version = answer
            .payload()
            .and_then(|p| serde_json::from_slice::<Value>(p.as_ref()).ok())
            .and_then(|v| v["version"].as_u64());
        Ok((
            StatusCode::ACCEPTED,
            json!({ "robotId": id.as_str(), "command": command, "shadowVersion": version }),
        ))
    }

    async fn submit_job(&self, request: &Request) -> Answer {
        let submission =
            jobs::parse_submission(json_body(request)?, &self.submitter.bucket, &self.commands)?;
        self.submitter.submit(submission).await
    }

    async fn job(&self, raw_id: &str) -> Answer {
        fleet_jobs::spec::validate_job_id(raw_id)
            .map_err(|e| Problem::invalid_parameter("id", e))?;
        match self.jobs.get(raw_id).await {
            Ok(Some(job)) => Ok((StatusCode::OK, json!(JobView::of(&job)))),
            Ok(None) => Err(Problem::not_found(format!("no job {raw_id}"))),
            Err(e) => Err(jobs_problem(e)),
        }
    }

    async fn job_action(&self, raw_id: &str, action: &str) -> Answer {
        fleet_jobs::spec::validate_job_id(raw_id)
            .map_err(|e| Problem::invalid_parameter("id", e))?;
        let (action, reason) = match action {
            "pause" => (JobAction::Pause, None),
            "resume" => (JobAction::Resume, None),
            _ => (JobAction::Cancel, Some("cancelled through the fleet API")),
        };
        self.jobs
            .transition(raw_id, action, reason)
            .await
            .map_err(jobs_problem)?;
        self.job(raw_id).await
    }
}

/// Answers one API Gateway event (payload format 2.0) with lambda_http's own conversions, as
/// the Lambda runtime would: what the local stack's Invoke API calls.
pub async fn handle_event(api: std::sync::Arc<Api>, event: Value) -> Result<Value, String> {
    use lambda_http::Service;
    // The purge this function asks of itself (DELETE /robots/{id}), invoked asynchronously.
    if let Some(robot) = event.get("purge").and_then(|p| p["robotId"].as_str()) {
        return api.purge.run(robot).await;
    }
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(event)
        .map_err(|e| format!("the event is not an API Gateway request: {e}"))?;
    let mut adapter = lambda_http::Adapter::from(lambda_http::service_fn(move |req: Request| {
        let api = api.clone();
        async move { Ok::<_, std::convert::Infallible>(api.handle(req).await) }
    }));
    let response = adapter
        .call(lambda_http::LambdaEvent::new(
            request,
            lambda_http::Context::default(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    serde_json::to_value(response).map_err(|e| e.to_string())
}

fn json_body(request: &Request) -> Result<Value, Problem> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(Problem::unsupported_media_type(content_type));
    }
    let bytes: &[u8] = request.body().as_ref();
    serde_json::from_slice(bytes).map_err(|e| Problem::invalid_body(format!("not JSON: {e}")))
}

fn shadow_problem<E: ProvideErrorMetadata + std::error::Error + 'static, R>(
    robot: &str,
    e: &aws_sdk_iotdataplane::error::SdkError<E, R>,
) -> Problem
where
    R: std::fmt::Debug,
{
    match e.code() {
        Some("ResourceNotFoundException") => {
            Problem::not_found(format!("no robot {robot} (it has no shadow)"))
        }
        Some("ThrottlingException") => {
            Problem::throttled(format!("the Device Shadow service throttled {robot}"))
        }
        Some("ConflictException") => Problem::conflict(format!(
            "robot {robot}'s shadow changed during the update; send the command again"
        )),
        _ => Problem::unavailable(format!(
            "the Device Shadow service: {}",
            fleet_aws::error::describe(e)
        )),
    }
}

fn jobs_problem(e: JobsError) -> Problem {
    match e {
        JobsError::NotFound(job) => Problem::not_found(format!("no job {job}")),
        JobsError::Transition(t) => Problem::conflict(t.to_string()),
        other => Problem::unavailable(other.to_string()),
    }
}

/// The robot as `GET /robots/{id}` shows it: the shadow's reported and desired state, the
/// connection from presence events, the last missions.
pub fn robot_view(
    id: &str,
    shadow: Option<Value>,
    presence: Option<Value>,
    missions: Vec<Value>,
) -> Value {
    let state = shadow.map(|s| {
        let mut out = Map::new();
        for key in ["reported", "desired", "version", "updatedAt"] {
            if let Some(v) = s.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        Value::Object(out)
    });
    let connection = match presence {
        // No presence event indexed yet: the robot's connection is not known.
        None => json!({ "status": "unknown" }),
        Some(p) => {
            let connected = p["connected"] == true;
            let mut c = json!({
                "status": if connected { "connected" } else { "disconnected" },
                "lastSeenAt": p["lastSeenAt"],
            });
            if let Some(reason) = p.get("disconnectReason").filter(|r| !r.is_null()) {
                c["disconnectReason"] = reason.clone();
            }
            c
        }
    };
    json!({
        "robotId": id,
        "state": state,
        "connection": connection,
        "lastMissions": missions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_exactly_its_variables() {
        let env: std::collections::HashMap<&str, &str> =
            Config::ENV_VARS.iter().map(|k| (*k, "x")).collect();
        assert!(Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).is_ok());
        for missing in Config::ENV_VARS {
            let err = Config::from_lookup(|k| {
                (k != *missing)
                    .then(|| env.get(k).map(|v| v.to_string()))
                    .flatten()
            })
            .unwrap_err();
            assert_eq!(err.0, *missing);
        }
    }

    #[test]
    fn the_robot_view_says_unknown_without_presence() {
        let v = robot_view(
            "rb-1",
            Some(
                json!({"docType": "shadow", "reported": {"battery": 80}, "version": 3, "updatedAt": "2026-11-29T06:00:00Z"}),
            ),
            None,
            vec![],
        );
        assert_eq!(v["state"]["reported"]["battery"], 80);
        assert!(v["state"].get("docType").is_none());
        assert_eq!(v["connection"], json!({"status": "unknown"}));
        let v = robot_view(
            "rb-1",
            None,
            Some(
                json!({"connected": false, "lastSeenAt": "2026-11-29T06:00:00Z", "disconnectReason": "MQTT_KEEP_ALIVE_TIMEOUT"}),
            ),
            vec![],
        );
        assert_eq!(v["state"], Value::Null);
        assert_eq!(v["connection"]["status"], "disconnected");
        assert_eq!(
            v["connection"]["disconnectReason"],
            "MQTT_KEEP_ALIVE_TIMEOUT"
        );
    }
}
