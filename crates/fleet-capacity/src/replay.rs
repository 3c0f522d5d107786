//! Time-compressed replay: the policy run minute by minute over a demand curve, as the
//! stream-scaler would run it every minute, against a simulated stream.
//!
//! The simulated provisioned stream accepts at most its shards' limits each minute and throttles
//! the rest (reported as WriteProvisionedThroughputExceeded); a resharding takes effect
//! `call_minutes` after the call, and the stream is UPDATING until then. The policy sees the
//! metrics `lag_minutes` late, as CloudWatch publishes them. The same curve is also run against
//! a perfect oracle (exactly the shards each minute needs, at 100 % of the limits), fixed
//! provisioning at the peak, On-demand Standard (twice the previous peak, adapting within 15
//! minutes) and On-demand Advantage (Standard plus the warm throughput the policy sets).
//!
//! Capacity is counted in shard-equivalent hours (1 shard = 1 MiB/s = 1,000 records/s), so the
//! modes compare on one scale.

use serde::Serialize;

use crate::budget::{Budget, Call};
use crate::limits::{MIB, SHARD_RECORDS_PER_SEC, shards_for};
use crate::observe::{Minute, StreamCapacity, StreamMode};
use crate::plan::demand::Load;
use crate::policy::{Action, Policy};
use crate::rules::Rules;

/// How the simulated streams behave.
#[derive(Debug, Clone, Serialize)]
pub struct Sim {
    /// Minutes from an UpdateShardCount call until its shards take the traffic.
    pub call_minutes: u32,
    /// Minutes until a warm throughput raise is in place.
    pub warm_minutes: u32,
    /// Minutes CloudWatch metrics arrive late.
    pub lag_minutes: u32,
    /// On-demand: capacity adapts to twice the previous peak within this many minutes.
    pub on_demand_adapt_minutes: u32,
    /// On-demand: the capacity of a new stream, MiB/s (and thousands of records/s).
    pub on_demand_floor: f64,
}

impl Default for Sim {
    fn default() -> Self {
        Sim {
            call_minutes: 5,
            warm_minutes: 10,
            lag_minutes: 2,
            on_demand_adapt_minutes: 15,
            on_demand_floor: 4.0,
        }
    }
}

/// One mode's run over the reported part of the curve.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub mode: String,
    /// Minutes in which some traffic was throttled.
    pub minutes_over: u32,
    /// Records throttled (to be retried by the writer).
    pub throttled_records: f64,
    /// Capacity provided, shard-equivalent hours.
    pub capacity_hours: f64,
    /// The most calls in any rolling 24 h (provisioned: UpdateShardCount; Advantage: warm throughput).
    pub calls_24h: u32,
    pub peak_capacity: f64,
    /// Capacity per minute, shard-equivalents (the chart draws it; JSON has its steps,
    /// `capacitySteps: [[minute of the day, capacity], ...]`, one per change).
    #[serde(rename = "capacitySteps", serialize_with = "serialize_steps")]
    pub capacity: Vec<f64>,
    #[serde(skip)]
    pub calls: Vec<Call>,
}

impl Run {
    /// `(minute, capacity)` at the start and at every change: the capacity over the day.
    pub fn steps(&self) -> Vec<(usize, f64)> {
        steps_of(&self.capacity)
    }
}

fn steps_of(capacity: &[f64]) -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64)> = Vec::new();
    for (i, c) in capacity.iter().enumerate() {
        if out.last().is_none_or(|(_, last)| last != c) {
            out.push((i, *c));
        }
    }
    out
}

fn serialize_steps<S: serde::Serializer>(capacity: &[f64], s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&steps_of(capacity), s)
}

/// The replay of one curve.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    /// What the perfect oracle uses, shard-equivalent hours.
    pub oracle_hours: f64,
    pub policy: Run,
    pub fixed_peak: Run,
    pub on_demand_standard: Run,
    pub on_demand_advantage: Run,
}

