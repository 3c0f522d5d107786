//! The AWS six-field cron syntax: `Minutes Hours Day-of-month Month Day-of-week Year`, in UTC.
//!
//! Supported as EventBridge documents it: lists (`,`), ranges (`-`, wrapping for weekdays),
//! steps (`/`), `*`, `?` (exactly one of day-of-month and day-of-week), month and weekday names
//! (`JAN`, `MON-FRI`), and the day wildcards `L` (last day; `5L` last Thursday), `LW` (last
//! weekday of the month), `15W` (weekday nearest the 15th, within the month) and `3#2` (the second
//! Tuesday). Day-of-week counts 1 = Sunday … 7 = Saturday.

use time::{Date, Month, OffsetDateTime, Time, Weekday};

use crate::error::ScheduleError;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2199;

/// A parsed AWS cron expression (the part inside `cron(...)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Field,
    hours: Field,
    days: Days,
    months: Field,
    years: Field,
}

/// Allowed values of one numeric field, `min..=min+allowed.len()-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    min: u32,
    allowed: Vec<bool>,
}

impl Field {
    fn contains(&self, v: u32) -> bool {
        v.checked_sub(self.min)
            .and_then(|i| self.allowed.get(i as usize))
            .copied()
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    OfMonth(Vec<DomItem>),
    OfWeek(Vec<DowItem>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DomItem {
    Set(Field),
    Last,
    LastWeekday,
    NearestWeekday(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DowItem {
    /// Weekdays 1 = Sunday … 7 = Saturday.
    Set(Field),
    /// The last such weekday of the month.
    Last(u8),
    /// The n-th such weekday of the month.
    Nth(u8, u8),
}

impl Cron {
    /// Parses the six fields (without the `cron(` `)` wrapper).
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let err = |problem: String| ScheduleError::Cron {
            expr: expr.to_string(),
            problem,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(err(format!(
                "has {} fields, aws cron needs 6: minutes hours day-of-month month day-of-week year",
                fields.len()
            )));
        }
        let minutes =
            parse_field(fields[0], 0, 59, &[]).map_err(|p| err(format!("minutes: {p}")))?;
        let hours = parse_field(fields[1], 0, 23, &[]).map_err(|p| err(format!("hours: {p}")))?;
        let months =
            parse_field(fields[3], 1, 12, &MONTHS).map_err(|p| err(format!("month: {p}")))?;
        let years = parse_field(fields[5], MIN_YEAR as u32, MAX_YEAR as u32, &[])
            .map_err(|p| err(format!("year: {p}")))?;
        let (dom, dow) = (fields[2], fields[4]);
        let days = match (dom == "?", dow == "?") {
            (true, false) => Days::OfWeek(
                dow.split(',')
                    .map(parse_dow_item)
                    .collect::<Result<_, _>>()
                    .map_err(|p| err(format!("day-of-week: {p}")))?,
            ),
            (false, true) => Days::OfMonth(
                dom.split(',')
                    .map(parse_dom_item)
                    .collect::<Result<_, _>>()
                    .map_err(|p| err(format!("day-of-month: {p}")))?,
            ),
            _ => {
                return Err(err(
                    "exactly one of day-of-month and day-of-week must be `?`".to_string(),
                ));
            }
        };
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            years,
        })
    }

    /// The first minute strictly after `after` that the expression matches, in UTC; `None` when
    /// it never fires again (years run out at 2199).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = after.to_offset(time::UtcOffset::UTC);
        // Start at the next whole minute.
        let truncated = after.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
        let start = truncated + time::Duration::minutes(1);
        let mut date = start.date();
        let mut from_minute = u32::from(start.hour()) * 60 + u32::from(start.minute());
        loop {
            let year = date.year();
            if year > MAX_YEAR {
                return None;
            }
            if year < MIN_YEAR || !self.years.contains(year as u32) {
                date = Date::from_calendar_date(year + 1, Month::January, 1).ok()?;
                from_minute = 0;
                continue;
            }
            if !self.months.contains(u32::from(u8::from(date.month()))) {
                date = first_of_next_month(date)?;
                from_minute = 0;
                continue;
            }
            if self.day_matches(date)
                && let Some(m) = self.first_minute_from(from_minute)
            {
                let t = Time::from_hms((m / 60) as u8, (m % 60) as u8, 0).ok()?;
                return Some(date.with_time(t).assume_utc());
            }
            date = date.next_day()?;
            from_minute = 0;
        }
    }

    fn first_minute_from(&self, from: u32) -> Option<u32> {
        (from..24 * 60).find(|m| self.hours.contains(m / 60) && self.minutes.contains(m % 60))
    }

    fn day_matches(&self, date: Date) -> bool {
        match &self.days {
            Days::OfMonth(items) => items.iter().any(|i| dom_matches(i, date)),
            Days::OfWeek(items) => items.iter().any(|i| dow_matches(i, date)),
        }
    }
}

fn first_of_next_month(date: Date) -> Option<Date> {
    let (y, m) = if date.month() == Month::December {
        (date.year() + 1, Month::January)
    } else {
        (date.year(), date.month().next())
    };
    Date::from_calendar_date(y, m, 1).ok()
}

fn last_day(date: Date) -> u8 {
    date.month().length(date.year())
}

/// AWS weekday number: 1 = Sunday … 7 = Saturday.
fn aws_weekday(w: Weekday) -> u8 {
    w.number_days_from_sunday() + 1
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

fn dom_matches(item: &DomItem, date: Date) -> bool {
    let day = date.day();
    match item {
        DomItem::Set(f) => f.contains(u32::from(day)),
        DomItem::Last => day == last_day(date),
        DomItem::LastWeekday => {
            let Ok(mut d) = date.replace_day(last_day(date)) else {
                return false;
            };
            while is_weekend(d) {
                match d.previous_day() {
                    Some(p) => d = p,
                    None => return false,
                }
            }
            d == date
        }
        DomItem::NearestWeekday(target) => {
            let last = last_day(date);
            let target = (*target).min(last);
            let Ok(t) = date.replace_day(target) else {
                return false;
            };
            let chosen = match t.weekday() {
                Weekday::Saturday if target == 1 => t.replace_day(3).ok(),
                Weekday::Saturday => t.previous_day(),
                Weekday::Sunday if target == last => t.replace_day(target.saturating_sub(2)).ok(),
                Weekday::Sunday => t.next_day(),
                _ => Some(t),
            };
            chosen == Some(date)
        }
    }
}

fn dow_matches(item: &DowItem, date: Date) -> bool {
    let wd = aws_weekday(date.weekday());
    match item {
        DowItem::Set(f) => f.contains(u32::from(wd)),
        DowItem::Last(w) => *w == wd && date.day() + 7 > last_day(date),
        DowItem::Nth(w, n) => *w == wd && (date.day() - 1) / 7 + 1 == *n,
    }
}

fn parse_value(s: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    let v = if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        i as u32 + min
    } else {
        s.parse::<u32>()
            .map_err(|_| format!("`{s}` is not a number{}", name_hint(names)))?
    };
    if v < min || v > max {
        return Err(format!("{v} is outside {min}-{max}"));
    }
    Ok(v)
}

fn name_hint(names: &[&str]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" or one of {}", names.join(","))
    }
}

