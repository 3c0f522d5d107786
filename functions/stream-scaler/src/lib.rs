//! stream-scaler: capacity for the streams and the missions table, every minute.
//!
//! Each run, for each stream: DescribeStreamSummary (mode, open shards, warm throughput, status)
//! and, for an on-demand stream, DescribeAccountSettings (Standard or Advantage); the last 26 h
//! of its CloudWatch metrics; its state (the calls of the last 24 h) from DynamoDB. The policy of
//! `fleet-capacity` decides; the scaler carries the decision out (UpdateShardCount with
//! UNIFORM_SCALING, or UpdateStreamWarmThroughput), records the call, logs the decision with its
//! reason and emits it as EMF. Then the missions table: DescribeTable, and UpdateTable to raise
//! the table's and each index's warm throughput to the largest need its rules announce within
//! the look-ahead, never lowering it, with the cost of the raise (docs/capacity.md).
//!
//! A refusal from AWS (a call that breaks its rules, which the policy should never make: a lost
//! state table could) is reported with AWS's own message and not recorded, since AWS did not
//! count it. One stream's failure does not stop the others; the run fails at its end if any
//! part failed, so that the function's Errors metric shows it.

pub mod cloudwatch;
pub mod config;
pub mod state;

use aws_sdk_dynamodb::types::{
    GlobalSecondaryIndexUpdate, UpdateGlobalSecondaryIndexAction, WarmThroughput,
};
use aws_sdk_kinesis::types::{
    MinimumThroughputBillingCommitmentOutputStatus, ScalingType, StreamMode as KinesisMode,
    StreamStatus,
};
use fleet_aws::error::{chain, describe};
use fleet_capacity::budget::{Budget, Call, CallKind};
use fleet_capacity::observe::{StreamCapacity, StreamMode};
use fleet_capacity::policy::{Action, Decision};
use fleet_capacity::prices::Prices;
use fleet_capacity::table::{self, TableWarm, Warm, WarmPrice};
use serde_json::{Value, json};

pub use config::{Config, Mode, StreamConfig, TableConfig};
pub use state::{StateError, StateStore, StreamState};

/// The function's name in logs.
pub const FUNCTION: &str = "stream-scaler";

/// How far back the metrics go: a day (the seasonal floor) and the scale-down window.
pub const METRICS_WINDOW_SECS: i64 = 26 * 3600;

/// The handler, built once per cold start.
#[derive(Debug)]
pub struct Handler {
    config: Config,
    kinesis: aws_sdk_kinesis::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    state: StateStore,
    warm_price: WarmPrice,
}

/// Builds the handler's clients from `sdk` (region, credentials, endpoints).
pub fn build(config: Config, sdk: &aws_config::SdkConfig) -> Handler {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let prices = Prices::bundled();
    Handler {
        state: StateStore::new(dynamodb.clone(), config.state_table.clone()),
        kinesis: aws_sdk_kinesis::Client::new(sdk),
        cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
        dynamodb,
        warm_price: WarmPrice {
            per_write_unit: prices.get("dynamodb.warm.write_unit"),
            per_read_unit: prices.get("dynamodb.warm.read_unit"),
        },
        config,
    }
}

/// Unix seconds now.
pub use fleet_core::timefmt::now_unix_secs as now;

impl Handler {
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One scheduled run at `now` (unix seconds). The answer lists what was decided and done;
    /// `Err` carries the same report when some part failed.
    pub async fn handle(&self, now: i64) -> Result<Value, Value> {
        let mut streams = Vec::new();
        let mut failed = false;
        let mut advantage: Option<bool> = None;
        for s in &self.config.streams {
            match self.stream(s, now, &mut advantage).await {
                Ok(v) => streams.push(v),
                Err(message) => {
                    failed = true;
                    tracing::error!(stream = %s.name, error = %message, "stream-scaler could not look after the stream");
                    emit(s.role, &[("ScalerFailed", 1.0, "Count")]);
                    streams.push(json!({"stream": s.name, "error": message}));
                }
            }
        }
        let table = match self.table(now).await {
            Ok(v) => v,
            Err(message) => {
                failed = true;
                tracing::error!(table = %self.config.table.name, error = %message, "stream-scaler could not look after the table");
                json!({"table": self.config.table.name, "error": message})
            }
        };
        let report = json!({"function": FUNCTION, "at": now, "mode": format!("{:?}", self.config.mode).to_lowercase(), "streams": streams, "table": table});
        if failed { Err(report) } else { Ok(report) }
    }

