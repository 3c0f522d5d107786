//! The local scheduler: fires the template's EventBridge rules and EventBridge Scheduler
//! schedules, so scheduled functions run on a laptop as they do in the cloud.
//!
//! Expressions are parsed once at start-up (a malformed one stops `robofleet dev` with the
//! reason, as CloudFormation would refuse it): `rate(5 minutes)`, the six-field AWS
//! `cron(0/5 * * * ? *)` (see [`cron`]), and Scheduler's one-time `at(2026-11-24T10:00:00)`. All
//! times are UTC. A rate fires one period after the stack starts, then every period; missed
//! fires are not back-filled (one fire, then the next future slot), as EventBridge behaves.
//!
//! Each fire invokes the target function with the target's `Input` when the template gives one,
//! otherwise with an EventBridge scheduled-event payload (`"detail-type": "Scheduled Event"`).

pub mod cron;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::Invoker;
use crate::error::ScheduleError;
pub use cron::Cron;

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpr {
    /// `rate(n unit)`.
    Rate(time::Duration),
    /// `cron(...)`.
    Cron(Cron),
    /// `at(yyyy-mm-ddThh:mm:ss)`, UTC.
    At(OffsetDateTime),
}

impl ScheduleExpr {
    /// Parses `rate(...)`, `cron(...)` or `at(...)`.
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let trimmed = expr.trim();
        let inner = |prefix: &str| {
            trimmed
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(body) = inner("rate(") {
            return parse_rate(expr, body).map(Self::Rate);
        }
        if let Some(body) = inner("cron(") {
            return Cron::parse(body).map(Self::Cron);
        }
        if let Some(body) = inner("at(") {
            let fmt =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            let at = PrimitiveDateTime::parse(body, &fmt).map_err(|e| ScheduleError::At {
                expr: expr.to_string(),
                problem: e.to_string(),
            })?;
            return Ok(Self::At(at.assume_utc()));
        }
        Err(ScheduleError::Syntax(expr.to_string()))
    }

    /// The first fire strictly after `after`, for a schedule that started at `anchor`.
    pub fn next_after(
        &self,
        after: OffsetDateTime,
        anchor: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        match self {
            Self::Rate(period) => {
                let period_ns = period.whole_nanoseconds();
                if period_ns <= 0 {
                    return None;
                }
                let elapsed = (after - anchor).whole_nanoseconds();
                let k = if elapsed < 0 {
                    1
                } else {
                    elapsed / period_ns + 1
                };
                let offset = i64::try_from(k.checked_mul(period_ns)?).ok()?;
                Some(anchor + time::Duration::nanoseconds(offset))
            }
            Self::Cron(c) => c.next_after(after),
            Self::At(at) => (*at > after).then_some(*at),
        }
    }
}

fn parse_rate(expr: &str, body: &str) -> Result<time::Duration, ScheduleError> {
    let err = |problem: &str| ScheduleError::Rate {
        expr: expr.to_string(),
        problem: problem.to_string(),
    };
    let mut parts = body.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err(
            "write it as rate(<value> <unit>), e.g. rate(5 minutes)",
        ));
    };
    let n: i64 = value
        .parse()
        .map_err(|_| err("the value must be a positive whole number"))?;
    if n <= 0 {
        return Err(err("the value must be a positive whole number"));
    }
    let (singular, per) = match unit {
        "minute" | "minutes" => ("minute", time::Duration::MINUTE),
        "hour" | "hours" => ("hour", time::Duration::HOUR),
        "day" | "days" => ("day", time::Duration::DAY),
        _ => return Err(err("the unit must be minute(s), hour(s) or day(s)")),
    };
    // EventBridge insists: `1 minute`, `2 minutes`.
    let is_singular = unit == singular;
    if (n == 1) != is_singular {
        return Err(err(if n == 1 {
            "a value of 1 takes the singular unit (rate(1 minute))"
        } else {
            "a value above 1 takes the plural unit (rate(5 minutes))"
        }));
    }
    Ok(per * n as i32)
}

/// Where the schedule comes from in the template; decides the ARN in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// An EventBridge rule (`AWS::Events::Rule`, SAM `Schedule`).
    Rule,
    /// An EventBridge Scheduler schedule (`AWS::Scheduler::Schedule`, SAM `ScheduleV2`).
    Scheduler,
}

/// One schedule as the template declares it.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// Rule or schedule name (physical), used in the event's `resources`.
    pub name: String,
    /// The function to invoke (a name the invoker knows).
    pub function: String,
    /// The expression text, e.g. `rate(5 minutes)`.
    pub expression: String,
    /// The target's constant `Input`, if any.
    pub input: Option<Value>,
    /// `false` when the template declares it disabled; it is then parsed but never fired.
    pub enabled: bool,
    /// Rule or Scheduler schedule.
    pub kind: ScheduleKind,
}

