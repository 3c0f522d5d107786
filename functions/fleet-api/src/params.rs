//! Query parameters and cursors, read the same way by every route: a bad value is a 400 problem
//! that names the parameter.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::problem::Problem;

/// `name` as a whole number from 1 to `max` (`default` when absent).
pub fn limit(params: &QueryMap, default: usize, max: usize) -> Result<usize, Problem> {
    match params.first("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                Problem::invalid_parameter(
                    "limit",
                    format!("{v:?} is not a whole number from 1 to {max}"),
                )
            }),
    }
}

/// `name` as an RFC 3339 date-time, if present.
pub fn date_time(params: &QueryMap, name: &str) -> Result<Option<OffsetDateTime>, Problem> {
    params
        .first(name)
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|e| {
                Problem::invalid_parameter(
                    name,
                    format!("{v:?} is not an RFC 3339 date-time ({e})"),
                )
            })
        })
        .transpose()
}

/// An opaque cursor: base64url of a JSON document.
pub fn encode_cursor(doc: &Value) -> String {
    URL_SAFE_NO_PAD.encode(doc.to_string())
}

/// The document of a cursor this API made; a 400 problem otherwise.
pub fn decode_cursor(cursor: &str) -> Result<Value, Problem> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Problem::invalid_parameter("cursor", "not a cursor this API returned"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A query string of these pairs.
    pub(crate) fn query(pairs: &[(&str, &str)]) -> QueryMap {
        let map: std::collections::HashMap<String, Vec<String>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect();
        QueryMap::from(map)
    }

    #[test]
    fn a_cursor_round_trips_and_garbage_is_a_named_400() {
        let doc = serde_json::json!({"a": "rb-1"});
        assert_eq!(decode_cursor(&encode_cursor(&doc)).unwrap(), doc);
        for bad in ["!!!", "bm90IGpzb24"] {
            let p = decode_cursor(bad).unwrap_err();
            assert!(p.detail.starts_with("cursor"), "{}", p.detail);
        }
        assert_eq!(limit(&query(&[]), 25, 100).unwrap(), 25);
        assert!(limit(&query(&[("limit", "101")]), 25, 100).is_err());
        assert!(date_time(&query(&[("from", "2026-11-29")]), "from").is_err());
    }
}
