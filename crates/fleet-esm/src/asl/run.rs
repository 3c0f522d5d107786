//! Executing parsed machines: executions, state by state, with Step Functions' input and output
//! processing, retries, catches, waits, continue-as-new through `states:startExecution`, and the
//! Distributed Map's reader, batcher, concurrency and failure tolerance.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde_json::{Value, json};

use super::model::{
    Compare, DistributedMap, Kind, Machine, ReaderFormat, Retrier, Rule, State, TaskResource,
    WaitFor,
};
use super::path::apply_template;
use super::{AslError, Failure, Services, clip};

/// The most history events an execution may have (Step Functions' quota for Standard
/// workflows); past it the execution fails.
pub const MAX_HISTORY_EVENTS: u64 = 25_000;
/// The largest input or output of a state (256 KiB), past which it fails with
/// `States.DataLimitExceeded`.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// The most child executions a Distributed Map runs at once when `MaxConcurrency` is 0 (AWS
/// allows up to 10,000; on one machine a smaller number keeps the stand-ins responsive).
pub const LOCAL_MAP_CONCURRENCY: u64 = 64;

/// Where an execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
}

/// One execution, as DescribeExecution shows it, plus its history event count.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionInfo {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub input: Value,
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub history_events: u64,
    /// Seconds since the epoch.
    pub start_date: f64,
    pub stop_date: Option<f64>,
}

struct Registered {
    machine: Arc<Machine>,
    services: Arc<dyn Services>,
}

#[derive(Default)]
struct Inner {
    machines: Mutex<BTreeMap<String, Arc<Registered>>>,
    executions: Mutex<BTreeMap<String, ExecutionInfo>>,
    changed: tokio::sync::Notify,
}

/// Runs the machines registered with it; cloning shares the executions.
#[derive(Clone, Default)]
pub struct Runner {
    inner: Arc<Inner>,
}

/// The ARN of execution `name` of machine `machine_arn`.
pub fn execution_arn(machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

fn valid_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn now_secs() -> f64 {
    fleet_core::timefmt::now_unix_ms() as f64 / 1000.0
}

impl Runner {
    /// A runner with no machines.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a machine under its ARN; its tasks reach AWS through `services` (the machine's
    /// role).
    pub fn add_machine(&self, arn: &str, machine: Machine, services: Arc<dyn Services>) {
        if let Ok(mut m) = self.inner.machines.lock() {
            m.insert(
                arn.to_string(),
                Arc::new(Registered {
                    machine: Arc::new(machine),
                    services,
                }),
            );
        }
    }

    /// Starts an execution, as StartExecution does: a name used before with the same input
    /// returns that execution (idempotent), with another input is refused.
    pub fn start(
        &self,
        machine_arn: &str,
        name: Option<&str>,
        input: Value,
    ) -> Result<String, AslError> {
        start(&self.inner, machine_arn, name, input)
    }

    /// Whether a machine is registered under `machine_arn`.
    pub fn has_machine(&self, machine_arn: &str) -> bool {
        self.inner
            .machines
            .lock()
            .is_ok_and(|m| m.contains_key(machine_arn))
    }

    /// One execution.
    pub fn describe(&self, execution_arn: &str) -> Option<ExecutionInfo> {
        self.inner
            .executions
            .lock()
            .ok()
            .and_then(|e| e.get(execution_arn).cloned())
    }

    /// Every execution, by ARN.
    pub fn executions(&self) -> Vec<ExecutionInfo> {
        self.inner
            .executions
            .lock()
            .map(|e| e.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Waits until no execution is running (the continued ones included).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.changed.notified();
            if self
                .executions()
                .iter()
                .all(|e| e.status != Status::Running)
            {
                return;
            }
            notified.await;
        }
    }
}

fn start(
    inner: &Arc<Inner>,
    machine_arn: &str,
    name: Option<&str>,
    input: Value,
) -> Result<String, AslError> {
    let registered = inner
        .machines
        .lock()
        .ok()
        .and_then(|m| m.get(machine_arn).cloned())
        .ok_or_else(|| {
            AslError::Failed(Failure::new(
                "StepFunctions.StateMachineDoesNotExistException",
                format!("State Machine Does Not Exist: '{machine_arn}'"),
            ))
        })?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if !valid_name(&name) {
        return Err(AslError::Failed(Failure::new(
            "StepFunctions.InvalidNameException",
            format!("Invalid Name: '{name}' (1-80 letters, digits, '-' and '_')"),
        )));
    }
    let size = input.to_string().len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(AslError::Failed(Failure::new(
            "StepFunctions.InvalidExecutionInputException",
            format!("the input is {size} bytes; at most {MAX_PAYLOAD_BYTES}"),
        )));
    }
    let arn = execution_arn(machine_arn, &name);
    {
        let mut executions = inner
            .executions
            .lock()
            .map_err(|_| AslError::runtime("the runner's execution table is poisoned"))?;
        if let Some(existing) = executions.get(&arn) {
            if existing.input == input && existing.status == Status::Running {
                return Ok(arn);
            }
            return Err(AslError::Failed(Failure::new(
                "StepFunctions.ExecutionAlreadyExistsException",
                format!("Execution Already Exists: '{arn}'"),
            )));
        }
        executions.insert(
            arn.clone(),
            ExecutionInfo {
                execution_arn: arn.clone(),
                state_machine_arn: machine_arn.to_string(),
                name: name.clone(),
                input: input.clone(),
                status: Status::Running,
                output: None,
                error: None,
                cause: None,
                history_events: 1,
                start_date: now_secs(),
                stop_date: None,
            },
        );
    }
    let inner = inner.clone();
    let exec_arn = arn.clone();
    let machine_arn = machine_arn.to_string();
    tokio::spawn(async move {
        let history = AtomicU64::new(1);
        let ctx = json!({
            "Execution": {"Id": exec_arn, "Name": name, "Input": input, "StartTime": now_secs()},
            "StateMachine": {"Id": machine_arn, "Name": machine_arn.rsplit(':').next().unwrap_or_default()},
        });
        let exec = Exec {
            inner: &inner,
            services: &registered.services,
            history: &history,
        };
        let result = exec.run(&registered.machine, input, &ctx).await;
        if let Err(f) = &result {
            tracing::warn!(
                execution = exec_arn,
                error = f.error,
                cause = f.cause,
                "execution failed"
            );
        }
        if let Ok(mut executions) = inner.executions.lock()
            && let Some(e) = executions.get_mut(&exec_arn)
        {
            e.history_events = history.load(Ordering::Relaxed) + 1;
            e.stop_date = Some(now_secs());
            match result {
                Ok(output) => {
                    e.status = Status::Succeeded;
                    e.output = Some(output);
                }
                Err(f) => {
                    e.status = Status::Failed;
                    e.error = Some(f.error);
                    e.cause = Some(f.cause);
                }
            }
        }
        inner.changed.notify_waiters();
    });
    Ok(arn)
}

