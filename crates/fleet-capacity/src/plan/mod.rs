//! The capacity and cost planner behind `robofleet plan`.
//!
//! From a fleet ([`FleetSpec`]) it builds per-minute demand curves ([`demand`]) for a weekday,
//! a weekend day and Christmas Day, derives pre-warm rules in the form the stream-scaler takes,
//! replays the policy over the curves ([`crate::replay`]), and prices the result per component
//! and per stream mode from a dated price table ([`crate::prices`]). Every figure comes with the
//! arithmetic behind it, so a reader can check it by hand.

pub mod demand;
mod text;

pub use text::thousands;

use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

use crate::limits::{MIB, SHARD_RECORDS_PER_SEC};
use crate::policy::Policy;
use crate::prices::Prices;
use crate::replay::{self, Replay, Sim};
use crate::rules::Rules;
use crate::table::ON_DEMAND_DEFAULT;
pub use demand::{Day, DayKind, FleetSpec, Load};

/// Days in an average month.
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
/// Hours in an average month.
pub const HOURS_PER_MONTH: f64 = DAYS_PER_MONTH * 24.0;
/// A GB as the price tables count it (2^30 bytes).
pub const GB: f64 = 1_073_741_824.0;

/// One consumer function and its mapping (the template's values by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Consumer {
    pub function: String,
    pub memory_mb: f64,
    pub batch_size: f64,
    pub batching_window_s: f64,
    pub parallelization_factor: u32,
    /// Wall-clock milliseconds per invocation, plus per record (an assumption; measure yours).
    pub ms_per_invocation: f64,
    pub ms_per_record: f64,
}

/// What the stack and the account look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case", deny_unknown_fields)]
pub struct StackSpec {
    /// The year whose December is planned (the days are in it).
    pub year: i16,
    pub missions_consumer: Consumer,
    pub shadows_consumer: Consumer,
    pub missions_retention_hours: f64,
    pub shadows_retention_hours: f64,
    /// Days mission items are kept in DynamoDB (storage).
    pub mission_retention_days: f64,
    pub account_concurrency: f64,
    /// OpenSearch, a given: the domain's monthly cost.
    pub opensearch_monthly_usd: f64,
    /// IoT Core quotas (us-east-1 defaults; all adjustable on request).
    pub iot_connects_per_sec: f64,
    pub iot_publishes_per_sec: f64,
    pub iot_shadow_requests_per_sec: f64,
    pub iot_rule_actions_per_sec: f64,
}

impl Default for StackSpec {
    fn default() -> Self {
        StackSpec {
            year: 2026,
            missions_consumer: Consumer {
                function: "mission-ingest".into(),
                memory_mb: 256.0,
                batch_size: 100.0,
                batching_window_s: 2.0,
                parallelization_factor: 4,
                ms_per_invocation: 25.0,
                ms_per_record: 0.3,
            },
            shadows_consumer: Consumer {
                function: "shadow-indexer".into(),
                memory_mb: 512.0,
                batch_size: 500.0,
                batching_window_s: 1.0,
                parallelization_factor: 2,
                ms_per_invocation: 30.0,
                ms_per_record: 0.1,
            },
            missions_retention_hours: 72.0,
            shadows_retention_hours: 168.0,
            mission_retention_days: 365.0,
            account_concurrency: 1_000.0,
            opensearch_monthly_usd: 2_000.0,
            iot_connects_per_sec: 500.0,
            iot_publishes_per_sec: 20_000.0,
            iot_shadow_requests_per_sec: 4_000.0,
            iot_rule_actions_per_sec: 20_000.0,
        }
    }
}

/// Everything the planner takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanInput {
    pub fleet: FleetSpec,
    pub stack: StackSpec,
    pub policy: Policy,
}

/// The planned days: a weekday, a weekend day, Christmas Day, in `year`'s December, away from
/// DST changes. Each comes with the two days before it (the replay's warm-up).
pub fn planned_dates(year: i16) -> [(DayKind, Date); 3] {
    let first_on_or_after = |d: Date, w: Weekday| {
        let mut d = d;
        while d.weekday() != w {
            d = d.tomorrow().unwrap_or(d);
        }
        d
    };
    let dec = |day: i8| Date::new(year, 12, day).unwrap_or(Date::MIN);
    [
        (
            DayKind::Weekday,
            first_on_or_after(dec(8), Weekday::Thursday),
        ),
        (DayKind::Weekend, first_on_or_after(dec(8), Weekday::Sunday)),
        (DayKind::Christmas, dec(25)),
    ]
}

