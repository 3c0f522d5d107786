//! The jobs table: one item per job, and one small item per line a job has claimed.
//!
//! | item | `pk` | `sk` | what |
//! |---|---|---|---|
//! | the job | `job#<id>` | `job` | its document, state, counters, cursor, input size and ETag, adaptive factor |
//! | a line | `job#<id>` | `line#<n>` | `claimed`, then `sent` or `failed` (with the reason, written 25 to a call at the end of the chunk); expires after 30 days |
//! | a batch | `job#<id>` | `batch#<n>` | a Distributed Map batch whose counts were added (once) |
//!
//! Exactly once, as far as the cloud can make it: before a line's shadow update the worker
//! claims the line with a conditional put (`attribute_not_exists`). A retried chunk finds the
//! claim and does not send again: it counts the line from the claim's outcome (`sent`, `failed`)
//! or, when the earlier attempt stopped between claim and answer, as in doubt. The command's id
//! is the second guard: a robot acts on an id once.
//!
//! Progress is one conditional update per chunk, on the cursor the chunk started from, so a
//! chunk's counts are added once even when Step Functions retries the invocation.
//!
//! Calls use the SDK's standard retries (3 attempts): a job is not bound by a stream's
//! deadline, and the worker stops on its own margin.

use std::collections::HashMap;

use crate::error::describe;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use fleet_jobs::{Counters, Cursor, JobAction, JobSpec, JobState, Machine};

/// How long a line's claim is kept.
pub const LINE_TTL_SECS: u64 = 30 * 86_400;

/// A job as the table holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub job_id: String,
    pub spec: JobSpec,
    /// The state machine that runs it, when it was started by [`JobsTable::launch`].
    pub machine: Option<Machine>,
    pub state: JobState,
    /// Why it is in this state (a cancel, the abort rule, an unreadable input).
    pub reason: Option<String>,
    pub counters: Counters,
    pub cursor: Cursor,
    /// The input's size and ETag, read at the first chunk: later chunks read that version only.
    pub input_size: Option<u64>,
    pub input_etag: Option<String>,
    pub csv_header: Option<Vec<String>>,
    /// The adaptive rule's factor (1 when the rule is off).
    pub rate_factor: f64,
    pub created_at: u64,
    pub updated_at: u64,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This attempt owns the line: send it.
    New,
    /// An earlier attempt sent it.
    Sent,
    /// An earlier attempt failed it (with this reason).
    Failed(String),
    /// An earlier attempt claimed it and never answered.
    InDoubt,
}

