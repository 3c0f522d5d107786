//! Pre-warm rules: capacity that must be in place at given wall-clock times.
//!
//! A rule is one line, `<days> <HH:MM>-<HH:MM> <time zone> <amount>...`, and rules are joined
//! with `;` (that is how they fit in one CloudFormation parameter):
//!
//! ```text
//! daily 09:40-11:00 America/New_York 48MiB; 12-25 05:30-12:00 America/New_York 900MiB
//! ```
//!
//! - days: `daily`, `weekdays` (Monday to Friday), `weekends`, `MM-DD` (every year, as
//!   Christmas) or `YYYY-MM-DD` (one date);
//! - the window is local wall-clock time in the IANA time zone; it may cross midnight
//!   (`22:00-02:00`). Each occurrence is computed from the local date, so a window keeps its
//!   local time across DST changes (09:40 New York is 14:40 UTC in winter and 13:40 UTC in
//!   summer). A start inside the spring-forward gap moves forward by the gap (02:30 becomes
//!   03:30), a start inside the fall-back fold takes the first of the two (as RFC 5545 and
//!   Temporal do);
//! - `none` is no rule at all (a CloudFormation parameter cannot be empty where a value is
//!   required);
//! - amounts: `<n>MiB` (MiB/s of stream write capacity), `<n>rec` (records/s of stream
//!   capacity), `<n>wcu` / `<n>rcu` (DynamoDB write/read units per second of warm throughput).
//!   An amount is capacity that must be in place, not a demand forecast: `48MiB` on a
//!   provisioned stream means at least 48 shards.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::Serialize;

/// Capacity that must be in place. Zero means "nothing required".
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Need {
    /// Stream write capacity, MiB/s.
    pub mibps: f64,
    /// Stream write capacity, records/s.
    pub records_per_sec: f64,
    /// DynamoDB warm write throughput, write units/s.
    pub wcu: f64,
    /// DynamoDB warm read throughput, read units/s.
    pub rcu: f64,
}

impl Need {
    /// The component-wise maximum.
    pub fn max(self, other: Need) -> Need {
        Need {
            mibps: self.mibps.max(other.mibps),
            records_per_sec: self.records_per_sec.max(other.records_per_sec),
            wcu: self.wcu.max(other.wcu),
            rcu: self.rcu.max(other.rcu),
        }
    }

    /// Stream capacity in shard-equivalents: the larger of MiB/s and thousands of records/s.
    pub fn shard_equivalents(&self) -> f64 {
        self.mibps
            .max(self.records_per_sec / crate::limits::SHARD_RECORDS_PER_SEC)
    }

    /// Whether it asks for stream capacity.
    pub fn has_stream(&self) -> bool {
        self.mibps > 0.0 || self.records_per_sec > 0.0
    }

    /// Whether it asks for table capacity.
    pub fn has_table(&self) -> bool {
        self.wcu > 0.0 || self.rcu > 0.0
    }
}

/// Which local dates a rule applies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Days {
    Daily,
    Weekdays,
    Weekends,
    /// Every year on this month and day (`12-25`).
    Yearly {
        month: i8,
        day: i8,
    },
    /// One date.
    On(Date),
}

impl Days {
    fn matches(&self, date: Date) -> bool {
        match self {
            Days::Daily => true,
            Days::Weekdays => !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday),
            Days::Weekends => matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday),
            Days::Yearly { month, day } => date.month() == *month && date.day() == *day,
            Days::On(d) => *d == date,
        }
    }
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub days: Days,
    pub from: Time,
    pub to: Time,
    pub tz: TimeZone,
    pub tz_name: String,
    pub need: Need,
    text: String,
}

/// One occurrence of a rule: an interval of absolute time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Occurrence {
    /// Unix seconds, inclusive.
    pub start: i64,
    /// Unix seconds, exclusive.
    pub end: i64,
    pub need: Need,
    /// Which rule (its index in [`Rules`]).
    pub rule: usize,
}

