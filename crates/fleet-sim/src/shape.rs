//! Traffic shapes: what each robot does when, in simulated time. Pure and seeded, so the
//! statistics can be tested without a network, and every shard of a fleet plans the same fleet.
//!
//! - **Day**: every robot has a cleaning schedule in its own time zone. The app guides owners to the
//!   hour and the half hour, mornings are popular, and the zone mix (US East, Central, Pacific,
//!   Europe) makes 10:00 US Eastern the busiest time of the day, as at iRobot. Weekends are
//!   busier. Docked robots are quiet: one heartbeat an hour.
//! - **Christmas**: Dec 25, 06:00–12:00 US Eastern. Brand-new robots activate between 07:00 and
//!   11:00 (peak at 09:00): first connect, initial report, firmware update, a first mission right
//!   away. The share of new robots is chosen so that traffic in the window is `factor` × what the
//!   existing robots send.
//! - **Steady**: every robot sends at the same constant rate, a share of them mission reports.
//!
//! A [`Plan`] holds one [`RobotPlan`] per robot of this shard: actions at simulated seconds from
//! the window start. The robot runtime expands nothing: what is planned is what is sent (plus the
//! injected faults and the app commands).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

use crate::args::{Mode, SimArgs};
use crate::error::SimError;

/// Simulated seconds between progress updates of a running mission.
pub const PROGRESS_EVERY_S: f64 = 300.0;
/// Simulated seconds between heartbeats of a docked robot.
pub const HEARTBEAT_EVERY_S: f64 = 3600.0;

/// One thing a robot does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Docked: report battery and status.
    Heartbeat,
    /// A brand-new robot's first report (Christmas): firmware, battery, provisioning state.
    Activate,
    /// Report a new firmware version after an update.
    FirmwareUpdate,
    /// Start mission `slot` (shadow: cleaning); `duration_s` simulated seconds long.
    MissionStart {
        /// Mission number within this robot's plan.
        slot: u32,
        /// Planned length in simulated seconds.
        duration_s: f64,
        /// Index into [`END_STATUSES`].
        status: u8,
    },
    /// Progress of mission `slot` in the shadow.
    MissionProgress {
        /// Mission number.
        slot: u32,
    },
    /// End of mission `slot`: shadow back to docking, report rev 1.
    MissionEnd {
        /// Mission number.
        slot: u32,
    },
    /// The richer report of mission `slot` (rev 2), after the map upload.
    MissionRev2 {
        /// Mission number.
        slot: u32,
    },
    /// Steady mode: a shadow update.
    SteadyShadow,
    /// Steady mode: a mission report (rev 2 of the last mission if it has only rev 1, else rev 1
    /// of a new, already finished mission).
    SteadyReport,
}

impl Action {
    /// Messages this action publishes (before faults).
    pub fn publishes(&self) -> u64 {
        match self {
            Action::MissionEnd { .. } => 2,
            _ => 1,
        }
    }

    /// Mission reports among them (Basic Ingest, no messaging charge).
    pub fn mission_reports(&self) -> u64 {
        match self {
            Action::MissionEnd { .. } | Action::MissionRev2 { .. } | Action::SteadyReport => 1,
            _ => 0,
        }
    }
}

/// How missions end, with their weights.
pub const END_STATUSES: [(&str, f64); 5] = [
    ("completed", 0.85),
    ("cancelled", 0.04),
    ("stuck", 0.05),
    ("battery_low", 0.04),
    ("error", 0.02),
];

/// An action at a simulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned {
    /// Simulated seconds from the window start.
    pub at_s: f64,
    /// What happens.
    pub action: Action,
}

/// App commands sent through the shadow's desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Start cleaning now.
    Start,
    /// Stop and go back to the dock.
    Dock,
    /// A new cleaning schedule.
    Schedule,
}

/// One robot's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct RobotPlan {
    /// Global robot index.
    pub k: u64,
    /// Simulated second at which the robot first connects (0 for robots already in service).
    pub connect_at_s: f64,
    /// True for a brand-new robot (Christmas).
    pub new_robot: bool,
    /// Actions in time order.
    pub actions: Vec<Planned>,
    /// App command for this robot, if it gets one.
    pub command: Option<(f64, CommandKind)>,
}

