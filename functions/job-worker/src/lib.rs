//! job-worker: works through a fleet job's input and sets its command on every robot's shadow.
//!
//! Two state machines call it (template.yaml):
//! - **the cursor loop** sends `{"jobId", "iteration"}`: the worker reads the job, waits for its
//!   start time and windows (it answers `waitSeconds` and the machine waits), then reads the
//!   input from the job's cursor with ranged GETs of `JOB_READ_CHUNK_BYTES`, and for each line
//!   claims it in the jobs table and sends `UpdateThingShadow` with `desired.command`, at most
//!   `concurrency` in flight, paced to the job's rate. It stops starting lines when less than
//!   `JOB_DEADLINE_MARGIN_MS` is left, or a window closes, or the job was paused or cancelled,
//!   lets the lines in flight finish, and records the cursor (always just after a whole line)
//!   and the counts once. Then it applies the abort rule, and answers `done` when the job is
//!   over;
//! - **the Distributed Map** sends `{"Items": [{"index", "item"}], "BatchInput": {"jobId"}}`:
//!   the same claim and send for each item, counts added once per batch, and the abort rule;
//!   when it fires the worker fails the batch with `JobAborted`, and the map (which tolerates no
//!   failed batch) stops. `{"jobId", "finish": true}` ends a map job.
//!
//! Failures never stop a job by themselves: a line that names no robot, a command that does
//! not pass the schema, a refused update are counted, written with their reason to
//! `s3://JOBS_BUCKET/reports/<job>/`, and the job goes on until the abort rule says otherwise.

pub mod config;
mod report;
mod send;

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use fleet_aws::jobs::{Claim, JobRecord, JobsError, JobsTable};
use fleet_core::timefmt::now_unix_secs as unix_now;
use fleet_jobs::gate::{Gate, gate};
use fleet_jobs::lines::{self, LineBuffer};
use fleet_jobs::{
    AdaptiveState, Commands, Counters, Cursor, InputFormat, JobAction, JobState, Pacer,
};
use fleet_lambda::Deadline;
use futures::StreamExt;
use futures::future::Either;
use futures::stream::FuturesOrdered;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::Config;
pub use report::FailureLine;
pub use send::{SendOutcome, Shadows};

/// How long a paused job's loop waits before looking again.
pub const PAUSED_POLL_SECS: u64 = 60;
/// The longest wait answered at once (the machine asks again after it).
pub const MAX_WAIT_SECS: u64 = 3_600;
/// How often (lines) the worker re-reads the job's state while sending.
const STATE_EVERY_LINES: u64 = 500;
/// A long chunk records its place (cursor, counts, failure report) at least this often, so
/// `robofleet job status` moves and a lost invocation redoes little.
const CHECKPOINT_EVERY_LINES: u64 = 1_000;
const CHECKPOINT_EVERY_SECS: f64 = 5.0;

/// What a state machine sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Event {
    /// A Distributed Map batch.
    Batch {
        #[serde(rename = "Items")]
        items: Vec<BatchItem>,
        #[serde(rename = "BatchInput")]
        input: BatchInput,
    },
    /// A step of the cursor loop, or the end of a map job.
    Step(StepInput),
}

/// One map item: its position in the file (`$$.Map.Item.Index`) and the parsed line.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchItem {
    pub index: u64,
    pub item: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInput {
    pub job_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInput {
    pub job_id: String,
    #[serde(default)]
    pub iteration: u64,
    /// End a Distributed Map job (every batch is done).
    #[serde(default)]
    pub finish: bool,
    /// With `finish`: the machine failed (a map that gave up, a step that kept failing); the
    /// job fails with `cause` unless it already ended (an abort stays an abort).
    #[serde(default)]
    pub failed: bool,
    #[serde(default)]
    pub cause: Option<String>,
}

/// The worker's answer to the cursor loop.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepOutput {
    pub job_id: String,
    pub state: JobState,
    /// The job is over (succeeded, aborted, failed).
    pub done: bool,
    /// Wait this long before the next step (start time, window, paused); 0: go on.
    pub wait_seconds: u64,
    pub iteration: u64,
    /// The execution has run long enough: continue as a new one, named `execution_name`.
    pub continue_as_new: bool,
    /// The name of the execution that continues this one: `<job>-<iteration>`, unique per job
    /// and the same for every retry of the step, so a retried StartExecution starts it once.
    pub execution_name: String,
    pub cursor: Cursor,
    pub counters: Counters,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Lines this invocation handled.
    pub lines: u64,
}

