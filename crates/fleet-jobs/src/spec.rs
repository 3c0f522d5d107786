//! The job document: what `robofleet job run` and `POST /jobs` submit.
//!
//! ```json
//! {
//!   "command": { "action": "firmware-channel", "params": { "channel": "beta" } },
//!   "input": { "bucket": "robofleet-jobs", "key": "inputs/beta.csv", "format": "csv" },
//!   "rollout": {
//!     "maximumPerMinute": 6000,
//!     "exponentialRate": { "baseRatePerMinute": 60, "incrementFactor": 2, "numberOfSucceededThings": 500 },
//!     "adaptive": {}
//!   },
//!   "abort": { "thresholdPercentage": 5, "minNumberOfExecutedThings": 200 },
//!   "startAt": "2026-12-01T02:00:00Z",
//!   "windows": "weekdays 02:00-05:00 America/New_York",
//!   "concurrency": 16
//! }
//! ```
//!
//! Only `command` and `input` are required. Rate, ramp, adaptive, windows and pause are carried
//! out by the cursor loop; the Distributed Map machine applies the abort rule only (see
//! docs/jobs.md).

use fleet_core::window::Windows;
use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::command::{CommandTemplate, Commands};
use crate::lines::InputFormat;
use crate::rate::{Adaptive, ExponentialRate, RatePlan};
use crate::state::AbortRule;

/// The default cap: 100 shadow updates a second, 2.5% of the account's default Device Shadow
/// quota (4,000 requests/s in us-east-1), which robots share.
pub const DEFAULT_PER_MINUTE: u32 = 6_000;
/// The highest cap accepted: the default Device Shadow quota, 4,000 a second.
pub const MAX_PER_MINUTE: u32 = 240_000;
/// Shadow updates in flight per worker, by default and at most.
pub const DEFAULT_CONCURRENCY: u32 = 16;
pub const MAX_CONCURRENCY: u32 = 64;

/// Where the robot list is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    pub bucket: String,
    pub key: String,
    pub format: InputFormat,
}

/// How fast (see [`crate::rate`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_rate: Option<ExponentialRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<Adaptive>,
}

/// A job document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    pub command: CommandTemplate,
    pub input: Input,
    #[serde(default)]
    pub rollout: Rollout,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortRule>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// Maintenance windows (`weekdays 02:00-05:00 America/New_York; ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// A job document that cannot run, naming the field and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("job document: {field}: {problem}")]
pub struct SpecError {
    pub field: &'static str,
    pub problem: String,
}

fn err(field: &'static str, problem: impl ToString) -> SpecError {
    SpecError {
        field,
        problem: problem.to_string(),
    }
}

/// The longest job id: with `-<iteration>` appended it still fits the 80 characters of a Step
/// Functions execution name.
pub const MAX_JOB_ID: usize = 64;

/// Checks a job id: 1-64 letters, digits, `-` and `_` (it names the cursor loop's executions, and
/// S3 report keys).
pub fn validate_job_id(id: &str) -> Result<(), SpecError> {
    if id.is_empty() || id.len() > MAX_JOB_ID {
        return Err(err(
            "jobId",
            format!("{id:?} must be 1-{MAX_JOB_ID} characters"),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(err(
            "jobId",
            format!("{id:?} has {c:?}; use letters, digits, '-' and '_'"),
        ));
    }
    Ok(())
}

/// The name of the cursor loop's execution that starts at `iteration` of job `job_id`: Step
/// Functions names are 1-80 characters of letters, digits, `-` and `_` (a job id is at most 64
/// of those). Every start of a job, and every retry of a continue, uses the same name, so a
/// retried StartExecution finds the execution it started.
pub fn execution_name(job_id: &str, iteration: u64) -> String {
    format!("{job_id}-{iteration}")
}

/// Which of the template's state machines runs a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Machine {
    /// The cursor loop (`JobLoopStateMachine`): rate cap, ramp, adaptive rate, windows, pause and
    /// abort.
    #[default]
    Loop,
    /// The Distributed Map (`JobMapStateMachine`): unordered fan-out in batches, abort rule only.
    Map,
}

impl Machine {
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Loop => "loop",
            Machine::Map => "map",
        }
    }

    /// The first execution's input: the loop reads everything from the jobs table, the map's
    /// ItemReader needs the object.
    pub fn execution_input(self, job_id: &str, input: &Input) -> serde_json::Value {
        match self {
            Machine::Loop => serde_json::json!({"jobId": job_id, "iteration": 0}),
            Machine::Map => serde_json::json!({
                "jobId": job_id, "bucket": input.bucket, "key": input.key,
                "format": if input.format == InputFormat::Csv { "csv" } else { "jsonl" },
            }),
        }
    }
}