/// A jobs-table call that failed.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("no job {0} in the jobs table")]
    NotFound(String),
    #[error("job {0} already exists")]
    Exists(String),
    /// A job of this id exists with another document or on another machine.
    #[error("job {job} already exists with {what}; give the new job another id")]
    Conflict { job: String, what: String },
    /// The job is in the table but its state machine did not start; submitting the same job
    /// again starts it.
    #[error("job {job} is saved but its state machine did not start: {message}")]
    NotStarted {
        job: String,
        message: String,
        /// A throttle or a failure on AWS's side: the same request may succeed later.
        retryable: bool,
    },
    #[error(transparent)]
    Transition(#[from] fleet_jobs::TransitionError),
    #[error(transparent)]
    Invalid(#[from] fleet_jobs::SpecError),
    #[error("job {job}: the item is damaged: {problem}")]
    Damaged { job: String, problem: String },
    #[error("jobs table {table}: {message}")]
    Aws { table: String, message: String },
}

/// A job [`JobsTable::launch`] submitted.
#[derive(Debug, Clone)]
pub struct Launched {
    pub job: JobRecord,
    /// False when the job was there already (a repeated submission).
    pub created: bool,
    /// The first execution.
    pub execution_arn: String,
}

/// The jobs table.
#[derive(Debug, Clone)]
pub struct JobsTable {
    client: Client,
    table: String,
}

fn now_secs() -> u64 {
    fleet_core::timefmt::now_unix_ms() / 1_000
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn pk(job: &str) -> AttributeValue {
    s(format!("job#{job}"))
}

fn line_sk(line: u64) -> AttributeValue {
    s(format!("line#{line:012}"))
}

fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

const COUNTERS: [&str; 5] = ["succeeded", "failed", "badLines", "skipped", "inDoubt"];

fn counter_values(c: &Counters) -> [u64; 5] {
    [c.succeeded, c.failed, c.bad_lines, c.skipped, c.in_doubt]
}

impl JobsTable {
    pub fn new(client: Client, table: impl Into<String>) -> JobsTable {
        JobsTable {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn aws<E, R>(&self, e: SdkError<E, R>) -> JobsError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        JobsError::Aws {
            table: self.table.clone(),
            message: describe(&e),
        }
    }

    /// Creates a job in `scheduled`; an existing id is refused.
    pub async fn create(&self, job_id: &str, spec: &JobSpec) -> Result<(), JobsError> {
        self.create_on(job_id, spec, None).await
    }

    /// Submits a job and starts its state machine (`machine_arn`, of kind `machine`), as
    /// `POST /jobs` and `robofleet job run` do. Idempotent: the same id with the same document
    /// and machine finds the job and starts nothing new (the first execution's name is fixed,
    /// so Step Functions answers the running execution, or refuses a second one); another
    /// document or machine under the id is [`JobsError::Conflict`].
    pub async fn launch(
        &self,
        sfn: &aws_sdk_sfn::Client,
        machine_arn: &str,
        machine: Machine,
        job_id: &str,
        spec: &JobSpec,
    ) -> Result<Launched, JobsError> {
        let created = match self.create_on(job_id, spec, Some(machine)).await {
            Ok(()) => true,
            Err(JobsError::Exists(_)) => {
                let job = self.require(job_id).await?;
                let what = if &job.spec != spec {
                    Some("another job document".to_string())
                } else if job.machine != Some(machine) {
                    Some(match job.machine {
                        Some(m) => format!("the {m} machine"),
                        None => "no machine (made by another tool)".to_string(),
                    })
                } else {
                    None
                };
                if let Some(what) = what {
                    return Err(JobsError::Conflict {
                        job: job_id.into(),
                        what,
                    });
                }
                false
            }
            Err(e) => return Err(e),
        };
        let name = fleet_jobs::spec::execution_name(job_id, 0);
        let input = machine.execution_input(job_id, &spec.input);
        let execution_arn = match sfn
            .start_execution()
            .state_machine_arn(machine_arn)
            .name(&name)
            .input(input.to_string())
            .send()
            .await
        {
            Ok(out) => out.execution_arn,
            // Started before, by an earlier submission of the same job: it ran or runs.
            Err(e) if !created && e.code() == Some("ExecutionAlreadyExists") => format!(
                "{}:{name}",
                machine_arn.replacen(":stateMachine:", ":execution:", 1)
            ),
            Err(e) => {
                let retryable = matches!(e.code(), Some("ThrottlingException"))
                    || e.raw_response().is_some_and(|r| r.status().as_u16() >= 500)
                    || matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_));
                return Err(JobsError::NotStarted {
                    job: job_id.into(),
                    message: describe(&e),
                    retryable,
                });
            }
        };
        Ok(Launched {
            job: self.require(job_id).await?,
            created,
            execution_arn,
        })
    }

    async fn create_on(
        &self,
        job_id: &str,
        spec: &JobSpec,
        machine: Option<Machine>,
    ) -> Result<(), JobsError> {
        fleet_jobs::spec::validate_job_id(job_id)?;
        let now = now_secs();
        let spec_json = serde_json::to_string(spec).map_err(|e| JobsError::Damaged {
            job: job_id.into(),
            problem: e.to_string(),
        })?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(job_id))
            .item("sk", s("job"))
            .item("jobId", s(job_id))
            .item("spec", s(spec_json))
            .item("state", s(JobState::Scheduled.as_str()))
            .item("cursorOffset", n(0))
            .item("cursorLine", n(0))
            .item("rateFactor", n(1))
            .item("createdAt", n(now))
            .item("updatedAt", n(now))
            .condition_expression("attribute_not_exists(pk)");
        for name in COUNTERS {
            put = put.item(name, n(0));
        }
        if let Some(m) = machine {
            put = put.item("machine", s(m.as_str()));
        }
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(JobsError::Exists(job_id.into())),
            Err(e) => Err(self.aws(e)),
        }
    }

    /// The job, read consistently.
    pub async fn get(&self, job_id: &str) -> Result<Option<JobRecord>, JobsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk(job_id))
            .key("sk", s("job"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.aws(e))?;
        out.item.map(|item| record(job_id, &item)).transpose()
    }

    /// The job, or [`JobsError::NotFound`].
    pub async fn require(&self, job_id: &str) -> Result<JobRecord, JobsError> {
        self.get(job_id)
            .await?
            .ok_or_else(|| JobsError::NotFound(job_id.into()))
    }

    /// Moves the job by `action` (pause, resume, cancel, abort, finish, fail, start), with a
    /// reason; conditional on the state it was read in, retried when someone moved it first.
    pub async fn transition(
        &self,
        job_id: &str,
        action: JobAction,
        reason: Option<&str>,
    ) -> Result<JobState, JobsError> {
        for _ in 0..5 {
            let job = self.require(job_id).await?;
            let to = action.apply(job.state)?;
            if to == job.state {
                return Ok(to);
            }
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", pk(job_id))
                .key("sk", s("job"))
                .condition_expression("#state = :from")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":from", s(job.state.as_str()))
                .expression_attribute_values(":to", s(to.as_str()))
                .expression_attribute_values(":now", n(now_secs()));
            update = match reason {
                Some(r) => update
                    .update_expression("SET #state = :to, updatedAt = :now, reason = :reason")
                    .expression_attribute_values(":reason", s(r)),
                None => update.update_expression("SET #state = :to, updatedAt = :now"),
            };
            match update.send().await {
                Ok(_) => return Ok(to),
                Err(e) if condition_failed(&e) => continue,
                Err(e) => return Err(self.aws(e)),
            }
        }
        Err(JobsError::Aws {
            table: self.table.clone(),
            message: format!("job {job_id} kept changing while it was being moved"),
        })
    }

    /// Records what the first chunk learnt of the input: its size, ETag and CSV header.
    pub async fn set_input(
        &self,
        job_id: &str,
        size: u64,
        etag: Option<&str>,
        csv_header: Option<&[String]>,
    ) -> Result<(), JobsError> {
        let mut expr = String::from("SET inputSize = :size, updatedAt = :now");
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(job_id))
            .key("sk", s("job"))
            .expression_attribute_values(":size", n(size))
            .expression_attribute_values(":now", n(now_secs()));
        if let Some(etag) = etag {
            expr.push_str(", inputEtag = :etag");
            update = update.expression_attribute_values(":etag", s(etag));
        }
        if let Some(h) = csv_header {
            expr.push_str(", csvHeader = :header");
            update = update.expression_attribute_values(
                ":header",
                AttributeValue::L(h.iter().map(|c| s(c.as_str())).collect()),
            );
        }
        update
            .update_expression(expr)
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(|e| self.aws(e))?;
        Ok(())
    }

    /// Claims line `line` for this attempt, or tells what an earlier attempt did with it.
    pub async fn claim(&self, job_id: &str, line: u64) -> Result<Claim, JobsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(job_id))
            .item("sk", line_sk(line))
            .item("status", s("claimed"))
            .item("expiresAt", n(now_secs() + LINE_TTL_SECS))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::New),
            Err(SdkError::ServiceError(se))
                if se.err().code() == Some("ConditionalCheckFailedException") =>
            {
                let old = match se.err() {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                    _ => None,
                };
                let old = match old {
                    Some(item) => item,
                    // Not every implementation returns the old item: read it.
                    None => self
                        .client
                        .get_item()
                        .table_name(&self.table)
                        .key("pk", pk(job_id))
                        .key("sk", line_sk(line))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(|e| self.aws(e))?
                        .item
                        .unwrap_or_default(),
                };
                Ok(
                    match old
                        .get("status")
                        .and_then(|v| v.as_s().ok())
                        .map(String::as_str)
                    {
                        Some("sent") => Claim::Sent,
                        Some("failed") => Claim::Failed(
                            old.get("reason")
                                .and_then(|v| v.as_s().ok())
                                .cloned()
                                .unwrap_or_default(),
                        ),
                        _ => Claim::InDoubt,
                    },
                )
            }
            Err(e) => Err(self.aws(e)),
        }
    }

    /// Records claimed lines' outcomes (sent, or failed with a reason), 25 to a
    /// `BatchWriteItem`: one call per 25 lines instead of one per line. A line whose outcome is
    /// never recorded (the invocation died first) stays `claimed`: in doubt, never sent again.
    pub async fn finish_lines(
        &self,
        job_id: &str,
        outcomes: &[(u64, Option<String>)],
    ) -> Result<(), JobsError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let expires = n(now_secs() + LINE_TTL_SECS);
        for group in outcomes.chunks(25) {
            let mut requests = Vec::with_capacity(group.len());
            for (line, failure) in group {
                let mut put = PutRequest::builder()
                    .item("pk", pk(job_id))
                    .item("sk", line_sk(*line))
                    .item("expiresAt", expires.clone());
                put = match failure {
                    None => put.item("status", s("sent")),
                    Some(reason) => put
                        .item("status", s("failed"))
                        .item("reason", s(reason.as_str())),
                };
                let put = put.build().map_err(|e| JobsError::Aws {
                    table: self.table.clone(),
                    message: e.to_string(),
                })?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            for attempt in 0..8u32 {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| self.aws(e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5))).await;
            }
            if !requests.is_empty() {
                return Err(JobsError::Aws {
                    table: self.table.clone(),
                    message: format!("{} line outcomes stayed unprocessed", requests.len()),
                });
            }
        }
        Ok(())
    }

    fn add_counters(update: &str, c: &Counters) -> (String, HashMap<String, AttributeValue>) {
        let mut expr = update.to_string();
        let mut values = HashMap::new();
        let adds: Vec<String> = COUNTERS
            .iter()
            .zip(counter_values(c))
            .map(|(name, v)| {
                values.insert(format!(":d_{name}"), n(v));
                format!("{name} :d_{name}")
            })
            .collect();
        expr.push_str(" ADD ");
        expr.push_str(&adds.join(", "));
        (expr, values)
    }

    /// Adds a chunk's counts and moves the cursor from `from` to `to`, once: `None` when the
    /// cursor is no longer `from` (an earlier attempt of this chunk already recorded it).
    pub async fn progress(
        &self,
        job_id: &str,
        from: Cursor,
        to: Cursor,
        delta: &Counters,
        rate_factor: f64,
    ) -> Result<Option<JobRecord>, JobsError> {
        let (expr, values) = Self::add_counters(
            "SET cursorOffset = :to, cursorLine = :toLine, rateFactor = :factor, updatedAt = :now",
            delta,
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(job_id))
            .key("sk", s("job"))
            .update_expression(expr)
            .condition_expression("cursorOffset = :from")
            .set_expression_attribute_values(Some(values))
            .expression_attribute_values(":from", n(from.offset))
            .expression_attribute_values(":to", n(to.offset))
            .expression_attribute_values(":toLine", n(to.line))
            .expression_attribute_values(":factor", n(rate_factor))
            .expression_attribute_values(":now", n(now_secs()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes.map(|item| record(job_id, &item)).transpose(),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(self.aws(e)),
        }
    }

    /// Adds a Distributed Map batch's counts once (a marker item per batch, in one
    /// transaction): `None` when this batch was counted before.
    pub async fn batch(
        &self,
        job_id: &str,
        first_line: u64,
        delta: &Counters,
    ) -> Result<Option<JobRecord>, JobsError> {
        let (expr, values) = Self::add_counters("SET updatedAt = :now", delta);
        let marker = Put::builder()
            .table_name(&self.table)
            .item("pk", pk(job_id))
            .item("sk", s(format!("batch#{first_line:012}")))
            .item("expiresAt", n(now_secs() + LINE_TTL_SECS))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| JobsError::Aws {
                table: self.table.clone(),
                message: e.to_string(),
            })?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", pk(job_id))
            .key("sk", s("job"))
            .update_expression(expr)
            .set_expression_attribute_values(Some(values))
            .expression_attribute_values(":now", n(now_secs()))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| JobsError::Aws {
                table: self.table.clone(),
                message: e.to_string(),
            })?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match result {
            Ok(_) => self.get(job_id).await,
            Err(e)
                if e.code() == Some("TransactionCanceledException")
                    && describe(&e).contains("ConditionalCheckFailed") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.aws(e)),
        }
    }
}

