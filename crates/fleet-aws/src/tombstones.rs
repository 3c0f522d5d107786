//! Robot tombstones and the audit trail of decommissions (`RobotTombstonesTable`).
//!
//! A decommission or factory reset writes a tombstone before it purges anything:
//! `robotId = <id>, sk = "TOMBSTONE"` with the mode, the state of the purge (`purging`, `done`,
//! `failed`), the cutoff instant and the counts of what was purged. mission-ingest and the
//! shadow-indexer read the tombstones of each batch's robots (one `BatchGetItem`) and drop a
//! record of a tombstoned robot from before the cutoff, so a late record still in the stream
//! never re-creates what was deleted. For a decommission the cutoff is forever; for a factory
//! reset it is the instant of the request, so the robot's new life after the reset is kept.
//! Every step leaves an audit item, `sk = "AUDIT#<ms>#<ulid>"`, kept as long as the table.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde_json::{Value, json};

use crate::error::describe;

/// The tombstone's sort key.
pub const TOMBSTONE_SK: &str = "TOMBSTONE";

/// What the purge does beyond deleting data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The robot leaves the fleet: its certificate is revoked; its records are dropped forever.
    Decommission,
    /// The robot is wiped for a new owner: its certificate stays; records from after the
    /// request are kept.
    Reset,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Decommission => "decommission",
            Mode::Reset => "reset",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "decommission" => Some(Mode::Decommission),
            "reset" => Some(Mode::Reset),
            _ => None,
        }
    }
}

/// A robot's tombstone.
#[derive(Debug, Clone, PartialEq)]
pub struct Tombstone {
    pub robot_id: String,
    pub mode: Mode,
    /// `purging`, `done` or `failed`.
    pub state: String,
    pub requested_at_ms: i64,
    /// Who asked (the caller's ARN).
    pub caller: String,
    /// What was purged (`{"missions": n, ...}`), once done.
    pub counts: Value,
    pub reason: Option<String>,
}

impl Tombstone {
    /// Records of this robot at or before this instant (Unix ms) are dropped.
    pub fn cutoff_ms(&self) -> i64 {
        match self.mode {
            Mode::Decommission => i64::MAX,
            Mode::Reset => self.requested_at_ms,
        }
    }

    /// As the API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "robotId": self.robot_id,
            "mode": self.mode.as_str(),
            "state": self.state,
            "requestedAt": fleet_core::timefmt::from_unix_millis(self.requested_at_ms)
                .map(fleet_core::timefmt::format_rfc3339),
            "counts": self.counts,
            "reason": self.reason,
        })
    }
}

/// Whether a record of `robot` at `at_ms` is one a tombstone drops.
pub fn is_purged(cutoffs: &HashMap<String, i64>, robot: &str, at_ms: i64) -> bool {
    cutoffs.get(robot).is_some_and(|cutoff| at_ms <= *cutoff)
}

/// The positions of the batch items that a tombstone drops: `of` gives an item's robot and
/// the instant of its record (Unix ms). One `BatchGetItem` per 100 robots of the batch.
pub async fn purged_positions<T>(
    tombstones: &Tombstones,
    items: &[fleet_lambda::batch::Item<T>],
    of: impl Fn(&T) -> (&str, i64),
) -> Result<std::collections::HashSet<usize>, String> {
    let mut robots: Vec<&str> = items.iter().map(|i| of(&i.value).0).collect();
    robots.sort_unstable();
    robots.dedup();
    let cutoffs = tombstones.cutoffs(&robots).await?;
    Ok(items
        .iter()
        .filter(|i| {
            let (robot, at) = of(&i.value);
            is_purged(&cutoffs, robot, at)
        })
        .map(|i| i.position)
        .collect())
}

/// The items of a batch a consumer should still process: those a tombstone purges are marked
/// duplicates and left out. When the tombstones cannot be read, every item is marked for retry
/// and `None` comes back: finish the batch.
pub async fn screen<T>(
    tombstones: Option<&Tombstones>,
    batch: &mut fleet_lambda::Batch,
    mut items: Vec<fleet_lambda::batch::Item<T>>,
    of: impl Fn(&T) -> (&str, i64),
) -> Option<Vec<fleet_lambda::batch::Item<T>>> {
    let Some(tombstones) = tombstones.filter(|_| !items.is_empty()) else {
        return Some(items);
    };
    match purged_positions(tombstones, &items, of).await {
        Ok(purged) => {
            for &p in &purged {
                batch.set(p, fleet_lambda::Outcome::Duplicate);
            }
            items.retain(|i| !purged.contains(&i.position));
            Some(items)
        }
        Err(e) => {
            for item in &items {
                batch.set(item.position, fleet_lambda::Outcome::Retry(e.clone()));
            }
            None
        }
    }
}

/// A ULID that sorts after the previous one of this process, even within one millisecond, so
/// the audit items of one purge keep their order.
fn audit_id() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut guard = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
}

/// The tombstones table.
#[derive(Debug, Clone)]
pub struct Tombstones {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Tombstone> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    Some(Tombstone {
        robot_id: text("robotId")?,
        mode: Mode::parse(&text("mode")?)?,
        state: text("state")?,
        requested_at_ms: item.get("requestedAt")?.as_n().ok()?.parse().ok()?,
        caller: text("caller").unwrap_or_default(),
        counts: text("counts")
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(Value::Null),
        reason: text("reason"),
    })
}