impl std::str::FromStr for Machine {
    type Err = String;

    fn from_str(s: &str) -> Result<Machine, String> {
        match s {
            "loop" => Ok(Machine::Loop),
            "map" => Ok(Machine::Map),
            other => Err(format!("{other:?} is not a job machine: loop or map")),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobSpec {
    /// Parses and validates a job document.
    pub fn from_json(text: &str) -> Result<JobSpec, SpecError> {
        let spec: JobSpec = serde_json::from_str(text).map_err(|e| err("(document)", e))?;
        spec.validate(&Commands::new())?;
        Ok(spec)
    }

    /// Checks every field; the command is checked against the schema as it would be sent.
    pub fn validate(&self, commands: &Commands) -> Result<(), SpecError> {
        commands
            .build("job-check", &self.command, &Map::new())
            .map_err(|e| err("command", e))?;
        if self.input.bucket.is_empty() {
            return Err(err("input.bucket", "is empty"));
        }
        if self.input.key.is_empty() {
            return Err(err("input.key", "is empty"));
        }
        let max = self
            .rollout
            .maximum_per_minute
            .unwrap_or(DEFAULT_PER_MINUTE);
        if !(1..=MAX_PER_MINUTE).contains(&max) {
            return Err(err(
                "rollout.maximumPerMinute",
                format!("{max} is outside 1-{MAX_PER_MINUTE}"),
            ));
        }
        if let Some(e) = self.rollout.exponential_rate {
            if !(1..=max).contains(&e.base_rate_per_minute) {
                return Err(err(
                    "rollout.exponentialRate.baseRatePerMinute",
                    format!(
                        "{} is outside 1-{max} (maximumPerMinute)",
                        e.base_rate_per_minute
                    ),
                ));
            }
            if !(1.1..=5.0).contains(&e.increment_factor) {
                return Err(err(
                    "rollout.exponentialRate.incrementFactor",
                    format!("{} is outside 1.1-5 (as IoT Jobs)", e.increment_factor),
                ));
            }
            if e.number_of_succeeded_things == 0 {
                return Err(err(
                    "rollout.exponentialRate.numberOfSucceededThings",
                    "must be at least 1",
                ));
            }
        }
        if let Some(a) = self.rollout.adaptive {
            a.validate().map_err(|p| err("rollout.adaptive", p))?;
        }
        if let Some(a) = self.abort {
            a.validate().map_err(|p| err("abort", p))?;
        }
        self.start_at_unix()?;
        self.windows()?;
        let c = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&c) {
            return Err(err(
                "concurrency",
                format!("{c} is outside 1-{MAX_CONCURRENCY}"),
            ));
        }
        Ok(())
    }

    /// The rate plan.
    pub fn rate_plan(&self) -> RatePlan {
        RatePlan {
            maximum_per_minute: self
                .rollout
                .maximum_per_minute
                .unwrap_or(DEFAULT_PER_MINUTE),
            exponential: self.rollout.exponential_rate,
        }
    }

    /// Shadow updates in flight.
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY) as usize
    }

