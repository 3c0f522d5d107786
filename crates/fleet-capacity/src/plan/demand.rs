//! Per-minute demand curves for a fleet: what the robots send, minute by minute, over one local
//! day of the reference time zone.
//!
//! The model, every number of which is a [`FleetSpec`] field:
//! - each robot runs `missions_per_week` missions a week; a weekend day has `weekend_factor`
//!   times a weekday's missions, Christmas Day is a weekend day;
//! - missions start in the robots' local time: `peak_share` of a day's missions in the peak hour
//!   (10:00), the rest evenly over the other active hours; within each hour `on_the_hour` of
//!   them in its first `cluster_minutes` (schedules cluster on the hour), the rest evenly;
//! - a mission lasts `mission_minutes`, reports its shadow `shadow_updates_per_mission` times,
//!   evenly, and publishes one mission report at its end;
//! - every robot also reports `idle_updates_per_day` shadow updates and `reconnects_per_day`
//!   connections (two presence events each) spread over the day;
//! - on Christmas morning `new_robots` are switched on over `wave_hours` from `wave_start` local
//!   time (a triangle peaking at a third of the wave); each connects, sends
//!   `onboarding_updates` shadow updates over `onboarding_minutes`, and `first_mission_share` of
//!   them start a mission `first_mission_delay_minutes` later.
//!
//! Streams: mission reports go to the missions stream; shadow documents (the
//! `/update/documents` message, which carries the previous and the current state, so it is
//! larger than what the robot sent) and presence events go to the shadows stream.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Which kind of day a curve is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DayKind {
    Weekday,
    Weekend,
    /// A weekend day plus the activation wave.
    Christmas,
}

/// The fleet, its traffic and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case", deny_unknown_fields)]
pub struct FleetSpec {
    pub robots: f64,
    pub missions_per_week: f64,
    pub weekend_factor: f64,
    pub mission_minutes: u32,
    pub shadow_updates_per_mission: f64,
    pub idle_updates_per_day: f64,
    pub reconnects_per_day: f64,
    /// What a robot publishes per shadow update (IoT metering, shadow operations).
    pub shadow_update_bytes: f64,
    /// The `/update/documents` message the shadows stream receives per update.
    pub shadow_document_bytes: f64,
    pub mission_report_bytes: f64,
    pub presence_event_bytes: f64,
    /// Partition key bytes per Kinesis record (they count toward the shard's 1 MiB/s).
    pub partition_key_bytes: f64,
    /// The mission item in DynamoDB (write units are per 1 KB).
    pub mission_item_bytes: f64,
    pub schedule: Schedule,
    pub christmas: Option<Wave>,
}

/// When missions start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case", deny_unknown_fields)]
pub struct Schedule {
    /// (IANA time zone, share of the fleet). The first is the reference: days and pre-warm
    /// windows are in its local time.
    pub time_zones: Vec<(String, f64)>,
    /// Local hours in which missions start: `[first, last]`, inclusive.
    pub active_hours: (u8, u8),
    pub peak_hour: u8,
    /// Share of a day's missions that start in the peak hour.
    pub peak_share: f64,
    /// Share of an hour's missions that start in its first `cluster_minutes`.
    pub on_the_hour: f64,
    pub cluster_minutes: u32,
}

/// The Christmas-morning activation wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case", deny_unknown_fields)]
pub struct Wave {
    pub new_robots: f64,
    /// Local time (HH:MM) in each robot's own time zone.
    pub wave_start: String,
    pub wave_hours: f64,
    pub onboarding_updates: f64,
    pub onboarding_minutes: u32,
    /// Connections per activation (provisioning, then the robot's own certificate).
    pub connects_per_activation: f64,
    pub first_mission_share: f64,
    pub first_mission_delay_minutes: u32,
}

