//! `robofleet job status|pause|resume|cancel ID`: a fleet job's state, and an operator's hand on
//! it. All four work on the jobs table (the stack's `JobsTableName` output), so they work the
//! same against an AWS account and the local stack: the worker reads the job's state before
//! every chunk and every 500 lines, so a pause or cancel takes effect within seconds, and the
//! state machines see it in the worker's answers (docs/jobs.md).

use fleet_aws::jobs::{JobRecord, JobsTable};
use fleet_jobs::JobAction;
use serde::Serialize;

use crate::error::JobError;

/// Where the jobs are. The `robofleet` command fills what is not given from the
/// `robofleet dev` report.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JobsTarget {
    /// AWS endpoint (the local stack's AWS front); default: the dev report's, else the SDK's own.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint: Option<String>,
    /// The jobs table (the stack's `JobsTableName` output); default: the dev report's.
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

/// A job as `status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub job_id: String,
    pub state: String,
    pub reason: Option<String>,
    pub action: String,
    pub succeeded: u64,
    pub failed: u64,
    pub bad_lines: u64,
    pub skipped: u64,
    pub in_doubt: u64,
    /// Lines read so far (the cursor loop's position; the map does not keep one).
    pub lines_read: u64,
    pub bytes_read: u64,
    pub input_bytes: Option<u64>,
    pub rate_factor: f64,
    pub input: String,
    pub created_at: u64,
    pub updated_at: u64,
}

impl JobView {
    pub fn of(job: &JobRecord) -> JobView {
        let c = &job.counters;
        JobView {
            job_id: job.job_id.clone(),
            state: job.state.as_str().to_string(),
            reason: job.reason.clone(),
            action: job.spec.command.action.clone(),
            succeeded: c.succeeded,
            failed: c.failed,
            bad_lines: c.bad_lines,
            skipped: c.skipped,
            in_doubt: c.in_doubt,
            lines_read: job.cursor.line,
            bytes_read: job.cursor.offset,
            input_bytes: job.input_size,
            rate_factor: job.rate_factor,
            input: format!("s3://{}/{}", job.spec.input.bucket, job.spec.input.key),
            created_at: job.created_at,
            updated_at: job.updated_at,
        }
    }

    /// Readable lines.
    pub fn to_text(&self) -> String {
        let read = match self.input_bytes {
            Some(total) if total > 0 => format!(
                "{} lines, {:.1}% of {} bytes",
                self.lines_read,
                self.bytes_read as f64 * 100.0 / total as f64,
                total
            ),
            _ => format!("{} lines", self.lines_read),
        };
        let mut out = format!(
            "job {}: {}{}\n  command   {}\n  input     {} (read: {read})\n  robots    {} succeeded, {} failed, {} bad lines, {} skipped (sent before), {} in doubt\n",
            self.job_id,
            self.state,
            self.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            self.action,
            self.input,
            self.succeeded,
            self.failed,
            self.bad_lines,
            self.skipped,
            self.in_doubt,
        );
        if self.rate_factor < 1.0 {
            out.push_str(&format!(
                "  rate      adaptive factor {:.2} (lowered by throttling or errors)\n",
                self.rate_factor
            ));
        }
        out
    }
}

/// Runs one operator command.
pub async fn run(command: JobOps, target: JobsTarget) -> Result<(), JobError> {
    let table = target.table.clone().ok_or(JobError::NoTable)?;
    let sdk = target
        .aws
        .sdk_config(target.aws_endpoint.as_deref())
        .await?;
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
