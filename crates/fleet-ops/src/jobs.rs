//! `robofleet job run|status|pause|resume|cancel`: fleet jobs, from an operator's seat. All of
//! them work the same against an AWS account and the local stack: the stack's outputs
//! (CloudFormation; `robofleet dev` keeps a record of the local stack's) name the jobs table,
//! the jobs bucket and the two state machines.
//!
//! - `run FILE --command ...` uploads the robot list to the jobs bucket (`inputs/<job>.<ext>`),
//!   submits the job and starts its state machine as `POST /jobs` does
//!   ([`JobsTable::launch`]), shows progress from the jobs table and `ListExecutions` until no
//!   execution of the job runs, and ends with a summary.
//! - `status|pause|resume|cancel ID` work on the jobs table: the worker reads the job's state
//!   before every chunk and every 500 lines, so a pause or cancel takes effect within seconds,
//!   and the state machines see it in the worker's answers (docs/jobs.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
pub use fleet_aws::jobs::JobView;
use fleet_aws::jobs::{JobRecord, JobsTable};
use fleet_jobs::spec::{Input, Rollout};
use fleet_jobs::{
    AbortRule, Adaptive, CommandTemplate, Commands, InputFormat, JobAction, JobSpec, Machine,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::JobError;

/// Where the jobs are. The `robofleet` command fills what is not given from the
/// `robofleet dev` report.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JobsTarget {
    /// AWS endpoint (the local stack's AWS front); default: the dev report's, else the SDK's own.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint: Option<String>,
    /// The stack whose outputs name the jobs table, bucket and state machines; default: the dev
    /// report's.
    #[arg(long, global = true)]
    pub stack: Option<String>,
    /// The jobs table (the stack's `JobsTableName` output), for status, pause, resume and
    /// cancel; default: the stack's output.
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// Profile and region (the local stack: the dev report's region).
    #[command(flatten)]
    pub aws: fleet_aws::config::AwsAccess,
}

/// The operator's job subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum JobOps {
    /// A job's state, counters and position in its input.
    Status {
        /// The job id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop sending: the worker finishes the lines in flight, records its place and waits.
    Pause { id: String },
    /// Go on from where the job paused.
    Resume { id: String },
    /// End the job: nothing more is sent; what was sent stays sent.
    Cancel {
        id: String,
        /// Why (kept with the job).
        #[arg(long, default_value = "cancelled by an operator")]
        reason: String,
    },
}

/// Runs one operator command.
pub async fn run(command: JobOps, target: JobsTarget) -> Result<(), JobError> {
    let sdk = target
        .aws
        .sdk_config(target.aws_endpoint.as_deref())
        .await?;
    let table = match (&target.table, &target.stack) {
        (Some(t), _) => t.clone(),
        (None, Some(stack)) => {
            JobStack::from_outputs(&sdk, stack)
                .await
                .map_err(|e| JobError::Stack(e.to_string()))?
                .table
        }
        (None, None) => return Err(JobError::NoTable),
    };
    let jobs = JobsTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let (id, action, reason) = match command {
        JobOps::Status { id, json } => {
            let view = JobView::of(&jobs.require(&id).await?);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&view).unwrap_or_default()
                );
            } else {
                print!("{}", view.to_text());
            }
            return Ok(());
        }
        JobOps::Pause { id } => (id, JobAction::Pause, None),
        JobOps::Resume { id } => (id, JobAction::Resume, None),
        JobOps::Cancel { id, reason } => (id, JobAction::Cancel, Some(reason)),
    };
    let state = jobs.transition(&id, action, reason.as_deref()).await?;
    println!("job {id}: {}", state.as_str());
    Ok(())
}

/// `robofleet job run`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobRunArgs {
    /// The robots: JSONL (`{"robotId": ..., "params": {...}}` per line) or CSV (a `robotId`
    /// column; other columns are parameters).
    pub file: PathBuf,
    /// The command (schemas/job-command.schema.json): `{"action": ..., "params": {...}}`, or an
    /// action alone (`dock`).
    #[arg(long)]
    pub command: String,
    /// The job id (1-64 letters, digits, `-`, `_`); default: `job-<ULID>`.
    #[arg(long)]
    pub id: Option<String>,
    /// Which state machine runs it: `loop` (rate, ramp, windows, pause) or `map` (unordered
    /// fan-out in batches).
    #[arg(long, default_value = "loop")]
    pub machine: Machine,
    /// The input's format; default: from the file name (`.csv`, else JSONL).
    #[arg(long)]
    pub format: Option<InputFormat>,
    /// A job document (docs/jobs.md) for rollout, abort, startAt, windows and concurrency; the
    /// command and input come from this command line.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Rate cap, robots per minute.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Lower the rate when throttling or errors rise, raise it when they fall.
    #[arg(long)]
    pub adaptive: bool,
    /// Abort when more than this percentage of robots failed...
    #[arg(long)]
    pub abort_percent: Option<f64>,
    /// ...once at least this many were tried.
    #[arg(long, default_value_t = 100)]
    pub abort_min: u64,
    /// Shadow updates in flight.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Write the summary as JSON to this file (`-`: stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Why `job run` failed before the job ended.
