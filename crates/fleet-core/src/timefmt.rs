//! RFC 3339 parsing and formatting, always in UTC on the way out.

use std::fmt::Write as _;

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Why a timestamp is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimestampError(String);

/// Parses an RFC 3339 `date-time` (with `T` between date and time, as JSON Schema's `date-time`
/// format demands) and converts it to UTC.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, TimestampError> {
    match parse_utc_common(s.as_bytes()) {
        Some(t) => Ok(t),
        None => parse_rfc3339_general(s),
    }
}

/// Every RFC 3339 form, through the `time` crate: what [`parse_rfc3339`] falls back to.
fn parse_rfc3339_general(s: &str) -> Result<OffsetDateTime, TimestampError> {
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(TimestampError(
            "date and time must be separated by 'T'".to_owned(),
        ));
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .map_err(|e| TimestampError(e.to_string()))
}

/// The common form `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (upper-case `T` and `Z`, 1 to 9 fraction
/// digits, no leap second), parsed without the general RFC 3339 parser; `None` for anything
/// else, which then goes through [`parse_rfc3339`]'s general path (same result for this form).
fn parse_utc_common(b: &[u8]) -> Option<OffsetDateTime> {
    if b.len() < 20
        || b.len() == 21
        || b.len() > 30
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let digit = |i: usize| {
        let d = b[i].wrapping_sub(b'0');
        (d < 10).then_some(d)
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let year = i32::from(two(0)?) * 100 + i32::from(two(2)?);
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if second > 59 {
        return None;
    }
    let mut nanos = 0u32;
    if b.len() > 20 {
        // `.` then 1..=9 digits, then `Z`.
        if b[19] != b'.' {
            return None;
        }
        let digits = &b[20..b.len() - 1];
        for i in 0..digits.len() {
            nanos = nanos * 10 + u32::from(digit(20 + i)?);
        }
        nanos *= 10u32.pow(9 - digits.len() as u32);
    }
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Appends `n` as exactly `width` decimal digits (`n < 10^width`), zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    while div > 0 {
        out.push(char::from(b'0' + (n / div % 10) as u8));
        div /= 10;
    }
}

/// Appends `2026-11-23` (`{:04}` for the year, so a year outside `0..=9999` is written as
/// `format!` would: `-001`, `10000`).
pub(crate) fn push_date(out: &mut String, date: Date) {
    if (0..=9999).contains(&date.year()) {
        push_digits(out, date.year() as u32, 4);
    } else {
        let _ = write!(out, "{:04}", date.year());
    }
    out.push('-');
    push_digits(out, u32::from(u8::from(date.month())), 2);
    out.push('-');
    push_digits(out, u32::from(date.day()), 2);
}

/// Appends [`format_key_seconds`] of `t`.
pub(crate) fn push_key_seconds(out: &mut String, t: OffsetDateTime) {
    let u = t.to_offset(UtcOffset::UTC);
    push_date(out, u.date());
    out.push('T');
    push_digits(out, u32::from(u.hour()), 2);
    out.push(':');
    push_digits(out, u32::from(u.minute()), 2);
    out.push(':');
    push_digits(out, u32::from(u.second()), 2);
    out.push('Z');
}

/// Formats a timestamp as RFC 3339 in UTC (`2026-11-23T15:00:04Z`, fractional seconds only when
/// present).
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let utc = t.to_offset(UtcOffset::UTC);
    // A UTC timestamp with a four-digit year always formats; years outside 0..=9999 are the only
    // failure and cannot come from a parsed RFC 3339 string. Fall back to the Debug form rather
    // than panic.
    utc.format(&Rfc3339).unwrap_or_else(|_| format!("{utc}"))
}