/// What one schedule has done, for the progress display and the report.
#[derive(Debug, Default)]
pub struct ScheduleCounters {
    /// Fires.
    pub fired: AtomicU64,
    /// Fires whose invocation failed.
    pub failed: AtomicU64,
}

/// A schedule's state as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleStatus {
    /// Rule or schedule name.
    pub name: String,
    /// Target function.
    pub function: String,
    /// The expression.
    pub expression: String,
    /// Whether it fires.
    pub enabled: bool,
    /// Next fire (RFC 3339), if any.
    pub next_fire: Option<String>,
    /// Fires so far.
    pub fired: u64,
    /// Failed fires so far.
    pub failed: u64,
}

struct Entry {
    spec: ScheduleSpec,
    expr: ScheduleExpr,
    next: Option<OffsetDateTime>,
    counters: Arc<ScheduleCounters>,
}

/// One fire, as returned by [`Scheduler::fire_due`].
#[derive(Debug, Clone)]
pub struct Fired {
    /// Rule or schedule name.
    pub name: String,
    /// Target function.
    pub function: String,
    /// The scheduled time.
    pub at: OffsetDateTime,
    /// Whether the invocation succeeded.
    pub ok: bool,
}

/// Fires a set of schedules against an invoker.
pub struct Scheduler {
    entries: Vec<Entry>,
    invoker: Arc<dyn Invoker>,
    region: String,
    account: String,
    anchor: OffsetDateTime,
}

impl Scheduler {
    /// Parses every spec (all errors surface here, before anything runs) and computes each
    /// first fire after `start`.
    pub fn new(
        specs: Vec<ScheduleSpec>,
        invoker: Arc<dyn Invoker>,
        region: &str,
        account: &str,
        start: OffsetDateTime,
    ) -> Result<Self, ScheduleError> {
        let mut entries = Vec::with_capacity(specs.len());
        for spec in specs {
            let expr = ScheduleExpr::parse(&spec.expression)?;
            let next = if spec.enabled {
                expr.next_after(start, start)
            } else {
                None
            };
            entries.push(Entry {
                spec,
                expr,
                next,
                counters: Arc::new(ScheduleCounters::default()),
            });
        }
        Ok(Self {
            entries,
            invoker,
            region: region.to_string(),
            account: account.to_string(),
            anchor: start,
        })
    }

    /// The earliest pending fire.
    pub fn next_due(&self) -> Option<OffsetDateTime> {
        self.entries.iter().filter_map(|e| e.next).min()
    }

    /// The state of every schedule.
    pub fn status(&self) -> Vec<ScheduleStatus> {
        self.entries
            .iter()
            .map(|e| ScheduleStatus {
                name: e.spec.name.clone(),
                function: e.spec.function.clone(),
                expression: e.spec.expression.clone(),
                enabled: e.spec.enabled,
                next_fire: e.next.and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
                fired: e.counters.fired.load(Ordering::Relaxed),
                failed: e.counters.failed.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Fires every schedule due at `now` (once each, however many slots were missed) and moves
    /// it to its next slot after `now`.
    pub async fn fire_due(&mut self, now: OffsetDateTime) -> Vec<Fired> {
        let mut fired = Vec::new();
        for i in 0..self.entries.len() {
            let Some(at) = self.entries[i].next.filter(|t| *t <= now) else {
                continue;
            };
            let event = self.event_for(&self.entries[i].spec, at);
            let entry = &self.entries[i];
            entry.counters.fired.fetch_add(1, Ordering::Relaxed);
            let result = self.invoker.invoke(&entry.spec.function, event).await;
            let ok = match result {
                Ok(o) if o.function_error.is_none() => true,
                Ok(o) => {
                    entry.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(schedule = %entry.spec.name, function = %entry.spec.function, error = %o.payload, "scheduled invocation failed");
                    false
                }
                Err(e) => {
                    entry.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(schedule = %entry.spec.name, function = %entry.spec.function, error = %e, "scheduled invocation failed");
                    false
                }
            };
            tracing::info!(schedule = %entry.spec.name, function = %entry.spec.function, at = %at, ok, "schedule fired");
            fired.push(Fired {
                name: entry.spec.name.clone(),
                function: entry.spec.function.clone(),
                at,
                ok,
            });
            let anchor = self.anchor;
            let entry = &mut self.entries[i];
            entry.next = entry.expr.next_after(now.max(at), anchor);
        }
        fired
    }

    /// The payload a fire at `at` delivers: the target's Input, or a scheduled event.
    pub fn event_for(&self, spec: &ScheduleSpec, at: OffsetDateTime) -> Value {
        if let Some(input) = &spec.input {
            return input.clone();
        }
        scheduled_event(spec, at, &self.region, &self.account)
    }

    /// Runs until `shutdown` turns true, sleeping until the next fire.
    pub fn spawn(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<Vec<ScheduleStatus>> {
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let wait = match self.next_due() {
                    Some(t) => {
                        let d = t - OffsetDateTime::now_utc();
                        std::time::Duration::try_from(d).unwrap_or(std::time::Duration::ZERO)
                    }
                    None => std::time::Duration::from_secs(3600),
                };
                // Wake at least once a minute so that clock jumps (suspend) are noticed.
                let wait = wait.min(std::time::Duration::from_secs(60));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {
                        self.fire_due(OffsetDateTime::now_utc()).await;
                    }
                    changed = shutdown.changed() => {
                        if changed.is_err() { break; }
                    }
                }
            }
            self.status()
        })
    }
}