/// The kind a date has in a fleet's traffic.
pub fn kind_of(fleet: &FleetSpec, date: Date) -> DayKind {
    if fleet.christmas.is_some() && date.month() == 12 && date.day() == 25 {
        DayKind::Christmas
    } else if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
        DayKind::Weekend
    } else {
        DayKind::Weekday
    }
}

/// Peak and volume of one stream over one day.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamDay {
    pub peak_mibps: f64,
    pub peak_records_per_sec: f64,
    /// Local time of the peak (HH:MM in the reference zone).
    pub peak_at: String,
    pub average_mibps: f64,
    pub records: f64,
    pub bytes: f64,
    /// Bytes as on-demand bills them (each record rounded up to 1 KB).
    pub billed_bytes: f64,
    pub replay: Replay,
}

/// One planned day.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayPlan {
    pub kind: DayKind,
    pub date: String,
    pub missions: StreamDay,
    pub shadows: StreamDay,
    pub robot_messages: f64,
    pub peak_publishes_per_sec: f64,
    pub peak_connects_per_sec: f64,
    pub peak_reports_per_sec: f64,
    /// The whole day's curves, for charts (not serialized: large).
    #[serde(skip)]
    pub curve: Day,
}

/// A monthly cost with its arithmetic.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub component: String,
    pub usd: f64,
    pub arithmetic: Vec<String>,
}

/// A quota against the plan's peak.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaCheck {
    pub quota: String,
    pub limit: f64,
    pub peak: f64,
    pub when: String,
    pub ok: bool,
}

/// The planner's output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub input: PlanInput,
    pub prices_as_of: String,
    pub days: Vec<DayPlan>,
    /// Pre-warm rules, in the stream-scaler's form (template parameters).
    pub prewarm: Prewarm,
    /// The stream modes, monthly Kinesis cost each (normal month), cheapest first.
    pub stream_modes: Vec<Cost>,
    pub cheapest_mode: String,
    pub lambda: Vec<LambdaPeak>,
    pub dynamodb: DynamoPlan,
    pub quotas: Vec<QuotaCheck>,
    /// Monthly cost by component, with the cheapest stream mode.
    pub monthly: Vec<Cost>,
    pub monthly_total_usd: f64,
    pub robot_messages_per_month: f64,
    pub usd_per_million_messages: f64,
    pub unverified_prices: Vec<String>,
}

/// Pre-warm rules for the scaler.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prewarm {
    pub missions_stream: String,
    pub shadows_stream: String,
    pub missions_table: String,
}

/// A consumer's peak concurrency.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LambdaPeak {
    pub function: String,
    pub peak_shards: f64,
    pub parallelization_factor: u32,
    pub peak_concurrency: f64,
    pub when: String,
}

/// The missions table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamoPlan {
    pub write_units_per_item: f64,
    /// Peak write units per second on the table (the byDay index takes as many).
    pub peak_wcu_normal: f64,
    pub peak_wcu_christmas: f64,
    pub default_warm_wcu: f64,
    pub prewarm_wcu: f64,
    pub prewarm_cost_usd: f64,
}

fn hhmm(day: &Day, minute: usize) -> String {
    let t = day.start + minute as i64 * 60;
    jiff::Timestamp::from_second(t)
        .map_or_else(|_| "?".into(), |ts| ts.strftime("%H:%M UTC").to_string())
}

fn local_hhmm(fleet: &FleetSpec, day: &Day, minute: usize) -> String {
    let t = day.start + minute as i64 * 60;
    let tz = fleet.reference_tz();
    jiff::Timestamp::from_second(t).map_or_else(
        |_| hhmm(day, minute),
        |ts| tz.to_datetime(ts).strftime("%H:%M").to_string(),
    )
}

