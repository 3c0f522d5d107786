//! Field-by-field extraction from a `serde_json::Value`, so that every failure names its JSON path.
//!
//! Integers follow JSON Schema semantics: `37.0` is an integer, `37.5` is not. `null` counts as a
//! value of type null, never as "absent", unless the caller says so.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{DecodeError, ValidationError};

/// Names the JSON type of a value, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Joins a parent path and a key (`$` is the root).
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() || prefix == "$" {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A JSON object with the path it was found at.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    pub(crate) fn of(v: &'a Value, path: &str) -> Result<Self, DecodeError> {
        match v {
            Value::Object(map) => Ok(Fields {
                map,
                prefix: path.to_owned(),
            }),
            other => Err(DecodeError::invalid(
                path,
                format!("must be a json object, found {}", type_name(other)),
            )),
        }
    }

    pub(crate) fn path(&self, key: &str) -> String {
        join(&self.prefix, key)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The value at `key`; absent is a [`DecodeError::MissingField`].
    pub(crate) fn required(&self, key: &str) -> Result<&'a Value, DecodeError> {
        self.map
            .get(key)
            .ok_or_else(|| DecodeError::missing(self.path(key)))
    }

    /// The value at `key`, `None` when absent.
    pub(crate) fn optional(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// The value at `key`, `None` when absent or null.
    pub(crate) fn optional_non_null(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Refuses keys outside `allowed` (for contracts with `additionalProperties: false`).
    pub(crate) fn deny_unknown(&self, allowed: &[&str]) -> Result<(), DecodeError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(DecodeError::invalid(
                self.path(k),
                format!(
                    "is not a field of this contract (allowed: {}); remove it or bump the schema",
                    allowed.join(", ")
                ),
            )),
        }
    }
}

pub(crate) fn as_str<'v>(v: &'v Value, path: &str) -> Result<&'v str, ValidationError> {
    v.as_str().ok_or_else(|| {
        ValidationError::new(path, format!("must be a string, found {}", type_name(v)))
    })
}

/// An integer in `min..=max` (JSON Schema "integer": a number without a fractional part).
pub(crate) fn as_int(v: &Value, path: &str, min: i128, max: i128) -> Result<i128, ValidationError> {
    let n: Option<i128> = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Some(i128::from(u))
            } else if let Some(i) = n.as_i64() {
                Some(i128::from(i))
            } else {
                match n.as_f64() {
                    // Values beyond ±2^63 cannot be in range anyway; clamp so the range check
                    // reports them.
                    Some(f) if f.is_finite() && f.fract() == 0.0 => Some(if f >= 1e19 {
                        i128::MAX
                    } else if f <= -1e19 {
                        i128::MIN
                    } else {
                        f as i128
                    }),
                    _ => None,
                }
            }
        }
        _ => None,
    };
    let n = n.ok_or_else(|| {
        ValidationError::new(
            path,
            format!("must be an integer, found {}", describe_number(v)),
        )
    })?;
    if n < min || n > max {
        return Err(ValidationError::new(
            path,
            format!("must be between {min} and {max}, found {n}"),
        ));
    }
    Ok(n)
}

fn describe_number(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n}"),
        other => type_name(other).to_owned(),
    }
}

/// A finite number `>= min`.
pub(crate) fn as_f64_min(v: &Value, path: &str, min: f64) -> Result<f64, ValidationError> {
    let f = match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
    .filter(|f| f.is_finite())
    .ok_or_else(|| {
        ValidationError::new(path, format!("must be a number, found {}", type_name(v)))
    })?;
    if f < min {
        return Err(ValidationError::new(
            path,
            format!("must be at least {min}, found {f}"),
        ));
    }
    Ok(f)
}

/// An RFC 3339 timestamp, normalised to UTC.
pub(crate) fn as_timestamp(v: &Value, path: &str) -> Result<OffsetDateTime, ValidationError> {
    let s = as_str(v, path)?;
    crate::timefmt::parse_rfc3339(s).map_err(|e| {
        ValidationError::new(
            path,
            format!("must be an RFC 3339 timestamp like 2026-11-23T15:00:04Z, found {s:?} ({e})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_follow_json_schema_semantics() {
        assert_eq!(as_int(&json!(37), "x", 0, 100).unwrap(), 37);
        assert_eq!(as_int(&json!(37.0), "x", 0, 100).unwrap(), 37);
        assert!(as_int(&json!(37.5), "x", 0, 100).is_err());
        assert!(as_int(&json!("37"), "x", 0, 100).is_err());
        assert!(as_int(&json!(101), "x", 0, 100).is_err());
        assert!(as_int(&json!(-1), "x", 0, 100).is_err());
        assert!(as_int(&json!(1e300), "x", 0, 100).is_err());
        assert!(as_int(&json!(u64::MAX), "x", 0, i128::from(u32::MAX)).is_err());
    }

    #[test]
    fn join_builds_dotted_paths() {
        assert_eq!(join("$", "a"), "a");
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("battery", "end"), "battery.end");
    }
}
