//! The robot summary documents of the robots index: one per robot, `<thing>#$robot`, with what a
//! fleet search filters on (reported status, battery, firmware, error codes; connected, last
//! seen) from both of the robot's sources.
//!
//! ## Why a summary, and how each part is guarded
//!
//! A robot's classic shadow (`<thing>`) and its presence (`<thing>#presence`) are separate
//! documents, each written with its own external version, so a stale or duplicate record of one
//! never overwrites a newer one. A search that combines battery and last seen needs both in one
//! document, but one document has one external version, and the two sources have independent
//! orders: no single number orders a shadow update against a presence event.
//!
//! So the summary keeps a version per part (`shadowPartVersion`, `presencePartVersion`: the
//! same external versions as the part documents) and is written by read, merge and
//! compare-and-set:
//! 1. `_mget` the summaries of the batch's robots, with their `_seq_no` and `_primary_term`;
//! 2. merge each part whose version is newer than the one stored, and leave the rest;
//! 3. write with `if_seq_no`/`if_primary_term` (or `create` for a new robot);
//! 4. a 409 means another writer got there first: read again and merge again.
//!
//! A part is taken only when its version is newer, so any order of records gives the same
//! document. Two writers can never lose each other's part, because each write is conditional
//! on the version it read. A scripted upsert (a Painless script comparing the part versions)
//! would do the same in one request. It was not chosen because the local OpenSearch stand-in
//! does not run scripts, and this path is then tested here exactly as it runs on AWS. The cost
//! is one `_mget` per batch.
//!
//! The id's `$` cannot occur in a shadow name (`[A-Za-z0-9:_-]`), so it never collides with a
//! named shadow's `<thing>#<name>`.

use std::collections::BTreeMap;

use bytes::Bytes;
use fleet_lambda::Deadline;
use serde_json::{Map, Value, json};

use crate::error::Failure;
use crate::robots::{BulkDoc, ItemResult, RobotIndex};

/// The summary's id suffix: `<thing>#$robot`.
pub const SUMMARY_SUFFIX: &str = "$robot";
/// `docType` of a summary.
pub const SUMMARY_DOC_TYPE: &str = "robot";
/// The reported fields a summary keeps (the ones the index maps and a search filters on).
pub const SUMMARY_REPORTED: [&str; 4] = ["status", "battery", "firmware", "errorCodes"];
/// Read-merge-write rounds before a robot whose summary keeps changing under us is retried
/// with its records.
pub const SUMMARY_ROUNDS: usize = 5;

/// The id of `robot`'s summary.
pub fn summary_id(robot: &str) -> String {
    format!("{robot}#{SUMMARY_SUFFIX}")
}

/// The newest of each part a batch has for one robot: the robots-index documents of its
/// classic shadow and of its presence, with their external versions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parts {
    /// (external version, the `<thing>` document's source).
    pub shadow: Option<(u64, Value)>,
    /// (external version, the `<thing>#presence` document's source).
    pub presence: Option<(u64, Value)>,
}

fn stored_version(summary: &Map<String, Value>, key: &str) -> Option<u64> {
    summary.get(key).and_then(Value::as_u64)
}

/// Merges `parts` into `summary` (a summary's source, or empty for a new robot): each part
/// only when newer than the stored one. Returns whether anything changed.
pub fn merge(summary: &mut Map<String, Value>, robot: &str, parts: &Parts) -> bool {
    let mut changed = false;
    if let Some((version, doc)) = &parts.shadow
        && stored_version(summary, "shadowPartVersion").is_none_or(|v| v < *version)
    {
        let mut reported = Map::new();
        for key in SUMMARY_REPORTED {
            if let Some(v) = doc["reported"].get(key).filter(|v| !v.is_null()) {
                reported.insert(key.into(), v.clone());
            }
        }
        summary.insert("reported".into(), Value::Object(reported));
        summary.insert("version".into(), doc["version"].clone());
        summary.insert("updatedAt".into(), doc["updatedAt"].clone());
        summary.insert("shadowPartVersion".into(), json!(version));
        changed = true;
    }
    if let Some((version, doc)) = &parts.presence
        && stored_version(summary, "presencePartVersion").is_none_or(|v| v < *version)
    {
        summary.insert("connected".into(), doc["connected"].clone());
        summary.insert("lastSeenAt".into(), doc["lastSeenAt"].clone());
        match doc.get("disconnectReason").filter(|v| !v.is_null()) {
            Some(reason) => summary.insert("disconnectReason".into(), reason.clone()),
            None => summary.remove("disconnectReason"),
        };
        summary.insert("presencePartVersion".into(), json!(version));
        changed = true;
    }
    if changed {
        summary.insert("docType".into(), json!(SUMMARY_DOC_TYPE));
        summary.insert("robotId".into(), json!(robot));
    }
    changed
}