    /// The start time, unix seconds.
    pub fn start_at_unix(&self) -> Result<Option<i64>, SpecError> {
        self.start_at
            .as_deref()
            .map(|s| {
                s.parse::<jiff::Timestamp>()
                    .map(|t| t.as_second())
                    .map_err(|e| err("startAt", format!("{s:?} is not RFC 3339: {e}")))
            })
            .transpose()
    }

    /// The maintenance windows (none: any time).
    pub fn windows(&self) -> Result<Windows, SpecError> {
        self.windows
            .as_deref()
            .unwrap_or("none")
            .parse()
            .map_err(|e| err("windows", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        r#"{"command":{"action":"dock"},"input":{"bucket":"b","key":"k.jsonl","format":"jsonl"}}"#;

    #[test]
    fn job_ids_fit_an_execution_name() {
        assert!(validate_job_id("beta-channel_2026-12-01").is_ok());
        assert!(validate_job_id(&"a".repeat(MAX_JOB_ID)).is_ok());
        let long = validate_job_id(&"a".repeat(MAX_JOB_ID + 1)).unwrap_err();
        assert!(long.to_string().contains("1-64"), "{long}");
        let bad = validate_job_id("a/b").unwrap_err();
        assert!(bad.to_string().contains("'/'"), "{bad}");
        assert!(validate_job_id("").is_err());
    }

    #[test]
    fn each_machine_starts_from_its_own_input() {
        let s = JobSpec::from_json(MINIMAL).expect("valid");
        assert_eq!(
            Machine::Loop.execution_input("j", &s.input),
            serde_json::json!({"jobId": "j", "iteration": 0})
        );
        assert_eq!(
            Machine::Map.execution_input("j", &s.input),
            serde_json::json!({"jobId": "j", "bucket": "b", "key": "k.jsonl", "format": "jsonl"})
        );
        assert_eq!("map".parse::<Machine>(), Ok(Machine::Map));
        assert!(
            "sfn"
                .parse::<Machine>()
                .unwrap_err()
                .contains("loop or map")
        );
        assert_eq!(execution_name(&"a".repeat(MAX_JOB_ID), 99_999).len(), 70);
    }

    #[test]
    fn a_minimal_document_gets_the_defaults() {
        let s = JobSpec::from_json(MINIMAL).expect("valid");
        assert_eq!(s.rate_plan().per_minute(0), f64::from(DEFAULT_PER_MINUTE));
        assert_eq!(s.concurrency(), DEFAULT_CONCURRENCY as usize);
        assert!(s.windows().expect("none").is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let with = |patch: &str| {
            let mut v: serde_json::Value = serde_json::from_str(MINIMAL).expect("json");
            let p: serde_json::Value = serde_json::from_str(patch).expect("patch");
            for (k, val) in p.as_object().expect("object") {
                v[k] = val.clone();
            }
            JobSpec::from_json(&v.to_string())
                .expect_err(patch)
                .to_string()
        };
        assert!(with(r#"{"command":{"action":"schedule"}}"#).contains("command"));
        assert!(with(r#"{"rollout":{"maximumPerMinute":0}}"#).contains("rollout.maximumPerMinute"));
        assert!(
            with(r#"{"rollout":{"exponentialRate":{"baseRatePerMinute":10,"incrementFactor":9,"numberOfSucceededThings":5}}}"#)
                .contains("incrementFactor")
        );
        assert!(
            with(r#"{"abort":{"thresholdPercentage":0,"minNumberOfExecutedThings":5}}"#)
                .contains("abort")
        );
        assert!(with(r#"{"startAt":"tomorrow"}"#).contains("startAt"));
        assert!(with(r#"{"windows":"daily 02:00-04:00 Nowhere/Land"}"#).contains("windows"));
        assert!(with(r#"{"concurrency":1000}"#).contains("concurrency"));
        assert!(with(r#"{"colour":"red"}"#).contains("colour"));
    }
}
