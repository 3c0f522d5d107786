//! A robot's missions, read from the missions table a page at a time.
//!
//! Items are keyed `pk = ROBOT#<id>`, `sk = MISSION#<startedAt, whole seconds>#<missionId>`, so
//! one `Query` on the partition, newest first, with the window as a `BETWEEN` on the sort key,
//! reads a page. The cursor is the page's `LastEvaluatedKey` sort key with the robot and the
//! window it belongs to, base64url-encoded: opaque to callers, refused on another query.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use fleet_aws::missions::attr;
use fleet_core::ids::RobotId;
use fleet_core::timefmt::format_key_seconds;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::params;
use crate::problem::Problem;

/// Missions per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i32 = 25;
/// The largest `limit`.
pub const MAX_LIMIT: i32 = 100;

/// The missions table, for reading.
#[derive(Debug, Clone)]
pub struct Missions {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// One page request.
#[derive(Debug, Clone, PartialEq)]
pub struct MissionQuery {
    pub robot: RobotId,
    /// Missions started at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Missions started at or before this instant.
    pub to: Option<OffsetDateTime>,
    pub limit: i32,
    /// The sort key to continue after (from a cursor).
    pub cursor: Option<String>,
}

/// One page: the missions, newest first, and the cursor of the next page (none at the end).
#[derive(Debug, Clone, PartialEq)]
pub struct MissionPage {
    pub missions: Vec<Value>,
    pub next_cursor: Option<String>,
}

impl MissionPage {
    /// The response body.
    pub fn to_json(&self) -> Value {
        json!({ "missions": self.missions, "nextCursor": self.next_cursor })
    }
}

impl MissionQuery {
    /// Reads `from`, `to`, `limit` and `cursor` from the query string.
    pub fn from_params(robot: RobotId, params: &QueryMap) -> Result<MissionQuery, Problem> {
        let from = params::date_time(params, "from")?;
        let to = params::date_time(params, "to")?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(Problem::invalid_parameter("from", "is after `to`"));
        }
        let limit = params::limit(params, DEFAULT_LIMIT as usize, MAX_LIMIT as usize)? as i32;
        let mut query = MissionQuery {
            robot,
            from,
            to,
            limit,
            cursor: None,
        };
        if let Some(c) = params.first("cursor") {
            query.cursor = Some(query.decode_cursor(c)?);
        }
        Ok(query)
    }

    fn window(&self) -> (String, String) {
        let lo = match self.from {
            Some(t) => format!("MISSION#{}", format_key_seconds(t)),
            None => "MISSION#".to_string(),
        };
        // '~' sorts after every character of a mission id, so `to` includes its whole second.
        let hi = match self.to {
            Some(t) => format!("MISSION#{}#~", format_key_seconds(t)),
            None => "MISSION#~".to_string(),
        };
        (lo, hi)
    }

    /// The cursor continuing after sort key `sk`.
    pub fn encode_cursor(&self, sk: &str) -> String {
        let (lo, hi) = self.window();
        params::encode_cursor(&json!({ "r": self.robot.as_str(), "w": [lo, hi], "k": sk }))
    }

    fn decode_cursor(&self, cursor: &str) -> Result<String, Problem> {
        let bad = |why: &str| Problem::invalid_parameter("cursor", why);
        let doc = params::decode_cursor(cursor)?;
        let (lo, hi) = self.window();
        if doc["r"] != self.robot.as_str() || doc["w"] != json!([lo, hi]) {
            return Err(bad(
                "belongs to another robot or another from/to window; start again without it",
            ));
        }
        let key = doc["k"]
            .as_str()
            .filter(|k| **k >= *lo && **k <= *hi)
            .ok_or_else(|| bad("not a cursor this API returned"))?;
        Ok(key.to_string())
    }
}

impl Missions {
    /// Reads `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Missions {
        Missions {
            client,
            table: table.to_string(),
        }
    }

    /// One page of `query`.
    pub async fn page(&self, query: &MissionQuery) -> Result<MissionPage, Problem> {
        let pk = fleet_core::mission::robot_partition_key(&query.robot);
        let (lo, hi) = query.window();
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#sk", attr::SK)
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .expression_attribute_values(":lo", AttributeValue::S(lo))
            .expression_attribute_values(":hi", AttributeValue::S(hi))
            .scan_index_forward(false)
            .limit(query.limit);
        if let Some(sk) = &query.cursor {
            request = request
                .exclusive_start_key(attr::PK, AttributeValue::S(pk))
                .exclusive_start_key(attr::SK, AttributeValue::S(sk.clone()));
        }
        let out = request.send().await.map_err(|e| {
            let message = fleet_aws::error::describe(&e);
            match aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e) {
                Some("ProvisionedThroughputExceededException" | "ThrottlingException") => {
                    Problem::throttled(format!("the missions table: {message}"))
                }
                _ => Problem::unavailable(format!("the missions table: {message}")),
            }
        })?;
        let missions = out.items().iter().map(mission_json).collect();
        let next_cursor = out
            .last_evaluated_key()
            .and_then(|k| k.get(attr::SK))
            .and_then(|v| v.as_s().ok())
            .map(|sk| query.encode_cursor(sk));
        Ok(MissionPage {
            missions,
            next_cursor,
        })
    }
}