/// The worker's answer to a map batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchOutput {
    pub job_id: String,
    pub counters: Counters,
}

/// Why an invocation failed (Step Functions retries it, or the map stops).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Jobs(#[from] JobsError),
    #[error("reading s3://{bucket}/{key}: {message}")]
    Input {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("writing the failure report: {0}")]
    Report(String),
    /// The input could not be read for now (throttling, a 5xx, the connection): retried.
    #[error("reading the input failed for now: {0}")]
    InputUnavailable(String),
    /// The map must stop: the abort rule fired or the job was cancelled.
    #[error("JobAborted: job {job} is {state}: {reason}")]
    JobAborted {
        job: String,
        state: JobState,
        reason: String,
    },
}

impl WorkerError {
    /// The error's type as Lambda reports it (`errorType`): what a state machine's `Retry` and
    /// `Catch` match on. `JobAborted` ends a Distributed Map; the others are retried.
    pub fn error_type(&self) -> &'static str {
        match self {
            WorkerError::Jobs(_) => "JobsTableError",
            WorkerError::Input { .. } => "JobInputError",
            WorkerError::Report(_) => "JobReportError",
            WorkerError::InputUnavailable(_) => "JobInputUnavailable",
            WorkerError::JobAborted { .. } => "JobAborted",
        }
    }
}