#[derive(Debug, thiserror::Error)]
pub enum JobRunError {
    #[error("{0}")]
    Input(String),
    /// The stack has no such output (not a Robofleet stack, or one from before jobs).
    #[error("stack {stack} has no output {output}: is it a Robofleet stack with the jobs part?")]
    NoOutput { stack: String, output: &'static str },
    #[error(transparent)]
    Stack(#[from] crate::error::StatusError),
    #[error(transparent)]
    Credentials(#[from] fleet_aws::config::CredentialsError),
    #[error(transparent)]
    Jobs(#[from] fleet_aws::jobs::JobsError),
    #[error("watching the job's executions: {0}")]
    Executions(String),
    #[error("uploading {path} to s3://{bucket}/{key}: {message}")]
    Upload {
        path: PathBuf,
        bucket: String,
        key: String,
        message: String,
    },
}

/// How a job run ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRunSummary {
    pub job_id: String,
    pub machine: Machine,
    pub state: String,
    pub reason: Option<String>,
    pub succeeded: u64,
    pub failed: u64,
    pub bad_lines: u64,
    pub skipped: u64,
    pub in_doubt: u64,
    pub lines: u64,
    pub seconds: f64,
    pub lines_per_second: f64,
    pub executions: Vec<ExecutionLine>,
    pub input: String,
    /// Where failed and bad lines are reported, with their reasons.
    pub failure_reports: String,
}

impl JobRunSummary {
    /// Whether the job succeeded.
    pub fn succeeded(&self) -> bool {
        self.state == "succeeded"
    }

    /// Readable lines.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "job {} ({} machine): {}{}\n  robots      {} succeeded, {} failed, {} bad lines, {} skipped, {} in doubt\n  speed       {} lines in {:.1} s: {:.0} lines/s\n  input       {}\n",
            self.job_id,
            match self.machine {
                Machine::Loop => "cursor loop",
                Machine::Map => "Distributed Map",
            },
            self.state,
            self.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            self.succeeded,
            self.failed,
            self.bad_lines,
            self.skipped,
            self.in_doubt,
            self.lines,
            self.seconds,
            self.lines_per_second,
            self.input,
        );
        if self.failed + self.bad_lines > 0 {
            out.push_str(&format!("  failures    {}\n", self.failure_reports));
        }
        out.push_str(&format!("  executions  {}\n", self.executions.len()));
        for e in &self.executions {
            if e.status == "FAILED" {
                out.push_str(&format!(
                    "    {} failed: {}: {}\n",
                    e.name,
                    e.error.as_deref().unwrap_or_default(),
                    e.cause.as_deref().unwrap_or_default()
                ));
            }
        }
        out
    }
}

/// The command of `--command`: a JSON command template, or an action alone.
pub fn parse_command(text: &str) -> Result<CommandTemplate, String> {
    let t = text.trim();
    if t.starts_with('{') {
        serde_json::from_str(t).map_err(|e| format!("--command is not a command object: {e}"))
    } else {
        serde_json::from_value(json!({"action": t})).map_err(|e| e.to_string())
    }
}

fn format_of(args: &JobRunArgs) -> InputFormat {
    args.format
        .unwrap_or_else(|| match args.file.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => InputFormat::Csv,
            _ => InputFormat::Jsonl,
        })
}