/// Parses `*`, `a`, `a-b`, `a/s`, `*/s`, `a-b/s` and comma lists of those.
fn parse_field(s: &str, min: u32, max: u32, names: &[&str]) -> Result<Field, String> {
    let mut allowed = vec![false; (max - min + 1) as usize];
    for part in s.split(',') {
        if part.is_empty() {
            return Err("empty list item".to_string());
        }
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let step: u32 = st
                    .parse()
                    .map_err(|_| format!("step `{st}` is not a number"))?;
                if step == 0 {
                    return Err("step must be at least 1".to_string());
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                parse_value(a, min, max, names)?,
                parse_value(b, min, max, names)?,
            )
        } else {
            let v = parse_value(range, min, max, names)?;
            // `a/s` runs from a to the end of the field.
            (v, if step.is_some() { max } else { v })
        };
        let step = step.unwrap_or(1);
        // A range may wrap (FRI-MON, 22-2): walk from lo, wrapping at max.
        let span = if hi >= lo {
            hi - lo
        } else {
            (max - lo) + (hi - min) + 1
        };
        let mut k = 0;
        while k <= span {
            let v = min + (lo - min + k) % (max - min + 1);
            allowed[(v - min) as usize] = true;
            k += step;
        }
    }
    Ok(Field { min, allowed })
}