/// The whole shard's plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Simulated time of the window start (UTC).
    pub start: OffsetDateTime,
    /// Window length in simulated seconds.
    pub length_s: f64,
    /// Simulated seconds per real second.
    pub compression: f64,
    /// One plan per robot of this shard.
    pub robots: Vec<RobotPlan>,
    /// Christmas: robots of the whole fleet that were already in service.
    pub existing_robots: Option<u64>,
}

impl Plan {
    /// Real seconds the window takes.
    pub fn real_length_s(&self) -> f64 {
        self.length_s / self.compression
    }

    /// Planned publishes (before faults and commands).
    pub fn publishes(&self) -> u64 {
        self.robots
            .iter()
            .flat_map(|r| r.actions.iter())
            .map(|a| a.action.publishes())
            .sum()
    }

    /// Planned mission reports (Basic Ingest).
    pub fn mission_reports(&self) -> u64 {
        self.robots
            .iter()
            .flat_map(|r| r.actions.iter())
            .map(|a| a.action.mission_reports())
            .sum()
    }

    /// Simulated start times of every planned mission.
    pub fn mission_starts(&self) -> Vec<OffsetDateTime> {
        self.robots
            .iter()
            .flat_map(|r| r.actions.iter())
            .filter(|a| matches!(a.action, Action::MissionStart { .. }))
            .map(|a| self.start + time::Duration::seconds_f64(a.at_s))
            .collect()
    }

    /// Publishes whose simulated time falls in `[from_s, to_s)`.
    pub fn publishes_between(
        &self,
        from_s: f64,
        to_s: f64,
        robots: impl Fn(&RobotPlan) -> bool,
    ) -> u64 {
        self.robots
            .iter()
            .filter(|r| robots(r))
            .flat_map(|r| r.actions.iter())
            .filter(|a| a.at_s >= from_s && a.at_s < to_s)
            .map(|a| a.action.publishes())
            .sum()
    }
}

/// Time zones of the simulated owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// US Eastern.
    Eastern,
    /// US Central.
    Central,
    /// US Pacific.
    Pacific,
    /// Central European.
    Europe,
}

/// Share of robots per zone.
pub const ZONE_MIX: [(Zone, f64); 4] = [
    (Zone::Eastern, 0.50),
    (Zone::Central, 0.20),
    (Zone::Pacific, 0.15),
    (Zone::Europe, 0.15),
];

/// Relative popularity of each local hour for a scheduled cleaning: a morning peak at 10:00 and
/// a smaller late-afternoon one.
pub const HOUR_WEIGHTS: [f64; 24] = [
    0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 1.0, 2.0, 4.0, 8.0, 12.0, 6.0, 4.0, 4.0, 5.0, 5.0, 7.0, 5.0, 4.0,
    3.0, 2.0, 1.0, 0.5, 0.3,
];

/// Chance that a robot runs its schedule on a weekday / a weekend day (or holiday).
pub const CLEAN_CHANCE: (f64, f64) = (0.30, 0.55);
/// Chance of an extra, button-pressed mission on a weekday / weekend day.
pub const ADHOC_CHANCE: (f64, f64) = (0.05, 0.15);

fn nth_weekday(year: i32, month: Month, weekday: Weekday, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let shift =
        (weekday.number_days_from_monday() + 7 - first.weekday().number_days_from_monday()) % 7;
    first.checked_add(time::Duration::days(
        i64::from(shift) + 7 * (i64::from(n) - 1),
    ))
}

fn last_sunday(year: i32, month: Month) -> Option<Date> {
    let next_month_first = if month == Month::December {
        Date::from_calendar_date(year + 1, Month::January, 1).ok()?
    } else {
        Date::from_calendar_date(year, month.next(), 1).ok()?
    };
    let last = next_month_first.previous_day()?;
    let back = last.weekday().number_days_from_sunday();
    last.checked_sub(time::Duration::days(i64::from(back)))
}

