//! What a robot puts on the wire (robot protocol v1, docs/architecture.md §2): topics, mission reports,
//! shadow updates, and the malformed payloads of each kind the consumers reject.
//!
//! Payloads are built with `serde_json` straight from the contract; the tests check them against
//! `fleet-core`, the consumers' own decoder.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::faults::MalformedKind;

/// Basic Ingest topic of a robot's mission reports (skips the IoT messaging charge).
pub fn mission_topic(thing: &str) -> String {
    format!("$aws/rules/mission_reports/robots/{thing}/missions")
}

/// Topic a robot publishes its classic-shadow updates to.
pub fn shadow_update_topic(thing: &str) -> String {
    format!("$aws/things/{thing}/shadow/update")
}

/// Topic a robot publishes an empty message to, to read its shadow.
pub fn shadow_get_topic(thing: &str) -> String {
    format!("$aws/things/{thing}/shadow/get")
}

/// The shadow response topics a robot listens on.
pub fn shadow_subscriptions(thing: &str) -> [String; 5] {
    [
        format!("$aws/things/{thing}/shadow/update/accepted"),
        format!("$aws/things/{thing}/shadow/update/rejected"),
        format!("$aws/things/{thing}/shadow/update/delta"),
        format!("$aws/things/{thing}/shadow/get/accepted"),
        format!("$aws/things/{thing}/shadow/get/rejected"),
    ]
}

/// RFC 3339 UTC with whole seconds, the only timestamp format on the wire.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// One mission as the robot remembers it, enough to send any revision of its report.
#[derive(Debug, Clone, PartialEq)]
pub struct Mission {
    /// ULID minted when the mission started.
    pub mission_id: String,
    /// Simulated start; fixed at rev 1 and never changed.
    pub started_at: OffsetDateTime,
    /// Simulated end.
    pub ended_at: OffsetDateTime,
    /// Terminal status (`completed`, `cancelled`, `stuck`, `battery_low`, `error`).
    pub status: &'static str,
    /// Area cleaned as known at rev 1.
    pub area_m2: f64,
    /// Battery at start and end.
    pub battery: (u8, u8),
    /// Error codes met, with simulated times.
    pub errors: Vec<(String, OffsetDateTime)>,
}

impl Mission {
    /// `startedAt` as it appears in the report and in the sort key.
    pub fn started_at_str(&self) -> String {
        rfc3339(self.started_at)
    }

    /// The report at revision `rev`. Rev 1 is sent at the end of the mission; rev 2 follows after
    /// the map upload, with the exact area and every error.
    pub fn report(&self, robot: &str, rev: u32) -> Value {
        let duration_s = (self.ended_at - self.started_at).whole_seconds().max(0);
        let (area, errors): (f64, &[(String, OffsetDateTime)]) = if rev >= 2 {
            (self.area_m2 * 1.04, &self.errors)
        } else {
            (self.area_m2, &self.errors[..self.errors.len().min(1)])
        };
        let mut v = json!({
            "schema": 1,
            "robotId": robot,
            "missionId": self.mission_id,
            "rev": rev,
            "status": self.status,
            "startedAt": rfc3339(self.started_at),
            "endedAt": rfc3339(self.ended_at),
            "areaM2": (area * 10.0).round() / 10.0,
            "durationS": duration_s,
            "battery": { "start": self.battery.0, "end": self.battery.1 },
        });
        if !errors.is_empty() {
            v["errors"] = Value::Array(
                errors
                    .iter()
                    .map(|(code, at)| json!({ "code": code, "at": rfc3339(*at) }))
                    .collect(),
            );
        }
        v
    }
}

/// A classic-shadow update carrying `reported` state (and a client token to match the answer).
pub fn shadow_report(reported: Value, client_token: &str) -> Value {
    json!({ "state": { "reported": reported }, "clientToken": client_token })
}