impl Replay {
    /// The policy's capacity-hours over the oracle's.
    pub fn policy_over_oracle(&self) -> f64 {
        self.policy.capacity_hours / self.oracle_hours.max(f64::MIN_POSITIVE)
    }
}

/// Replays `curve` (one load per minute from unix second `start`); only the last `report`
/// minutes are reported (the earlier ones warm the policy and the on-demand peak up).
pub fn replay(
    policy: &Policy,
    rules: &Rules,
    sim: &Sim,
    start: i64,
    curve: &[Load],
    report: usize,
) -> Replay {
    let report = report.min(curve.len());
    let from = curve.len() - report;
    // The oracle has exactly the shards each minute needs, and a stream has at least one.
    let oracle_hours = curve[from..]
        .iter()
        .map(|l| l.shard_equivalents().ceil().max(1.0))
        .sum::<f64>()
        / 60.0;
    let peak = curve[from..]
        .iter()
        .map(Load::shard_equivalents)
        .fold(0.0, f64::max);
    let fixed = shards_for(peak, policy.target_use) as f64;
    Replay {
        oracle_hours,
        policy: provisioned(policy, rules, sim, start, curve, from),
        fixed_peak: fixed_run("fixed at peak", curve, from, fixed),
        on_demand_standard: on_demand(policy, None, sim, start, curve, from),
        on_demand_advantage: on_demand(policy, Some(rules), sim, start, curve, from),
    }
}

fn accept(load: &Load, cap: f64) -> (Minute, bool) {
    let (cap_b, cap_r) = (cap * MIB, cap * SHARD_RECORDS_PER_SEC);
    let f = (cap_b / load.bytes_per_sec.max(f64::MIN_POSITIVE))
        .min(cap_r / load.records_per_sec.max(f64::MIN_POSITIVE))
        .min(1.0);
    let m = Minute {
        start: 0,
        bytes: load.bytes_per_sec * f * 60.0,
        records: load.records_per_sec * f * 60.0,
        throttled: load.records_per_sec * (1.0 - f) * 60.0,
        iterator_age_ms: 0.0,
    };
    (m, f < 1.0 - 1e-9)
}

fn fixed_run(mode: &str, curve: &[Load], from: usize, shards: f64) -> Run {
    let mut run = empty(mode);
    for load in &curve[from..] {
        let (m, over) = accept(load, shards);
        tally(&mut run, shards, &m, over);
    }
    run
}

fn empty(mode: &str) -> Run {
    Run {
        mode: mode.into(),
        minutes_over: 0,
        throttled_records: 0.0,
        capacity_hours: 0.0,
        calls_24h: 0,
        peak_capacity: 0.0,
        capacity: Vec::new(),
        calls: Vec::new(),
    }
}

fn tally(run: &mut Run, cap: f64, m: &Minute, over: bool) {
    run.capacity_hours += cap / 60.0;
    run.peak_capacity = run.peak_capacity.max(cap);
    run.capacity.push(cap);
    if over {
        run.minutes_over += 1;
        run.throttled_records += m.throttled;
    }
}