fn argmax(v: impl Iterator<Item = f64>) -> (usize, f64) {
    v.enumerate().fold(
        (0, f64::MIN),
        |(bi, bv), (i, x)| if x > bv { (i, x) } else { (bi, bv) },
    )
}

/// Minutes of `values` above `threshold`, as (first, last) regions, merging gaps under `gap`.
fn regions(values: &[f64], threshold: f64, gap: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if *v <= threshold {
            continue;
        }
        match out.last_mut() {
            Some((_, last)) if i - *last <= gap => *last = i,
            _ => out.push((i, i)),
        }
    }
    out
}

fn rule_time(minute: i64) -> String {
    let m = minute.clamp(0, 23 * 60 + 59);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Pre-warm rules for one stream from its day curves: each busy region (demand above `share`
/// of the day's peak, gaps under an hour merged) becomes a window from 30 minutes before to 20
/// minutes after it, asking for the region's peak at the policy's target use.
fn stream_rules(
    fleet: &FleetSpec,
    days: &[(DayKind, Day)],
    pick: Pick,
    target_use: f64,
    share: f64,
) -> String {
    let tz = &fleet.schedule.time_zones[0].0;
    let mut rules = Vec::new();
    for (kind, day) in days {
        let loads = pick(day);
        let se: Vec<f64> = loads.iter().map(Load::shard_equivalents).collect();
        let peak = se.iter().copied().fold(0.0, f64::max);
        let days_word = match kind {
            DayKind::Weekday => "weekdays",
            DayKind::Weekend => "weekends",
            DayKind::Christmas => "12-25",
        };
        for (a, b) in regions(&se, share * peak, 60) {
            let region = &loads[a..=b];
            let mibps = region
                .iter()
                .map(|l| l.bytes_per_sec / MIB)
                .fold(0.0, f64::max)
                / target_use;
            let rec = region.iter().map(|l| l.records_per_sec).fold(0.0, f64::max) / target_use;
            let from = ((a as i64 - 30).max(0) / 10) * 10;
            let to = ((b as i64 + 20 + 9) / 10) * 10;
            rules.push(format!(
                "{days_word} {}-{} {tz} {}MiB {}rec",
                rule_time(from),
                rule_time(to.min(23 * 60 + 59)),
                mibps.ceil().max(1.0),
                ((rec / 1000.0).ceil() * 1000.0).max(1000.0)
            ));
        }
    }
    rules.join("; ")
}

type Pick = fn(&Day) -> &Vec<Load>;

/// The busy-region thresholds the planner tries, from the fewest pre-warm hours to the most:
/// it keeps the first whose replay has no minute over capacity on any planned day.
pub const REGION_SHARES: [f64; 6] = [0.5, 0.4, 0.3, 0.2, 0.1, 0.05];

/// A planned day and the two days before it, as one curve per stream.
struct Series {
    kind: DayKind,
    day: Day,
    start: i64,
    missions: Vec<Load>,
    shadows: Vec<Load>,
}

/// Runs the planner.
pub fn plan(input: &PlanInput, prices: &Prices, sim: &Sim) -> Result<Plan, String> {
    input.fleet.validate()?;
    input.policy.validate()?;
    let fleet = &input.fleet;
    let stack = &input.stack;
    let dates = planned_dates(stack.year);
    // The planned days' curves, for the rules.
    let curves: Vec<(DayKind, Day)> = dates
        .iter()
        .filter(|(k, _)| *k != DayKind::Christmas || fleet.christmas.is_some())
        .map(|(k, d)| (*k, fleet.day(*d, *k)))
        .collect();
    let target_use = input.policy.target_use;
    let parsed = |s: &str| {
        s.parse::<Rules>()
            .map_err(|e| format!("generated rules do not parse: {e}"))
    };
    let mut series = Vec::new();
    for (kind, day) in &curves {
        let date: Date = day
            .date
            .parse()
            .map_err(|_| format!("bad date {}", day.date))?;
        let mut prior = Vec::new();
        let mut d = date;
        for _ in 0..2 {
            d = d.yesterday().map_err(|e| e.to_string())?;
            prior.push(fleet.day(d, kind_of(fleet, d)));
        }
        prior.reverse();
        let join = |pick: Pick| -> Vec<Load> {
            prior
                .iter()
                .chain(std::iter::once(day))
                .flat_map(|d| pick(d).iter().copied())
                .collect()
        };
        series.push(Series {
            kind: *kind,
            day: day.clone(),
            start: prior[0].start,
            missions: join(|d| &d.missions),
            shadows: join(|d| &d.shadows),
        });
    }
    // Per stream: the rules with the fewest pre-warm hours whose replay stays under capacity.
    let choose =
        |pick: Pick, whole: fn(&Series) -> &Vec<Load>| -> Result<(String, Vec<Replay>), String> {
            let mut best = None;
            for share in REGION_SHARES {
                let text = stream_rules(fleet, &curves, pick, target_use, share);
                let rules = parsed(&text)?;
                let replays: Vec<Replay> = series
                    .iter()
                    .map(|s| {
                        replay::replay(
                            &input.policy,
                            &rules,
                            sim,
                            s.start,
                            whole(s),
                            pick(&s.day).len(),
                        )
                    })
                    .collect();
                let clean = replays.iter().all(|r| r.policy.minutes_over == 0);
                best = Some((text, replays));
                if clean {
                    break;
                }
            }
            best.ok_or_else(|| "no rules".to_string())
        };
    let (missions_rules, missions_replays) = choose(|d| &d.missions, |s| &s.missions)?;
    let (shadows_rules, shadows_replays) = choose(|d| &d.shadows, |s| &s.shadows)?;

    let mut days = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let day = &s.day;
        let stream_day = |loads: &Vec<Load>, replay: Replay| -> StreamDay {
            let (i, _) = argmax(loads.iter().map(Load::shard_equivalents));
            let records: f64 = loads.iter().map(|l| l.records_per_sec * 60.0).sum();
            let bytes: f64 = loads.iter().map(|l| l.bytes_per_sec * 60.0).sum();
            // On-demand bills each record rounded up to 1 KB.
            let billed_bytes = loads
                .iter()
                .map(|l| {
                    l.records_per_sec
                        * 60.0
                        * 1024.0
                        * ((l.bytes_per_sec / l.records_per_sec.max(1e-9)) / 1024.0)
                            .ceil()
                            .max(1.0)
                })
                .sum();
            StreamDay {
                peak_mibps: loads[i].bytes_per_sec / MIB,
                peak_records_per_sec: loads[i].records_per_sec,
                peak_at: local_hhmm(fleet, day, i),
                average_mibps: bytes / (loads.len() as f64 * 60.0) / MIB,
                records,
                bytes,
                billed_bytes,
                replay,
            }
        };
        let missions = stream_day(&day.missions, missions_replays[i].clone());
        let shadows = stream_day(&day.shadows, shadows_replays[i].clone());
        days.push(DayPlan {
            kind: s.kind,
            date: day.date.clone(),
            missions,
            shadows,
            robot_messages: day.publishes.iter().map(|p| p * 60.0).sum(),
            peak_publishes_per_sec: day.publishes.iter().copied().fold(0.0, f64::max),
            peak_connects_per_sec: day.connects.iter().copied().fold(0.0, f64::max),
            peak_reports_per_sec: day.reports.iter().copied().fold(0.0, f64::max),
            curve: day.clone(),
        });
    }
    let day_of = |k: DayKind| days.iter().find(|d| d.kind == k);
    let (Some(weekday), Some(weekend)) = (day_of(DayKind::Weekday), day_of(DayKind::Weekend))
    else {
        return Err("the planned days are missing a weekday or a weekend day".into());
    };
    let christmas = day_of(DayKind::Christmas);
    let month = |f: &dyn Fn(&DayPlan) -> f64| {
        f(weekday) * DAYS_PER_MONTH * 5.0 / 7.0 + f(weekend) * DAYS_PER_MONTH * 2.0 / 7.0
    };

    // DynamoDB.
    let wcu_per_item = (fleet.mission_item_bytes / 1024.0).ceil().max(1.0);
    let peak_wcu_normal = weekday
        .peak_reports_per_sec
        .max(weekend.peak_reports_per_sec)
        * wcu_per_item;
    let peak_wcu_christmas = christmas.map_or(0.0, |c| c.peak_reports_per_sec * wcu_per_item);
    let default_wcu = ON_DEMAND_DEFAULT.write as f64;
    let peak_wcu = peak_wcu_normal.max(peak_wcu_christmas);
    // On-demand absorbs twice its previous peak within 30 minutes; the warm value is the
    // previous peak's stand-in. Warm throughput is raised to the peak at the target use.
    let prewarm_wcu = if peak_wcu > default_wcu {
        ((peak_wcu / target_use) / 1000.0).ceil() * 1000.0
    } else {
        0.0
    };
    let table_rules = if prewarm_wcu > 0.0 {
        let when = if peak_wcu_christmas > peak_wcu_normal {
            "12-25 05:00-14:00"
        } else {
            "daily 06:00-14:00"
        };
        format!(
            "{when} {} {}wcu",
            fleet.schedule.time_zones[0].0, prewarm_wcu
        )
    } else {
        String::new()
    };
    parsed(&table_rules)?;
    let warm_w = prices.get("dynamodb.warm.write_unit");
    let dynamodb = DynamoPlan {
        write_units_per_item: wcu_per_item,
        peak_wcu_normal,
        peak_wcu_christmas,
        default_warm_wcu: default_wcu,
        prewarm_wcu,
        // The table and the byDay index, each raised from the default.
        prewarm_cost_usd: 2.0 * (prewarm_wcu - default_wcu).max(0.0) * warm_w,
    };

    // Stream modes, monthly (a normal month: weekdays and weekend days).
    let streams = [
        ("missions", stack.missions_retention_hours),
        ("shadows", stack.shadows_retention_hours),
    ];
    let pick = |d: &DayPlan, s: &str| -> StreamDay {
        if s == "missions" {
            d.missions.clone()
        } else {
            d.shadows.clone()
        }
    };
    let mut modes = Vec::new();
    {
        let shard_hour = prices.get("kinesis.provisioned.shard_hour");
        let ext = prices.get("kinesis.provisioned.extended_retention_shard_hour");
        let put = prices.get("kinesis.provisioned.put_unit");
        let mut usd = 0.0;
        let mut lines = Vec::new();
        for (s, retention) in streams {
            let hours = month(&|d| pick(d, s).replay.policy.capacity_hours);
            let records = month(&|d| pick(d, s).records);
            let per_hour = shard_hour + if retention > 24.0 { ext } else { 0.0 };
            let cost = hours * per_hour + records / 1e6 * put;
            lines.push(format!(
                "{s}: {hours:.0} shard-hours (the policy's replay) x ${per_hour:.3} (shard-hour{}) + {:.1} M PUT units x ${put} = ${cost:.2}",
                if retention > 24.0 { " + extended retention" } else { "" },
                records / 1e6
            ));
            usd += cost;
        }
        modes.push(Cost {
            component: "provisioned + stream-scaler".into(),
            usd,
            arithmetic: lines,
        });
    }
    for (mode, key) in [
        ("on-demand Standard", "standard"),
        ("on-demand Advantage", "advantage"),
    ] {
        let gb_in = prices.get(&format!("kinesis.{key}.gb_in"));
        let gb_out = prices.get(&format!("kinesis.{key}.gb_out"));
        let ret = prices.get(&format!("kinesis.{key}.retention_gb_month"));
        let mut usd = 0.0;
        let mut lines = Vec::new();
        let mut billed_in_total = 0.0;
        for (s, retention) in streams {
            let billed_in = month(&|d| pick(d, s).billed_bytes) / GB;
            let out = month(&|d| pick(d, s).bytes) / GB;
            // Stored beyond 24 h, on average: a day's bytes times the extra days.
            let stored = month(&|d| pick(d, s).bytes) / DAYS_PER_MONTH / GB
                * ((retention - 24.0) / 24.0).max(0.0);
            let cost = billed_in * gb_in + out * gb_out + stored * ret;
            billed_in_total += billed_in;
            lines.push(format!(
                "{s}: {billed_in:.0} GB in (records rounded up to 1 KB) x ${gb_in} + {out:.0} GB out (one consumer) x ${gb_out} + {stored:.0} GB-month retained past 24 h x ${ret} = ${cost:.2}"
            ));
            usd += cost;
        }
        if key == "standard" {
            let sh = prices.get("kinesis.standard.stream_hour");
            let c = 2.0 * HOURS_PER_MONTH * sh;
            lines.push(format!(
                "2 streams x {HOURS_PER_MONTH:.1} h x ${sh} = ${c:.2}"
            ));
            usd += c;
        } else {
            let commit = prices.get("kinesis.advantage.commitment_mibps");
            let committed_gb = commit * MIB * DAYS_PER_MONTH * 86_400.0 / GB;
            if committed_gb > billed_in_total {
                let c = (committed_gb - billed_in_total) * gb_in;
                lines.push(format!(
                    "commitment: {commit} MiB/s = {committed_gb:.0} GB a month billed at least; shortfall {:.0} GB x ${gb_in} = ${c:.2} (the commitment is account-wide: other streams fill it too)",
                    committed_gb - billed_in_total
                ));
                usd += c;
            } else {
                lines.push(format!("commitment: {commit} MiB/s = {committed_gb:.0} GB a month, exceeded by the traffic: no shortfall"));
            }
            let warm_price = prices.get("kinesis.advantage.warm_mibps_hour");
            let warm_hours = month(&|d| {
                d.missions.replay.on_demand_advantage.capacity_hours
                    + d.shadows.replay.on_demand_advantage.capacity_hours
            });
            let c = warm_hours * warm_price;
            lines.push(format!("warm throughput: up to {warm_hours:.0} MiB/s-hours x ${warm_price} = ${c:.2} (price unverified)"));
            usd += c;
        }
        modes.push(Cost {
            component: mode.into(),
            usd,
            arithmetic: lines,
        });
    }
    modes.sort_by(|a, b| a.usd.total_cmp(&b.usd));
    let cheapest = modes[0].clone();

    // Lambda.
    let mut lambda = Vec::new();
    let mut lambda_cost = Cost {
        component: "Lambda (consumers)".into(),
        usd: 0.0,
        arithmetic: Vec::new(),
    };
    for (s, consumer) in [
        ("missions", &stack.missions_consumer),
        ("shadows", &stack.shadows_consumer),
    ] {
        let (peak, when) = days
            .iter()
            .map(|d| (pick(d, s).replay.policy.peak_capacity, d.date.clone()))
            .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a });
        lambda.push(LambdaPeak {
            function: consumer.function.clone(),
            peak_shards: peak,
            parallelization_factor: consumer.parallelization_factor,
            peak_concurrency: peak * f64::from(consumer.parallelization_factor),
            when,
        });
        // Invocations: each concurrent batch per shard fills for the batching window or up to the batch size.
        let inv_day = |d: &DayPlan| -> (f64, f64) {
            let curve = if s == "missions" {
                &d.curve.missions
            } else {
                &d.curve.shadows
            };
            let shards = pick(d, s).replay.policy.capacity.clone();
            curve
                .iter()
                .zip(shards.iter())
                .fold((0.0, 0.0), |(inv, gbs), (l, sh)| {
                    let per_batcher = l.records_per_sec
                        / (sh * f64::from(consumer.parallelization_factor)).max(1.0);
                    let batch =
                        (per_batcher * consumer.batching_window_s).clamp(1.0, consumer.batch_size);
                    let n = l.records_per_sec * 60.0 / batch;
                    let secs =
                        n * (consumer.ms_per_invocation + consumer.ms_per_record * batch) / 1000.0;
                    (inv + n, gbs + secs * consumer.memory_mb / 1024.0)
                })
        };
        let inv = month(&|d| inv_day(d).0);
        let gbs = month(&|d| inv_day(d).1);
        let (rp, gp) = (
            prices.get("lambda.arm64.requests"),
            prices.get("lambda.arm64.gb_second"),
        );
        let c = inv / 1e6 * rp + gbs * gp;
        lambda_cost.arithmetic.push(format!(
            "{}: {:.1} M invocations x ${rp} + {gbs:.0} GB-s x ${gp} = ${c:.2} (batches fill for {} s or to {} records; {} ms + {} ms/record assumed)",
            consumer.function,
            inv / 1e6,
            consumer.batching_window_s,
            consumer.batch_size,
            consumer.ms_per_invocation,
            consumer.ms_per_record
        ));
        lambda_cost.usd += c;
    }

    // IoT Core.
    let msgs_month = month(&|d| d.robot_messages);
    let updates_month = month(&|d| d.shadows.records) - month(&|d| presence_records(fleet, d));
    let reports_month = month(&|d| d.missions.records);
    let presence_month = month(&|d| presence_records(fleet, d));
    let billed_messages = msgs_month + presence_month;
    let tiers = [
        (1e9, prices.get("iot.messaging.tier1")),
        (4e9, prices.get("iot.messaging.tier2")),
        (f64::INFINITY, prices.get("iot.messaging.tier3")),
    ];
    let (mut left, mut msg_cost, mut msg_lines) = (billed_messages, 0.0, Vec::new());
    for (size, price) in tiers {
        let n = left.min(size);
        if n <= 0.0 {
            break;
        }
        msg_cost += n / 1e6 * price;
        msg_lines.push(format!("{:.0} M x ${price}", n / 1e6));
        left -= n;
    }
    let conn_price = prices.get("iot.connectivity");
    let conn_minutes = fleet.robots * DAYS_PER_MONTH * 1440.0;
    let shadow_price = prices.get("iot.shadow_operations");
    let shadow_ops = updates_month * (fleet.shadow_update_bytes / 1024.0).ceil().max(1.0);
    let rules_triggered = updates_month + reports_month + presence_month;
    let (rt, ra) = (
        prices.get("iot.rules_triggered"),
        prices.get("iot.actions_applied"),
    );
    let iot = Cost {
        component: "IoT Core".into(),
        usd: msg_cost
            + conn_minutes / 1e6 * conn_price
            + shadow_ops / 1e6 * shadow_price
            + rules_triggered / 1e6 * (rt + ra),
        arithmetic: vec![
            format!(
                "messaging: {:.0} M robot publishes + {:.0} M lifecycle events (each under 5 KB) = {}: ${msg_cost:.2}",
                msgs_month / 1e6,
                presence_month / 1e6,
                msg_lines.join(" + ")
            ),
            format!(
                "connectivity: {:.0} robots x {:.0} minutes = {:.0} M minutes x ${conn_price} = ${:.2}",
                fleet.robots,
                DAYS_PER_MONTH * 1440.0,
                conn_minutes / 1e6,
                conn_minutes / 1e6 * conn_price
            ),
            format!(
                "shadow: {:.0} M updates x {} operation(s) x ${shadow_price} = ${:.2}",
                updates_month / 1e6,
                (fleet.shadow_update_bytes / 1024.0).ceil().max(1.0),
                shadow_ops / 1e6 * shadow_price
            ),
            format!(
                "rules: {:.0} M rules triggered x ${rt} + as many Kinesis actions x ${ra} = ${:.2}",
                rules_triggered / 1e6,
                rules_triggered / 1e6 * (rt + ra)
            ),
        ],
    };

    // DynamoDB monthly.
    let wru = prices.get("dynamodb.ondemand.write_request_unit");
    let writes = reports_month * wcu_per_item * 2.0;
    let storage_gb = reports_month / DAYS_PER_MONTH
        * stack.mission_retention_days
        * fleet.mission_item_bytes
        * 2.0
        / GB;
    let st = prices.get("dynamodb.storage_gb_month");
    let dynamo_cost = Cost {
        component: "DynamoDB (missions)".into(),
        usd: writes / 1e6 * wru + storage_gb * st,
        arithmetic: vec![
            format!(
                "writes: {:.1} M reports x {wcu_per_item} WRU x 2 (table + byDay index) = {:.1} M WRU x ${wru} = ${:.2}",
                reports_month / 1e6,
                writes / 1e6,
                writes / 1e6 * wru
            ),
            format!(
                "storage: {:.0} GB ({} days of reports, table + index) x ${st} = ${:.2}",
                storage_gb,
                stack.mission_retention_days,
                storage_gb * st
            ),
        ],
    };
    let gmd = prices.get("cloudwatch.get_metric_data");
    let cw_metrics = 8.0 * 1440.0 * DAYS_PER_MONTH;
    let cw = Cost {
        component: "CloudWatch (scaler)".into(),
        usd: cw_metrics / 1000.0 * gmd + 10.0 * prices.get("cloudwatch.custom_metric_month"),
        arithmetic: vec![format!(
            "GetMetricData: 8 metrics x 1,440 runs a day = {:.0} k metrics x ${gmd}/1,000; 10 EMF metrics x ${}",
            cw_metrics / 1000.0,
            prices.get("cloudwatch.custom_metric_month")
        )],
    };
    let os = Cost {
        component: "OpenSearch (given)".into(),
        usd: stack.opensearch_monthly_usd,
        arithmetic: vec!["a parameter: stack.opensearch_monthly_usd".into()],
    };
    let kinesis = Cost {
        component: format!("Kinesis ({})", cheapest.component),
        usd: cheapest.usd,
        arithmetic: cheapest.arithmetic.clone(),
    };
    let monthly = vec![iot, kinesis, lambda_cost, dynamo_cost, cw, os];
    let total: f64 = monthly.iter().map(|c| c.usd).sum();

    // Quotas.
    let peak_of = |f: &dyn Fn(&DayPlan) -> f64| {
        days.iter()
            .map(|d| (f(d), d.date.clone()))
            .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a })
    };
    let mut quotas = Vec::new();
    let mut quota = |name: &str, limit: f64, (peak, when): (f64, String)| {
        quotas.push(QuotaCheck {
            quota: name.into(),
            limit,
            peak,
            when,
            ok: peak <= limit,
        });
    };
    quota(
        "IoT connect requests/s per account",
        stack.iot_connects_per_sec,
        peak_of(&|d| d.peak_connects_per_sec),
    );
    quota(
        "IoT inbound publishes/s per account",
        stack.iot_publishes_per_sec,
        peak_of(&|d| d.peak_publishes_per_sec),
    );
    quota(
        "IoT Device Shadow requests/s per account",
        stack.iot_shadow_requests_per_sec,
        peak_of(&|d| {
            d.curve
                .publishes
                .iter()
                .zip(&d.curve.reports)
                .map(|(p, r)| p - r)
                .fold(0.0, f64::max)
        }),
    );
    quota(
        "IoT rule actions/s per account",
        stack.iot_rule_actions_per_sec,
        peak_of(&|d| {
            d.curve
                .missions
                .iter()
                .zip(&d.curve.shadows)
                .map(|(a, b)| a.records_per_sec + b.records_per_sec)
                .fold(0.0, f64::max)
        }),
    );
    quota(
        "Lambda concurrent executions per account",
        stack.account_concurrency,
        (
            lambda.iter().map(|l| l.peak_concurrency).sum(),
            "the streams' peaks together".into(),
        ),
    );

    Ok(Plan {
        input: input.clone(),
        prices_as_of: prices.as_of.clone(),
        prewarm: Prewarm {
            missions_stream: missions_rules,
            shadows_stream: shadows_rules,
            missions_table: table_rules,
        },
        stream_modes: modes,
        cheapest_mode: cheapest.component,
        lambda,
        dynamodb,
        quotas,
        monthly_total_usd: total,
        robot_messages_per_month: msgs_month,
        usd_per_million_messages: total / (msgs_month / 1e6),
        monthly,
        unverified_prices: prices.unverified().into_iter().map(String::from).collect(),
        days,
    })
}

fn presence_records(fleet: &FleetSpec, d: &DayPlan) -> f64 {
    // Presence events are what the shadows stream carries beyond shadow documents.
    let docs_bytes = fleet.shadow_document_bytes + fleet.partition_key_bytes;
    let pres_bytes = fleet.presence_event_bytes + fleet.partition_key_bytes;
    // records = docs + presence; bytes = docs*db + presence*pb  =>  presence = (records*db - bytes)/(db - pb)
    if (docs_bytes - pres_bytes).abs() < 1e-9 {
        return 0.0;
    }
    ((d.shadows.records * docs_bytes - d.shadows.bytes) / (docs_bytes - pres_bytes)).max(0.0)
}

/// Capacity in shard-equivalents of a load.
pub fn shard_equivalents(records_per_sec: f64, bytes_per_sec: f64) -> f64 {
    (bytes_per_sec / MIB).max(records_per_sec / SHARD_RECORDS_PER_SEC)
}