    async fn capacity(
        &self,
        s: &StreamConfig,
        advantage: &mut Option<bool>,
    ) -> Result<StreamCapacity, String> {
        let out = self
            .kinesis
            .describe_stream_summary()
            .stream_name(&s.name)
            .send()
            .await
            .map_err(|e| format!("DescribeStreamSummary {}: {}", s.name, describe(&e)))?;
        let d = out
            .stream_description_summary()
            .ok_or_else(|| format!("DescribeStreamSummary {}: no summary", s.name))?;
        let on_demand = d
            .stream_mode_details()
            .is_some_and(|m| *m.stream_mode() == KinesisMode::OnDemand);
        let mode = if !on_demand {
            StreamMode::Provisioned
        } else {
            if advantage.is_none() {
                let settings = self
                    .kinesis
                    .describe_account_settings()
                    .send()
                    .await
                    .map_err(|e| format!("DescribeAccountSettings: {}", describe(&e)))?;
                let status = settings
                    .minimum_throughput_billing_commitment()
                    .map(|c| c.status().clone());
                *advantage = Some(matches!(
                    status,
                    Some(MinimumThroughputBillingCommitmentOutputStatus::Enabled | MinimumThroughputBillingCommitmentOutputStatus::EnabledUntilEarliestAllowedEnd)
                ));
            }
            if *advantage == Some(true) {
                StreamMode::OnDemandAdvantage
            } else {
                StreamMode::OnDemandStandard
            }
        };
        Ok(StreamCapacity {
            mode,
            open_shards: u32::try_from(d.open_shard_count()).unwrap_or(0),
            warm_mibps: d
                .warm_throughput()
                .and_then(|w| w.target_mibps())
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            active: *d.stream_status() == StreamStatus::Active,
        })
    }

