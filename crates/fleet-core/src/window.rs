//! Wall-clock windows in a time zone: `<days> <HH:MM>-<HH:MM> <time zone>`.
//!
//! One definition for everything that happens "at 10:00 in New York": the capacity pre-warm
//! rules (fleet-capacity) and the maintenance windows of fleet jobs (fleet-jobs).
//!
//! - days: `daily`, `weekdays` (Monday to Friday), `weekends`, `MM-DD` (every year, as
//!   Christmas) or `YYYY-MM-DD` (one date);
//! - the window is local wall-clock time in the IANA time zone; it may cross midnight
//!   (`22:00-02:00`). Each occurrence is computed from the local date, so a window keeps its
//!   local time across DST changes (09:40 New York is 14:40 UTC in winter and 13:40 UTC in
//!   summer). A start inside the spring-forward gap moves forward by the gap (02:30 becomes
//!   03:30), a start inside the fall-back fold takes the first of the two (as RFC 5545 and
//!   Temporal do).
//!
//! Time zones come from jiff's bundled copy of the tz database, so a Lambda without
//! `/usr/share/zoneinfo` computes the same instants as a laptop.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

/// Which local dates a window applies on.
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

/// One window: local times on some days in a time zone.
#[derive(Debug, Clone)]
pub struct Window {
    pub days: Days,
    pub from: Time,
    pub to: Time,
    pub tz: TimeZone,
    pub tz_name: String,
}

/// The example every parse error quotes.
pub const SYNTAX: &str =
    "`<days> <HH:MM>-<HH:MM> <time zone>`, for example `weekdays 09:40-11:00 America/New_York`";

impl Window {
    /// Parses the three words `<days> <HH:MM>-<HH:MM> <time zone>`; the error names the word.
    pub fn from_words(days: &str, window: &str, tz_name: &str) -> Result<Window, String> {
        let days = parse_days(days)?;
        let (from, to) = window
            .split_once('-')
            .ok_or_else(|| format!("window {window:?} is not HH:MM-HH:MM"))?;
        let (from, to) = (parse_time(from)?, parse_time(to)?);
        if from == to {
            return Err(format!("window {window:?} is empty"));
        }
        let tz = TimeZone::get(tz_name).map_err(|_| {
            format!("unknown time zone {tz_name:?} (an IANA name such as America/New_York)")
        })?;
        Ok(Window {
            days,
            from,
            to,
            tz,
            tz_name: tz_name.to_string(),
        })
    }

    /// Every occurrence `(start, end)` (unix seconds, end exclusive) that overlaps
    /// `[from, to)`, in start order.
    pub fn occurrences(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let (Ok(a), Ok(b)) = (Timestamp::from_second(from), Timestamp::from_second(to)) else {
            return out;
        };
        // A window ends at most a day after its local start date, so look one day either side.
        let (Ok(first), Ok(last)) = (
            self.tz.to_datetime(a).date().yesterday(),
            self.tz.to_datetime(b).date().tomorrow(),
        ) else {
            return out;
        };
        let mut date = first;
        while date <= last {
            let interval = if self.days.matches(date) {
                self.interval(date)
            } else {
                None
            };
            if let Some(span) = interval.filter(|(s, e)| *s < to && *e > from) {
                out.push(span);
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        out
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

/// Windows joined with `;` (one CloudFormation parameter, one CLI flag); `none` is no window.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    windows: Vec<Window>,
    text: String,
}

/// A window that does not parse, naming it and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("window {index} ({window:?}): {problem}")]
pub struct WindowError {
    pub index: usize,
    pub window: String,
    pub problem: String,
}

impl Windows {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The occurrence of any window that contains `t`, the one that ends last.
    pub fn open_at(&self, t: i64) -> Option<(i64, i64)> {
        self.windows
            .iter()
            .flat_map(|w| w.occurrences(t, t + 1))
            .max_by_key(|(_, end)| *end)
    }

    /// The start of the next occurrence after `t` (looking ahead `horizon` seconds).
    pub fn next_open(&self, t: i64, horizon: i64) -> Option<i64> {
        self.windows
            .iter()
            .flat_map(|w| w.occurrences(t, t + horizon))
            .map(|(start, _)| start)
            .filter(|start| *start > t)
            .min()
    }
}

impl fmt::Display for Windows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.windows.is_empty() {
            "none"
        } else {
            &self.text
        })
    }
}

impl FromStr for Windows {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "none" || s.trim().is_empty() {
            return Ok(Windows::default());
        }
        let mut windows = Vec::new();
        let mut texts = Vec::new();
        for (index, text) in s
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            let words: Vec<&str> = text.split_whitespace().collect();
            let window = match words.as_slice() {
                [days, window, tz] => Window::from_words(days, window, tz),
                _ => Err(format!("expected {SYNTAX}")),
            }
            .map_err(|problem| WindowError {
                index: index + 1,
                window: text.to_string(),
                problem,
            })?;
            windows.push(window);
            texts.push(words.join(" "));
        }
        Ok(Windows {
            windows,
            text: texts.join("; "),
        })
    }
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

    #[test]
    fn open_at_and_next_open_follow_the_local_time() {
        let w: Windows =
            "weekdays 02:00-05:00 America/New_York; 12-25 00:00-06:00 America/New_York"
                .parse()
                .expect("windows");
        // Friday 2026-12-04 03:00 EST = 08:00 UTC: open until 05:00 EST.
        assert_eq!(
            w.open_at(utc("2026-12-04T08:00:00Z")),
            Some((utc("2026-12-04T07:00:00Z"), utc("2026-12-04T10:00:00Z")))
        );
        // Saturday: closed; the next is Monday 02:00 EST.
        let sat = utc("2026-12-05T12:00:00Z");
        assert_eq!(w.open_at(sat), None);
        assert_eq!(
            w.next_open(sat, 7 * 86_400),
            Some(utc("2026-12-07T07:00:00Z"))
        );
        // Christmas (a Friday in 2026): both windows, the one that ends last wins.
        assert_eq!(
            w.open_at(utc("2026-12-25T08:00:00Z")).map(|(_, e)| e),
            Some(utc("2026-12-25T11:00:00Z"))
        );
        assert_eq!(
            w.to_string(),
            "weekdays 02:00-05:00 America/New_York; 12-25 00:00-06:00 America/New_York"
        );
        assert!("none".parse::<Windows>().expect("none").is_empty());
    }

    #[test]
    fn bad_windows_name_the_window_and_the_word() {
        let err = |s: &str| s.parse::<Windows>().expect_err(s).to_string();
        assert!(
            err("daily 02:00-05:00 Mars/Olympus").contains("unknown time zone \"Mars/Olympus\"")
        );
        assert!(err("daily 02:00-05:00").contains("expected `<days>"));
        assert!(err("daily 02:00-05:00 UTC; sundays 01:00-02:00 UTC").starts_with("window 2"));
    }
}