/// A rule that does not parse, naming the rule and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("pre-warm rule {index} ({rule:?}): {problem}")]
pub struct RuleError {
    pub index: usize,
    pub rule: String,
    pub problem: String,
}

/// A set of rules. Empty means "no pre-warm".
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<Rule>);

impl Rules {
    pub fn rules(&self) -> &[Rule] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every occurrence that overlaps `[from, to)` (unix seconds), in start order.
    pub fn occurrences(&self, from: i64, to: i64) -> Vec<Occurrence> {
        let mut out = Vec::new();
        for (i, rule) in self.0.iter().enumerate() {
            rule.occurrences_into(i, from, to, &mut out);
        }
        out.sort_by(|a, b| a.start.cmp(&b.start).then(a.rule.cmp(&b.rule)));
        out
    }

    /// The need in force at `t`.
    pub fn need_at(&self, t: i64) -> Need {
        self.need_between(t, t + 1)
    }

    /// The largest need in force at any moment of `[from, to)`.
    pub fn need_between(&self, from: i64, to: i64) -> Need {
        self.occurrences(from, to)
            .iter()
            .fold(Need::default(), |acc, o| acc.max(o.need))
    }

    /// Rules restricted to those that ask for stream capacity (or table capacity).
    pub fn only(&self, stream: bool) -> Rules {
        Rules(
            self.0
                .iter()
                .filter(|r| {
                    if stream {
                        r.need.has_stream()
                    } else {
                        r.need.has_table()
                    }
                })
                .cloned()
                .collect(),
        )
    }
}

impl Rule {
    fn occurrences_into(&self, index: usize, from: i64, to: i64, out: &mut Vec<Occurrence>) {
        let (Ok(a), Ok(b)) = (Timestamp::from_second(from), Timestamp::from_second(to)) else {
            return;
        };
        // A window ends at most a day after its local start date, so look one day either side.
        let (Ok(first), Ok(last)) = (
            self.tz.to_datetime(a).date().yesterday(),
            self.tz.to_datetime(b).date().tomorrow(),
        ) else {
            return;
        };
        let mut date = first;
        while date <= last {
            let interval = if self.days.matches(date) {
                self.interval(date)
            } else {
                None
            };
            if let Some((start, end)) = interval.filter(|(s, e)| *s < to && *e > from) {
                out.push(Occurrence {
                    start,
                    end,
                    need: self.need,
                    rule: index,
                });
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
    }

    /// The occurrence that starts on local `date`, as unix seconds.
    fn interval(&self, date: Date) -> Option<(i64, i64)> {
        let end_date = if self.to > self.from {
            date
        } else {
            date.tomorrow().ok()?
        };
        let start = date
            .to_datetime(self.from)
            .to_zoned_datetime(self.tz.clone())
            .ok()?;
        let end = end_date
            .to_datetime(self.to)
            .to_zoned_datetime(self.tz.clone())
            .ok()?;
        let (s, e) = (start.timestamp().as_second(), end.timestamp().as_second());
        (e > s).then_some((s, e))
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.0.iter().map(|r| r.text.as_str()).collect();
        f.write_str(&texts.join("; "))
    }
}

impl FromStr for Rules {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rules = Vec::new();
        if s.trim() == "none" {
            return Ok(Rules(rules));
        }
        for (index, text) in s
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            let err = |problem: String| RuleError {
                index: index + 1,
                rule: text.to_string(),
                problem,
            };
            rules.push(parse_rule(text).map_err(err)?);
        }
        Ok(Rules(rules))
    }
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 4 {
        return Err(
            "expected `<days> <HH:MM>-<HH:MM> <time zone> <amount>...`, for example \
                    `daily 09:40-11:00 America/New_York 48MiB`"
                .into(),
        );
    }
    let days = parse_days(words[0])?;
    let (from, to) = words[1]
        .split_once('-')
        .ok_or_else(|| format!("window {:?} is not HH:MM-HH:MM", words[1]))?;
    let (from, to) = (parse_time(from)?, parse_time(to)?);
    if from == to {
        return Err(format!("window {:?} is empty", words[1]));
    }
    let tz = TimeZone::get(words[2]).map_err(|_| {
        format!(
            "unknown time zone {:?} (an IANA name such as America/New_York)",
            words[2]
        )
    })?;
    let mut need = Need::default();
    for amount in &words[3..] {
        let split = amount
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(amount.len());
        let (number, unit) = amount.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("amount {amount:?} has no number"))?;
        if !(value.is_finite() && value > 0.0) {
            return Err(format!("amount {amount:?} must be positive"));
        }
        let slot = match unit {
            "MiB" => &mut need.mibps,
            "rec" => &mut need.records_per_sec,
            "wcu" => &mut need.wcu,
            "rcu" => &mut need.rcu,
            _ => {
                return Err(format!(
                    "amount {amount:?}: the unit must be MiB (MiB/s), rec (records/s), wcu or rcu"
                ));
            }
        };
        *slot = slot.max(value);
    }
    Ok(Rule {
        days,
        from,
        to,
        tz,
        tz_name: words[2].to_string(),
        need,
        text: words.join(" "),
    })
}