fn record(job_id: &str, item: &HashMap<String, AttributeValue>) -> Result<JobRecord, JobsError> {
    let damaged = |problem: String| JobsError::Damaged {
        job: job_id.into(),
        problem,
    };
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let num = |name: &str| -> u64 {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let spec: JobSpec =
        serde_json::from_str(&text("spec").ok_or_else(|| damaged("no spec".into()))?)
            .map_err(|e| damaged(format!("spec: {e}")))?;
    let state: JobState = text("state")
        .ok_or_else(|| damaged("no state".into()))?
        .parse()
        .map_err(damaged)?;
    let [succeeded, failed, bad_lines, skipped, in_doubt] = COUNTERS.map(num);
    Ok(JobRecord {
        job_id: job_id.into(),
        spec,
        machine: text("machine").and_then(|m| m.parse().ok()),
        state,
        reason: text("reason"),
        counters: Counters {
            succeeded,
            failed,
            bad_lines,
            skipped,
            in_doubt,
        },
        cursor: Cursor {
            offset: num("cursorOffset"),
            line: num("cursorLine"),
        },
        input_size: item.get("inputSize").map(|_| num("inputSize")),
        input_etag: text("inputEtag"),
        csv_header: item
            .get("csvHeader")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|c| c.as_s().ok().cloned()).collect()),
        rate_factor: item
            .get("rateFactor")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1.0),
        created_at: num("createdAt"),
        updated_at: num("updatedAt"),
    })
}

/// A job as `robofleet job status` and the fleet API's `GET /jobs/{id}` show it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub job_id: String,
    pub state: String,
    pub reason: Option<String>,
    /// `loop` or `map`, for a job started by `POST /jobs` or `robofleet job run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
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
            machine: job.machine,
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
