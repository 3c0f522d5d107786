//! Robot behaviour over a real broker (mosquitto) and the real shadow service of fleet-iot:
//! everything the simulator reports as handed over is what a subscriber on the broker saw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::*;
use fleet_sim::{MqttTarget, Progress, Targets};
use serde_json::Value;

/// Whether `reported` holds every value of `desired` (IoT Core's rule for "no delta": nested
/// objects compare key by key, anything else by equality).
fn covers(reported: &Value, desired: &Value) -> bool {
    match (reported, desired) {
        (Value::Object(r), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| r.get(k).is_some_and(|rv| covers(rv, dv))),
        (r, d) => r == d,
    }
}

fn local_targets(port: u16) -> Targets {
    Targets {
        mqtt: MqttTarget::plain("127.0.0.1", port),
        aws_endpoint: None,
        opensearch_url: None,
        missions_table: None,
        robots_alias: "robots".into(),
        rejects_queue_url: None,
        aws: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_fleet_with_faults_hands_the_broker_exactly_what_it_reports() {
    let broker = Mosquitto::start("");
    let _shadows = shadow_service(broker.port).await;
    let seen = observer(
        broker.port,
        &[
            "$aws/rules/mission_reports/robots/+/missions",
            "$aws/things/+/shadow/update",
        ],
    )
    .await;
    let args = sim_args(&[
        "--mode",
        "steady",
        "--robots",
        "12",
        "--rate",
        "80",
        "--duration",
        "6s",
        "--mission-share",
        "0.5",
        "--duplicates",
        "10",
        "--reorders",
        "40",
        "--malformed",
        "15",
        "--disconnects",
        "50",
        "--connect-rate",
        "200",
        "--prefix",
        "rb-steady",
    ]);
    let report = fleet_sim::run(args, local_targets(broker.port), Progress::Silent)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().unwrap().clone();

    let p = &report.published;
    assert_eq!(report.connections.robots_connected, 12);
    assert!(
        p.duplicates > 0 && p.reorders > 0 && p.malformed > 0 && p.disconnects > 0,
        "{p:?}"
    );
    assert_eq!(p.unflushed, 0, "{p:?}");

    let mut reports = 0u64;
    let mut malformed: BTreeMap<String, u64> = BTreeMap::new();
    let mut missions: HashMap<String, (String, u32)> = HashMap::new();
    let mut shadow_updates = 0u64;
    for (topic, payload) in &seen {
        if topic.ends_with("/missions") {
            let thing = topic.split('/').nth(4).unwrap();
            match fleet_core::MissionReport::from_json(payload)
                .and_then(|r| r.check_partition_key(thing).map(|_| r))
            {
                Ok(r) => {
                    reports += 1;
                    let started = fleet_core::timefmt::format_key_seconds(r.started_at);
                    let e = missions
                        .entry(r.mission_id.to_string())
                        .or_insert((started.clone(), r.rev));
                    // startedAt never changes between revs of one mission.
                    assert_eq!(e.0, started);
                    e.1 = e.1.max(r.rev);
                }
                Err(e) => *malformed.entry(e.kind().as_str().to_string()).or_default() += 1,
            }
        } else {
            let v: Value = serde_json::from_slice(payload).unwrap();
            assert!(v.pointer("/state/reported/battery").is_some(), "{v}");
            shadow_updates += 1;
        }
    }
    assert_eq!(reports, p.mission_reports);
    assert_eq!(missions.len() as u64, p.missions);
    assert_eq!(shadow_updates, p.shadow_updates);
    assert_eq!(malformed, p.malformed_by_kind);
    // One counter: the live line's final value is the summary's total, and it is every kind.
    assert_eq!(
        p.total,
        reports + shadow_updates + p.malformed + p.shadow_gets,
        "{p:?}"
    );
    assert!(
        p.shadow_gets >= 4,
        "one get after each robot's connect: {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_act_on_desired_state_commands_and_clear_the_delta() {
    let broker = Mosquitto::start("");
    let shadows = shadow_service(broker.port).await;
    let seen = observer(
        broker.port,
        &[
            "$aws/events/presence/+/+",
            "$aws/things/+/shadow/update",
            "$aws/things/+/shadow/update/delta",
            "$aws/things/+/shadow/update/documents",
        ],
    )
    .await;
    // A compressed day of 12 s; every robot gets one app command.
    let args = sim_args(&[
        "--mode",
        "day",
        "--robots",
        "8",
        "--day-length",
        "12s",
        "--commands",
        "100",
        "--connect-rate",
        "200",
        "--prefix",
        "rb-cmd",
    ]);
    let report = fleet_sim::run(args, local_targets(broker.port), Progress::Silent)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = &report.published;
    assert_eq!(p.commands, 8, "{p:?}");
    assert_eq!(p.commands_handled, 8, "{p:?}");
    let seen = seen.lock().unwrap().clone();
    let json = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
    for k in 0..8 {
        let thing = format!("rb-cmd-{k:06}");
        let doc = shadows
            .document(&thing)
            .unwrap_or_else(|| panic!("no shadow for {thing}"));
        let reported = &doc["state"]["reported"];
        // A command is acknowledged in reported and cleared from desired in one update
        // (schemas/command-ack); a schedule is reported back. Either way no delta is pending.
        assert!(doc["state"].get("delta").is_none(), "{thing}: {doc}");
        assert!(
            doc.pointer("/state/desired/command").is_none(),
            "{thing}: the command stays in desired: {doc}"
        );
        match reported.get("command") {
            Some(ack) => {
                assert_eq!(ack["status"], "applied", "{thing}: {doc}");
                assert!(
                    ack["action"] == "start" || ack["action"] == "dock",
                    "{thing}: {doc}"
                );
            }
            None => assert_eq!(
                reported.get("schedule"),
                doc.pointer("/state/desired/schedule"),
                "{thing}: {doc}"
            ),
        }
        for key in ["battery", "status", "position", "firmware", "errorCodes"] {
            assert!(reported.get(key).is_some(), "{thing} lacks {key}");
        }
        // The first version at which nothing in desired was left to act on (a command cleared
        // in the same update that reported it, a schedule reported back), from the documents
        // topic, after the version that set it...
        let docs: Vec<Value> = seen
            .iter()
            .filter(|(t, _)| t == &format!("$aws/things/{thing}/shadow/update/documents"))
            .map(|(_, b)| json(b))
            .collect();
        let version = |d: &Value| d["current"]["version"].as_u64().unwrap();
        let pending = |d: &Value| {
            let current = &d["current"]["state"];
            current["desired"]
                .as_object()
                .is_some_and(|o| !o.is_empty())
                && !covers(&current["reported"], &current["desired"])
        };
        let set_at = docs
            .iter()
            .filter(|d| pending(d))
            .map(version)
            .min()
            .unwrap_or_else(|| panic!("{thing}: no command ever reached desired"));
        let in_sync = docs
            .iter()
            .filter(|d| version(d) > set_at && !pending(d))
            .map(version)
            .min()
            .unwrap_or_else(|| panic!("{thing}: reported never matched desired"));
        // ...and no delta from that version on.
        let late: Vec<u64> = seen
            .iter()
            .filter(|(t, _)| t == &format!("$aws/things/{thing}/shadow/update/delta"))
            .map(|(_, b)| json(b)["version"].as_u64().unwrap())
            .filter(|v| *v >= in_sync)
            .collect();
        assert!(
            late.is_empty(),
            "{thing}: delta at versions {late:?} after {in_sync}"
        );
    }
    // Desired values came from the app session (a robot's acknowledgement only clears its
    // command with null), reported ones from the robots themselves.
    let updates: Vec<&(String, Vec<u8>)> = seen
        .iter()
        .filter(|(t, _)| t.ends_with("/shadow/update"))
        .collect();
    let desired = updates
        .iter()
        .filter(|(_, b)| {
            serde_json::from_slice::<Value>(b)
                .unwrap()
                .pointer("/state/desired")
                .and_then(Value::as_object)
                .is_some_and(|d| d.values().any(|v| !v.is_null()))
        })
        .count();
    assert_eq!(desired, 8);
    let robots: HashSet<&str> = updates
        .iter()
        .filter_map(|(t, _)| t.split('/').nth(2))
        .collect();
    assert_eq!(robots.len(), 8);
}