fn provisioned(
    policy: &Policy,
    rules: &Rules,
    sim: &Sim,
    start: i64,
    curve: &[Load],
    from: usize,
) -> Run {
    let mut run = empty("provisioned + policy");
    let first = curve
        .first()
        .map_or(1, |l| shards_for(l.shard_equivalents(), policy.target_use));
    let mut shards = first.clamp(policy.min_shards, policy.max_shards);
    let mut pending: Option<(i64, u32)> = None;
    let mut minutes: Vec<Minute> = Vec::with_capacity(curve.len());
    let mut history: Vec<Call> = Vec::new();
    // What the scaler fetches: the last day and the seasonal look-ahead of the day before.
    let keep = 86_400
        + i64::from(
            policy.down_after_minutes.max(policy.up_lookback_minutes) + sim.lag_minutes + 5,
        ) * 60;
    for (i, load) in curve.iter().enumerate() {
        let t = start + i as i64 * 60;
        if let Some((_, to)) = pending.filter(|p| p.0 <= t) {
            shards = to;
            pending = None;
        }
        let (mut m, over) = accept(load, f64::from(shards));
        m.start = t;
        minutes.push(m);
        if i >= from {
            tally(&mut run, f64::from(shards), &m, over);
        }
        // The scaler runs at the end of the minute and sees metrics `lag` minutes late.
        let now = t + 60;
        let visible_to = now - i64::from(sim.lag_minutes) * 60;
        let lo = minutes.partition_point(|m| m.start < now - keep);
        let hi = minutes.partition_point(|m| m.start < visible_to);
        let cap = StreamCapacity {
            mode: StreamMode::Provisioned,
            open_shards: shards,
            warm_mibps: 0,
            active: pending.is_none(),
        };
        let recent = Budget::trimmed(&history, now);
        let d = policy.decide(rules, now, &minutes[lo..hi.max(lo)], &cap, &recent);
        if let (Action::SetShards { from: f, to }, Some(kind)) = (d.action, d.kind) {
            history.push(Call {
                at: now,
                from: f,
                to,
                kind,
            });
            pending = Some((now + i64::from(sim.call_minutes) * 60, to));
        }
    }
    let report_from = start + from as i64 * 60;
    run.calls = history
        .iter()
        .copied()
        .filter(|c| c.at >= report_from)
        .collect();
    run.calls_24h = Budget::max_in_any_window(&history);
    run
}

fn on_demand(
    policy: &Policy,
    rules: Option<&Rules>,
    sim: &Sim,
    start: i64,
    curve: &[Load],
    from: usize,
) -> Run {
    let mut run = empty(if rules.is_some() {
        "on-demand Advantage + warm"
    } else {
        "on-demand Standard"
    });
    let adapt = sim.on_demand_adapt_minutes as usize;
    // The peak observed up to each minute (accepted traffic), for "twice the previous peak".
    let mut observed: Vec<f64> = Vec::with_capacity(curve.len());
    // The running maximum of what was observed up to `adapt` minutes ago.
    let mut running_peak = 0.0f64;
    let mut warm = 0u32;
    let mut warm_pending: Option<(i64, u32)> = None;
    let mut history: Vec<Call> = Vec::new();
    let mut minutes: Vec<Minute> = Vec::new();
    for (i, load) in curve.iter().enumerate() {
        let t = start + i as i64 * 60;
        if let Some((_, to)) = warm_pending.filter(|p| p.0 <= t) {
            warm = to;
            warm_pending = None;
        }
        if i >= adapt {
            running_peak = running_peak.max(observed[i - adapt]);
        }
        let standard = sim.on_demand_floor.max(2.0 * running_peak);
        let cap = standard.max(f64::from(warm));
        let (mut m, over) = accept(load, cap);
        m.start = t;
        observed.push(m.shard_equivalents());
        minutes.push(m);
        if i >= from {
            tally(&mut run, cap, &m, over);
        }
        if let Some(rules) = rules {
            let now = t + 60;
            let visible_to = now - i64::from(sim.lag_minutes) * 60;
            let lo = minutes.partition_point(|m| m.start < now - 3600);
            let hi = minutes.partition_point(|m| m.start < visible_to);
            let sc = StreamCapacity {
                mode: StreamMode::OnDemandAdvantage,
                open_shards: 0,
                warm_mibps: warm_pending.map_or(warm, |p| p.1),
                active: true,
            };
            let d = policy.decide(rules, now, &minutes[lo..hi.max(lo)], &sc, &history);
            if let (Action::SetWarmThroughput { from: f, to }, Some(kind)) = (d.action, d.kind) {
                history.push(Call {
                    at: now,
                    from: f,
                    to,
                    kind,
                });
                if to > warm {
                    warm_pending = Some((now + i64::from(sim.warm_minutes) * 60, to));
                } else {
                    warm = to;
                    warm_pending = None;
                }
            }
        }
    }
    run.calls_24h = Budget::max_in_any_window(&history);
    run.calls = history;
    run
}
