//! Fleet search, `GET /robots?status&batteryBelow&lastSeenBefore&firmware&limit&cursor`: which
//! robots are in trouble.
//!
//! It searches the robots' summary documents (`<thing>#$robot`, fleet_aws::summary), which hold
//! both the reported state and the presence of a robot, each part guarded by its own version.
//! `status` is the robot's *reported* status (`cleaning`, `docked`, `error`, …), not its
//! connection; `lastSeenBefore` is about the last presence event. Results are sorted by robot
//! id and paged with `search_after` on it (no deep `from`), and every page carries the total and
//! the counts by reported status of the whole result.

use fleet_aws::summary::SUMMARY_DOC_TYPE;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::params;
use crate::problem::Problem;

/// Robots per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 200;
/// The longest `status` or `firmware` value.
const MAX_TERM: usize = 128;

/// One search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub status: Option<String>,
    pub battery_below: Option<f64>,
    pub last_seen_before: Option<OffsetDateTime>,
    pub firmware: Option<String>,
    pub limit: usize,
    /// The robot id to continue after (from a cursor).
    pub after: Option<String>,
}

fn term(params: &QueryMap, name: &str) -> Result<Option<String>, Problem> {
    match params.first(name) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.len() > MAX_TERM => Err(Problem::invalid_parameter(
            name,
            format!("must be 1 to {MAX_TERM} characters"),
        )),
        Some(v) => Ok(Some(v.to_string())),
    }
}

impl SearchQuery {
    /// Reads the query string.
    pub fn from_params(params: &QueryMap) -> Result<SearchQuery, Problem> {
        let battery_below = match params.first("batteryBelow") {
            None => None,
            Some(v) => Some(
                v.parse::<f64>()
                    .ok()
                    .filter(|b| (0.0..=100.0).contains(b))
                    .ok_or_else(|| {
                        Problem::invalid_parameter(
                            "batteryBelow",
                            format!("{v:?} is not a number from 0 to 100"),
                        )
                    })?,
            ),
        };
        let last_seen_before = params::date_time(params, "lastSeenBefore")?;
        let limit = params::limit(params, DEFAULT_LIMIT, MAX_LIMIT)?;
        let mut query = SearchQuery {
            status: term(params, "status")?,
            battery_below,
            last_seen_before,
            firmware: term(params, "firmware")?,
            limit,
            after: None,
        };
        if let Some(c) = params.first("cursor") {
            query.after = Some(query.decode_cursor(c)?);
        }
        Ok(query)
    }

    fn filters(&self) -> Vec<Value> {
        let mut f = vec![json!({"term": {"docType": SUMMARY_DOC_TYPE}})];
        if let Some(s) = &self.status {
            f.push(json!({"term": {"reported.status": s}}));
        }
        if let Some(fw) = &self.firmware {
            f.push(json!({"term": {"reported.firmware": fw}}));
        }
        if let Some(b) = self.battery_below {
            f.push(json!({"range": {"reported.battery": {"lt": b}}}));
        }
        if let Some(t) = self.last_seen_before {
            f.push(
                json!({"range": {"lastSeenAt": {"lt": fleet_core::timefmt::format_rfc3339(t)}}}),
            );
        }
        f
    }

    /// The `_search` body: one more hit than the page, to know whether another page follows.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "size": self.limit + 1,
            "query": {"bool": {"filter": self.filters()}},
            "sort": [{"robotId": "asc"}],
            "track_total_hits": true,
            "aggs": {"byStatus": {"terms": {"field": "reported.status", "size": 100}}},
        });
        if let Some(after) = &self.after {
            body["search_after"] = json!([after]);
        }
        body
    }

    /// The cursor continuing after robot `robot`, bound to this search's filters.
    pub fn encode_cursor(&self, robot: &str) -> String {
        params::encode_cursor(&json!({"f": self.filters(), "a": robot}))
    }

    fn decode_cursor(&self, cursor: &str) -> Result<String, Problem> {
        let bad = |why: &str| Problem::invalid_parameter("cursor", why);
        let doc = params::decode_cursor(cursor)?;
        if doc["f"] != Value::Array(self.filters()) {
            return Err(bad(
                "belongs to a search with other filters; start again without it",
            ));
        }
        doc["a"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad("not a cursor this API returned"))
    }

    /// The page from OpenSearch's answer.
    pub fn page(&self, answer: &Value) -> Value {
        let hits = answer["hits"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let more = hits.len() > self.limit;
        let robots: Vec<Value> = hits
            .iter()
            .take(self.limit)
            .map(|h| robot(&h["_source"]))
            .collect();
        let next_cursor = if more {
            robots
                .last()
                .and_then(|r| r["robotId"].as_str())
                .map(|id| self.encode_cursor(id))
        } else {
            None
        };
        let total = &answer["hits"]["total"];
        let total = total["value"]
            .as_u64()
            .or_else(|| total.as_u64())
            .unwrap_or(0);
        let mut counts = serde_json::Map::new();
        for b in answer["aggregations"]["byStatus"]["buckets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(k), Some(n)) = (b["key"].as_str(), b["doc_count"].as_u64()) {
                counts.insert(k.to_string(), json!(n));
            }
        }
        json!({
            "robots": robots,
            "total": total,
            "countsByStatus": counts,
            "nextCursor": next_cursor,
        })
    }
}