/// One execution (or one child of a Distributed Map) in progress.
struct Exec<'a> {
    inner: &'a Arc<Inner>,
    services: &'a Arc<dyn Services>,
    history: &'a AtomicU64,
}

enum Step {
    Next(String, Value),
    End(Value),
}

fn failure_of(e: AslError) -> Failure {
    match e {
        AslError::Failed(f) => f,
        other => Failure::new("States.Runtime", other.to_string()),
    }
}

#[cfg(test)]
pub(crate) fn matches_for_test(errors: &[String], error: &str) -> bool {
    matches(errors, error)
}

/// Whether a Retry or Catch rule's `ErrorEquals` takes `error`. As in Step Functions, the
/// wildcards never take `States.Runtime` and `States.DataLimitExceeded` (only their own names
/// do), and `States.TaskFailed` is every error but `States.Timeout`.
fn matches(errors: &[String], error: &str) -> bool {
    let terminal = error == "States.Runtime" || error == "States.DataLimitExceeded";
    errors.iter().any(|e| {
        e == error
            || (e == "States.ALL" && !terminal)
            || (e == "States.TaskFailed" && !terminal && error != "States.Timeout")
    })
}

fn effective_input(state: &State, input: &Value, ctx: &Value) -> Result<Value, AslError> {
    match &state.input_path {
        None => Ok(input.clone()),
        Some(None) => Ok(json!({})),
        Some(Some(p)) => p.require(input, ctx, &state.name),
    }
}

fn output_of(
    state: &State,
    raw_input: Value,
    result: Value,
    ctx: &Value,
) -> Result<Value, AslError> {
    let result = match &state.result_selector {
        Some(t) => apply_template(t, &result, ctx, &state.name)?,
        None => result,
    };
    let combined = match &state.result_path {
        None => result,
        Some(None) => raw_input,
        Some(Some(p)) => p.set(raw_input, result, &state.name)?,
    };
    finish_output(state, combined, ctx)
}