fn parse_days(word: &str) -> Result<Days, String> {
    match word {
        "daily" => return Ok(Days::Daily),
        "weekdays" => return Ok(Days::Weekdays),
        "weekends" => return Ok(Days::Weekends),
        _ => {}
    }
    let parts: Vec<&str> = word.split('-').collect();
    let num = |s: &str| {
        s.parse::<i16>().map_err(|_| {
            format!("days {word:?}: expected daily, weekdays, weekends, MM-DD or YYYY-MM-DD")
        })
    };
    match parts.as_slice() {
        [m, d] if m.len() == 2 && d.len() == 2 => {
            let (month, day) = (num(m)? as i8, num(d)? as i8);
            // Validate against a leap year, so 02-29 is accepted (it applies in leap years).
            Date::new(2028, month, day)
                .map_err(|_| format!("days {word:?}: no such month and day"))?;
            Ok(Days::Yearly { month, day })
        }
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            Date::new(num(y)?, num(m)? as i8, num(d)? as i8)
                .map(Days::On)
                .map_err(|_| format!("days {word:?}: no such date"))
        }
        _ => Err(format!(
            "days {word:?}: expected daily, weekdays, weekends, MM-DD or YYYY-MM-DD"
        )),
    }
}

fn parse_time(s: &str) -> Result<Time, String> {
    let bad = || format!("time {s:?} is not HH:MM (00:00 to 23:59)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        s.parse::<Timestamp>().expect("timestamp").as_second()
    }

    fn rules(s: &str) -> Rules {
        s.parse().expect("rules")
    }

    #[test]
    fn a_daily_window_keeps_its_local_time_across_both_dst_changes() {
        let r = rules("daily 09:40-11:00 America/New_York 48MiB");
        // 2026: DST starts Sunday 8 March, ends Sunday 1 November.
        let spans = |day: &str| {
            let o = r.occurrences(
                utc(&format!("{day}T00:00:00Z")),
                utc(&format!("{day}T23:59:59Z")),
            );
            o.iter().map(|o| (o.start, o.end)).collect::<Vec<_>>()
        };
        assert_eq!(
            spans("2026-03-07"),
            vec![(utc("2026-03-07T14:40:00Z"), utc("2026-03-07T16:00:00Z"))]
        );
        assert_eq!(
            spans("2026-03-08"),
            vec![(utc("2026-03-08T13:40:00Z"), utc("2026-03-08T15:00:00Z"))]
        );
        assert_eq!(
            spans("2026-10-31"),
            vec![(utc("2026-10-31T13:40:00Z"), utc("2026-10-31T15:00:00Z"))]
        );
        assert_eq!(
            spans("2026-11-01"),
            vec![(utc("2026-11-01T14:40:00Z"), utc("2026-11-01T16:00:00Z"))]
        );
        assert_eq!(r.need_at(utc("2026-03-08T13:45:00Z")).mibps, 48.0);
        assert_eq!(r.need_at(utc("2026-03-08T14:45:00Z")).mibps, 48.0);
        assert_eq!(
            r.need_at(utc("2026-03-08T15:00:00Z")).mibps,
            0.0,
            "the end is exclusive"
        );
        assert_eq!(
            r.need_at(utc("2026-03-07T13:45:00Z")).mibps,
            0.0,
            "13:45 UTC is 08:45 EST"
        );
    }

    #[test]
    fn a_start_in_the_spring_gap_moves_forward_and_one_in_the_fold_takes_the_first() {
        // 02:00-03:00 does not exist in New York on 8 March 2026; 01:00-02:00 happens twice on 1 November.
        let gap = rules("2026-03-08 02:30-04:00 America/New_York 10MiB");
        let o = gap.occurrences(utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z"));
        assert_eq!(
            (o[0].start, o[0].end),
            (utc("2026-03-08T07:30:00Z"), utc("2026-03-08T08:00:00Z")),
            "03:30 EDT to 04:00 EDT"
        );
        let fold = rules("2026-11-01 01:30-03:00 America/New_York 10MiB");
        let o = fold.occurrences(utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z"));
        assert_eq!(
            (o[0].start, o[0].end),
            (utc("2026-11-01T05:30:00Z"), utc("2026-11-01T08:00:00Z")),
            "01:30 EDT to 03:00 EST"
        );
    }

    #[test]
    fn dated_events_weekdays_and_windows_across_midnight() {
        let r = rules(
            "12-25 06:00-12:00 America/New_York 900MiB 60000wcu; weekdays 22:00-02:00 Europe/Berlin 5MiB",
        );
        let xmas = r.occurrences(utc("2027-12-25T00:00:00Z"), utc("2027-12-26T00:00:00Z"));
        assert!(xmas.iter().any(
            |o| o.start == utc("2027-12-25T11:00:00Z") && o.end == utc("2027-12-25T17:00:00Z")
        ));
        assert_eq!(r.need_at(utc("2027-12-25T12:00:00Z")).wcu, 60000.0);
        assert_eq!(r.need_at(utc("2027-12-24T12:00:00Z")).mibps, 0.0);
        // Friday 2026-12-04 22:00 Berlin (21:00 UTC) to Saturday 02:00 (01:00 UTC); none starts on Saturday.
        assert_eq!(r.need_at(utc("2026-12-05T00:30:00Z")).mibps, 5.0);
        assert_eq!(r.need_at(utc("2026-12-05T21:30:00Z")).mibps, 0.0);
        assert_eq!(
            r.need_between(utc("2026-12-04T20:00:00Z"), utc("2026-12-04T21:00:01Z"))
                .mibps,
            5.0
        );
    }

    #[test]
    fn bad_rules_name_the_rule_and_the_problem() {
        let err = |s: &str| s.parse::<Rules>().expect_err(s).to_string();
        assert!(
            err("daily 09:40-11:00 America/New_Yrok 4MiB")
                .contains("unknown time zone \"America/New_Yrok\"")
        );
        assert!(err("daily 9:40-11:00 UTC 4MiB").contains("not HH:MM"));
        assert!(err("daily 09:40-11:00 UTC 4MB").contains("the unit must be MiB"));
        assert!(err("daily 10:00-10:00 UTC 4MiB").contains("empty"));
        assert!(err("02-30 10:00-11:00 UTC 4MiB").contains("no such month and day"));
        assert!(
            err("daily 10:00-11:00 UTC 1MiB; fridays 10:00-11:00 UTC 1MiB")
                .starts_with("pre-warm rule 2")
        );
        assert!(err("daily 10:00-11:00 UTC").contains("expected `<days>"));
        assert!(err("daily 10:00-11:00 UTC -3MiB").contains("no number"));
        assert!("".parse::<Rules>().expect("empty").is_empty());
        assert!(" none ".parse::<Rules>().expect("none").is_empty());
        assert_eq!(
            rules(" daily  09:40-11:00 UTC 4MiB ;").to_string(),
            "daily 09:40-11:00 UTC 4MiB"
        );
    }
}