    async fn stream(
        &self,
        s: &StreamConfig,
        now: i64,
        advantage: &mut Option<bool>,
    ) -> Result<Value, String> {
        let cap = self.capacity(s, advantage).await?;
        let mut state = self.state.load(&s.name).await.map_err(|e| e.to_string())?;
        state.calls = Budget::trimmed(&state.calls, now);
        // A change the scaler did not make still counts in AWS's budget: record it.
        let mut external = None;
        if cap.mode == StreamMode::Provisioned && cap.active {
            if let Some(expected) = state.expected_shards.filter(|e| *e != cap.open_shards) {
                let call = Call {
                    at: now,
                    from: expected,
                    to: cap.open_shards,
                    kind: CallKind::External,
                };
                state.calls.push(call);
                external = Some(call);
            }
            state.expected_shards = Some(cap.open_shards);
        }
        let minutes =
            cloudwatch::minutes(&self.cloudwatch, &s.name, now - METRICS_WINDOW_SECS, now).await?;
        let decision = s.policy.decide(&s.rules, now, &minutes, &cap, &state.calls);
        state.last_decision = serde_json::to_string(&decision).ok();
        let call = match (self.config.mode, decision.action, decision.kind) {
            (
                Mode::Act,
                Action::SetShards { from, to } | Action::SetWarmThroughput { from, to },
                Some(kind),
            ) => Some(Call {
                at: now,
                from,
                to,
                kind,
            }),
            _ => None,
        };
        // Claim the call before making it: the state write is conditional on the version read,
        // so of two runs at once (a test invocation beside the schedule) only one calls AWS.
        if let Some(c) = call {
            state.calls.push(c);
            if matches!(decision.action, Action::SetShards { .. }) {
                state.expected_shards = Some(c.to);
            } else {
                state.expected_warm = Some(c.to);
            }
        }
        match self.state.save(&state).await {
            Ok(()) => state.version += 1,
            Err(StateError::Conflict { .. }) => {
                tracing::warn!(stream = %s.name, "stream-scaler: another run changed the state since it was read; this run stands down");
                return Ok(
                    json!({"stream": s.name, "stoodDown": "another run changed the state since it was read"}),
                );
            }
            Err(e) => return Err(e.to_string()),
        }
        let mut done = json!(null);
        let mut refused = None;
        if let Some(c) = call {
            let result = match decision.action {
                Action::SetShards { .. } => self
                    .kinesis
                    .update_shard_count()
                    .stream_name(&s.name)
                    .target_shard_count(c.to as i32)
                    .scaling_type(ScalingType::UniformScaling)
                    .send()
                    .await
                    .map(|_| "UpdateShardCount")
                    .map_err(|e| {
                        format!("UpdateShardCount {} -> {}: {}", c.from, c.to, describe(&e))
                    }),
                _ => self
                    .kinesis
                    .update_stream_warm_throughput()
                    .stream_name(&s.name)
                    .warm_throughput_mibps(c.to as i32)
                    .send()
                    .await
                    .map(|_| "UpdateStreamWarmThroughput")
                    .map_err(|e| {
                        format!(
                            "UpdateStreamWarmThroughput {} -> {} MiB/s: {}",
                            c.from,
                            c.to,
                            describe(&e)
                        )
                    }),
            };
            match result {
                Ok(api) => done = json!({"call": api, "from": c.from, "to": c.to}),
                Err(message) => {
                    // AWS did not count it: take the claim back (if this write fails, the call
                    // stays counted, which only makes the budget stricter).
                    state.calls.retain(|x| *x != c);
                    if matches!(decision.action, Action::SetShards { .. }) {
                        state.expected_shards = Some(cap.open_shards);
                    } else {
                        state.expected_warm = Some(cap.warm_mibps);
                    }
                    if let Err(e) = self.state.save(&state).await {
                        tracing::warn!(stream = %s.name, error = %e, "stream-scaler: could not take back a refused call; it stays counted");
                    }
                    refused = Some(message);
                }
            }
        }
        log(s, &cap, &decision, &done, refused.as_deref(), external);
        fleet_lambda::metrics::emit_doc(&metrics_doc(
            s.role,
            &[
                ("Shards", f64::from(cap.open_shards), "Count"),
                ("WarmThroughputMiBps", f64::from(cap.warm_mibps), "None"),
                ("DemandShardEquivalents", decision.demand, "None"),
                ("PrewarmShardEquivalents", decision.prewarm, "None"),
                ("ThrottledRecords", decision.throttled, "Count"),
                (
                    "ScalingCallsIn24h",
                    f64::from(Budget::used(&state.calls, now)),
                    "Count",
                ),
                (
                    "ScalingCalls",
                    if done.is_null() { 0.0 } else { 1.0 },
                    "Count",
                ),
                (
                    "ScalingRefused",
                    if refused.is_some() { 1.0 } else { 0.0 },
                    "Count",
                ),
            ],
            Some(&decision),
        ));
        let report = json!({
            "stream": s.name,
            "mode": cap.mode,
            "openShards": cap.open_shards,
            "warmMiBps": cap.warm_mibps,
            "decision": decision,
            "done": done,
            "refused": refused,
            "external": external,
            "callsIn24h": Budget::used(&state.calls, now),
        });
        match refused {
            Some(r) => Err(format!("AWS refused {r}")),
            None => Ok(report),
        }
    }