/// One robot of a search: its summary without the part versions.
fn robot(summary: &Value) -> Value {
    let r = &summary["reported"];
    let mut out = json!({
        "robotId": summary["robotId"],
        "status": r.get("status").cloned().unwrap_or(Value::Null),
        "battery": r.get("battery").cloned().unwrap_or(Value::Null),
        "firmware": r.get("firmware").cloned().unwrap_or(Value::Null),
        "errorCodes": r.get("errorCodes").cloned().unwrap_or(json!([])),
        "connection": {"status": match summary.get("connected").and_then(Value::as_bool) {
            Some(true) => "connected",
            Some(false) => "disconnected",
            None => "unknown",
        }},
    });
    if let Some(at) = summary.get("lastSeenAt").filter(|v| v.is_string()) {
        out["connection"]["lastSeenAt"] = at.clone();
    }
    if let Some(v) = summary.get("version").filter(|v| v.is_u64()) {
        out["version"] = v.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::tests::query as params;

    #[test]
    fn filters_become_a_bool_filter_on_summaries_sorted_by_robot() {
        let q = SearchQuery::from_params(&params(&[
            ("status", "error"),
            ("batteryBelow", "20"),
            ("lastSeenBefore", "2026-11-28T00:00:00Z"),
            ("firmware", "3.2.0"),
        ]))
        .unwrap();
        let body = q.body();
        let f = body["query"]["bool"]["filter"].as_array().unwrap();
        assert_eq!(f[0], json!({"term": {"docType": "robot"}}));
        assert!(f.contains(&json!({"term": {"reported.status": "error"}})));
        assert!(f.contains(&json!({"range": {"reported.battery": {"lt": 20.0}}})));
        assert!(f.contains(&json!({"range": {"lastSeenAt": {"lt": "2026-11-28T00:00:00Z"}}})));
        assert_eq!(body["size"], DEFAULT_LIMIT + 1);
        assert!(body.get("search_after").is_none() && body.get("from").is_none());
    }

    #[test]
    fn a_cursor_continues_only_the_same_search() {
        let q = SearchQuery::from_params(&params(&[("status", "error")])).unwrap();
        let c = q.encode_cursor("rb-000042");
        let next =
            SearchQuery::from_params(&params(&[("status", "error"), ("cursor", &c)])).unwrap();
        assert_eq!(next.body()["search_after"], json!(["rb-000042"]));
        let other = SearchQuery::from_params(&params(&[("status", "docked"), ("cursor", &c)]));
        assert_eq!(other.unwrap_err().status, 400);
        for (k, v) in [
            ("batteryBelow", "101"),
            ("batteryBelow", "x"),
            ("limit", "0"),
            ("lastSeenBefore", "today"),
            ("status", ""),
        ] {
            let p = SearchQuery::from_params(&params(&[(k, v)])).unwrap_err();
            assert!(p.detail.starts_with(k), "{}", p.detail);
        }
    }

    #[test]
    fn a_full_page_has_a_cursor_and_the_last_page_none() {
        let q = SearchQuery::from_params(&params(&[("limit", "2")])).unwrap();
        let hit = |id: &str| json!({"_source": {"robotId": id, "reported": {"status": "docked", "battery": 80}, "connected": true, "lastSeenAt": "2026-11-29T00:00:00Z"}});
        let answer = json!({"hits": {"total": {"value": 3}, "hits": [hit("a"), hit("b"), hit("c")]},
                            "aggregations": {"byStatus": {"buckets": [{"key": "docked", "doc_count": 3}]}}});
        let page = q.page(&answer);
        assert_eq!(page["robots"].as_array().unwrap().len(), 2);
        assert_eq!(page["total"], 3);
        assert_eq!(page["countsByStatus"], json!({"docked": 3}));
        assert_eq!(page["robots"][0]["connection"]["status"], "connected");
        let c = page["nextCursor"].as_str().unwrap();
        let last = SearchQuery::from_params(&params(&[("limit", "2"), ("cursor", c)])).unwrap();
        let answer = json!({"hits": {"total": {"value": 3}, "hits": [hit("c")]}});
        assert_eq!(last.page(&answer)["nextCursor"], Value::Null);
    }
}