impl Default for FleetSpec {
    /// The documented example fleet: 5 million robot vacuums in the four US time zones.
    fn default() -> Self {
        FleetSpec {
            robots: 5_000_000.0,
            missions_per_week: 4.0,
            weekend_factor: 1.3,
            mission_minutes: 75,
            shadow_updates_per_mission: 24.0,
            idle_updates_per_day: 4.0,
            reconnects_per_day: 1.0,
            shadow_update_bytes: 600.0,
            shadow_document_bytes: 2_400.0,
            mission_report_bytes: 1_800.0,
            presence_event_bytes: 400.0,
            partition_key_bytes: 36.0,
            mission_item_bytes: 1_800.0,
            schedule: Schedule::default(),
            christmas: Some(Wave::default()),
        }
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            time_zones: vec![
                ("America/New_York".into(), 0.47),
                ("America/Chicago".into(), 0.29),
                ("America/Denver".into(), 0.07),
                ("America/Los_Angeles".into(), 0.17),
            ],
            active_hours: (7, 21),
            peak_hour: 10,
            peak_share: 0.30,
            on_the_hour: 0.6,
            cluster_minutes: 2,
        }
    }
}

impl Default for Wave {
    fn default() -> Self {
        Wave {
            new_robots: 1_500_000.0,
            wave_start: "06:00".into(),
            wave_hours: 4.0,
            onboarding_updates: 120.0,
            onboarding_minutes: 30,
            connects_per_activation: 2.0,
            first_mission_share: 0.7,
            first_mission_delay_minutes: 15,
        }
    }
}

/// One stream's load in one minute, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Load {
    pub records_per_sec: f64,
    pub bytes_per_sec: f64,
}

impl Load {
    /// In shard-equivalents: the larger of MiB/s and thousands of records/s.
    pub fn shard_equivalents(&self) -> f64 {
        (self.bytes_per_sec / crate::limits::MIB)
            .max(self.records_per_sec / crate::limits::SHARD_RECORDS_PER_SEC)
    }
}

/// One local day of demand, minute by minute from local midnight of the reference zone.
#[derive(Debug, Clone, Serialize)]
pub struct Day {
    pub kind: DayKind,
    pub date: String,
    /// Unix seconds of minute 0 (local midnight).
    pub start: i64,
    pub missions: Vec<Load>,
    pub shadows: Vec<Load>,
    /// Robot publishes per second (shadow updates and mission reports).
    pub publishes: Vec<f64>,
    /// MQTT connections per second.
    pub connects: Vec<f64>,
    /// Mission reports written per second (DynamoDB).
    pub reports: Vec<f64>,
}

impl Day {
    pub fn minutes(&self) -> usize {
        self.missions.len()
    }
}

