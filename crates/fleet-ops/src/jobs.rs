//! `robofleet job status|pause|resume|cancel ID`: a fleet job's state, and an operator's hand on
//! it. All four work on the jobs table (the stack's `JobsTableName` output), so they work the
//! same against an AWS account and the local stack: the worker reads the job's state before
//! every chunk and every 500 lines, so a pause or cancel takes effect within seconds, and the
//! state machines see it in the worker's answers (docs/jobs.md).

pub use fleet_aws::jobs::JobView;
use fleet_aws::jobs::JobsTable;
use fleet_jobs::JobAction;

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
