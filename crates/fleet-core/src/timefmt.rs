//! RFC 3339 parsing and formatting, always in UTC on the way out.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Why a timestamp is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimestampError(String);

/// Parses an RFC 3339 `date-time` (with `T` between date and time, as JSON Schema's `date-time`
/// format demands) and converts it to UTC.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, TimestampError> {
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(TimestampError(
            "date and time must be separated by 'T'".to_owned(),
        ));
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .map_err(|e| TimestampError(e.to_string()))
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
    let u = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        u.year(),
        u8::from(u.month()),
        u.day(),
        u.hour(),
        u.minute(),
        u.second()
    )
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