/// A summary as read: its source and its position for compare-and-set.
#[derive(Debug, Clone, PartialEq)]
struct Current {
    source: Map<String, Value>,
    seq_no: u64,
    primary_term: u64,
}

/// A summary write: `create` for a new robot, else `index` if the document is still the one
/// read.
struct SummaryDoc {
    id: String,
    read: Option<(u64, u64)>,
    source: Value,
}

impl BulkDoc for SummaryDoc {
    fn action(&self, alias: &str) -> Value {
        match self.read {
            None => json!({"create": {"_index": alias, "_id": self.id, "require_alias": true}}),
            Some((seq_no, primary_term)) => json!({"index": {
                "_index": alias, "_id": self.id, "if_seq_no": seq_no,
                "if_primary_term": primary_term, "require_alias": true
            }}),
        }
    }
    fn source(&self) -> &Value {
        &self.source
    }
}

impl RobotIndex {
    /// Reads the summaries of `robots` (`None`: not there yet).
    async fn read_summaries(
        &self,
        robots: &[&String],
        deadline: Deadline,
    ) -> Result<Vec<Option<Current>>, (Failure, String)> {
        let ids: Vec<String> = robots.iter().map(|r| summary_id(r)).collect();
        let body = Bytes::from(json!({ "ids": ids }).to_string());
        let (status, bytes) = self
            .request(
                reqwest::Method::POST,
                &format!("/{}/_mget", self.alias()),
                Some((body, "application/json")),
                deadline,
            )
            .await
            .map_err(|e| (e.failure(), e.to_string()))?;
        // No alias yet (a new cluster): nothing is there; the write installs the template.
        if status == 404 {
            return Ok(vec![None; robots.len()]);
        }
        if !(200..300).contains(&status) {
            return Err((
                Failure::of_http_status(status),
                format!(
                    "reading robot summaries got {status}: {}",
                    String::from_utf8_lossy(&bytes)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ),
            ));
        }
        let reply: Value = serde_json::from_slice(&bytes).map_err(|e| {
            (
                Failure::Unavailable,
                format!("unreadable _mget answer: {e}"),
            )
        })?;
        let docs = reply["docs"].as_array().cloned().unwrap_or_default();
        if docs.len() != robots.len() {
            return Err((
                Failure::Unavailable,
                format!("_mget answered {} docs for {}", docs.len(), robots.len()),
            ));
        }
        Ok(docs
            .into_iter()
            .map(|d| {
                let source = d["_source"].as_object().cloned()?;
                (d["found"] == true).then_some(Current {
                    source,
                    seq_no: d["_seq_no"].as_u64()?,
                    primary_term: d["_primary_term"].as_u64()?,
                })
            })
            .collect())
    }