impl Tombstones {
    pub fn new(client: Client, table: impl Into<String>) -> Tombstones {
        Tombstones {
            client,
            table: table.into(),
        }
    }

    /// Writes `t` unless the robot has a tombstone; returns the one it has.
    pub async fn create(&self, t: &Tombstone) -> Result<Option<Tombstone>, String> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("robotId", s(&t.robot_id))
            .item("sk", s(TOMBSTONE_SK))
            .item("mode", s(t.mode.as_str()))
            .item("state", s(&t.state))
            .item("requestedAt", n(t.requested_at_ms))
            .item("caller", s(&t.caller))
            .condition_expression("attribute_not_exists(robotId)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
            Err(e)
                if aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e)
                    == Some("ConditionalCheckFailedException") =>
            {
                self.get(&t.robot_id).await
            }
            Err(e) => Err(format!("tombstones table {}: {}", self.table, describe(&e))),
        }
    }

    /// The robot's tombstone, if any.
    pub async fn get(&self, robot: &str) -> Result<Option<Tombstone>, String> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("robotId", s(robot))
            .key("sk", s(TOMBSTONE_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| format!("tombstones table {}: {}", self.table, describe(&e)))?;
        Ok(out.item().and_then(from_item))
    }

    /// Records the purge's end: `state` (`done`, `failed`, or `purging` again for a retry),
    /// what was purged and why it failed.
    pub async fn finish(
        &self,
        robot: &str,
        state: &str,
        counts: &Value,
        reason: Option<&str>,
    ) -> Result<(), String> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("robotId", s(robot))
            .key("sk", s(TOMBSTONE_SK))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":counts", s(counts.to_string()));
        update = match reason {
            Some(r) => update
                .update_expression("SET #state = :state, counts = :counts, reason = :reason")
                .expression_attribute_values(":reason", s(r)),
            None => update.update_expression("SET #state = :state, counts = :counts REMOVE reason"),
        };
        update
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("tombstones table {}: {}", self.table, describe(&e)))
    }

    /// Appends an audit item.
    pub async fn audit(&self, robot: &str, event: &str, detail: &Value) -> Result<(), String> {
        let now = fleet_core::timefmt::now_unix_ms();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("robotId", s(robot))
            .item("sk", s(format!("AUDIT#{now:015}#{}", audit_id())))
            .item("event", s(event))
            .item("at", n(now as i64))
            .item("detail", s(detail.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("tombstones table {}: {}", self.table, describe(&e)))
    }

    /// The robot's audit trail, oldest first: `{"event", "at", "detail"}`.
    pub async fn audits(&self, robot: &str) -> Result<Vec<Value>, String> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("robotId = :r AND begins_with(sk, :a)")
            .expression_attribute_values(":r", s(robot))
            .expression_attribute_values(":a", s("AUDIT#"))
            .send()
            .await
            .map_err(|e| format!("tombstones table {}: {}", self.table, describe(&e)))?;
        Ok(out
            .items()
            .iter()
            .map(|i| {
                let text = |k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned();
                json!({
                    "event": text("event"),
                    "at": i.get("at").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok())
                        .and_then(fleet_core::timefmt::from_unix_millis)
                        .map(fleet_core::timefmt::format_rfc3339),
                    "detail": text("detail").and_then(|d| serde_json::from_str::<Value>(&d).ok()),
                })
            })
            .collect())
    }

    /// The cutoffs of those of `robots` that have a tombstone (one `BatchGetItem` per 100).
    pub async fn cutoffs(&self, robots: &[&str]) -> Result<HashMap<String, i64>, String> {
        let mut out = HashMap::new();
        for chunk in robots.chunks(100) {
            let mut keys = Vec::with_capacity(chunk.len());
            for r in chunk {
                keys.push(HashMap::from([
                    ("robotId".to_string(), s(*r)),
                    ("sk".to_string(), s(TOMBSTONE_SK)),
                ]));
            }
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|e| e.to_string())?;
            // Unprocessed keys come back under throttling: ask again, a few times.
            for _ in 0..5 {
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request.clone())
                    .send()
                    .await
                    .map_err(|e| format!("tombstones table {}: {}", self.table, describe(&e)))?;
                for item in got
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = from_item(item) {
                        out.insert(t.robot_id.clone(), t.cutoff_ms());
                    }
                }
                match got.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    Some(left) if !left.keys().is_empty() => request = left.clone(),
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decommission_drops_forever_and_a_reset_only_what_came_before() {
        let t = |mode| Tombstone {
            robot_id: "rb-1".into(),
            mode,
            state: "done".into(),
            requested_at_ms: 1_000,
            caller: String::new(),
            counts: Value::Null,
            reason: None,
        };
        let cutoffs = HashMap::from([("rb-1".to_string(), t(Mode::Decommission).cutoff_ms())]);
        assert!(is_purged(&cutoffs, "rb-1", i64::MAX - 1));
        assert!(!is_purged(&cutoffs, "rb-2", 0));
        let cutoffs = HashMap::from([("rb-1".to_string(), t(Mode::Reset).cutoff_ms())]);
        assert!(is_purged(&cutoffs, "rb-1", 1_000));
        assert!(!is_purged(&cutoffs, "rb-1", 1_001));
        assert_eq!(Mode::parse("reset"), Some(Mode::Reset));
        assert_eq!(Mode::parse("wipe"), None);
    }
}