fn parse_dom_item(s: &str) -> Result<DomItem, String> {
    match s {
        "L" | "l" => return Ok(DomItem::Last),
        "LW" | "lw" => return Ok(DomItem::LastWeekday),
        _ => {}
    }
    if let Some(day) = s.strip_suffix(['W', 'w']) {
        let d = parse_value(day, 1, 31, &[])?;
        return Ok(DomItem::NearestWeekday(d as u8));
    }
    if s.contains(['L', 'W', '#']) {
        return Err(format!("`{s}` is not a day of month (1-31, L, LW, nW)"));
    }
    parse_field(s, 1, 31, &[]).map(DomItem::Set)
}

fn parse_dow_item(s: &str) -> Result<DowItem, String> {
    if s.eq_ignore_ascii_case("L") {
        // `L` alone is the last day of the week: Saturday.
        return parse_field("7", 1, 7, &WEEKDAYS).map(DowItem::Set);
    }
    if let Some((w, n)) = s.split_once('#') {
        let w = parse_value(w, 1, 7, &WEEKDAYS)? as u8;
        let n: u8 = n
            .parse()
            .map_err(|_| format!("`{n}` after # is not a number"))?;
        if !(1..=5).contains(&n) {
            return Err(format!("`#{n}`: the week of the month must be 1-5"));
        }
        return Ok(DowItem::Nth(w, n));
    }
    if let Some(w) = s.strip_suffix(['L', 'l']) {
        let w = parse_value(w, 1, 7, &WEEKDAYS)? as u8;
        return Ok(DowItem::Last(w));
    }
    parse_field(s, 1, 7, &WEEKDAYS).map(DowItem::Set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn next(expr: &str, after: OffsetDateTime) -> OffsetDateTime {
        Cron::parse(expr)
            .unwrap_or_else(|e| panic!("{e}"))
            .next_after(after)
            .unwrap_or_else(|| panic!("{expr} never fires"))
    }

    #[test]
    fn every_five_minutes_fires_on_the_next_multiple_of_five() {
        assert_eq!(
            next("0/5 * * * ? *", datetime!(2026-11-24 10:03:17 UTC)),
            datetime!(2026-11-24 10:05 UTC)
        );
        assert_eq!(
            next("*/5 * * * ? *", datetime!(2026-11-24 10:05:00 UTC)),
            datetime!(2026-11-24 10:10 UTC)
        );
    }

    #[test]
    fn fires_strictly_after_the_given_instant() {
        assert_eq!(
            next("0 10 * * ? *", datetime!(2026-11-24 10:00:00 UTC)),
            datetime!(2026-11-25 10:00 UTC)
        );
    }

    #[test]
    fn weekday_range_with_names_skips_the_weekend() {
        // 2026-11-27 is a Friday.
        assert_eq!(
            next("15 12 ? * MON-FRI *", datetime!(2026-11-27 13:00 UTC)),
            datetime!(2026-11-30 12:15 UTC)
        );
    }

    #[test]
    fn numeric_weekdays_count_from_sunday() {
        // 2 = Monday.
        assert_eq!(
            next("0 8 ? * 2 *", datetime!(2026-11-24 00:00 UTC)),
            datetime!(2026-11-30 08:00 UTC)
        );
    }

    #[test]
    fn last_day_of_month_handles_february_in_leap_years() {
        assert_eq!(
            next("0 0 L * ? *", datetime!(2028-02-01 00:00 UTC)),
            datetime!(2028-02-29 00:00 UTC)
        );
        assert_eq!(
            next("0 0 L * ? *", datetime!(2027-02-01 00:00 UTC)),
            datetime!(2027-02-28 00:00 UTC)
        );
    }

    #[test]
    fn last_friday_of_the_month() {
        // November 2026: Fridays 6, 13, 20, 27.
        assert_eq!(
            next("0 18 ? * 6L *", datetime!(2026-11-01 00:00 UTC)),
            datetime!(2026-11-27 18:00 UTC)
        );
    }

    #[test]
    fn nth_weekday_of_the_month() {
        // Second Tuesday of December 2026 is the 8th.
        assert_eq!(
            next("30 9 ? * TUE#2 *", datetime!(2026-11-24 00:00 UTC)),
            datetime!(2026-12-08 09:30 UTC)
        );
    }

    #[test]
    fn nearest_weekday_moves_off_the_weekend_within_the_month() {
        // 2026-11-15 is a Sunday: the nearest weekday is Monday the 16th.
        assert_eq!(
            next("0 0 15W * ? *", datetime!(2026-11-01 00:00 UTC)),
            datetime!(2026-11-16 00:00 UTC)
        );
        // 2026-08-01 is a Saturday: 1W must not leave August, so Monday the 3rd.
        assert_eq!(
            next("0 0 1W * ? *", datetime!(2026-07-31 12:00 UTC)),
            datetime!(2026-08-03 00:00 UTC)
        );
    }

    #[test]
    fn last_weekday_of_the_month() {
        // 2026-10-31 is a Saturday: the last weekday is Friday the 30th.
        assert_eq!(
            next("0 0 LW * ? *", datetime!(2026-10-01 00:00 UTC)),
            datetime!(2026-10-30 00:00 UTC)
        );
    }

    #[test]
    fn month_names_lists_and_years() {
        assert_eq!(
            next("0 6 1 JAN,JUL ? 2027-2028", datetime!(2026-11-24 00:00 UTC)),
            datetime!(2027-01-01 06:00 UTC)
        );
        assert_eq!(
            Cron::parse("0 6 1 JAN ? 2026").map(|c| c.next_after(datetime!(2026-11-24 00:00 UTC))),
            Ok(None)
        );
    }

    #[test]
    fn weekday_ranges_may_wrap() {
        // FRI-MON = Fri, Sat, Sun, Mon. From Tuesday 2026-11-24 the next is Friday the 27th.
        assert_eq!(
            next("0 0 ? * FRI-MON *", datetime!(2026-11-24 00:00 UTC)),
            datetime!(2026-11-27 00:00 UTC)
        );
    }

    #[test]
    fn rejects_five_field_unix_cron() {
        assert!(matches!(
            Cron::parse("*/5 * * * *"),
            Err(ScheduleError::Cron { .. })
        ));
    }

    #[test]
    fn rejects_both_or_neither_day_field_as_question_mark() {
        assert!(Cron::parse("0 0 * * * *").is_err());
        assert!(Cron::parse("0 0 ? * ? *").is_err());
    }

    #[test]
    fn rejects_out_of_range_values_and_bad_steps() {
        assert!(Cron::parse("60 * * * ? *").is_err());
        assert!(Cron::parse("0 24 * * ? *").is_err());
        assert!(Cron::parse("0 0 32 * ? *").is_err());
        assert!(Cron::parse("0 0 ? * 8 *").is_err());
        assert!(Cron::parse("0/0 * * * ? *").is_err());
        assert!(Cron::parse("0 0 ? * MON#6 *").is_err());
        assert!(Cron::parse("0 0 * FOO ? *").is_err());
    }
}