/// Whether US daylight saving time is in force on `date` (second Sunday of March to first Sunday
/// of November; the 02:00 switch hour is ignored).
pub fn us_dst(date: Date) -> bool {
    match (
        nth_weekday(date.year(), Month::March, Weekday::Sunday, 2),
        nth_weekday(date.year(), Month::November, Weekday::Sunday, 1),
    ) {
        (Some(from), Some(to)) => date >= from && date < to,
        _ => false,
    }
}

/// Whether EU summer time is in force on `date` (last Sunday of March to last Sunday of October).
pub fn eu_dst(date: Date) -> bool {
    match (
        last_sunday(date.year(), Month::March),
        last_sunday(date.year(), Month::October),
    ) {
        (Some(from), Some(to)) => date >= from && date < to,
        _ => false,
    }
}

impl Zone {
    /// UTC offset in hours on `date`.
    pub fn offset_hours(self, date: Date) -> i8 {
        let us = i8::from(us_dst(date));
        match self {
            Zone::Eastern => -5 + us,
            Zone::Central => -6 + us,
            Zone::Pacific => -8 + us,
            Zone::Europe => 1 + i8::from(eu_dst(date)),
        }
    }

    /// The UTC instant of local `date` + `seconds` after local midnight.
    pub fn to_utc(self, date: Date, seconds: f64) -> OffsetDateTime {
        let offset = UtcOffset::from_hms(self.offset_hours(date), 0, 0).unwrap_or(UtcOffset::UTC);
        (PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(offset)
            + time::Duration::seconds_f64(seconds))
        .to_offset(UtcOffset::UTC)
    }
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
        || (date.month() == Month::December && date.day() == 25)
}

