//! `POST /jobs`: submit a fleet job and start its state machine, as `robofleet job run` does.
//!
//! The body is a job document (docs/jobs.md, [`JobSpec`]) with two more members:
//! - `jobId`: 1-64 letters, digits, `-`, `_`; default `job-<ULID>`. Sending the same document
//!   with the same id again is safe: it answers the job (200) and starts nothing new;
//! - `machine`: `loop` (default: rate, ramp, adaptive rate, windows, pause) or `map`.
//!
//! Before anything is written, the document is validated field by field (the command against
//! schemas/job-command.schema.json), the input must be in the stack's jobs bucket under
//! `inputs/` (the only place the worker and the Distributed Map may read), and it must exist
//! (`HeadObject`). Then [`JobsTable::launch`] puts the job in the jobs table and calls Step
//! Functions' `StartExecution` with the job's fixed first execution name. 201 with the job and a
//! `Location`; 409 when the id holds another job; 422 for a document that cannot run.

use aws_sdk_s3::error::ProvideErrorMetadata;
use fleet_aws::jobs::{JobView, JobsError, JobsTable};
use fleet_jobs::{Commands, JobSpec, Machine};
use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use crate::Problem;

/// What a submission asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub job_id: String,
    pub machine: Machine,
    pub spec: JobSpec,
}

/// Reads and checks a `POST /jobs` body: every problem names its field.
pub fn parse_submission(
    body: Value,
    jobs_bucket: &str,
    commands: &Commands,
) -> Result<Submission, Problem> {
    let Value::Object(mut doc) = body else {
        return Err(Problem::invalid_body(
            "the body must be a JSON object (a job document)",
        ));
    };
    let job_id = match doc.remove("jobId") {
        None => format!("job-{}", ulid::Ulid::new().to_string().to_lowercase()),
        Some(Value::String(id)) => id,
        Some(other) => {
            return Err(Problem::invalid_job(format!(
                "jobId: must be a string, not {other}"
            )));
        }
    };
    fleet_jobs::spec::validate_job_id(&job_id).map_err(|e| Problem::invalid_job(e.to_string()))?;
    let machine = match doc.remove("machine") {
        None => Machine::default(),
        Some(Value::String(m)) => m
            .parse()
            .map_err(|e| Problem::invalid_job(format!("machine: {e}")))?,
        Some(other) => {
            return Err(Problem::invalid_job(format!(
                "machine: must be \"loop\" or \"map\", not {other}"
            )));
        }
    };
    let spec: JobSpec = serde_json::from_value(Value::Object(doc))
        .map_err(|e| Problem::invalid_job(format!("job document: {e}")))?;
    spec.validate(commands)
        .map_err(|e| Problem::invalid_job(e.to_string()))?;
    if spec.input.bucket != jobs_bucket || !spec.input.key.starts_with("inputs/") {
        return Err(Problem::invalid_job(format!(
            "input: s3://{}/{} is outside the jobs' inputs: upload the robot list to s3://{jobs_bucket}/inputs/ (the only place the job's worker may read)",
            spec.input.bucket, spec.input.key
        )));
    }
    Ok(Submission {
        job_id,
        machine,
        spec,
    })
}

/// Submits jobs.
#[derive(Debug, Clone)]
pub struct Submitter {
    pub jobs: JobsTable,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub bucket: String,
    pub loop_machine: String,
    pub map_machine: String,
}

impl Submitter {
    /// `POST /jobs` with a parsed body.
    pub async fn submit(&self, s: Submission) -> Result<(StatusCode, Value), Problem> {
        let key = &s.spec.input.key;
        if let Err(e) = self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            // Without s3:ListBucket, S3 answers a missing key with 403: under inputs/ of the
            // jobs bucket, which this function may read, both mean it is not there.
            let status = e.raw_response().map(|r| r.status().as_u16());
            return Err(match status {
                Some(403 | 404) => Problem::invalid_job(format!(
                    "input: s3://{}/{key} does not exist; upload the robot list first",
                    self.bucket
                )),
                _ if e.code() == Some("SlowDown") => Problem::throttled(format!(
                    "S3 throttled the check of s3://{}/{key}",
                    self.bucket
                )),
                _ => Problem::unavailable(format!(
                    "checking s3://{}/{key}: {}",
                    self.bucket,
                    fleet_aws::error::describe(&e)
                )),
            });
        }
        let machine_arn = match s.machine {
            Machine::Loop => &self.loop_machine,
            Machine::Map => &self.map_machine,
        };
        let launched = self
            .jobs
            .launch(&self.sfn, machine_arn, s.machine, &s.job_id, &s.spec)
            .await
            .map_err(|e| match e {
                JobsError::Conflict { .. } => Problem::conflict(e.to_string()),
                JobsError::NotStarted { retryable, .. } => {
                    let detail = format!("{e}; send the same request again to start it");
                    if retryable {
                        Problem::unavailable(detail)
                    } else {
                        Problem::internal(detail)
                    }
                }
                other => Problem::unavailable(other.to_string()),
            })?;
        let mut view = json!(JobView::of(&launched.job));
        if let Some(v) = view.as_object_mut() {
            v.insert("executionArn".into(), json!(launched.execution_arn));
        }
        let status = if launched.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(patch: Value) -> Value {
        let mut v = json!({
            "command": {"action": "dock"},
            "input": {"bucket": "jobs-b", "key": "inputs/a.jsonl", "format": "jsonl"},
        });
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    }

    fn refused(patch: Value) -> Problem {
        parse_submission(doc(patch), "jobs-b", &Commands::new()).unwrap_err()
    }

    #[test]
    fn a_minimal_document_runs_on_the_loop_under_a_new_id() {
        let s = parse_submission(doc(json!({})), "jobs-b", &Commands::new()).unwrap();
        assert!(
            s.job_id.starts_with("job-") && s.job_id.len() == 30,
            "{}",
            s.job_id
        );
        assert_eq!(s.machine, Machine::Loop);
        let s = parse_submission(
            doc(json!({"jobId": "beta-1", "machine": "map"})),
            "jobs-b",
            &Commands::new(),
        )
        .unwrap();
        assert_eq!((s.job_id.as_str(), s.machine), ("beta-1", Machine::Map));
    }

    #[test]
    fn each_problem_names_its_field() {
        for (patch, field) in [
            (json!({"jobId": "a/b"}), "jobId"),
            (json!({"jobId": 7}), "jobId"),
            (json!({"machine": "sfn"}), "machine"),
            (json!({"command": {"action": "explode"}}), "command"),
            (json!({"command": {"action": "schedule"}}), "command"),
            (json!({"rollout": {"maximumPerMinute": 0}}), "rollout"),
            (json!({"windows": "someday"}), "windows"),
            (json!({"colour": "red"}), "colour"),
            (
                json!({"input": {"bucket": "elsewhere", "key": "inputs/a.jsonl", "format": "jsonl"}}),
                "input",
            ),
            (
                json!({"input": {"bucket": "jobs-b", "key": "reports/a.jsonl", "format": "jsonl"}}),
                "input",
            ),
        ] {
            let p = refused(patch.clone());
            assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{patch}: {p:?}");
            assert!(p.detail.contains(field), "{patch}: {}", p.detail);
        }
        let p = parse_submission(json!([1]), "jobs-b", &Commands::new()).unwrap_err();
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
    }
}