    /// Merges each robot's parts into its summary (module docs): read, merge, compare-and-set,
    /// again on a conflict. One result per robot: `Indexed` (written), `Stale` (nothing newer
    /// to take), or the failure of its last round.
    pub async fn merge_summaries(
        &self,
        parts: &BTreeMap<String, Parts>,
        template: &Value,
        deadline: Deadline,
    ) -> BTreeMap<String, ItemResult> {
        let mut out = BTreeMap::new();
        let mut pending: Vec<&String> = parts.keys().collect();
        for _round in 0..SUMMARY_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let current = match self.read_summaries(&pending, deadline).await {
                Ok(c) => c,
                Err((failure, reason)) => {
                    for robot in pending {
                        out.insert(
                            robot.clone(),
                            ItemResult::Retry {
                                failure,
                                reason: reason.clone(),
                            },
                        );
                    }
                    return out;
                }
            };
            let mut docs = Vec::new();
            let mut writing = Vec::new();
            for (robot, current) in pending.iter().zip(current) {
                let (mut source, read) = match current {
                    Some(c) => (c.source, Some((c.seq_no, c.primary_term))),
                    None => (Map::new(), None),
                };
                if merge(&mut source, robot, &parts[*robot]) {
                    docs.push(SummaryDoc {
                        id: summary_id(robot),
                        read,
                        source: Value::Object(source),
                    });
                    writing.push(*robot);
                } else {
                    out.insert((*robot).clone(), ItemResult::Stale);
                }
            }
            let results = self.bulk(&docs, template, deadline).await;
            pending = Vec::new();
            for (robot, result) in writing.into_iter().zip(results) {
                match result {
                    // Changed since it was read (or created meanwhile): read and merge again.
                    ItemResult::Stale => pending.push(robot),
                    other => {
                        out.insert(robot.clone(), other);
                    }
                }
            }
        }
        for robot in pending {
            out.insert(
                robot.clone(),
                ItemResult::Retry {
                    failure: Failure::Unavailable,
                    reason: format!(
                        "the summary of {robot} changed under {SUMMARY_ROUNDS} writes in a row"
                    ),
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shadow(version: u64, battery: u64) -> Value {
        json!({"docType": "shadow", "robotId": "rb-1", "version": version,
               "updatedAt": "2026-11-29T06:00:00Z",
               "reported": {"battery": battery, "status": "cleaning", "firmware": "3.4.2", "position": {"x": 1}}})
    }

    fn presence(connected: bool, at: &str) -> Value {
        json!({"docType": "presence", "robotId": "rb-1", "connected": connected, "lastSeenAt": at,
               "disconnectReason": if connected { Value::Null } else { json!("CONNECTION_LOST") }})
    }

    #[test]
    fn each_part_is_taken_only_when_newer_in_any_order() {
        let updates = [
            Parts {
                shadow: Some((5, shadow(5, 50))),
                presence: None,
            },
            Parts {
                shadow: None,
                presence: Some((20, presence(false, "2026-11-29T06:10:00Z"))),
            },
            Parts {
                shadow: Some((3, shadow(3, 90))),
                presence: Some((11, presence(true, "2026-11-29T06:05:00Z"))),
            },
        ];
        // Every order of the three updates ends in the same summary.
        let orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]];
        let mut ends = Vec::new();
        for order in orders {
            let mut s = Map::new();
            for i in order {
                merge(&mut s, "rb-1", &updates[i]);
            }
            ends.push(s);
        }
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{ends:?}");
        let s = &ends[0];
        assert_eq!(
            s["reported"],
            json!({"battery": 50, "status": "cleaning", "firmware": "3.4.2"})
        );
        assert_eq!(
            (s["version"].clone(), s["connected"].clone()),
            (json!(5), json!(false))
        );
        assert_eq!(s["disconnectReason"], "CONNECTION_LOST");
        assert_eq!(
            (s["docType"].clone(), s["robotId"].clone()),
            (json!("robot"), json!("rb-1"))
        );
        // Nothing newer: no write.
        let mut again = s.clone();
        assert!(!merge(&mut again, "rb-1", &updates[2]));
    }

    #[test]
    fn a_new_summary_is_created_and_a_read_one_is_written_only_if_unchanged() {
        let new = SummaryDoc {
            id: summary_id("rb-1"),
            read: None,
            source: json!({}),
        };
        assert_eq!(new.action("robots")["create"]["_id"], "rb-1#$robot");
        let read = SummaryDoc {
            id: summary_id("rb-1"),
            read: Some((41, 2)),
            source: json!({}),
        };
        let a = read.action("robots");
        assert_eq!(
            (
                a["index"]["if_seq_no"].clone(),
                a["index"]["if_primary_term"].clone()
            ),
            (json!(41), json!(2))
        );
        assert!(a["index"].get("version_type").is_none());
    }
}