/// Storage-only attributes, not part of a mission.
const STORAGE: [&str; 5] = [
    attr::PK,
    attr::SK,
    attr::GSI1_PK,
    attr::GSI1_SK,
    attr::EXPIRES_AT,
];

/// A mission item as JSON: the report's fields, without the storage keys.
pub fn mission_json(item: &HashMap<String, AttributeValue>) -> Value {
    let mut out = Map::new();
    for (name, value) in item {
        if !STORAGE.contains(&name.as_str()) {
            out.insert(name.clone(), attribute_json(value));
        }
    }
    Value::Object(out)
}

fn attribute_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!(s),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| json!(n)),
        AttributeValue::Bool(b) => json!(b),
        AttributeValue::L(items) => Value::Array(items.iter().map(attribute_json).collect()),
        AttributeValue::M(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), attribute_json(v)))
                .collect(),
        ),
        AttributeValue::Ss(items) => json!(items),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::params::tests::query as params;

    fn robot() -> RobotId {
        RobotId::parse("rb-000001").unwrap()
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let q = MissionQuery::from_params(robot(), &params(&[])).unwrap();
        assert_eq!((q.limit, q.from, q.cursor), (DEFAULT_LIMIT, None, None));
        for (pairs, name) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "101")], "limit"),
            (vec![("limit", "ten")], "limit"),
            (vec![("from", "yesterday")], "from"),
            (
                vec![
                    ("from", "2026-11-29T00:00:00Z"),
                    ("to", "2026-11-28T00:00:00Z"),
                ],
                "from",
            ),
            (vec![("cursor", "!!!")], "cursor"),
        ] {
            let p = MissionQuery::from_params(robot(), &params(&pairs)).unwrap_err();
            assert_eq!(p.status, 400);
            assert!(p.detail.starts_with(name), "{}", p.detail);
        }
    }

    #[test]
    fn a_cursor_works_only_for_its_robot_and_window() {
        let window = [
            ("from", "2026-11-01T00:00:00Z"),
            ("to", "2026-11-30T00:00:00Z"),
        ];
        let q = MissionQuery::from_params(robot(), &params(&window)).unwrap();
        let sk = "MISSION#2026-11-20T10:00:00Z#01JDA0000000000000000000AA";
        let cursor = q.encode_cursor(sk);
        let mut with = window.to_vec();
        with.push(("cursor", &cursor));
        let again = MissionQuery::from_params(robot(), &params(&with)).unwrap();
        assert_eq!(again.cursor.as_deref(), Some(sk));
        // Another robot, another window.
        let other = RobotId::parse("rb-000002").unwrap();
        assert!(MissionQuery::from_params(other, &params(&with)).is_err());
        let moved = [("from", "2026-11-02T00:00:00Z"), ("cursor", &cursor)];
        assert!(MissionQuery::from_params(robot(), &params(&moved)).is_err());
    }

    #[test]
    fn the_window_includes_missions_started_in_its_last_second() {
        let q = MissionQuery::from_params(
            robot(),
            &params(&[
                ("from", "2026-11-20T10:00:00Z"),
                ("to", "2026-11-20T10:00:00Z"),
            ]),
        )
        .unwrap();
        let (lo, hi) = q.window();
        let key = "MISSION#2026-11-20T10:00:00Z#01JDA0000000000000000000AA";
        assert!(lo.as_str() <= key && key <= hi.as_str(), "{lo} {hi}");
    }

    #[test]
    fn an_item_becomes_the_report_without_storage_keys() {
        let item: HashMap<String, AttributeValue> = [
            ("pk", AttributeValue::S("ROBOT#rb-1".into())),
            ("sk", AttributeValue::S("MISSION#x".into())),
            ("expiresAt", AttributeValue::N("1".into())),
            ("rev", AttributeValue::N("2".into())),
            ("areaM2", AttributeValue::N("41.5".into())),
            (
                "errors",
                AttributeValue::L(vec![AttributeValue::M(
                    [("code".to_string(), AttributeValue::S("E12".into()))].into(),
                )]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(
            mission_json(&item),
            json!({"rev": 2, "areaM2": 41.5, "errors": [{"code": "E12"}]})
        );
    }
}