/// The job document of a run: `--spec`'s rollout and windows, this command's command and input,
/// and the flags over both; validated (command schema included) before anything is sent.
pub fn job_spec(args: &JobRunArgs, bucket: &str, key: &str) -> Result<JobSpec, JobRunError> {
    let mut spec = match &args.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| JobRunError::Input(format!("reading {}: {e}", path.display())))?;
            let mut v: Value = serde_json::from_str(&text)
                .map_err(|e| JobRunError::Input(format!("{}: {e}", path.display())))?;
            // The command and input of the command line win; the document needs none.
            v["command"] = json!({"action": "reboot"});
            v["input"] = json!({"bucket": bucket, "key": key, "format": "jsonl"});
            serde_json::from_value::<JobSpec>(v)
                .map_err(|e| JobRunError::Input(format!("{}: {e}", path.display())))?
        }
        None => JobSpec {
            command: CommandTemplate {
                action: String::new(),
                params: Default::default(),
            },
            input: Input {
                bucket: String::new(),
                key: String::new(),
                format: InputFormat::Jsonl,
            },
            rollout: Rollout::default(),
            abort: None,
            start_at: None,
            windows: None,
            concurrency: None,
        },
    };
    spec.command = parse_command(&args.command).map_err(JobRunError::Input)?;
    spec.input = Input {
        bucket: bucket.to_string(),
        key: key.to_string(),
        format: format_of(args),
    };
    if let Some(rate) = args.rate {
        spec.rollout.maximum_per_minute = Some(rate);
    }
    if args.adaptive {
        spec.rollout.adaptive.get_or_insert_with(Adaptive::default);
    }
    if let Some(p) = args.abort_percent {
        spec.abort = Some(AbortRule {
            threshold_percentage: p,
            min_number_of_executed_things: args.abort_min,
        });
    }
    if let Some(c) = args.concurrency {
        spec.concurrency = Some(c);
    }
    spec.validate(&Commands::new())
        .map_err(|e| JobRunError::Input(e.to_string()))?;
    Ok(spec)
}

/// `job-<ULID>`: unique, and sorted by creation time.
fn default_job_id() -> String {
    format!("job-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// One execution of the job, as ListExecutions and DescribeExecution show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionLine {
    pub name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, ...
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The job's executions of `machine_arn` (named `<job>-<iteration>`) in `status` (any: `None`),
/// oldest first.
async fn job_executions(
    sfn: &aws_sdk_sfn::Client,
    machine_arn: &str,
    job_id: &str,
    status: Option<ExecutionStatus>,
) -> Result<Vec<aws_sdk_sfn::types::ExecutionListItem>, JobRunError> {
    let prefix = format!("{job_id}-");
    let iteration = |name: &str| {
        name.strip_prefix(&prefix)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let mut out = Vec::new();
    let mut pages = sfn
        .list_executions()
        .state_machine_arn(machine_arn)
        .set_status_filter(status)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| JobRunError::Executions(fleet_aws::error::describe(&e)))?;
        out.extend(
            page.executions
                .into_iter()
                .filter(|e| iteration(&e.name).is_some()),
        );
    }
    out.sort_by_key(|e| iteration(&e.name));
    Ok(out)
}

/// The job's executions for the summary: the failed ones with their error (DescribeExecution).
async fn execution_lines(
    sfn: &aws_sdk_sfn::Client,
    machine_arn: &str,
    job_id: &str,
) -> Result<Vec<ExecutionLine>, JobRunError> {
    let mut out = Vec::new();
    for e in job_executions(sfn, machine_arn, job_id, None).await? {
        let (mut error, mut cause) = (None, None);
        if e.status == ExecutionStatus::Failed {
            let d = sfn
                .describe_execution()
                .execution_arn(&e.execution_arn)
                .send()
                .await
                .map_err(|e| JobRunError::Executions(fleet_aws::error::describe(&e)))?;
            (error, cause) = (d.error, d.cause);
        }
        out.push(ExecutionLine {
            name: e.name,
            status: e.status.as_str().to_string(),
            error,
            cause,
        });
    }
    Ok(out)
}

/// Where a stack's jobs live: its outputs `JobsTableName`, `JobsBucketName`,
/// `JobLoopStateMachineArn` and `JobMapStateMachineArn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStack {
    pub table: String,
    pub bucket: String,
    pub loop_machine: String,
    pub map_machine: String,
}

impl JobStack {
    /// From the stack's outputs in CloudFormation: a deployed stack, or the record `robofleet
    /// dev` keeps of the local one.
    pub async fn from_outputs(
        sdk: &aws_config::SdkConfig,
        stack: &str,
    ) -> Result<JobStack, JobRunError> {
        let (_, outputs) = crate::status::stack_outputs(sdk, stack).await?;
        let get = |output: &'static str| {
            outputs
                .get(output)
                .cloned()
                .ok_or_else(|| JobRunError::NoOutput {
                    stack: stack.to_string(),
                    output,
                })
        };
        Ok(JobStack {
            table: get("JobsTableName")?,
            bucket: get("JobsBucketName")?,
            loop_machine: get("JobLoopStateMachineArn")?,
            map_machine: get("JobMapStateMachineArn")?,
        })
    }
}