/// The EventBridge scheduled-event payload for a fire at `at`.
pub fn scheduled_event(
    spec: &ScheduleSpec,
    at: OffsetDateTime,
    region: &str,
    account: &str,
) -> Value {
    let resource = match spec.kind {
        ScheduleKind::Rule => format!("arn:aws:events:{region}:{account}:rule/{}", spec.name),
        ScheduleKind::Scheduler => {
            format!(
                "arn:aws:scheduler:{region}:{account}:schedule/default/{}",
                spec.name
            )
        }
    };
    let time_fmt =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": match spec.kind { ScheduleKind::Rule => "aws.events", ScheduleKind::Scheduler => "aws.scheduler" },
        "account": account,
        "time": at.format(&time_fmt).unwrap_or_default(),
        "region": region,
        "resources": [resource],
        "detail": {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvokeOutcome;
    use crate::error::InvokeError;
    use futures::future::BoxFuture;
    use std::sync::Mutex;
    use time::macros::datetime;

    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<(String, Value)>>,
        fail: bool,
    }

    impl Invoker for Recorder {
        fn invoke<'a>(
            &'a self,
            function: &'a str,
            event: Value,
        ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
            Box::pin(async move {
                if let Ok(mut calls) = self.calls.lock() {
                    calls.push((function.to_string(), event));
                }
                if self.fail {
                    Err(InvokeError::Function {
                        function: function.to_string(),
                        error_type: crate::error::UNTYPED_ERROR.into(),
                        message: "boom".into(),
                    })
                } else {
                    Ok(InvokeOutcome::ok(Value::Null))
                }
            })
        }
    }

    fn spec(name: &str, expr: &str) -> ScheduleSpec {
        ScheduleSpec {
            name: name.into(),
            function: "BreakerProbeFunction".into(),
            expression: expr.into(),
            input: None,
            enabled: true,
            kind: ScheduleKind::Rule,
        }
    }

    #[test]
    fn rate_takes_aws_units_and_enforces_singular_and_plural() {
        assert_eq!(
            ScheduleExpr::parse("rate(1 minute)"),
            Ok(ScheduleExpr::Rate(time::Duration::MINUTE))
        );
        assert_eq!(
            ScheduleExpr::parse("rate(5 minutes)"),
            Ok(ScheduleExpr::Rate(time::Duration::minutes(5)))
        );
        assert_eq!(
            ScheduleExpr::parse("rate(2 hours)"),
            Ok(ScheduleExpr::Rate(time::Duration::hours(2)))
        );
        assert_eq!(
            ScheduleExpr::parse("rate(1 day)"),
            Ok(ScheduleExpr::Rate(time::Duration::DAY))
        );
        for bad in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 minutes)",
            "rate(-1 minute)",
            "rate(5 weeks)",
            "rate(5)",
            "rate(five minutes)",
        ] {
            assert!(
                matches!(ScheduleExpr::parse(bad), Err(ScheduleError::Rate { .. })),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn unknown_expression_forms_are_syntax_errors() {
        assert!(matches!(
            ScheduleExpr::parse("every 5 minutes"),
            Err(ScheduleError::Syntax(_))
        ));
        assert!(matches!(
            ScheduleExpr::parse("cron(0 * * * ?"),
            Err(ScheduleError::Syntax(_))
        ));
    }

    #[test]
    fn at_parses_a_one_time_schedule() {
        let e = ScheduleExpr::parse("at(2026-11-24T10:30:00)").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.next_after(
                datetime!(2026-11-24 10:00 UTC),
                datetime!(2026-11-24 09:00 UTC)
            ),
            Some(datetime!(2026-11-24 10:30 UTC))
        );
        assert_eq!(
            e.next_after(
                datetime!(2026-11-24 10:30 UTC),
                datetime!(2026-11-24 09:00 UTC)
            ),
            None
        );
        assert!(matches!(
            ScheduleExpr::parse("at(tomorrow)"),
            Err(ScheduleError::At { .. })
        ));
    }

    #[test]
    fn rate_fires_one_period_after_start_then_every_period() {
        let start = datetime!(2026-11-24 10:00:30 UTC);
        let e = ScheduleExpr::parse("rate(5 minutes)").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.next_after(start, start),
            Some(datetime!(2026-11-24 10:05:30 UTC))
        );
        assert_eq!(
            e.next_after(datetime!(2026-11-24 10:05:30 UTC), start),
            Some(datetime!(2026-11-24 10:10:30 UTC))
        );
        // Late by three periods: the next slot is the first one in the future.
        assert_eq!(
            e.next_after(datetime!(2026-11-24 10:21:00 UTC), start),
            Some(datetime!(2026-11-24 10:25:30 UTC))
        );
    }

    #[tokio::test]
    async fn fire_due_invokes_with_a_scheduled_event_and_advances() {
        let start = datetime!(2026-11-24 10:00:00 UTC);
        let rec = Arc::new(Recorder::default());
        let mut s = Scheduler::new(
            vec![
                spec("probe", "rate(1 minute)"),
                spec("nightly", "cron(0 2 * * ? *)"),
            ],
            rec.clone(),
            "us-east-1",
            "123456789012",
            start,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.next_due(), Some(datetime!(2026-11-24 10:01 UTC)));
        assert!(
            s.fire_due(datetime!(2026-11-24 10:00:59 UTC))
                .await
                .is_empty()
        );

        let fired = s.fire_due(datetime!(2026-11-24 10:01:00 UTC)).await;
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].name, "probe");
        let calls = rec.calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls.len(), 1);
        let (function, event) = &calls[0];
        assert_eq!(function, "BreakerProbeFunction");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["time"], "2026-11-24T10:01:00Z");
        assert_eq!(
            event["resources"][0],
            "arn:aws:events:us-east-1:123456789012:rule/probe"
        );
        assert_eq!(event["detail"], json!({}));
        assert_eq!(s.next_due(), Some(datetime!(2026-11-24 10:02 UTC)));

        // Asleep for hours: each schedule fires once, not once per missed slot.
        let fired = s.fire_due(datetime!(2026-11-25 03:00:10 UTC)).await;
        let names: Vec<_> = fired.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["probe", "nightly"]);
        let status = s.status();
        assert_eq!(status[0].fired, 2);
        assert_eq!(status[1].next_fire.as_deref(), Some("2026-11-26T02:00:00Z"));
    }

    #[tokio::test]
    async fn constant_input_replaces_the_event_and_disabled_schedules_never_fire() {
        let start = datetime!(2026-11-24 10:00:00 UTC);
        let rec = Arc::new(Recorder::default());
        let mut with_input = spec("scale", "rate(1 minute)");
        with_input.input = Some(json!({"action": "prescale"}));
        let mut disabled = spec("off", "rate(1 minute)");
        disabled.enabled = false;
        let mut s = Scheduler::new(
            vec![with_input, disabled],
            rec.clone(),
            "us-east-1",
            "1",
            start,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let fired = s.fire_due(datetime!(2026-11-24 10:05 UTC)).await;
        assert_eq!(fired.len(), 1);
        let calls = rec.calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls[0].1, json!({"action": "prescale"}));
    }

    #[tokio::test]
    async fn failed_invocations_are_counted_and_the_schedule_keeps_going() {
        let start = datetime!(2026-11-24 10:00:00 UTC);
        let rec = Arc::new(Recorder {
            fail: true,
            ..Recorder::default()
        });
        let mut s = Scheduler::new(
            vec![spec("probe", "rate(1 minute)")],
            rec,
            "us-east-1",
            "1",
            start,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let fired = s.fire_due(datetime!(2026-11-24 10:01 UTC)).await;
        assert!(!fired[0].ok);
        assert_eq!(s.status()[0].failed, 1);
        assert_eq!(s.next_due(), Some(datetime!(2026-11-24 10:02 UTC)));
    }

    #[test]
    fn a_malformed_schedule_stops_construction() {
        let r = Scheduler::new(
            vec![spec("bad", "cron(0 * * * *)")],
            Arc::new(Recorder::default()),
            "us-east-1",
            "1",
            OffsetDateTime::now_utc(),
        );
        assert!(matches!(r, Err(ScheduleError::Cron { .. })));
    }
}