impl From<WorkerError> for lambda_runtime::Diagnostic {
    fn from(e: WorkerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// The handler: clients and the compiled command schema.
pub struct Handler {
    pub config: Config,
    pub jobs: JobsTable,
    s3: aws_sdk_s3::Client,
    shadows: Shadows,
    commands: Commands,
}

/// Builds the handler from an SDK config (the IoT Data Plane endpoint from the environment:
/// `AWS_ENDPOINT_URL_IOT_DATA_PLANE`, or the SDK's default for the region).
pub fn build(config: Config, sdk: &aws_config::SdkConfig) -> Handler {
    build_with_shadows(config, sdk, aws_sdk_iotdataplane::Client::new(sdk))
}

/// Builds the handler with its own IoT Data Plane client (tests and the local stack point it at
/// the front's IoT endpoint).
pub fn build_with_shadows(
    config: Config,
    sdk: &aws_config::SdkConfig,
    shadows: aws_sdk_iotdataplane::Client,
) -> Handler {
    Handler {
        jobs: JobsTable::new(aws_sdk_dynamodb::Client::new(sdk), &config.jobs_table),
        s3: aws_sdk_s3::Client::new(sdk),
        shadows: Shadows::new(shadows),
        commands: Commands::new(),
        config,
    }
}

fn secs_since(origin: tokio::time::Instant) -> f64 {
    origin.elapsed().as_secs_f64()
}

/// One line in flight: where it ends and how it went.
struct Done {
    line: u64,
    end: u64,
    robot: Option<String>,
    outcome: SendOutcome,
}

impl Handler {
    /// Dispatches an event, with the invocation's deadline.
    pub async fn handle(&self, event: Event, deadline: Deadline) -> Result<Value, WorkerError> {
        let out = match event {
            Event::Step(s) if s.finish && s.failed => serde_json::to_value(
                self.fail_from_machine(&s.job_id, s.cause.as_deref())
                    .await?,
            ),
            Event::Step(s) if s.finish => serde_json::to_value(self.finish(&s.job_id).await?),
            Event::Step(s) => {
                serde_json::to_value(self.step(&s.job_id, s.iteration, deadline).await?)
            }
            Event::Batch { items, input } => {
                serde_json::to_value(self.batch(&input.job_id, items, deadline).await?)
            }
        };
        // The outputs are plain structs of strings and numbers: serialising them cannot fail.
        Ok(out.unwrap_or(Value::Null))
    }

    fn output(&self, job: &JobRecord, iteration: u64, wait: u64, lines: u64) -> StepOutput {
        StepOutput {
            job_id: job.job_id.clone(),
            state: job.state,
            done: job.state.is_final(),
            wait_seconds: wait.min(MAX_WAIT_SECS),
            iteration: iteration + 1,
            continue_as_new: (iteration + 1).is_multiple_of(self.config.iterations_per_execution),
            execution_name: fleet_jobs::spec::execution_name(&job.job_id, iteration + 1),
            cursor: job.cursor,
            counters: job.counters,
            reason: job.reason.clone(),
            lines,
        }
    }

    /// One step of the cursor loop.
    pub async fn step(
        &self,
        job_id: &str,
        iteration: u64,
        deadline: Deadline,
    ) -> Result<StepOutput, WorkerError> {
        let mut job = self.jobs.require(job_id).await?;
        match job.state {
            s if s.is_final() => return Ok(self.output(&job, iteration, 0, 0)),
            JobState::Paused => return Ok(self.output(&job, iteration, PAUSED_POLL_SECS, 0)),
            _ => {}
        }
        let spec = &job.spec;
        let start_at = spec.start_at_unix().map_err(|e| self.bad_job(job_id, e))?;
        let windows = spec.windows().map_err(|e| self.bad_job(job_id, e))?;
        let until = match gate(start_at, &windows, unix_now()) {
            Gate::Wait { seconds, reason } => {
                tracing::info!(job = job_id, seconds, reason, "waiting");
                return Ok(self.output(&job, iteration, seconds.max(1) as u64, 0));
            }
            Gate::Open { until } => until,
        };
        if job.state == JobState::Scheduled {
            job.state = self.jobs.transition(job_id, JobAction::Start, None).await?;
        }
        if job.input_size.is_none() {
            match self.open_input(&job).await {
                Ok(j) => job = j,
                Err(WorkerError::Input { message, .. }) => {
                    return self.fail(job_id, iteration, &message).await;
                }
                Err(e) => return Err(e),
            }
        }
        let Chunk { tally, eof, lost } = self.run_chunk(&job, deadline, until).await?;
        let (cursor, delta, lines) = (tally.cursor, tally.unrecorded(), tally.handled);
        let recorded = if lost {
            None
        } else {
            self.jobs
                .progress(
                    job_id,
                    tally.recorded_cursor,
                    cursor,
                    &delta,
                    tally.adaptive.factor,
                )
                .await?
        };
        let Some(mut after) = recorded else {
            // Another attempt of this step recorded it first: report the job as it is.
            let now = self.jobs.require(job_id).await?;
            return Ok(self.output(&now, iteration, 0, 0));
        };
        tracing::info!(
            job = job_id,
            lines,
            succeeded = delta.succeeded,
            failed = delta.failed,
            bad_lines = delta.bad_lines,
            cursor = cursor.offset,
            "chunk recorded"
        );
        if let Some(rule) = after.spec.abort.filter(|r| r.triggered(&after.counters)) {
            let reason = abort_reason(&rule, &after.counters);
            after.state = self
                .transition_quietly(job_id, JobAction::Abort, &reason)
                .await?;
            after.reason = Some(reason);
        } else if eof && after.state == JobState::Running {
            after.state = self
                .transition_quietly(job_id, JobAction::Finish, "every line is done")
                .await?;
        }
        Ok(self.output(&after, iteration, 0, lines))
    }

    /// A transition that may lose a race with an operator: the state it ended in.
    async fn transition_quietly(
        &self,
        job_id: &str,
        action: JobAction,
        reason: &str,
    ) -> Result<JobState, WorkerError> {
        match self.jobs.transition(job_id, action, Some(reason)).await {
            Ok(s) => Ok(s),
            Err(JobsError::Transition(t)) => Ok(t.from),
            Err(e) => Err(e.into()),
        }
    }

    fn bad_job(&self, job_id: &str, e: fleet_jobs::SpecError) -> WorkerError {
        WorkerError::Jobs(JobsError::Damaged {
            job: job_id.into(),
            problem: e.to_string(),
        })
    }

    async fn fail(
        &self,
        job_id: &str,
        iteration: u64,
        why: &str,
    ) -> Result<StepOutput, WorkerError> {
        tracing::error!(job = job_id, why, "the job failed");
        self.transition_quietly(job_id, JobAction::Fail, why)
            .await?;
        let job = self.jobs.require(job_id).await?;
        Ok(self.output(&job, iteration, 0, 0))
    }

    /// Ends a map job.
    pub async fn finish(&self, job_id: &str) -> Result<StepOutput, WorkerError> {
        let job = self.jobs.require(job_id).await?;
        if job.state == JobState::Scheduled {
            self.jobs.transition(job_id, JobAction::Start, None).await?;
        }
        if !job.state.is_final() {
            self.transition_quietly(job_id, JobAction::Finish, "every batch is done")
                .await?;
        }
        let job = self.jobs.require(job_id).await?;
        Ok(self.output(&job, 0, 0, 0))
    }

    /// The machine gave up on the job (its error, caught): the job fails, unless it already
    /// ended.
    pub async fn fail_from_machine(
        &self,
        job_id: &str,
        cause: Option<&str>,
    ) -> Result<StepOutput, WorkerError> {
        let why = format!(
            "the state machine stopped: {}",
            cause.unwrap_or("no cause given")
        );
        let job = self.jobs.require(job_id).await?;
        if !job.state.is_final() {
            tracing::error!(job = job_id, why, "the job failed");
            self.transition_quietly(job_id, JobAction::Fail, &why)
                .await?;
        }
        let job = self.jobs.require(job_id).await?;
        Ok(self.output(&job, 0, 0, 0))
    }

    fn input_error(&self, job: &JobRecord, message: String) -> WorkerError {
        WorkerError::Input {
            bucket: job.spec.input.bucket.clone(),
            key: job.spec.input.key.clone(),
            message,
        }
    }

    /// The first chunk: the input's size and ETag, and a CSV file's header.
    async fn open_input(&self, job: &JobRecord) -> Result<JobRecord, WorkerError> {
        let input = &job.spec.input;
        let head = self
            .s3
            .head_object()
            .bucket(&input.bucket)
            .key(&input.key)
            .send()
            .await
            .map_err(|e| {
                self.input_error(
                    job,
                    format!(
                        "{}: {}",
                        e.code().unwrap_or("error"),
                        fleet_aws::error::chain(&e)
                    ),
                )
            })?;
        let size = head.content_length().unwrap_or(0).max(0) as u64;
        let etag = head.e_tag().map(str::to_string);
        let mut header = None;
        let mut cursor = Cursor::default();
        if input.format == InputFormat::Csv {
            let mut buf = LineBuffer::new(0);
            let mut line = None;
            while line.is_none() && buf.next_offset() < size {
                let bytes = self
                    .read(job, etag.as_deref(), buf.next_offset(), size)
                    .await?;
                buf.push(&bytes);
                line = buf.next_line(buf.next_offset() >= size);
            }
            let line = line.ok_or_else(|| {
                self.input_error(job, "the CSV file is empty: it needs a header row".into())
            })?;
            let text = line
                .text
                .map_err(|e| self.input_error(job, format!("the CSV header: {e}")))?;
            header = Some(lines::csv_header(&text).map_err(|e| self.input_error(job, e))?);
            cursor = Cursor {
                offset: line.end,
                line: 0,
            };
        }
        self.jobs
            .set_input(&job.job_id, size, etag.as_deref(), header.as_deref())
            .await?;
        if cursor != job.cursor {
            self.jobs
                .progress(
                    &job.job_id,
                    job.cursor,
                    cursor,
                    &Counters::default(),
                    job.rate_factor,
                )
                .await?;
        }
        Ok(self.jobs.require(&job.job_id).await?)
    }

    /// One ranged GET from `offset`, of this version of the object.
    async fn read(
        &self,
        job: &JobRecord,
        etag: Option<&str>,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, WorkerError> {
        let last = (offset + self.config.chunk_bytes).min(size) - 1;
        let mut get = self
            .s3
            .get_object()
            .bucket(&job.spec.input.bucket)
            .key(&job.spec.input.key)
            .range(format!("bytes={offset}-{last}"));
        if let Some(etag) = etag {
            get = get.if_match(etag);
        }
        let out = get.send().await.map_err(|e| {
            let code = e.code().unwrap_or("error").to_string();
            match code.as_str() {
                // The input is gone, replaced or refused: the job cannot go on.
                "PreconditionFailed" => self.input_error(
                    job,
                    format!(
                        "{code}: the input file was replaced while the job ran (its ETag changed)"
                    ),
                ),
                "NoSuchKey" | "NoSuchBucket" | "AccessDenied" | "InvalidRange" => {
                    self.input_error(job, format!("{code}: {}", fleet_aws::error::chain(&e)))
                }
                // Throttling, a 5xx, a dropped connection: the step is retried.
                _ => WorkerError::InputUnavailable(format!(
                    "s3://{}/{}: {}",
                    job.spec.input.bucket,
                    job.spec.input.key,
                    fleet_aws::error::describe(&e)
                )),
            }
        })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.input_error(job, e.to_string()))?
            .into_bytes()
            .to_vec();
        if bytes.is_empty() {
            return Err(self.input_error(job, format!("an empty read at byte {offset} of {size}")));
        }
        Ok(bytes)
    }

    /// Reads and sends lines from the job's cursor until the input ends, the time is up, a
    /// window closes, the abort rule fires, or the job stops running.
    async fn run_chunk(
        &self,
        job: &JobRecord,
        deadline: Deadline,
        window_until: Option<i64>,
    ) -> Result<Chunk, WorkerError> {
        let size = job.input_size.unwrap_or(0);
        let plan = job.spec.rate_plan();
        let origin = tokio::time::Instant::now();
        let stop_at = origin + deadline.remaining().saturating_sub(self.config.margin);
        let mut tally = Tally::new(job.cursor, job.rate_factor, job.spec.rollout.adaptive);
        let mut pacer = Pacer::new(0.0);
        let mut buf = LineBuffer::new(job.cursor.offset);
        let mut next_line = job.cursor.line;
        let mut in_flight = FuturesOrdered::new();
        let concurrency = job.spec.concurrency();
        let command_id = Commands::job_command_id(&job.job_id);
        let header = job.csv_header.as_deref();
        let mut eof = false;
        let mut lost = false;
        loop {
            let stop = if tokio::time::Instant::now() >= stop_at {
                Some("the invocation's time is up")
            } else if window_until.is_some_and(|u| unix_now() >= u) {
                Some("the maintenance window closed")
            } else if tally.aborts(job) {
                Some("the abort rule fired")
            } else if tally.handled > 0
                && tally.handled.is_multiple_of(STATE_EVERY_LINES)
                && self.jobs.require(&job.job_id).await?.state != JobState::Running
            {
                Some("the job is no longer running")
            } else {
                None
            };
            if let Some(why) = stop {
                tracing::info!(job = %job.job_id, why, "stopping this chunk");
                break;
            }
            let line = loop {
                let at_end = buf.next_offset() >= size;
                if let Some(l) = buf.next_line(at_end) {
                    break Some(l);
                }
                if at_end {
                    break None;
                }
                let bytes = self
                    .read(job, job.input_etag.as_deref(), buf.next_offset(), size)
                    .await?;
                buf.push(&bytes);
            };
            let Some(line) = line else {
                eof = true;
                break;
            };
            tally.handled += 1;
            let number = next_line;
            next_line += 1;
            let end = line.end;
            let parsed = line.text.and_then(|t| lines::parse_line(header, &t));
            let built = match parsed {
                // A blank line sends nothing, but it still moves the cursor.
                Ok(None) => Err((None, SendOutcome::Blank)),
                Err(reason) => Err((None, SendOutcome::BadLine(reason))),
                Ok(Some(target)) => {
                    let robot = target.robot_id.to_string();
                    match self
                        .commands
                        .build(&command_id, &job.spec.command, &target.params)
                    {
                        Ok(command) => Ok((robot, command)),
                        Err(e) => Err((Some(robot), SendOutcome::BadLine(e.to_string()))),
                    }
                }
            };
            match built {
                Err((robot, outcome)) => {
                    in_flight.push_back(Either::Left(std::future::ready(Done {
                        line: number,
                        end,
                        robot,
                        outcome,
                    })))
                }
                Ok((robot, command)) => {
                    // Pace: wait for this line's token, never past the time kept for the end.
                    let rate = plan.per_minute(job.counters.succeeded + tally.counters.succeeded)
                        * tally.adaptive.factor;
                    let mut late = false;
                    while let Some(wait) = pacer.take(secs_since(origin), rate) {
                        let wake =
                            tokio::time::Instant::now() + Duration::from_secs_f64(wait.min(5.0));
                        if wake >= stop_at {
                            late = true;
                            break;
                        }
                        tokio::time::sleep_until(wake).await;
                    }
                    if late {
                        // Not claimed, not sent: the next step starts at this line.
                        tally.handled -= 1;
                        break;
                    }
                    in_flight.push_back(Either::Right(async move {
                        let outcome = self
                            .apply(&job.job_id, number, &robot, &command, deadline)
                            .await;
                        Done {
                            line: number,
                            end,
                            robot: Some(robot),
                            outcome,
                        }
                    }));
                }
            }
            while in_flight.len() >= concurrency {
                if let Some(done) = in_flight.next().await {
                    tally.settle(done, secs_since(origin));
                    self.flush_outcomes(&job.job_id, &mut tally, false).await?;
                }
            }
            if tally.checkpoint_due(secs_since(origin))
                && !self
                    .checkpoint(&job.job_id, &mut tally, secs_since(origin))
                    .await?
            {
                lost = true;
                break;
            }
        }
        while let Some(done) = in_flight.next().await {
            tally.settle(done, secs_since(origin));
        }
        self.flush_outcomes(&job.job_id, &mut tally, true).await?;
        if !lost {
            // A losing attempt would overwrite the winner's report for the same first line.
            self.write_report(&job.job_id, tally.recorded_cursor.line, &tally.failures)
                .await?;
        }
        Ok(Chunk {
            eof: eof && tally.cursor.offset >= size,
            lost,
            tally,
        })
    }

    /// Records the chunk's place so far: outcomes, the failure report of the lines since the
    /// last checkpoint, then the cursor and counts, conditional on the last recorded cursor.
    /// `false`: another attempt of this step recorded first, and this one must stop.
    async fn checkpoint(
        &self,
        job_id: &str,
        tally: &mut Tally,
        now: f64,
    ) -> Result<bool, WorkerError> {
        self.flush_outcomes(job_id, tally, true).await?;
        self.write_report(job_id, tally.recorded_cursor.line, &tally.failures)
            .await?;
        tally.failures.clear();
        let recorded = self
            .jobs
            .progress(
                job_id,
                tally.recorded_cursor,
                tally.cursor,
                &tally.unrecorded(),
                tally.adaptive.factor,
            )
            .await?;
        if recorded.is_none() {
            tracing::warn!(
                job = job_id,
                "another attempt recorded this step first: stopping"
            );
            return Ok(false);
        }
        tally.recorded_cursor = tally.cursor;
        tally.recorded = tally.counters;
        tally.recorded_at = now;
        Ok(true)
    }

    /// Writes the outcomes of claimed lines, 25 to a call, as soon as 25 are known (and all of
    /// them at the end): an invocation that dies leaves at most that many lines in doubt.
    async fn flush_outcomes(
        &self,
        job_id: &str,
        tally: &mut Tally,
        all: bool,
    ) -> Result<(), WorkerError> {
        if tally.outcomes.len() >= 25 || (all && !tally.outcomes.is_empty()) {
            self.jobs.finish_lines(job_id, &tally.outcomes).await?;
            tally.outcomes.clear();
        }
        Ok(())
    }

    async fn write_report(
        &self,
        job_id: &str,
        first_line: u64,
        failures: &[FailureLine],
    ) -> Result<(), WorkerError> {
        if failures.is_empty() {
            return Ok(());
        }
        report::write(
            &self.s3,
            &self.config.reports_bucket,
            job_id,
            first_line,
            failures,
        )
        .await
        .map_err(WorkerError::Report)
    }

    /// Claims a line and, when this attempt owns it, sends the command. A line an earlier
    /// attempt claimed without recording its outcome is looked up on the robot's shadow: sent
    /// only when the command is not there (so it is never sent twice, and never lost).
    async fn apply(
        &self,
        job_id: &str,
        line: u64,
        robot: &str,
        command: &Value,
        deadline: Deadline,
    ) -> SendOutcome {
        match self.jobs.claim(job_id, line).await {
            Ok(Claim::New) => {}
            Ok(Claim::Sent) => return SendOutcome::AlreadySent,
            Ok(Claim::Failed(reason)) => return SendOutcome::AlreadyFailed(reason),
            Ok(Claim::InDoubt) => match self.shadows.has_command(robot, command).await {
                Ok(true) => return SendOutcome::AlreadySent,
                Ok(false) => {}
                Err(reason) => return SendOutcome::InDoubt(reason),
            },
            Err(e) => {
                return SendOutcome::Failed {
                    reason: format!("claiming the line: {e}"),
                    throttled: 0,
                    trouble: true,
                };
            }
        }
        let token = format!("{job_id}-{line}");
        self.shadows
            .set_command(robot, command, &token, deadline)
            .await
    }

    /// One Distributed Map batch. Rate, ramp, windows and pause belong to the cursor loop; a
    /// batch applies the abort rule and stops for a cancelled or finished job.
    pub async fn batch(
        &self,
        job_id: &str,
        items: Vec<BatchItem>,
        deadline: Deadline,
    ) -> Result<BatchOutput, WorkerError> {
        let job = self.jobs.require(job_id).await?;
        if job.state.is_final() {
            return Err(WorkerError::JobAborted {
                job: job_id.into(),
                state: job.state,
                reason: job.reason.clone().unwrap_or_else(|| "stopped".into()),
            });
        }
        if job.state == JobState::Scheduled {
            self.jobs.transition(job_id, JobAction::Start, None).await?;
        }
        let first = items.iter().map(|i| i.index).min().unwrap_or(0);
        let command_id = Commands::job_command_id(job_id);
        let csv = job.spec.input.format == InputFormat::Csv;
        let done: Vec<Done> = futures::stream::iter(items)
            .map(|item| {
                let (command_id, job) = (&command_id, &job);
                async move {
                    let target = match &item.item {
                        Value::Object(row) if csv => lines::target_from_row(row),
                        v => lines::target_from_object(v),
                    };
                    let built = target.and_then(|t| {
                        self.commands
                            .build(command_id, &job.spec.command, &t.params)
                            .map(|c| (t.robot_id.to_string(), c))
                            .map_err(|e| e.to_string())
                    });
                    let (robot, outcome) = match built {
                        Err(reason) => (None, SendOutcome::BadLine(reason)),
                        Ok((robot, command)) => {
                            let outcome = self
                                .apply(job_id, item.index, &robot, &command, deadline)
                                .await;
                            (Some(robot), outcome)
                        }
                    };
                    Done {
                        line: item.index,
                        end: 0,
                        robot,
                        outcome,
                    }
                }
            })
            .buffered(job.spec.concurrency())
            .collect()
            .await;
        let mut tally = Tally::new(Cursor::default(), 1.0, None);
        for d in done {
            tally.settle(d, 0.0);
        }
        self.flush_outcomes(job_id, &mut tally, true).await?;
        self.write_report(job_id, first, &tally.failures).await?;
        let after = match self.jobs.batch(job_id, first, &tally.counters).await? {
            Some(after) => after,
            None => self.jobs.require(job_id).await?,
        };
        if let Some(rule) = after.spec.abort.filter(|r| r.triggered(&after.counters)) {
            let reason = abort_reason(&rule, &after.counters);
            let state = self
                .transition_quietly(job_id, JobAction::Abort, &reason)
                .await?;
            return Err(WorkerError::JobAborted {
                job: job_id.into(),
                state,
                reason,
            });
        }
        Ok(BatchOutput {
            job_id: job_id.into(),
            counters: tally.counters,
        })
    }
}

/// What a chunk did.
struct Chunk {
    tally: Tally,
    /// The input is done.
    eof: bool,
    /// Another attempt of the same step recorded a checkpoint first: nothing more to record.
    lost: bool,
}

/// The running account of a chunk or batch: lines are settled in file order.
struct Tally {
    /// Just after the last settled line.
    cursor: Cursor,
    counters: Counters,
    /// The cursor and counts last written to the jobs table (the chunk's start, then each
    /// checkpoint), and when (seconds into the chunk).
    recorded_cursor: Cursor,
    recorded: Counters,
    recorded_at: f64,
    /// Lines handled (read, whatever became of them).
    handled: u64,
    failures: Vec<FailureLine>,
    /// Claimed lines' outcomes not yet written to the jobs table.
    outcomes: Vec<(u64, Option<String>)>,
    adaptive: AdaptiveState,
    rule: Option<fleet_jobs::Adaptive>,
}

impl Tally {
    fn new(cursor: Cursor, factor: f64, rule: Option<fleet_jobs::Adaptive>) -> Tally {
        Tally {
            cursor,
            counters: Counters::default(),
            recorded_cursor: cursor,
            recorded: Counters::default(),
            recorded_at: 0.0,
            handled: 0,
            failures: Vec::new(),
            outcomes: Vec::new(),
            adaptive: AdaptiveState::new(factor, 0.0),
            rule,
        }
    }

    /// The counts settled since the last checkpoint.
    fn unrecorded(&self) -> Counters {
        self.counters.since(&self.recorded)
    }

    /// Whether enough lines or time passed since the last checkpoint.
    fn checkpoint_due(&self, now: f64) -> bool {
        self.cursor != self.recorded_cursor
            && (self.cursor.line - self.recorded_cursor.line >= CHECKPOINT_EVERY_LINES
                || now - self.recorded_at >= CHECKPOINT_EVERY_SECS)
    }

    /// Whether the job's abort rule fires on what is recorded plus what this chunk settled.
    fn aborts(&self, job: &JobRecord) -> bool {
        job.spec.abort.is_some_and(|rule| {
            let mut c = job.counters;
            c.add(&self.counters);
            rule.triggered(&c)
        })
    }

    /// Feeds one send's throttles and result to the adaptive rule, if the job has one.
    fn observe(&mut self, now: f64, throttled: u32, trouble: bool) {
        if let Some(rule) = &self.rule {
            for _ in 0..throttled {
                self.adaptive.observe(rule, now, true);
            }
            self.adaptive.observe(rule, now, trouble);
        }
    }

    /// Counts one finished line (in file order) and moves the cursor past it.
    fn settle(&mut self, done: Done, now: f64) {
        if done.end > 0 {
            self.cursor = Cursor {
                offset: done.end,
                line: done.line + 1,
            };
        }
        let failure = match done.outcome {
            SendOutcome::Blank => None,
            SendOutcome::BadLine(reason) => {
                self.counters.bad_lines += 1;
                Some(reason)
            }
            SendOutcome::Sent { throttled } => {
                self.counters.succeeded += 1;
                self.outcomes.push((done.line, None));
                self.observe(now, throttled, false);
                None
            }
            SendOutcome::Failed {
                reason,
                throttled,
                trouble,
            } => {
                self.counters.failed += 1;
                self.outcomes.push((done.line, Some(reason.clone())));
                self.observe(now, throttled, trouble);
                Some(reason)
            }
            SendOutcome::AlreadySent => {
                self.counters.succeeded += 1;
                self.counters.skipped += 1;
                self.outcomes.push((done.line, None));
                None
            }
            SendOutcome::AlreadyFailed(reason) => {
                self.counters.failed += 1;
                self.counters.skipped += 1;
                Some(reason)
            }
            SendOutcome::InDoubt(why) => {
                self.counters.in_doubt += 1;
                Some(format!(
                    "an earlier attempt claimed this line and stopped before the answer, and the \
                     robot's shadow could not be read to settle it ({why}): not sent again"
                ))
            }
        };
        if let Some(reason) = failure {
            self.failures.push(FailureLine {
                line: done.line,
                robot_id: done.robot,
                reason,
            });
        }
    }
}

/// Why the abort rule stopped a job, with its numbers.
fn abort_reason(rule: &fleet_jobs::AbortRule, c: &Counters) -> String {
    format!(
        "the abort rule fired: {} of {} executed failed (threshold {}% after {})",
        c.failed + c.bad_lines,
        c.executed(),
        rule.threshold_percentage,
        rule.min_number_of_executed_things
    )
}
