//! The scaling policy for one stream: from its recent minutes, its capacity, the pre-warm rules
//! and the calls of the last 24 h, one decision with its reason.
//!
//! Provisioned streams (shards, UpdateShardCount):
//! - **emergency**: throttling in a minute that started after the last change took effect
//!   doubles the shards at once, and may use the calls held in reserve;
//! - **pre-warm**: a rule's window is reached, or is close enough that the doublings it needs
//!   (at `minutes_per_call` each, plus a margin) must start now;
//! - **scale-up**: the peak of the last `up_lookback_minutes` needs more shards at
//!   `target_use`, no sooner than `up_cooldown_minutes` after the last call;
//! - **scale-down**: every minute of the last `down_after_minutes` stayed below `down_use` of
//!   the capacity, the consumers kept up (iterator age at most `max_iterator_age_ms`), the last
//!   call is `down_cooldown_minutes` old, no window is due, and the calls the next pre-warm
//!   will need stay available. At most halves, never below `min_shards` or the rules' floor.
//!
//! Every call obeys AWS's per-call rules ([`crate::limits`]), `max_shards`, and the budget
//! ([`crate::budget`]).
//!
//! On-demand Advantage streams (warm throughput, UpdateStreamWarmThroughput): the warm
//! throughput follows the rules (raised `warm_lead_minutes` before a window, lowered after it),
//! and is raised to twice the offered traffic on throttling. On-demand Standard streams have no
//! capacity API: the policy only reports.

use serde::{Deserialize, Serialize};

use crate::budget::{Budget, Call, CallKind};
use crate::limits::{self, calls_between, max_up, min_down, shards_for};
use crate::observe::{Minute, StreamCapacity, StreamMode};
use crate::rules::{Need, Rules};

/// The knobs. The defaults are the template's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// The share of the per-shard limits (1 MiB/s, 1,000 records/s) to run at.
    pub target_use: f64,
    /// Scale down only when every minute of the window stayed below this share of capacity.
    pub down_use: f64,
    /// The scale-down window, minutes.
    pub down_after_minutes: u32,
    /// The window whose peak a scale-up sizes for, minutes.
    pub up_lookback_minutes: u32,
    /// Minutes between a call and a planned scale-up (emergencies and pre-warm do not wait).
    pub up_cooldown_minutes: u32,
    /// Minutes between any call and a scale-down.
    pub down_cooldown_minutes: u32,
    /// No scale-down while the consumers are further behind than this.
    pub max_iterator_age_ms: f64,
    pub min_shards: u32,
    pub max_shards: u32,
    pub budget: Budget,
    /// How long one resharding takes, for the pre-warm lead, minutes.
    pub minutes_per_call: u32,
    /// Extra lead before a window, minutes.
    pub prewarm_margin_minutes: u32,
    /// On-demand Advantage: how long before a window warm throughput is raised, minutes.
    pub warm_lead_minutes: u32,
    /// A scale-down keeps what the same time yesterday needed over the next this many minutes
    /// (daily patterns: the shards come back tomorrow morning anyway). 0 turns it off.
    pub seasonal_minutes: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            target_use: 0.7,
            down_use: 0.35,
            down_after_minutes: 60,
            up_lookback_minutes: 5,
            up_cooldown_minutes: 5,
            down_cooldown_minutes: 60,
            max_iterator_age_ms: 60_000.0,
            min_shards: 1,
            max_shards: 512,
            budget: Budget::default(),
            minutes_per_call: 10,
            prewarm_margin_minutes: 10,
            warm_lead_minutes: 15,
            seasonal_minutes: 180,
        }
    }
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    None,
    /// UpdateShardCount, UNIFORM_SCALING.
    SetShards {
        from: u32,
        to: u32,
    },
    /// UpdateStreamWarmThroughput, MiB/s.
    SetWarmThroughput {
        from: u32,
        to: u32,
    },
}

/// One decision, with what it was based on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    #[serde(flatten)]
    pub action: Action,
    pub kind: Option<CallKind>,
    /// One sentence a person can act on.
    pub reason: String,
    /// The recent peak of offered traffic, shard-equivalents (MiB/s or thousands of records/s).
    pub demand: f64,
    /// Records refused by throttling since the last change took effect.
    pub throttled: f64,
    /// Capacity the rules ask for now or soon, shard-equivalents.
    pub prewarm: f64,
    /// Calls counted in the last 24 h, before this one.
    pub budget_used: u32,
}