fn finish_output(state: &State, value: Value, ctx: &Value) -> Result<Value, AslError> {
    let out = match &state.output_path {
        None => value,
        Some(None) => json!({}),
        Some(Some(p)) => p.require(&value, ctx, &state.name)?,
    };
    let size = out.to_string().len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(AslError::Failed(Failure::new(
            "States.DataLimitExceeded",
            format!(
                "state {}: the output is {size} bytes, more than the {MAX_PAYLOAD_BYTES} a state may pass on",
                state.name
            ),
        )));
    }
    Ok(out)
}

/// Evaluates a Choice rule. A comparison (other than `IsPresent`) of a variable the input does
/// not have is `States.Runtime`, as in Step Functions.
fn evaluate(rule: &Rule, input: &Value, ctx: &Value) -> Result<bool, Failure> {
    Ok(match rule {
        Rule::And(rs) => {
            for r in rs {
                if !evaluate(r, input, ctx)? {
                    return Ok(false);
                }
            }
            true
        }
        Rule::Or(rs) => {
            for r in rs {
                if evaluate(r, input, ctx)? {
                    return Ok(true);
                }
            }
            false
        }
        Rule::Not(r) => !evaluate(r, input, ctx)?,
        Rule::Compare { variable, op } => {
            let v = variable.get(input, ctx);
            if v.is_none() && !matches!(op, Compare::IsPresent(_)) {
                return Err(Failure::new(
                    "States.Runtime",
                    format!(
                        "Invalid path '{}': the choice state's condition path references an invalid value in {}",
                        variable.text(),
                        clip(input)
                    ),
                ));
            }
            let n = v.and_then(Value::as_f64);
            match op {
                Compare::IsPresent(want) => v.is_some() == *want,
                Compare::IsNull(want) => v.is_some_and(Value::is_null) == *want,
                Compare::BooleanEquals(b) => v.and_then(Value::as_bool) == Some(*b),
                Compare::StringEquals(s) => v.and_then(Value::as_str) == Some(s.as_str()),
                Compare::NumericEquals(x) => n == Some(*x),
                Compare::NumericGreaterThan(x) => n.is_some_and(|n| n > *x),
                Compare::NumericGreaterThanEquals(x) => n.is_some_and(|n| n >= *x),
                Compare::NumericLessThan(x) => n.is_some_and(|n| n < *x),
                Compare::NumericLessThanEquals(x) => n.is_some_and(|n| n <= *x),
            }
        }
    })
}

fn retry_delay(r: &Retrier, attempt: u32) -> Duration {
    let mut secs = r.interval_seconds * r.backoff_rate.powi(attempt as i32);
    if let Some(max) = r.max_delay_seconds {
        secs = secs.min(max);
    }
    Duration::from_secs_f64(secs.max(0.0))
}

fn text<'v>(params: &'v Value, key: &str, state: &str) -> Result<&'v str, AslError> {
    params.get(key).and_then(Value::as_str).ok_or_else(|| {
        AslError::runtime(format!(
            "state {state}: the parameters have no {key} string: {}",
            clip(params)
        ))
    })
}