/// A robot's acknowledgement of a command: what it reports and what it clears in desired state
/// (`{"command": null}`), in one update (schemas/command-ack).
pub fn shadow_ack(reported: Value, desired: Value, client_token: &str) -> Value {
    json!({ "state": { "reported": reported, "desired": desired }, "clientToken": client_token })
}

/// A shadow update from the app side: `desired` state, which IoT Core turns into a delta.
pub fn shadow_desired(desired: Value, client_token: &str) -> Value {
    json!({ "state": { "desired": desired }, "clientToken": client_token })
}

/// A malformed mission report of the given kind, built around a real mission so that only the
/// defect differs from a valid report. Returns the bytes to publish.
pub fn malformed_report(kind: MalformedKind, robot: &str, mission: &Mission) -> Vec<u8> {
    let mut v = mission.report(robot, 1);
    match kind {
        MalformedKind::BadJson => {
            let text = v.to_string();
            // Cut mid-object: what a robot sends when its buffer is truncated.
            let cut = text.len() / 2;
            return text.as_bytes()[..cut].to_vec();
        }
        MalformedKind::MissingField => {
            if let Some(o) = v.as_object_mut() {
                o.remove("missionId");
            }
        }
        MalformedKind::SchemaViolation => {
            v["status"] = json!("flying");
        }
        MalformedKind::RobotMismatch => {
            v["robotId"] = json!(format!("{robot}-impostor"));
        }
        MalformedKind::TooLarge => {
            // Valid JSON, every field right, but above the 128 KiB limit.
            let code = "e".repeat(60);
            let at = rfc3339(mission.started_at);
            let errors: Vec<Value> = (0..2000)
                .map(|_| json!({ "code": code, "at": at }))
                .collect();
            v["errors"] = Value::Array(errors);
        }
    }
    v.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    pub(crate) fn sample_mission() -> Mission {
        Mission {
            mission_id: ulid::Ulid::new().to_string(),
            started_at: datetime!(2026-11-23 15:00:04.250 UTC),
            ended_at: datetime!(2026-11-23 15:41:10 UTC),
            status: "completed",
            area_m2: 42.5,
            battery: (100, 37),
            errors: vec![
                ("stuck".into(), datetime!(2026-11-23 15:20:00 UTC)),
                ("brush_jam".into(), datetime!(2026-11-23 15:30:00 UTC)),
            ],
        }
    }

    #[test]
    fn reports_follow_the_contract_and_pass_the_consumers_decoder() {
        let m = sample_mission();
        for rev in [1, 2] {
            let v = m.report("rb-000001", rev);
            let bytes = serde_json::to_vec(&v).unwrap();
            let parsed = fleet_core::MissionReport::from_json(&bytes)
                .unwrap_or_else(|e| panic!("rev {rev} rejected: {e}: {v}"));
            assert_eq!(parsed.rev, rev);
            assert_eq!(parsed.robot_id.as_str(), "rb-000001");
            assert_eq!(v["startedAt"], "2026-11-23T15:00:04Z");
            // The sort key the store will use is the one the verifier looks for.
            assert_eq!(
                parsed.sk(),
                format!("MISSION#{}#{}", m.started_at_str(), m.mission_id)
            );
        }
        // Rev 2 is richer and keeps startedAt.
        let r1 = m.report("rb-000001", 1);
        let r2 = m.report("rb-000001", 2);
        assert_eq!(r1["startedAt"], r2["startedAt"]);
        assert_eq!(r1["errors"].as_array().unwrap().len(), 1);
        assert_eq!(r2["errors"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn each_malformed_kind_is_rejected_with_that_kind() {
        let m = sample_mission();
        for kind in MalformedKind::ALL {
            let bytes = malformed_report(kind, "rb-000001", &m);
            let err = fleet_core::MissionReport::from_json(&bytes)
                .and_then(|r| r.check_partition_key("rb-000001").map(|_| r))
                .expect_err("a malformed payload must be rejected");
            assert_eq!(err.kind().as_str(), kind.as_str(), "{kind:?}: {err}");
        }
    }
}