fn pick<T: Copy>(rng: &mut impl Rng, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn normal(rng: &mut impl Rng, mean: f64, sd: f64) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random::<f64>();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The random source of robot `k`: the same robot gets the same life in every shard layout.
pub fn robot_rng(seed: u64, k: u64) -> StdRng {
    StdRng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// A scheduled local time of day in seconds: the hour by [`HOUR_WEIGHTS`], then 60 % on the hour,
/// 30 % on the half hour, 10 % any other minute.
pub fn schedule_seconds(rng: &mut impl Rng) -> f64 {
    let hours: Vec<(u32, f64)> = HOUR_WEIGHTS
        .iter()
        .enumerate()
        .map(|(h, w)| (h as u32, *w))
        .collect();
    let hour = pick(rng, &hours);
    let x: f64 = rng.random();
    let minute = if x < 0.6 {
        0
    } else if x < 0.9 {
        30
    } else {
        rng.random_range(1..60u32)
    };
    f64::from(hour * 3600 + minute * 60)
}

/// Pushes a whole mission (start, progress, end, maybe rev 2) starting at `at_s`.
fn push_mission(actions: &mut Vec<Planned>, rng: &mut impl Rng, slot: &mut u32, at_s: f64) -> f64 {
    let duration_s = normal(rng, 45.0 * 60.0, 15.0 * 60.0).clamp(15.0 * 60.0, 120.0 * 60.0);
    let statuses: Vec<(u8, f64)> = END_STATUSES
        .iter()
        .enumerate()
        .map(|(i, (_, w))| (i as u8, *w))
        .collect();
    let status = pick(rng, &statuses);
    let s = *slot;
    *slot += 1;
    actions.push(Planned {
        at_s,
        action: Action::MissionStart {
            slot: s,
            duration_s,
            status,
        },
    });
    let mut t = PROGRESS_EVERY_S;
    while t < duration_s {
        actions.push(Planned {
            at_s: at_s + t,
            action: Action::MissionProgress { slot: s },
        });
        t += PROGRESS_EVERY_S;
    }
    let end = at_s + duration_s;
    actions.push(Planned {
        at_s: end,
        action: Action::MissionEnd { slot: s },
    });
    if rng.random::<f64>() < 0.7 {
        let delay = rng.random_range(120.0..600.0);
        actions.push(Planned {
            at_s: end + delay,
            action: Action::MissionRev2 { slot: s },
        });
    }
    end
}

fn push_heartbeats(actions: &mut Vec<Planned>, rng: &mut impl Rng, from_s: f64, to_s: f64) {
    let mut t = from_s + rng.random_range(0.0..HEARTBEAT_EVERY_S);
    while t < to_s {
        actions.push(Planned {
            at_s: t,
            action: Action::Heartbeat,
        });
        t += HEARTBEAT_EVERY_S;
    }
}

fn finish(mut actions: Vec<Planned>, length_s: f64) -> Vec<Planned> {
    actions.retain(|a| a.at_s >= 0.0 && a.at_s < length_s);
    actions.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    actions
}

/// A normal day for robot `k` within the window `[start, start + length_s)`.
pub fn day_actions(seed: u64, k: u64, start: OffsetDateTime, length_s: f64) -> Vec<Planned> {
    let mut rng = robot_rng(seed, k);
    let zone = pick(&mut rng, &ZONE_MIX);
    let sched = schedule_seconds(&mut rng);
    let mut actions = Vec::new();
    let mut slot = 0;
    let first = start.date().previous_day().unwrap_or(start.date());
    let days = (length_s / 86_400.0).ceil() as i64 + 2;
    for d in 0..=days {
        let Some(date) = first.checked_add(time::Duration::days(d)) else {
            break;
        };
        let weekend = is_weekend(date);
        let (clean, adhoc) = if weekend {
            (CLEAN_CHANCE.1, ADHOC_CHANCE.1)
        } else {
            (CLEAN_CHANCE.0, ADHOC_CHANCE.0)
        };
        if rng.random::<f64>() < clean {
            let jitter = rng.random_range(0.0..90.0);
            let at = zone.to_utc(date, sched + jitter);
            push_mission(
                &mut actions,
                &mut rng,
                &mut slot,
                (at - start).as_seconds_f64(),
            );
        }
        if rng.random::<f64>() < adhoc {
            let local = rng.random_range(8.0 * 3600.0..20.0 * 3600.0);
            let at = zone.to_utc(date, local);
            push_mission(
                &mut actions,
                &mut rng,
                &mut slot,
                (at - start).as_seconds_f64(),
            );
        }
    }
    push_heartbeats(&mut actions, &mut rng, 0.0, length_s);
    finish(actions, length_s)
}

/// Christmas: the activation window, in simulated seconds from the window start (06:00 ET).
pub const CHRISTMAS_ACTIVATION_S: (f64, f64) = (3600.0, 5.0 * 3600.0);

/// A brand-new robot on Christmas morning: activation, firmware update, first mission at once.
pub fn christmas_new_actions(seed: u64, k: u64, length_s: f64) -> (f64, Vec<Planned>) {
    let mut rng = robot_rng(seed, k);
    let (a, b) = CHRISTMAS_ACTIVATION_S;
    // Triangular, peak in the middle: boxes are opened after breakfast.
    let u: f64 = rng.random::<f64>() + rng.random::<f64>();
    let at = a + (b - a) * u / 2.0;
    let mut actions = vec![Planned {
        at_s: at,
        action: Action::Activate,
    }];
    actions.push(Planned {
        at_s: at + rng.random_range(300.0..900.0),
        action: Action::FirmwareUpdate,
    });
    let mut slot = 0;
    let first_start = at + rng.random_range(900.0..2400.0);
    let end = push_mission(&mut actions, &mut rng, &mut slot, first_start);
    // Half of the new owners try it again, spot-cleaning after the first run.
    if rng.random::<f64>() < 0.5 {
        let again = end + rng.random_range(1200.0..3600.0);
        push_mission(&mut actions, &mut rng, &mut slot, again);
    }
    push_heartbeats(&mut actions, &mut rng, at, length_s);
    (at, finish(actions, length_s))
}

/// Steady mode: one message every `interval_s`, a share `mission_share` of them mission reports.
pub fn steady_actions(
    seed: u64,
    k: u64,
    interval_s: f64,
    mission_share: f64,
    length_s: f64,
) -> Vec<Planned> {
    let mut rng = robot_rng(seed, k);
    let mut actions = Vec::new();
    let mut t = rng.random_range(0.0..interval_s);
    while t < length_s {
        let action = if rng.random::<f64>() < mission_share {
            Action::SteadyReport
        } else {
            Action::SteadyShadow
        };
        actions.push(Planned { at_s: t, action });
        t += interval_s;
    }
    actions
}

/// US Eastern midnight of `date` plus `hours`, as a UTC instant.
pub fn eastern(date: Date, hours: f64) -> OffsetDateTime {
    Zone::Eastern.to_utc(date, hours * 3600.0)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<Date, SimError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt)
        .map_err(|e| SimError::arg("--date", format!("`{s}` is not YYYY-MM-DD ({e})")))
}

fn draw_command(rng: &mut impl Rng, pct: f64, length_s: f64) -> Option<(f64, CommandKind)> {
    if rng.random::<f64>() * 100.0 >= pct {
        return None;
    }
    let kind = pick(
        rng,
        &[
            (CommandKind::Start, 0.5),
            (CommandKind::Dock, 0.25),
            (CommandKind::Schedule, 0.25),
        ],
    );
    Some((rng.random_range(0.05..0.85) * length_s, kind))
}

/// How many of `robots` are already in service on Christmas morning so that traffic in the
/// activation window is `factor` × theirs. Estimated from a sample of plans.
pub fn christmas_existing(
    seed: u64,
    robots: u64,
    factor: f64,
    start: OffsetDateTime,
    length_s: f64,
) -> u64 {
    const SAMPLE: u64 = 400;
    let (a, b) = CHRISTMAS_ACTIVATION_S;
    let count = |acts: &[Planned]| -> u64 {
        acts.iter()
            .filter(|p| p.at_s >= a && p.at_s < b)
            .map(|p| p.action.publishes())
            .sum()
    };
    let sample_seed = seed ^ 0x5EED;
    let old: u64 = (0..SAMPLE)
        .map(|k| count(&day_actions(sample_seed, k, start, length_s)))
        .sum();
    let new: u64 = (0..SAMPLE)
        .map(|k| count(&christmas_new_actions(sample_seed, k, length_s).1))
        .sum();
    if new == 0 {
        return robots;
    }
    let ratio = (factor - 1.0) * old as f64 / new as f64;
    ((robots as f64 / (1.0 + ratio)).round() as u64).clamp(1, robots)
}

/// Whether robot `k` is one of the `existing` robots of a fleet of `robots` (spread evenly).
pub fn is_existing(k: u64, existing: u64, robots: u64) -> bool {
    (k + 1) * existing / robots > k * existing / robots
}

/// Plans the run for this shard.
pub fn plan(args: &SimArgs, today: Date) -> Result<Plan, SimError> {
    let indices: Vec<u64> = args.shard.indices(args.robots).collect();
    let seed = args.seed;
    let cmd_rng = |k: u64| robot_rng(seed ^ 0xC0FFEE, k);
    match args.mode {
        Mode::Day => {
            let date = match &args.date {
                Some(d) => parse_date(d)?,
                None => today,
            };
            let start = eastern(date, args.from_hour);
            let length_s = args.hours * 3600.0;
            let compression = 86_400.0 / args.day_length.as_secs_f64();
            let robots = indices
                .into_iter()
                .map(|k| RobotPlan {
                    k,
                    connect_at_s: 0.0,
                    new_robot: false,
                    actions: day_actions(seed, k, start, length_s),
                    command: draw_command(&mut cmd_rng(k), args.commands, length_s),
                })
                .collect();
            Ok(Plan {
                start,
                length_s,
                compression,
                robots,
                existing_robots: None,
            })
        }
        Mode::Christmas => {
            let year = match &args.date {
                Some(d) => parse_date(d)?.year(),
                None => today.year(),
            };
            let date = Date::from_calendar_date(year, Month::December, 25)
                .map_err(|e| SimError::arg("--date", e.to_string()))?;
            let start = eastern(date, 6.0);
            let length_s = 6.0 * 3600.0;
            let compression = 86_400.0 / args.day_length.as_secs_f64();
            let existing =
                christmas_existing(seed, args.robots, args.christmas_factor, start, length_s);
            let robots = indices
                .into_iter()
                .map(|k| {
                    if is_existing(k, existing, args.robots) {
                        RobotPlan {
                            k,
                            connect_at_s: 0.0,
                            new_robot: false,
                            actions: day_actions(seed, k, start, length_s),
                            command: draw_command(&mut cmd_rng(k), args.commands, length_s),
                        }
                    } else {
                        let (at, actions) = christmas_new_actions(seed, k, length_s);
                        let command = draw_command(&mut cmd_rng(k), args.commands, length_s)
                            .filter(|(t, _)| *t > at + 60.0);
                        RobotPlan {
                            k,
                            connect_at_s: at,
                            new_robot: true,
                            actions,
                            command,
                        }
                    }
                })
                .collect();
            Ok(Plan {
                start,
                length_s,
                compression,
                robots,
                existing_robots: Some(existing),
            })
        }
        Mode::Steady => {
            let length_s = args.duration.as_secs_f64();
            let interval_s = args.robots as f64 / args.rate;
            let robots = indices
                .into_iter()
                .map(|k| RobotPlan {
                    k,
                    connect_at_s: 0.0,
                    new_robot: false,
                    actions: steady_actions(seed, k, interval_s, args.mission_share, length_s),
                    command: None,
                })
                .collect();
            Ok(Plan {
                start: OffsetDateTime::now_utc(),
                length_s,
                compression: 1.0,
                robots,
                existing_robots: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn day_plan(robots: u64, date: Date) -> Plan {
        let start = eastern(date, 0.0);
        Plan {
            start,
            length_s: 86_400.0,
            compression: 288.0,
            robots: (0..robots)
                .map(|k| RobotPlan {
                    k,
                    connect_at_s: 0.0,
                    new_robot: false,
                    actions: day_actions(3, k, start, 86_400.0),
                    command: None,
                })
                .collect(),
            existing_robots: None,
        }
    }

    #[test]
    fn dst_rules_match_the_calendar() {
        assert!(!us_dst(date!(2026 - 03 - 07)));
        assert!(us_dst(date!(2026 - 03 - 08)));
        assert!(us_dst(date!(2026 - 10 - 31)));
        assert!(!us_dst(date!(2026 - 11 - 01)));
        assert!(eu_dst(date!(2026 - 03 - 29)) && !eu_dst(date!(2026 - 03 - 28)));
        assert!(!eu_dst(date!(2026 - 10 - 25)) && eu_dst(date!(2026 - 10 - 24)));
        assert_eq!(eastern(date!(2026 - 11 - 23), 10.0).hour(), 15);
        assert_eq!(eastern(date!(2026 - 07 - 01), 10.0).hour(), 14);
    }

    #[test]
    fn mission_starts_cluster_on_the_hour_and_half_hour() {
        let plan = day_plan(4000, date!(2026 - 11 - 23));
        let starts = plan.mission_starts();
        assert!(starts.len() > 1000, "{}", starts.len());
        // Scheduled starts happen within two minutes after :00 or :30 (robots wake within 90 s);
        // button-pressed ones are spread over the hour.
        let near = starts
            .iter()
            .filter(|t| matches!(t.minute(), 0 | 1 | 30 | 31))
            .count() as f64
            / starts.len() as f64;
        assert!(near > 0.7, "only {near:.2} of starts near :00/:30");
        // Without clustering four minutes out of sixty would hold ~7 %.
        let elsewhere = starts
            .iter()
            .filter(|t| matches!(t.minute(), 15 | 16 | 45 | 46))
            .count() as f64
            / starts.len() as f64;
        assert!(elsewhere < 0.05, "{elsewhere:.3} of starts at :15/:45");
    }

    #[test]
    fn the_daily_peak_is_ten_eastern() {
        let plan = day_plan(4000, date!(2026 - 11 - 23));
        let mut by_hour = [0u32; 24];
        for t in plan.mission_starts() {
            let et = t.to_offset(UtcOffset::from_hms(-5, 0, 0).unwrap());
            by_hour[et.hour() as usize] += 1;
        }
        let peak = (0..24).max_by_key(|h| by_hour[*h]).unwrap();
        assert_eq!(peak, 10, "starts per ET hour: {by_hour:?}");
        // A real peak, not a tie: clearly above the neighbouring hours and the night.
        assert!(f64::from(by_hour[10]) > 1.2 * f64::from(by_hour[9].max(by_hour[11])));
        // The small hours of US Eastern are quiet (Europe's early morning only).
        assert!(
            by_hour[10] > 8 * by_hour[1].max(1),
            "starts per ET hour: {by_hour:?}"
        );
    }

    #[test]
    fn weekends_are_busier_than_weekdays() {
        // 2026-11-23 is a Monday, 2026-11-28 a Saturday.
        let monday = day_plan(3000, date!(2026 - 11 - 23)).mission_starts().len() as f64;
        let saturday = day_plan(3000, date!(2026 - 11 - 28)).mission_starts().len() as f64;
        let ratio = saturday / monday;
        assert!((1.5..2.3).contains(&ratio), "weekend/weekday = {ratio:.2}");
    }

    #[test]
    fn christmas_morning_is_about_twenty_times_normal() {
        let args = {
            use clap::Parser;
            #[derive(Parser)]
            struct Cli {
                #[command(flatten)]
                sim: SimArgs,
            }
            Cli::try_parse_from([
                "sim",
                "--mode",
                "christmas",
                "--robots",
                "20000",
                "--date",
                "2026-01-01",
                "--commands",
                "0",
            ])
            .unwrap()
            .sim
        };
        let plan = plan(&args, date!(2026 - 11 - 23)).unwrap();
        let existing = plan.existing_robots.unwrap();
        assert!(existing > 0 && existing < 20000 / 5, "{existing}");
        assert_eq!(
            plan.robots.iter().filter(|r| !r.new_robot).count() as u64,
            existing
        );
        let (a, b) = CHRISTMAS_ACTIVATION_S;
        let all = plan.publishes_between(a, b, |_| true) as f64;
        let normal = plan.publishes_between(a, b, |r| !r.new_robot) as f64;
        let factor = all / normal;
        assert!(
            (17.0..23.0).contains(&factor),
            "christmas factor {factor:.1}"
        );
        // New robots activate inside the window and connect when they activate.
        for r in plan.robots.iter().filter(|r| r.new_robot) {
            assert!(r.connect_at_s >= a && r.connect_at_s < b);
            assert_eq!(r.actions[0].action, Action::Activate);
        }
        // The window is Christmas morning, US Eastern.
        assert_eq!(plan.start.date(), date!(2026 - 12 - 25));
    }

    #[test]
    fn steady_mode_hits_the_rate() {
        let acts: Vec<Planned> = (0..100)
            .flat_map(|k| steady_actions(1, k, 0.5, 0.2, 60.0))
            .collect();
        // 100 robots, one message every 0.5 s each, 60 s: 12,000 messages.
        assert!(acts.len().abs_diff(12_000) <= 100, "{}", acts.len());
        let reports = acts
            .iter()
            .filter(|a| a.action == Action::SteadyReport)
            .count() as f64;
        assert!((reports / acts.len() as f64 - 0.2).abs() < 0.02);
    }

    #[test]
    fn a_robot_plans_the_same_life_in_every_shard_layout() {
        let start = eastern(date!(2026 - 11 - 23), 0.0);
        assert_eq!(
            day_actions(9, 77, start, 86_400.0),
            day_actions(9, 77, start, 86_400.0)
        );
        assert_ne!(
            day_actions(9, 77, start, 86_400.0),
            day_actions(9, 78, start, 86_400.0)
        );
        assert!(!is_existing(0, 0, 10));
        assert_eq!((0..1000).filter(|k| is_existing(*k, 91, 1000)).count(), 91);
    }
}