impl FleetSpec {
    /// Checks the spec, naming the first field that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        let s = &self.schedule;
        if s.time_zones.is_empty() {
            return Err("schedule.time_zones is empty".into());
        }
        for (tz, _) in &s.time_zones {
            TimeZone::get(tz)
                .map_err(|_| format!("schedule.time_zones: unknown time zone {tz:?}"))?;
        }
        let shares: f64 = s.time_zones.iter().map(|(_, w)| w).sum();
        if (shares - 1.0).abs() > 1e-6 {
            return Err(format!(
                "schedule.time_zones: the shares add up to {shares}, not 1"
            ));
        }
        let (a, b) = s.active_hours;
        if !(a <= s.peak_hour && s.peak_hour <= b && b <= 23 && a < b) {
            return Err(format!(
                "schedule: need active_hours.0 <= peak_hour <= active_hours.1 <= 23 (got {a}, {}, {b})",
                s.peak_hour
            ));
        }
        let share = |v: f64| (0.0..=1.0).contains(&v);
        if !share(s.peak_share)
            || !share(s.on_the_hour)
            || s.cluster_minutes == 0
            || s.cluster_minutes > 60
        {
            return Err("schedule: peak_share and on_the_hour must be in [0, 1], cluster_minutes in [1, 60]".into());
        }
        if self.robots.is_nan()
            || self.robots <= 0.0
            || self.mission_minutes == 0
            || self.mission_minutes > 24 * 60
        {
            return Err("robots must be positive and mission_minutes in [1, 1440]".into());
        }
        for (name, v) in [
            ("missions_per_week", self.missions_per_week),
            ("weekend_factor", self.weekend_factor),
            (
                "shadow_updates_per_mission",
                self.shadow_updates_per_mission,
            ),
            ("shadow_document_bytes", self.shadow_document_bytes),
            ("mission_report_bytes", self.mission_report_bytes),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} = {v} must be a non-negative number"));
            }
        }
        if let Some(w) = &self.christmas {
            parse_hhmm(&w.wave_start)
                .ok_or_else(|| format!("christmas.wave_start {:?} is not HH:MM", w.wave_start))?;
            if w.wave_hours.is_nan() || w.wave_hours <= 0.0 || !share(w.first_mission_share) {
                return Err(
                    "christmas: wave_hours must be positive and first_mission_share in [0, 1]"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// Missions one robot runs on a weekday.
    pub fn weekday_missions_per_robot(&self) -> f64 {
        self.missions_per_week / (5.0 + 2.0 * self.weekend_factor)
    }

    fn missions_per_robot(&self, date: Date, christmas: bool) -> f64 {
        let weekend = matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) || christmas;
        self.weekday_missions_per_robot() * if weekend { self.weekend_factor } else { 1.0 }
    }

    /// The reference time zone.
    pub fn reference_tz(&self) -> TimeZone {
        TimeZone::get(&self.schedule.time_zones[0].0).unwrap_or(TimeZone::UTC)
    }

    /// The demand over local `date` of the reference zone, treated as `kind`.
    pub fn day(&self, date: Date, kind: DayKind) -> Day {
        let tz = self.reference_tz();
        let start = local_instant(date, Time::midnight(), &tz);
        let end = date
            .tomorrow()
            .map_or(start + 86_400, |d| local_instant(d, Time::midnight(), &tz));
        let n = ((end - start) / 60) as usize;
        // Work over [start - 1 day, end + 1 day) so that missions started the day before, or in
        // zones west of the reference, land where they belong; keep the middle.
        let origin = start - 86_400;
        let total = n + 2 * 1440 + 60;
        let mut acc = Acc::new(total);
        let put = |at: i64| -> Option<usize> {
            let i = (at - origin).div_euclid(60);
            (i >= 0 && (i as usize) < total).then_some(i as usize)
        };
        let s = &self.schedule;
        let d_minutes = self.mission_minutes as usize;
        let upd_per_min = self.shadow_updates_per_mission / d_minutes as f64;
        let mut mission = |acc: &mut Acc, i: usize, count: f64| {
            for j in 0..d_minutes {
                if let Some(a) = acc.at(i + j) {
                    a.shadow_docs += count * upd_per_min;
                }
            }
            if let Some(a) = acc.at(i + d_minutes) {
                a.reports += count;
            }
        };
        let other_hours = f64::from(s.active_hours.1 - s.active_hours.0);
        for (zone, share) in &s.time_zones {
            let ztz = TimeZone::get(zone).unwrap_or(TimeZone::UTC);
            let robots = self.robots * share;
            for day in [date.yesterday(), Ok(date), date.tomorrow()]
                .into_iter()
                .flatten()
            {
                let christmas_day = kind == DayKind::Christmas && day == date;
                let weekend_kind = kind == DayKind::Weekend && day == date;
                let per_robot = if weekend_kind {
                    self.weekday_missions_per_robot() * self.weekend_factor
                } else {
                    self.missions_per_robot(day, christmas_day)
                };
                let missions = robots * per_robot;
                for hour in s.active_hours.0..=s.active_hours.1 {
                    let weight = if hour == s.peak_hour {
                        s.peak_share
                    } else {
                        (1.0 - s.peak_share) / other_hours.max(1.0)
                    };
                    let in_hour = missions * weight;
                    let Ok(t) = Time::new(hour as i8, 0, 0, 0) else {
                        continue;
                    };
                    let Some(i0) = put(local_instant(day, t, &ztz)) else {
                        continue;
                    };
                    let cluster = s.cluster_minutes as usize;
                    for k in 0..60usize {
                        let mut c = in_hour * (1.0 - s.on_the_hour) / 60.0;
                        if k < cluster {
                            c += in_hour * s.on_the_hour / cluster as f64;
                        }
                        mission(&mut acc, i0 + k, c);
                    }
                }
                // Idle updates and reconnections over the local day.
                let (Some(a), Some(b)) = (
                    put(local_instant(day, Time::midnight(), &ztz)),
                    day.tomorrow()
                        .ok()
                        .and_then(|d| put(local_instant(d, Time::midnight(), &ztz))),
                ) else {
                    continue;
                };
                let minutes = (b - a).max(1) as f64;
                for i in a..b {
                    if let Some(m) = acc.at(i) {
                        m.shadow_docs += robots * self.idle_updates_per_day / minutes;
                        m.connects += robots * self.reconnects_per_day / minutes;
                        m.presence += 2.0 * robots * self.reconnects_per_day / minutes;
                    }
                }
                if let (true, Some(w)) = (christmas_day, &self.christmas) {
                    self.wave(&mut acc, w, day, &ztz, *share, origin, &mut mission);
                }
            }
        }
        let first = (start - origin) as usize / 60;
        let keep = &acc.minutes[first..first + n];
        let mut out = Day {
            kind,
            date: date.to_string(),
            start,
            missions: Vec::with_capacity(n),
            shadows: Vec::with_capacity(n),
            publishes: Vec::with_capacity(n),
            connects: Vec::with_capacity(n),
            reports: Vec::with_capacity(n),
        };
        let pk = self.partition_key_bytes;
        for m in keep {
            let per_sec = |v: f64| v / 60.0;
            out.missions.push(Load {
                records_per_sec: per_sec(m.reports),
                bytes_per_sec: per_sec(m.reports * (self.mission_report_bytes + pk)),
            });
            let records = m.shadow_docs + m.presence;
            let bytes = m.shadow_docs * (self.shadow_document_bytes + pk)
                + m.presence * (self.presence_event_bytes + pk);
            out.shadows.push(Load {
                records_per_sec: per_sec(records),
                bytes_per_sec: per_sec(bytes),
            });
            out.publishes.push(per_sec(m.shadow_docs + m.reports));
            out.connects.push(per_sec(m.connects));
            out.reports.push(per_sec(m.reports));
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn wave(
        &self,
        acc: &mut Acc,
        w: &Wave,
        day: Date,
        tz: &TimeZone,
        share: f64,
        origin: i64,
        mission: &mut impl FnMut(&mut Acc, usize, f64),
    ) {
        let Some((h, m)) = parse_hhmm(&w.wave_start) else {
            return;
        };
        let Ok(t) = Time::new(h, m, 0, 0) else { return };
        let i0 = (local_instant(day, t, tz) - origin).div_euclid(60);
        let len = (w.wave_hours * 60.0).round().max(1.0) as usize;
        let peak = len as f64 / 3.0;
        // A triangle over [0, len) peaking at len/3, normalised to the wave's robots.
        let shape: Vec<f64> = (0..len)
            .map(|k| {
                let x = k as f64 + 0.5;
                if x < peak {
                    x / peak
                } else {
                    (len as f64 - x) / (len as f64 - peak)
                }
            })
            .collect();
        let total: f64 = shape.iter().sum();
        let robots = w.new_robots * share;
        let on_minutes = w.onboarding_minutes.max(1) as usize;
        for (k, s) in shape.iter().enumerate() {
            let Ok(i) = usize::try_from(i0 + k as i64) else {
                continue;
            };
            let activations = robots * s / total;
            if let Some(a) = acc.at(i) {
                a.connects += activations * w.connects_per_activation;
                a.presence += activations * w.connects_per_activation;
            }
            for j in 0..on_minutes {
                if let Some(a) = acc.at(i + j) {
                    a.shadow_docs += activations * w.onboarding_updates / on_minutes as f64;
                }
            }
            mission(
                acc,
                i + w.first_mission_delay_minutes as usize,
                activations * w.first_mission_share,
            );
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Minute {
    shadow_docs: f64,
    reports: f64,
    presence: f64,
    connects: f64,
}

struct Acc {
    minutes: Vec<Minute>,
}

impl Acc {
    fn new(n: usize) -> Acc {
        Acc {
            minutes: vec![Minute::default(); n],
        }
    }

    fn at(&mut self, i: usize) -> Option<&mut Minute> {
        self.minutes.get_mut(i)
    }
}

/// Unix seconds of a local date and time (a time in a DST gap moves forward by the gap).
pub fn local_instant(date: Date, time: Time, tz: &TimeZone) -> i64 {
    date.to_datetime(time)
        .to_zoned_datetime(tz.clone())
        .map_or(0, |z| z.timestamp().as_second())
}

fn parse_hhmm(s: &str) -> Option<(i8, i8)> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}
