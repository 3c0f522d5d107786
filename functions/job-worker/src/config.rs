//! The job-worker's configuration, from its environment (template.yaml sets exactly these).

use std::time::Duration;

use fleet_lambda::ConfigError;
use fleet_lambda::config::Env;

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `JOBS_TABLE`: jobs, line claims, batch markers.
    pub jobs_table: String,
    /// `JOBS_BUCKET`: where failure reports are written (`reports/<job>/...`).
    pub reports_bucket: String,
    /// `JOB_DEADLINE_MARGIN_MS`: stop starting lines when less than this is left, so the lines in
    /// flight finish and the progress is recorded before Lambda's deadline.
    pub margin: Duration,
    /// `JOB_READ_CHUNK_BYTES`: the size of each ranged GET.
    pub chunk_bytes: u64,
    /// `JOB_ITERATIONS_PER_EXECUTION`: after this many invocations the cursor loop continues as
    /// a new execution (Step Functions keeps at most 25,000 history events per execution).
    pub iterations_per_execution: u64,
}

impl Config {
    /// The environment variables [`Config`] reads (template.yaml will set exactly these when the
    /// jobs machines are added to it).
    pub const ENV_VARS: &'static [&'static str] = &[
        "JOBS_TABLE",
        "JOBS_BUCKET",
        "JOB_DEADLINE_MARGIN_MS",
        "JOB_READ_CHUNK_BYTES",
        "JOB_ITERATIONS_PER_EXECUTION",
    ];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::from_lookup(&lookup);
        let margin_ms: u64 = env.parse("JOB_DEADLINE_MARGIN_MS")?;
        let chunk_bytes: u64 = env.parse("JOB_READ_CHUNK_BYTES")?;
        if !(4_096..=64 * 1024 * 1024).contains(&chunk_bytes) {
            return Err(ConfigError::Invalid {
                name: "JOB_READ_CHUNK_BYTES",
                value: chunk_bytes.to_string(),
                problem: "must be within 4 KiB-64 MiB".into(),
            });
        }
        let iterations: u64 = env.parse("JOB_ITERATIONS_PER_EXECUTION")?;
        if !(1..=2_000).contains(&iterations) {
            return Err(ConfigError::Invalid {
                name: "JOB_ITERATIONS_PER_EXECUTION",
                value: iterations.to_string(),
                problem: "must be within 1-2000 (an iteration that waits is 11 history events of the 25,000 an execution may have)".into(),
            });
        }
        Ok(Config {
            jobs_table: env.required("JOBS_TABLE")?,
            reports_bucket: env.required("JOBS_BUCKET")?,
            margin: Duration::from_millis(margin_ms),
            chunk_bytes,
            iterations_per_execution: iterations,
        })
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}