/// Runs a job on `stack` as the caller `sdk` signs for, showing progress on `progress`.
pub async fn run_job(
    args: &JobRunArgs,
    sdk: &aws_config::SdkConfig,
    stack: &JobStack,
    progress: fleet_console::Progress,
) -> Result<JobRunSummary, JobRunError> {
    let (table, bucket) = (stack.table.clone(), stack.bucket.clone());
    let machine_arn = match args.machine {
        Machine::Loop => stack.loop_machine.clone(),
        Machine::Map => stack.map_machine.clone(),
    };
    let job_id = args.id.clone().unwrap_or_else(default_job_id);
    fleet_jobs::spec::validate_job_id(&job_id).map_err(|e| JobRunError::Input(e.to_string()))?;
    let format = format_of(args);
    let key = format!(
        "inputs/{job_id}.{}",
        if format == InputFormat::Csv {
            "csv"
        } else {
            "jsonl"
        }
    );
    let spec = job_spec(args, &bucket, &key)?;
    let body = std::fs::read(&args.file)
        .map_err(|e| JobRunError::Input(format!("reading {}: {e}", args.file.display())))?;

    // As the operator: upload, then submit and start, as POST /jobs does.
    let s3 = fleet_aws::config::s3_client(sdk);
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(body.into())
        .send()
        .await
        .map_err(|e| JobRunError::Upload {
            path: args.file.clone(),
            bucket: bucket.clone(),
            key: key.clone(),
            message: fleet_aws::error::describe(&e),
        })?;
    let jobs = JobsTable::new(aws_sdk_dynamodb::Client::new(sdk), &table);
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let started = Instant::now();
    jobs.launch(&sfn, &machine_arn, args.machine, &job_id, &spec)
        .await?;

    // Until no execution of the job runs (a continued loop always has one running).
    let mut line = fleet_console::ProgressLine::new(progress);
    let mut rate = fleet_console::Rate::new(Duration::from_secs(5));
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let running =
            job_executions(&sfn, &machine_arn, &job_id, Some(ExecutionStatus::Running)).await?;
        if running.is_empty() {
            break;
        }
        if let Ok(Some(job)) = jobs.get(&job_id).await {
            let done = done_lines(&job);
            let per_s = rate.sample(started.elapsed().as_secs_f64(), done);
            line.update(format!(
                "job {job_id} {}: {} succeeded, {} failed, {} bad lines, {:.0} lines/s",
                job.state.as_str(),
                job.counters.succeeded,
                job.counters.failed,
                job.counters.bad_lines,
                per_s
            ));
        }
    }
    line.finish();
    let seconds = started.elapsed().as_secs_f64();
    let executions = execution_lines(&sfn, &machine_arn, &job_id).await?;
    let job = jobs.require(&job_id).await?;
    let lines = done_lines(&job);
    let c = job.counters;
    Ok(JobRunSummary {
        job_id: job_id.clone(),
        machine: args.machine,
        state: job.state.as_str().to_string(),
        reason: job.reason.clone(),
        succeeded: c.succeeded,
        failed: c.failed,
        bad_lines: c.bad_lines,
        skipped: c.skipped,
        in_doubt: c.in_doubt,
        lines,
        seconds,
        lines_per_second: if seconds > 0.0 {
            lines as f64 / seconds
        } else {
            0.0
        },
        executions,
        input: format!("s3://{bucket}/{key}"),
        failure_reports: format!("s3://{bucket}/reports/{job_id}/"),
    })
}

fn done_lines(job: &JobRecord) -> u64 {
    let c = &job.counters;
    c.succeeded + c.failed + c.bad_lines + c.skipped + c.in_doubt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(command: &str) -> JobRunArgs {
        JobRunArgs {
            file: PathBuf::from("robots.csv"),
            command: command.into(),
            id: None,
            machine: Machine::Loop,
            format: None,
            spec: None,
            rate: Some(600),
            adaptive: true,
            abort_percent: Some(5.0),
            abort_min: 50,
            concurrency: None,
            json: None,
        }
    }

    #[test]
    fn the_command_line_makes_a_valid_job_document() {
        let spec = job_spec(&args("dock"), "b", "inputs/j.csv").unwrap();
        assert_eq!(spec.command.action, "dock");
        assert_eq!(spec.input.format, InputFormat::Csv);
        assert_eq!(spec.rollout.maximum_per_minute, Some(600));
        assert!(spec.rollout.adaptive.is_some());
        assert_eq!(spec.abort.unwrap().min_number_of_executed_things, 50);
        let s = job_spec(
            &args(r#"{"action": "setting", "params": {"name": "suctionPower", "value": "max"}}"#),
            "b",
            "k",
        )
        .unwrap();
        assert_eq!(s.command.params["name"], "suctionPower");
    }

    #[test]
    fn a_command_outside_the_schema_is_refused_before_anything_is_sent() {
        let e = job_spec(&args("explode"), "b", "k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("explode") || e.contains("action"), "{e}");
        let e = job_spec(&args(r#"{"action": "schedule"}"#), "b", "k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("params"), "{e}");
        let e = job_spec(&args("{nope"), "b", "k").unwrap_err().to_string();
        assert!(e.contains("--command"), "{e}");
    }
}