/// Whole-second UTC form used inside storage keys (`2026-11-23T15:00:04Z`): fixed width, so keys
/// sort by time as strings.
pub fn format_key_seconds(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(20);
    push_key_seconds(&mut out, t);
    out
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, now.
pub fn now_unix_secs() -> i64 {
    (now_unix_ms() / 1_000) as i64
}

/// Converts Unix seconds to a UTC timestamp, `None` when out of range.
pub fn from_unix_seconds(seconds: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

/// Converts Unix milliseconds to a UTC timestamp, `None` when out of range.
pub fn from_unix_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Converts fractional Unix seconds (as Kinesis' `approximateArrivalTimestamp`) to UTC.
pub fn from_unix_seconds_f64(seconds: f64) -> Option<OffsetDateTime> {
    if !seconds.is_finite() {
        return None;
    }
    // Kinesis gives milliseconds; microsecond rounding keeps them exact despite f64.
    let micros = (seconds * 1e6).round();
    if micros.abs() > 1e17 {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000).ok()
}

/// Serde adapter: RFC 3339 in UTC.
pub mod rfc3339_utc {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Serialises as RFC 3339 UTC.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*t))
    }

    /// Parses RFC 3339 and converts to UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }

    /// The same for optional timestamps.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        /// Serialises `Some` as RFC 3339 UTC and `None` as null.
        pub fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::format_rfc3339(*t)),
                None => s.serialize_none(),
            }
        }

        /// Parses an optional RFC 3339 string.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(s) => super::super::parse_rfc3339(&s)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = parse_rfc3339("2026-11-23T17:00:04+02:00").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-23T15:00:04Z");
        assert_eq!(format_key_seconds(t), "2026-11-23T15:00:04Z");
    }

    #[test]
    fn fractions_survive_formatting_but_not_keys() {
        let t = parse_rfc3339("2026-11-23T15:00:04.250Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-23T15:00:04.25Z");
        assert_eq!(format_key_seconds(t), "2026-11-23T15:00:04Z");
    }

    fn assert_same_parse(s: &str) {
        let (fast, general) = (parse_rfc3339(s), parse_rfc3339_general(s));
        assert_eq!(fast, general, "{s}");
        if let Ok(t) = fast {
            assert_eq!(t.offset(), UtcOffset::UTC, "{s}");
        }
    }

    #[test]
    fn the_common_form_parses_as_the_general_parser_does() {
        for s in [
            "2026-11-23T15:00:04Z",
            "2026-11-23T15:00:04.250Z",
            "2026-11-23T15:00:04.123456789Z",
            "2026-11-23T15:00:04.1234567891Z",
            "2026-11-23T15:00:04.Z",
            "2026-11-23T15:00:04,5Z",
            "2026-11-23T23:59:60Z",
            "2026-12-31T23:59:60Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T15:60:00Z",
            "2026-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-13-10T00:00:00Z",
            "2026-11-00T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2026-11-23t15:00:04Z",
            "2026-11-23T15:00:04z",
            "2026-11-23 15:00:04Z",
            "2026-11-23T15:00:04+00:00",
            "2026-11-23T15:00:04-00:00",
            "2026-11-23T15:00:04.5+02:00",
            "2026-11-23T15:00:04ZZ",
            "2026-11-23T15:00:04",
            "+026-11-23T15:00:04Z",
            "2026-1a-23T15:00:04Z",
            "2026-11-23T15:00:04.1a3Z",
            "2026-11-23T15:00:04.-1Z",
            "２026-11-23T15:00:04Z",
        ] {
            assert_same_parse(s);
        }
    }

    proptest::proptest! {
        #[test]
        fn generated_timestamps_parse_as_the_general_parser_does(
            s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,11})?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 18..32),
        ) {
            assert_same_parse(&s);
            assert_same_parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn key_seconds_are_the_formatted_whole_seconds(
            secs in -62_167_219_200i64 - 400 * 86_400..253_402_300_800 + 400 * 86_400,
            nanos in 0u32..1_000_000_000,
        ) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                + time::Duration::nanoseconds(i64::from(nanos));
            let u = t.to_offset(UtcOffset::UTC);
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                u.year(), u8::from(u.month()), u.day(), u.hour(), u.minute(), u.second()
            );
            proptest::prop_assert_eq!(format_key_seconds(t), expected);
        }
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in [
            "2026-11-23",
            "2026-11-23 15:00:04Z",
            "2026-11-23T15:00Z",
            "yesterday",
            "",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_conversions() {
        assert_eq!(
            format_rfc3339(from_unix_seconds(1_732_374_000).unwrap()),
            "2024-11-23T15:00:00Z"
        );
        assert_eq!(
            format_rfc3339(from_unix_millis(1_732_374_000_123).unwrap()),
            "2024-11-23T15:00:00.123Z"
        );
        assert!(from_unix_seconds_f64(f64::NAN).is_none());
        assert!(from_unix_seconds_f64(1_732_374_000.5).is_some());
    }
}