impl Policy {
    /// Checks the knobs, naming the first one that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        let share = |v: f64| v > 0.0 && v <= 1.0;
        if !share(self.target_use) {
            return Err(format!("targetUse {} must be in (0, 1]", self.target_use));
        }
        if !(share(self.down_use) && self.down_use < self.target_use) {
            return Err(format!(
                "downUse {} must be in (0, targetUse)",
                self.down_use
            ));
        }
        if self.min_shards < 1
            || self.min_shards > self.max_shards
            || self.max_shards > limits::MAX_SHARDS_PER_STREAM
        {
            return Err(format!(
                "need 1 <= minShards ({}) <= maxShards ({}) <= 10000",
                self.min_shards, self.max_shards
            ));
        }
        if self.budget.limit == 0
            || self.budget.limit > limits::CALLS_PER_24H
            || self.budget.reserve >= self.budget.limit
        {
            return Err(format!(
                "need 0 <= reserve ({}) < limit ({}) <= 10",
                self.budget.reserve, self.budget.limit
            ));
        }
        if self.down_after_minutes == 0 || self.up_lookback_minutes == 0 {
            return Err("downAfterMinutes and upLookbackMinutes must be at least 1".into());
        }
        Ok(())
    }

    /// The decision for one stream at `now` (unix seconds). `minutes` are the stream's recent
    /// metrics (any order; minutes without a datapoint are minutes without traffic), `history`
    /// the calls of at least the last 24 h.
    pub fn decide(
        &self,
        rules: &Rules,
        now: i64,
        minutes: &[Minute],
        cap: &StreamCapacity,
        history: &[Call],
    ) -> Decision {
        let last_call = history.iter().filter(|c| c.at <= now).map(|c| c.at).max();
        // A minute that started before the last change took effect says nothing about the new capacity.
        let settled = last_call.map_or(i64::MIN, |at| at + 60);
        let window = |n: u32| {
            minutes
                .iter()
                .filter(move |m| m.start >= now - i64::from(n) * 60 && m.start < now)
        };
        let demand = window(self.up_lookback_minutes)
            .map(Minute::offered_shard_equivalents)
            .fold(0.0, f64::max);
        let throttled: f64 = window(self.up_lookback_minutes)
            .filter(|m| m.start >= settled)
            .map(|m| m.throttled)
            .sum();
        let mut d = Decision {
            action: Action::None,
            kind: None,
            reason: String::new(),
            demand,
            throttled,
            prewarm: 0.0,
            budget_used: Budget::used(history, now),
        };
        match cap.mode {
            StreamMode::Provisioned => {
                self.provisioned(rules, now, minutes, cap, history, last_call, &mut d)
            }
            StreamMode::OnDemandAdvantage => self.warm(rules, now, cap, last_call, &mut d),
            StreamMode::OnDemandStandard => {
                let need = rules.need_between(now, now + 3600).shard_equivalents();
                d.prewarm = need;
                d.reason = if need > 0.0 {
                    format!(
                        "on-demand Standard has no capacity API: a rule asks for {need:.0} MiB/s within the hour, which this \
                         stream absorbs only up to twice its previous peak within 15 minutes (see `robofleet plan`)"
                    )
                } else {
                    "on-demand Standard: the stream scales by itself; nothing to do".into()
                };
            }
        }
        d
    }

    #[allow(clippy::too_many_arguments)]
    fn provisioned(
        &self,
        rules: &Rules,
        now: i64,
        minutes: &[Minute],
        cap: &StreamCapacity,
        history: &[Call],
        last_call: Option<i64>,
        d: &mut Decision,
    ) {
        let current = cap.open_shards.max(1);
        let reactive = shards_for(d.demand, self.target_use);
        // Pre-warm: windows in force, or close enough that their doublings must start now.
        let mut prewarm = 0u32;
        let mut prewarm_at = None;
        for occ in rules.occurrences(now, now + 86_400) {
            let s = capacity_shards(&occ.need).min(self.max_shards);
            let lead = i64::from(
                calls_between(current, s) * self.minutes_per_call + self.prewarm_margin_minutes,
            ) * 60;
            if s > prewarm && (occ.start <= now || occ.start - lead <= now) {
                prewarm = s;
                prewarm_at = Some(occ.start);
            }
        }
        d.prewarm = f64::from(prewarm);
        let since_last = last_call.map_or(i64::MAX, |at| now - at);

        // Up.
        let (target, kind) = if d.throttled > 0.0 {
            (
                reactive.max(prewarm).max(max_up(current)),
                CallKind::Emergency,
            )
        } else if prewarm > current && prewarm >= reactive {
            (prewarm.max(self.min_shards), CallKind::Prewarm)
        } else {
            (
                reactive.max(prewarm).max(self.min_shards),
                CallKind::ScaleUp,
            )
        };
        if target > current {
            let to = target.min(max_up(current)).min(self.max_shards);
            let why = match kind {
                CallKind::Emergency => {
                    format!("{:.0} records throttled since the last change", d.throttled)
                }
                CallKind::Prewarm => format!(
                    "a pre-warm window at {} needs {prewarm} shards",
                    prewarm_at.map_or_else(|| "now".into(), fmt_time)
                ),
                _ => format!(
                    "the last {} minutes peaked at {:.2} shard-equivalents",
                    self.up_lookback_minutes, d.demand
                ),
            };
            if to <= current {
                d.reason = format!(
                    "{why}, but the stream is at maxShards ({}): raise the limit",
                    self.max_shards
                );
                return;
            }
            if !cap.active {
                d.reason = format!(
                    "{why}; the stream is UPDATING (a resharding is in progress), next minute"
                );
                return;
            }
            if kind == CallKind::ScaleUp && since_last < i64::from(self.up_cooldown_minutes) * 60 {
                d.reason = format!("{why}; cooling down after the last call ({since_last} s ago)");
                return;
            }
            if self.budget.available(history, now, kind) == 0 {
                let free = Budget::next_free_at(history, now).map_or_else(|| "-".into(), fmt_time);
                d.reason = format!(
                    "{why}, but {} of {} calls in 24 h are used{}; a call frees at {free}",
                    d.budget_used,
                    self.budget.limit,
                    if kind == CallKind::Emergency {
                        ""
                    } else {
                        " (the rest is the emergency reserve)"
                    }
                );
                return;
            }
            d.action = Action::SetShards { from: current, to };
            d.kind = Some(kind);
            d.reason = format!(
                "{why}: {current} -> {to} shards (target {target}, call {} of {} in 24 h)",
                d.budget_used + 1,
                self.budget.limit
            );
            return;
        }

        // Down.
        let span = i64::from(self.down_after_minutes) * 60;
        let in_window: Vec<&Minute> = minutes
            .iter()
            .filter(|m| m.start >= now - span && m.start < now)
            .collect();
        let peak = in_window
            .iter()
            .map(|m| m.offered_shard_equivalents())
            .fold(0.0, f64::max);
        let age = in_window
            .iter()
            .map(|m| m.iterator_age_ms)
            .fold(0.0, f64::max);
        let low = peak <= self.down_use * f64::from(current);
        if current <= self.min_shards || !low {
            d.reason = format!(
                "{current} shards fit the traffic (peak {:.2} shard-equivalents in the last {} minutes)",
                peak.max(d.demand),
                self.down_after_minutes
            );
            return;
        }
        if age > self.max_iterator_age_ms {
            d.reason = format!(
                "use is low but the consumers are {:.0} s behind: not scaling down",
                age / 1000.0
            );
            return;
        }
        if since_last
            < i64::from(self.down_cooldown_minutes).max(i64::from(self.down_after_minutes)) * 60
        {
            d.reason = format!(
                "use is low; waiting {} minutes after the last call before scaling down",
                self.down_cooldown_minutes.max(self.down_after_minutes)
            );
            return;
        }
        // What the coming hours needed yesterday (the metrics of 24 h ago, when there are any).
        let yesterday = now - 86_400;
        let seasonal = minutes
            .iter()
            .filter(|m| {
                m.start >= yesterday && m.start < yesterday + i64::from(self.seasonal_minutes) * 60
            })
            .map(Minute::offered_shard_equivalents)
            .fold(0.0, f64::max);
        let floor = if seasonal > 0.0 {
            shards_for(seasonal, self.target_use)
        } else {
            1
        };
        let mut to = min_down(current)
            .max(self.min_shards)
            .max(shards_for(peak, self.target_use))
            .max(prewarm)
            .max(floor);
        // A window that would need the shards back soon keeps them.
        let mut next_ramp = None;
        for occ in rules.occurrences(now, now + 86_400) {
            let s = capacity_shards(&occ.need).min(self.max_shards);
            if s <= to {
                continue;
            }
            let ramp = calls_between(to, s);
            let ramp_start = occ.start
                - i64::from(ramp * self.minutes_per_call + self.prewarm_margin_minutes) * 60;
            if ramp_start - i64::from(self.down_cooldown_minutes) * 60 <= now {
                to = to.max(s);
                continue;
            }
            // The calls the ramp needs must still be there then, this one included.
            let counted_then = Budget::used(history, ramp_start) + 1;
            if next_ramp.is_none() && counted_then + ramp > self.budget.limit - self.budget.reserve
            {
                next_ramp = Some((occ.start, ramp));
            }
        }
        if to >= current {
            d.reason = if floor >= current {
                format!(
                    "use is low, but the same hours yesterday peaked at {seasonal:.2} shard-equivalents: keeping {current} shards"
                )
            } else {
                format!("use is low, but a pre-warm window is due: keeping {current} shards")
            };
            return;
        }
        if let Some((at, ramp)) = next_ramp {
            d.reason = format!(
                "use is low, but the {ramp} calls of the pre-warm at {} would not be left: keeping {current} shards",
                fmt_time(at)
            );
            return;
        }
        if self.budget.available(history, now, CallKind::ScaleDown) == 0 {
            d.reason = format!(
                "use is low, but {} of {} calls in 24 h are used; keeping the rest for emergencies",
                d.budget_used, self.budget.limit
            );
            return;
        }
        if !cap.active {
            d.reason = "use is low; the stream is UPDATING, next minute".into();
            return;
        }
        d.action = Action::SetShards { from: current, to };
        d.kind = Some(CallKind::ScaleDown);
        d.reason = format!(
            "every minute of the last {} stayed at or below {:.0} % of capacity (peak {peak:.2} shard-equivalents), iterator age {:.0} s: {current} -> {to} shards",
            self.down_after_minutes,
            self.down_use * 100.0,
            age / 1000.0
        );
    }

    fn warm(
        &self,
        rules: &Rules,
        now: i64,
        cap: &StreamCapacity,
        last_call: Option<i64>,
        d: &mut Decision,
    ) {
        let warm = cap.warm_mibps;
        let soon = now + i64::from(self.warm_lead_minutes) * 60;
        let need = rules.need_between(now, soon.max(now + 1));
        let need_mibps = need.shard_equivalents().ceil() as u32;
        d.prewarm = f64::from(need_mibps);
        let since_last = last_call.map_or(i64::MAX, |at| now - at);
        let (target, kind) = if d.throttled > 0.0 {
            (
                need_mibps.max((2.0 * d.demand).ceil() as u32),
                CallKind::Emergency,
            )
        } else {
            (need_mibps, CallKind::Prewarm)
        };
        if target > warm {
            d.action = Action::SetWarmThroughput {
                from: warm,
                to: target,
            };
            d.kind = Some(kind);
            d.reason = if kind == CallKind::Emergency {
                format!(
                    "{:.0} records throttled: warm throughput {warm} -> {target} MiB/s (twice the offered {:.1} MiB/s)",
                    d.throttled, d.demand
                )
            } else {
                format!(
                    "a pre-warm window needs {target} MiB/s by {}: warm throughput {warm} -> {target} MiB/s",
                    fmt_time(soon)
                )
            };
        } else if target < warm && since_last >= i64::from(self.down_cooldown_minutes) * 60 {
            d.action = Action::SetWarmThroughput {
                from: warm,
                to: target,
            };
            d.kind = Some(CallKind::ScaleDown);
            d.reason = format!(
                "no pre-warm window in force or within {} minutes: warm throughput {warm} -> {target} MiB/s",
                self.warm_lead_minutes
            );
        } else {
            d.reason = format!("warm throughput {warm} MiB/s meets the rules ({need_mibps} MiB/s)");
        }
    }
}

/// Shards that give a need's capacity at 100 % of the per-shard limits.
pub fn capacity_shards(need: &Need) -> u32 {
    let s = need.shard_equivalents().ceil();
    if s >= f64::from(limits::MAX_SHARDS_PER_STREAM) {
        limits::MAX_SHARDS_PER_STREAM
    } else {
        s as u32
    }
}

/// `HH:MM UTC` of a unix time, for reasons.
pub fn fmt_time(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(
        |_| t.to_string(),
        |ts| ts.strftime("%Y-%m-%d %H:%M UTC").to_string(),
    )
}