impl Exec<'_> {
    fn event(&self, n: u64) -> Result<(), Failure> {
        let total = self.history.fetch_add(n, Ordering::Relaxed) + n;
        if total > MAX_HISTORY_EVENTS {
            return Err(Failure::new(
                "States.Runtime",
                format!(
                    "the execution history reached {MAX_HISTORY_EVENTS} events, Step Functions' limit; continue as a new execution before it"
                ),
            ));
        }
        Ok(())
    }

    fn run<'s>(
        &'s self,
        machine: &'s Machine,
        input: Value,
        ctx: &'s Value,
    ) -> BoxFuture<'s, Result<Value, Failure>> {
        Box::pin(async move {
            let mut current = machine.start_at.clone();
            let mut input = input;
            loop {
                let state = &machine.states[&current];
                let mut ctx = ctx.clone();
                ctx["State"] = json!({"Name": state.name, "EnteredTime": now_secs()});
                let step = match self.state(state, input.clone(), &ctx).await {
                    Ok(step) => step,
                    Err(f) => match state.catch.iter().find(|c| matches(&c.errors, &f.error)) {
                        Some(c) => {
                            let err = json!({"Error": f.error, "Cause": f.cause});
                            let out = match &c.result_path {
                                None => err,
                                Some(None) => input.clone(),
                                Some(Some(p)) => {
                                    p.set(input.clone(), err, &state.name).map_err(failure_of)?
                                }
                            };
                            Step::Next(c.next.clone(), out)
                        }
                        None => return Err(f),
                    },
                };
                match step {
                    Step::Next(n, out) => {
                        current = n;
                        input = out;
                    }
                    Step::End(out) => return Ok(out),
                }
            }
        })
    }

    async fn state(&self, state: &State, input: Value, ctx: &Value) -> Result<Step, Failure> {
        let next = |out: Value| match &state.next {
            Some(n) => Step::Next(n.clone(), out),
            None => Step::End(out),
        };
        match &state.kind {
            Kind::Choice { choices, default } => {
                self.event(2)?;
                let eff = effective_input(state, &input, ctx).map_err(failure_of)?;
                let mut chosen = None;
                for (rule, n) in choices {
                    if evaluate(rule, &eff, ctx)? {
                        chosen = Some(n.clone());
                        break;
                    }
                }
                let target = chosen.or_else(|| default.clone()).ok_or_else(|| {
                    Failure::new(
                        "States.NoChoiceMatched",
                        format!(
                            "state {}: no choice rule matched and there is no Default",
                            state.name
                        ),
                    )
                })?;
                let out = finish_output(state, eff, ctx).map_err(failure_of)?;
                Ok(Step::Next(target, out))
            }
            Kind::Succeed => {
                self.event(2)?;
                let eff = effective_input(state, &input, ctx).map_err(failure_of)?;
                Ok(Step::End(
                    finish_output(state, eff, ctx).map_err(failure_of)?,
                ))
            }
            Kind::Fail { error, cause } => {
                self.event(1)?;
                Err(Failure::new(error.clone(), cause.clone()))
            }
            Kind::Wait(w) => {
                self.event(2)?;
                let eff = effective_input(state, &input, ctx).map_err(failure_of)?;
                let secs = match w {
                    WaitFor::Seconds(s) => *s,
                    WaitFor::SecondsPath(p) => {
                        p.get(&eff, ctx).and_then(Value::as_u64).ok_or_else(|| {
                            Failure::new(
                                "States.Runtime",
                                format!(
                                    "state {}: SecondsPath {} is not a non-negative integer in {}",
                                    state.name,
                                    p.text(),
                                    clip(&eff)
                                ),
                            )
                        })?
                    }
                };
                tokio::time::sleep(Duration::from_secs(secs)).await;
                Ok(next(finish_output(state, eff, ctx).map_err(failure_of)?))
            }
            Kind::Pass { result } => {
                self.event(2)?;
                let eff = effective_input(state, &input, ctx).map_err(failure_of)?;
                let value = match (result, &state.parameters) {
                    (Some(r), _) => r.clone(),
                    (None, Some(t)) => {
                        apply_template(t, &eff, ctx, &state.name).map_err(failure_of)?
                    }
                    (None, None) => eff,
                };
                let combined = match &state.result_path {
                    None => value,
                    Some(None) => input,
                    Some(Some(p)) => p.set(input, value, &state.name).map_err(failure_of)?,
                };
                Ok(next(
                    finish_output(state, combined, ctx).map_err(failure_of)?,
                ))
            }
            Kind::Task { .. } | Kind::Map(_) => {
                self.event(2)?;
                let eff = effective_input(state, &input, ctx).map_err(failure_of)?;
                let params = match &state.parameters {
                    Some(t) => apply_template(t, &eff, ctx, &state.name).map_err(failure_of)?,
                    None => eff.clone(),
                };
                let mut attempts: Vec<u32> = vec![0; state.retry.len()];
                let result = loop {
                    match self.work(state, &params, &eff, ctx).await {
                        Ok(r) => break r,
                        Err(f) => {
                            let Some(i) = state
                                .retry
                                .iter()
                                .position(|r| matches(&r.errors, &f.error))
                            else {
                                return Err(f);
                            };
                            let r = &state.retry[i];
                            if attempts[i] >= r.max_attempts {
                                return Err(f);
                            }
                            tracing::info!(
                                state = state.name,
                                error = f.error,
                                attempt = attempts[i] + 1,
                                "retrying"
                            );
                            tokio::time::sleep(retry_delay(r, attempts[i])).await;
                            attempts[i] += 1;
                        }
                    }
                };
                Ok(next(
                    output_of(state, input, result, ctx).map_err(failure_of)?,
                ))
            }
        }
    }

    /// A Task's call or a Map's run, once (Retry is around it).
    async fn work(
        &self,
        state: &State,
        params: &Value,
        eff: &Value,
        ctx: &Value,
    ) -> Result<Value, Failure> {
        match &state.kind {
            Kind::Task {
                resource: TaskResource::LambdaInvoke,
                timeout_seconds,
            } => {
                self.event(3)?;
                let function = text(params, "FunctionName", &state.name).map_err(failure_of)?;
                let payload = params.get("Payload").cloned().unwrap_or(Value::Null);
                let call = self.services.invoke(function, payload);
                let payload = match timeout_seconds {
                    Some(s) => tokio::time::timeout(Duration::from_secs(*s), call)
                        .await
                        .map_err(|_| {
                            Failure::new(
                                "States.Timeout",
                                format!("state {}: no answer within {s} s", state.name),
                            )
                        })??,
                    None => call.await?,
                };
                Ok(json!({"ExecutedVersion": "$LATEST", "Payload": payload, "StatusCode": 200}))
            }
            Kind::Task {
                resource: TaskResource::StartExecution,
                ..
            } => {
                self.event(3)?;
                let arn = text(params, "StateMachineArn", &state.name).map_err(failure_of)?;
                let name = params.get("Name").and_then(Value::as_str);
                let input = match params.get("Input") {
                    Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                        Failure::new(
                            "StepFunctions.InvalidExecutionInputException",
                            format!("Input is not JSON: {e}"),
                        )
                    })?,
                    Some(v) => v.clone(),
                    None => json!({}),
                };
                // Through Step Functions' API when the services have it (the machine's role,
                // authorized by the AWS front), else started here.
                if let Some(call) = self.services.start_execution(arn, name, &input) {
                    return call.await;
                }
                let exec = start(self.inner, arn, name, input).map_err(failure_of)?;
                Ok(json!({"ExecutionArn": exec, "StartDate": now_secs()}))
            }
            Kind::Map(map) => self.map(state, map, eff, ctx).await,
            _ => unreachable!("work is only called for Task and Map states"),
        }
    }

    async fn map(
        &self,
        state: &State,
        map: &DistributedMap,
        eff: &Value,
        ctx: &Value,
    ) -> Result<Value, Failure> {
        self.event(2)?;
        let reader =
            apply_template(&map.reader_parameters, eff, ctx, &state.name).map_err(failure_of)?;
        let bucket = text(&reader, "Bucket", &state.name).map_err(failure_of)?;
        let key = text(&reader, "Key", &state.name).map_err(failure_of)?;
        let body = self.services.get_object(bucket, key).await.map_err(|f| {
            Failure::new(
                "States.ItemReaderFailed",
                format!("reading s3://{bucket}/{key}: {}: {}", f.error, f.cause),
            )
        })?;
        let mut items = read_items(map.reader_format, &body).map_err(|why| {
            Failure::new(
                "States.ItemReaderFailed",
                format!("s3://{bucket}/{key}: {why}"),
            )
        })?;
        if let Some(max) = map.max_items {
            items.truncate(max as usize);
        }
        let mut selected = Vec::with_capacity(items.len());
        for (index, value) in items.into_iter().enumerate() {
            selected.push(match &map.item_selector {
                Some(t) => {
                    let mut c = ctx.clone();
                    c["Map"] = json!({"Item": {"Index": index, "Value": value}});
                    apply_template(t, eff, &c, &state.name).map_err(failure_of)?
                }
                None => value,
            });
        }
        let batch_input = match &map.batch_input {
            Some(t) => Some(apply_template(t, eff, ctx, &state.name).map_err(failure_of)?),
            None => None,
        };
        let children: Vec<Value> = match map.max_items_per_batch {
            Some(n) if n > 0 => selected
                .chunks(n as usize)
                .map(|c| {
                    let mut b = json!({"Items": c});
                    if let Some(bi) = &batch_input {
                        b["BatchInput"] = bi.clone();
                    }
                    b
                })
                .collect(),
            _ => selected,
        };
        let total = children.len() as u64;
        let limit = match map.max_concurrency {
            0 => LOCAL_MAP_CONCURRENCY,
            n => n,
        } as usize;
        let tolerated_count = map.tolerated_failure_count;
        let tolerated_pct = map.tolerated_failure_percentage;
        let exceeded = |failed: u64| {
            let by_count = tolerated_count.map(|c| failed > c);
            let by_pct =
                tolerated_pct.map(|p| total > 0 && (failed as f64) * 100.0 / (total as f64) > p);
            match (by_count, by_pct) {
                (None, None) => failed > 0,
                (c, p) => c.unwrap_or(false) || p.unwrap_or(false),
            }
        };
        let mut results: Vec<Option<Result<Value, Failure>>> = vec![None; children.len()];
        let mut pending = children.into_iter().enumerate();
        let mut running = FuturesUnordered::new();
        let mut failed = 0u64;
        let mut stop = false;
        loop {
            while !stop && running.len() < limit {
                let Some((i, input)) = pending.next() else {
                    break;
                };
                running.push(async move {
                    let history = AtomicU64::new(0);
                    let child = Exec {
                        inner: self.inner,
                        services: self.services,
                        history: &history,
                    };
                    (i, child.run(&map.processor, input, ctx).await)
                });
            }
            let Some((i, r)) = running.next().await else {
                break;
            };
            if r.is_err() {
                failed += 1;
                if exceeded(failed) {
                    stop = true;
                }
            }
            results[i] = Some(r);
        }
        let succeeded: Vec<Value> = results
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let failures: Vec<Value> = results
            .iter()
            .flatten()
            .filter_map(|r| {
                r.as_ref()
                    .err()
                    .map(|f| json!({"Error": f.error, "Cause": f.cause}))
            })
            .collect();
        let run_id = uuid::Uuid::new_v4().to_string();
        let map_run_arn = format!(
            "{}/{}:{run_id}",
            ctx.pointer("/StateMachine/Id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replacen(":stateMachine:", ":mapRun:", 1),
            state.name
        );
        let output = match &map.result_writer {
            Some(t) => {
                let w = apply_template(t, eff, ctx, &state.name).map_err(failure_of)?;
                let bucket = text(&w, "Bucket", &state.name).map_err(failure_of)?;
                let prefix = w
                    .get("Prefix")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .trim_end_matches('/');
                let dir = if prefix.is_empty() {
                    run_id.clone()
                } else {
                    format!("{prefix}/{run_id}")
                };
                let mut files = Vec::new();
                for (kind, list) in [("SUCCEEDED", &succeeded), ("FAILED", &failures)] {
                    if list.is_empty() {
                        continue;
                    }
                    let key = format!("{dir}/{kind}_0.json");
                    self.write(bucket, &key, serde_json::to_vec(list).unwrap_or_default())
                        .await?;
                    files.push(json!({"Key": key, "Size": list.len()}));
                }
                let manifest_key = format!("{dir}/manifest.json");
                let manifest = json!({"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files});
                self.write(bucket, &manifest_key, manifest.to_string().into_bytes())
                    .await?;
                json!({"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key}})
            }
            None => Value::Array(
                results
                    .into_iter()
                    .flatten()
                    .map(|r| r.unwrap_or_else(|f| json!({"Error": f.error, "Cause": f.cause})))
                    .collect(),
            ),
        };
        if failed > 0 && exceeded(failed) {
            let first = failures.first().cloned().unwrap_or(Value::Null);
            return Err(Failure::new(
                "States.ExceedToleratedFailureThreshold",
                format!(
                    "{failed} of {total} child executions failed, more than tolerated; the first: {}",
                    clip(&first)
                ),
            ));
        }
        Ok(output)
    }

    async fn write(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), Failure> {
        self.services
            .put_object(bucket, key, body)
            .await
            .map_err(|f| {
                Failure::new(
                    "States.ResultWriterFailed",
                    format!("writing s3://{bucket}/{key}: {}: {}", f.error, f.cause),
                )
            })
    }
}

/// The items of an ItemReader object: JSONL (one JSON value per line; blank lines skipped) or
/// CSV with a header row (one object of strings per row).
pub fn read_items(format: ReaderFormat, body: &[u8]) -> Result<Vec<Value>, String> {
    match format {
        ReaderFormat::Jsonl => {
            let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
            let mut items = Vec::new();
            for (n, line) in text.split('\n').enumerate() {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() {
                    continue;
                }
                items.push(
                    serde_json::from_str(line)
                        .map_err(|e| format!("line {}: not JSON: {e}", n + 1))?,
                );
            }
            Ok(items)
        }
        ReaderFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(false)
                .from_reader(body);
            let header = reader
                .headers()
                .map_err(|e| format!("header row: {e}"))?
                .clone();
            let mut items = Vec::new();
            for row in reader.records() {
                let row = row.map_err(|e| format!("CSV: {e}"))?;
                let obj: serde_json::Map<String, Value> = header
                    .iter()
                    .zip(row.iter())
                    .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
                    .collect();
                items.push(Value::Object(obj));
            }
            Ok(items)
        }
    }
}
