//! Realistic sample events. `seed` makes ids unique across batches, so every batch of a bench
//! does real writes rather than duplicates.

use base64::Engine as _;
use serde_json::{Value, json};

const SEQ_PREFIX: &str = "4959033827149025660855969253836157109592157598";

/// A mission report of 650 B – 1 KB for robot `robot`, mission number `n`.
pub fn mission_report(robot: usize, n: usize) -> Vec<u8> {
    let codes = [
        "stuck",
        "brush_jammed",
        "cliff_sensor",
        "bin_full",
        "wheel_slip",
        "dock_lost",
    ];
    // 9–16 error entries spread the size over the realistic range.
    let errors: Vec<Value> = (0..9 + (robot + n) % 8)
        .map(|k| json!({"code": codes[k % codes.len()], "at": format!("2026-11-23T15:{:02}:00Z", 10 + k)}))
        .collect();
    let body = json!({
        "schema": 1, "robotId": robot_id(robot),
        "missionId": format!("01JD3Z8X6{:08}{:09}", robot % 100_000_000, n % 1_000_000_000),
        "rev": 1 + n % 3, "status": "completed",
        "startedAt": format!("2026-11-23T{:02}:00:04Z", 8 + n % 12), "endedAt": format!("2026-11-23T{:02}:41:10Z", 8 + n % 12),
        "areaM2": 42.5 + (robot % 50) as f64, "durationS": 2466, "battery": {"start": 100, "end": 37},
        "errors": errors,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Shadow update documents of ~850 B for robot `robot` at shadow version `version`.
pub fn shadow_documents(robot: usize, version: u64) -> Vec<u8> {
    let ts = 1_795_446_000 + version as i64;
    let status = ["cleaning", "docked", "charging"][robot % 3];
    let reported = |battery: u64| {
        json!({"battery": battery, "status": status,
               "position": {"x": 3.25 + (robot % 7) as f64, "y": 1.5, "room": "kitchen"},
               "firmware": "4.2.1", "errorCodes": [], "missionId": "01JD3Z8X6Y7ZQ4W5V6T7S8R9PQ"})
    };
    let meta = json!({"reported": {"battery": {"timestamp": ts}, "status": {"timestamp": ts},
                                    "position": {"x": {"timestamp": ts}, "y": {"timestamp": ts}}}});
    let body = json!({
        "previous": {"state": {"desired": {"mode": "eco"}, "reported": reported(81)}, "metadata": meta, "version": version.saturating_sub(1)},
        "current": {"state": {"desired": {"mode": "eco"}, "reported": reported(80)}, "metadata": meta, "version": version},
        "timestamp": ts, "clientToken": format!("tok-{robot}-{version}"), "thingName": robot_id(robot)
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The thing name of robot number `i`.
pub fn robot_id(i: usize) -> String {
    format!("rb-{i:06}")
}

/// A Kinesis event of `payloads` (partition key, data), sequence numbers starting at `first_seq`.
pub fn kinesis_event(
    stream: &str,
    first_seq: usize,
    payloads: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Value {
    let records: Vec<Value> = payloads
        .into_iter()
        .enumerate()
        .map(|(i, (key, data))| {
            let seq = format!("{SEQ_PREFIX}{:010}", first_seq + i);
            json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key, "sequenceNumber": seq,
                            "data": base64::engine::general_purpose::STANDARD.encode(data),
                            "approximateArrivalTimestamp": 1_795_446_000.123},
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/fn",
                "awsRegion": "us-east-1", "eventSourceARN": format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}")
            })
        })
        .collect();
    json!({ "Records": records })
}

/// `n` mission reports from `n` different robots; `batch` makes the missions unique.
pub fn mission_event(n: usize, batch: usize) -> Value {
    kinesis_event(
        "robofleet-missions",
        batch * n,
        (0..n).map(|i| (robot_id(i), mission_report(i, batch * n + i))),
    )
}

/// `n` shadow updates: `n / 4` robots (so a batch holds several versions of one shadow, as a
/// busy shard does), versions growing with `batch`.
pub fn shadow_event(n: usize, batch: usize) -> Value {
    let robots = (n / 4).max(1);
    kinesis_event(
        "robofleet-shadows",
        batch * n,
        (0..n).map(|i| {
            let robot = i % robots;
            (
                robot_id(robot),
                shadow_documents(robot, (batch * n + i) as u64 + 1),
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_in_the_realistic_size_range() {
        for i in 0..200 {
            let m = mission_report(i, i * 7).len();
            assert!((650..=1024).contains(&m), "mission {i}: {m} B");
            let s = shadow_documents(i, 17).len();
            assert!((650..=1024).contains(&s), "shadow {i}: {s} B");
        }
    }
}
