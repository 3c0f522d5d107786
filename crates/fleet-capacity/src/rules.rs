//! Pre-warm rules: capacity that must be in place at given wall-clock times.
//!
//! A rule is one line, `<days> <HH:MM>-<HH:MM> <time zone> <amount>...`, and rules are joined
//! with `;` (that is how they fit in one CloudFormation parameter):
//!
//! ```text
//! daily 09:40-11:00 America/New_York 48MiB; 12-25 05:30-12:00 America/New_York 900MiB
//! ```
//!
//! - `<days> <HH:MM>-<HH:MM> <time zone>` is a [`fleet_core::window::Window`]: `daily`,
//!   `weekdays`, `weekends`, `MM-DD` or `YYYY-MM-DD`, local wall-clock time in an IANA zone,
//!   DST-correct, possibly across midnight;
//! - `none` is no rule at all (a CloudFormation parameter cannot be empty where a value is
//!   required);
//! - amounts: `<n>MiB` (MiB/s of stream write capacity), `<n>rec` (records/s of stream
//!   capacity), `<n>wcu` / `<n>rcu` (DynamoDB write/read units per second of warm throughput).
//!   An amount is capacity that must be in place, not a demand forecast: `48MiB` on a
//!   provisioned stream means at least 48 shards.

use std::fmt;
use std::str::FromStr;

use fleet_core::window::Window;
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

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub window: Window,
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
        out.extend(
            self.window
                .occurrences(from, to)
                .into_iter()
                .map(|(start, end)| Occurrence {
                    start,
                    end,
                    need: self.need,
                    rule: index,
                }),
        );
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
    let window = Window::from_words(words[0], words[1], words[2])?;
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
        window,
        need,
        text: words.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

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