    async fn table(&self, now: i64) -> Result<Value, String> {
        let t = &self.config.table;
        let out = self
            .dynamodb
            .describe_table()
            .table_name(&t.name)
            .send()
            .await
            .map_err(|e| format!("DescribeTable {}: {}", t.name, chain(&e)))?;
        let desc = out
            .table()
            .ok_or_else(|| format!("DescribeTable {}: no table", t.name))?;
        let warm_of = |r: Option<i64>, w: Option<i64>| Warm {
            read: r.unwrap_or(0).max(0) as u64,
            write: w.unwrap_or(0).max(0) as u64,
        };
        let current = TableWarm {
            table: desc.warm_throughput().map_or_else(Warm::default, |w| {
                warm_of(w.read_units_per_second(), w.write_units_per_second())
            }),
            indexes: desc
                .global_secondary_indexes()
                .iter()
                .filter(|g| {
                    g.index_name()
                        .is_some_and(|n| t.indexes.iter().any(|i| i == n))
                })
                .map(|g| {
                    let w = g.warm_throughput().map_or_else(Warm::default, |w| {
                        warm_of(w.read_units_per_second(), w.write_units_per_second())
                    });
                    (g.index_name().unwrap_or_default().to_string(), w)
                })
                .collect(),
        };
        let raises = table::raises(&t.rules, now, t.lookahead_secs, &current, &self.warm_price);
        let mut done = Vec::new();
        let mut errors = Vec::new();
        for r in &raises {
            tracing::info!(table = %t.name, index = ?r.index, from_write = r.from.write, to_write = r.to.write, from_read = r.from.read, to_read = r.to.read, cost_usd = r.cost_usd, mode = ?self.config.mode, "stream-scaler: raising warm throughput ahead of the rules' need");
            if self.config.mode == Mode::Observe {
                continue;
            }
            let warm = WarmThroughput::builder()
                .read_units_per_second(r.to.read as i64)
                .write_units_per_second(r.to.write as i64)
                .build();
            let update = self.dynamodb.update_table().table_name(&t.name);
            let update = match &r.index {
                None => update.warm_throughput(warm),
                Some(index) => {
                    let action = UpdateGlobalSecondaryIndexAction::builder()
                        .index_name(index)
                        .warm_throughput(warm)
                        .build()
                        .map_err(|e| e.to_string())?;
                    update.global_secondary_index_updates(
                        GlobalSecondaryIndexUpdate::builder().update(action).build(),
                    )
                }
            };
            match update.send().await {
                Ok(_) => done.push(
                    json!({"index": r.index, "from": r.from, "to": r.to, "costUsd": r.cost_usd}),
                ),
                Err(e) => errors.push(format!(
                    "UpdateTable {} {}: {}",
                    t.name,
                    r.index.as_deref().unwrap_or("(table)"),
                    chain(&e)
                )),
            }
        }
        if !done.is_empty() {
            let cost: f64 = raises.iter().map(|r| r.cost_usd).sum();
            emit(
                "missions-table",
                &[
                    ("WarmThroughputRaises", done.len() as f64, "Count"),
                    ("WarmThroughputRaiseCostUsd", cost, "None"),
                ],
            );
        }
        let report = json!({"table": t.name, "current": current, "raises": raises, "done": done});
        if errors.is_empty() {
            Ok(report)
        } else {
            Err(format!("{} ({report})", errors.join("; ")))
        }
    }
}

fn log(
    s: &StreamConfig,
    cap: &StreamCapacity,
    d: &Decision,
    done: &Value,
    refused: Option<&str>,
    external: Option<Call>,
) {
    if let Some(c) = external {
        tracing::warn!(stream = %s.name, from = c.from, to = c.to, "stream-scaler: the shard count changed outside the scaler; counted in the 24 h budget");
    }
    match refused {
        Some(r) => {
            tracing::error!(stream = %s.name, reason = %d.reason, refused = %r, "stream-scaler: AWS refused the call")
        }
        None if !done.is_null() => {
            tracing::info!(stream = %s.name, mode = ?cap.mode, kind = ?d.kind, reason = %d.reason, budget_used = d.budget_used, "stream-scaler: {}", done)
        }
        None => {
            tracing::info!(stream = %s.name, mode = ?cap.mode, shards = cap.open_shards, warm = cap.warm_mibps, reason = %d.reason, "stream-scaler: no change")
        }
    }
}

fn emit(role: &str, metrics: &[(&str, f64, &str)]) {
    fleet_lambda::metrics::emit_doc(&metrics_doc(role, metrics, None));
}

/// The EMF document of a run: the metrics, and for a stream's decision its action and reason
/// as properties (searchable in Logs Insights next to the numbers, not metrics themselves).
fn metrics_doc(
    role: &str,
    metrics: &[(&str, f64, &str)],
    decision: Option<&fleet_capacity::policy::Decision>,
) -> Value {
    let mut doc =
        fleet_lambda::metrics::values(metrics, &[("Function", FUNCTION), ("Stream", role)]);
    if let Some(d) = decision {
        doc["Decision"] = json!(d.action);
        doc["Reason"] = json!(d.reason);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_capacity::policy::{Action, Decision};

    #[test]
    fn a_decision_s_action_and_reason_travel_with_its_metrics() {
        let d = Decision {
            action: Action::SetShards { from: 2, to: 4 },
            kind: None,
            reason: "throttled: doubling now".into(),
            demand: 3.0,
            throttled: 10.0,
            prewarm: 0.0,
            budget_used: 1,
        };
        let doc = metrics_doc("shadows", &[("Shards", 2.0, "Count")], Some(&d));
        assert_eq!(
            doc["Decision"],
            json!({"action": "set-shards", "from": 2, "to": 4})
        );
        assert_eq!(doc["Reason"], "throttled: doubling now");
        assert_eq!(doc["Stream"], "shadows");
        assert_eq!(doc["Shards"], 2);
        let failed = metrics_doc("shadows", &[("ScalerFailed", 1.0, "Count")], None);
        assert!(failed.get("Decision").is_none());
    }
}
