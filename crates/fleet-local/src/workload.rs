//! The built-in demo workload of `robofleet dev --workload demo`: a few robots, each its own MQTT
//! session (client id = thing name, so presence events flow too), reporting their shadow every
//! few seconds and a mission now and then (rev 1 while running, rev 2 when completed). The first
//! round also sends what a real fleet sends by accident: one duplicate mission report and one
//! malformed one, so the rejects queue has something in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fleet_iot::BrokerAddr;
use rumqttc::{AsyncClient, QoS};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

/// What the demo published.
#[derive(Debug, Default, Serialize)]
pub struct DemoCounters {
    /// Mission reports (including the duplicate and the malformed one).
    pub mission_reports: AtomicU64,
    /// Shadow updates.
    pub shadow_updates: AtomicU64,
    /// Publishes that failed locally.
    pub errors: AtomicU64,
}

/// Thing name of demo robot `k`.
pub fn robot_id(k: u64) -> String {
    format!("rb-demo-{k:06}")
}

/// The mission report of robot `robot`, mission `mission_id`, at `rev` (1 running, 2 completed).
pub fn mission_report(
    robot: &str,
    mission_id: &str,
    rev: u32,
    started_at: &str,
    ended_at: &str,
    area: f64,
) -> Value {
    let mut v = json!({
        "schema": 1,
        "robotId": robot,
        "missionId": mission_id,
        "rev": rev,
        "status": if rev >= 2 { "completed" } else { "running" },
        "startedAt": started_at,
        "areaM2": area,
        "durationS": if rev >= 2 { 600 } else { 0 },
        "battery": { "start": 100, "end": if rev >= 2 { 64 } else { 100 } },
        "errors": []
    });
    if rev >= 2 {
        v["endedAt"] = json!(ended_at);
    }
    v
}

/// The Basic Ingest topic of mission reports.
pub fn mission_topic(robot: &str) -> String {
    format!("$aws/rules/mission_reports/robots/{robot}/missions")
}

/// The classic shadow update topic.
pub fn shadow_topic(robot: &str) -> String {
    format!("$aws/things/{robot}/shadow/update")
}

fn now_rfc3339() -> String {
    fleet_core::timefmt::format_rfc3339(
        time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
    )
}

/// Runs `robots` demo robots against `broker` until `shutdown` turns true.
pub async fn run_demo(
    broker: BrokerAddr,
    robots: u64,
    counters: Arc<DemoCounters>,
    shutdown: watch::Receiver<bool>,
) {
    let mut tasks = Vec::new();
    for k in 1..=robots.max(1) {
        let url = broker.clone();
        let counters = counters.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            robot(url, k, counters, shutdown).await
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn robot(
    url: BrokerAddr,
    k: u64,
    counters: Arc<DemoCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = robot_id(k);
    let opts = fleet_iot::broker::mqtt_options(&url, &id);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let driver = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let publish = |topic: String, payload: Vec<u8>, what: &'static str| {
        let client = client.clone();
        let counters = counters.clone();
        async move {
            let counter = if what == "mission" {
                &counters.mission_reports
            } else {
                &counters.shadow_updates
            };
            match client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
            {
                Ok(()) => counter.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.errors.fetch_add(1, Ordering::Relaxed),
            };
        }
    };
    // Spread the robots over the first seconds.
    tokio::time::sleep(Duration::from_millis(150 * (k % 20))).await;
    let mut battery: i64 = 100;
    let mut round: u64 = 0;
    let mut open_mission: Option<(String, String)> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        battery = if battery <= 15 { 100 } else { battery - 3 };
        let status = if open_mission.is_some() {
            "cleaning"
        } else {
            "docked"
        };
        let shadow = json!({"state": {"reported": {"battery": battery, "status": status, "firmware": "1.4.2"}}});
        publish(shadow_topic(&id), shadow.to_string().into_bytes(), "shadow").await;

        // A mission every few rounds: rev 1 when it starts, rev 2 when it ends.
        match open_mission.take() {
            Some((mission, started)) => {
                let report =
                    mission_report(&id, &mission, 2, &started, &now_rfc3339(), 20.0 + k as f64);
                let bytes = report.to_string().into_bytes();
                publish(mission_topic(&id), bytes.clone(), "mission").await;
                if k == 1 && round < 3 {
                    // A duplicate, as QoS 0 retries produce.
                    publish(mission_topic(&id), bytes, "mission").await;
                }
            }
            None if round.is_multiple_of(3) => {
                let mission = ulid::Ulid::new().to_string();
                let started = now_rfc3339();
                let report = mission_report(&id, &mission, 1, &started, &started, 0.0);
                publish(
                    mission_topic(&id),
                    report.to_string().into_bytes(),
                    "mission",
                )
                .await;
                open_mission = Some((mission, started));
            }
            None => {}
        }
        if k == 1 && round == 0 {
            // A malformed report: it must end up in the rejects queue, not crash a batch.
            publish(
                mission_topic(&id),
                b"{\"schema\":1,\"robotId\":".to_vec(),
                "mission",
            )
            .await;
        }
        round += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => {}
        }
    }
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    driver.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_mission_reports_follow_the_contract() {
        let r1 = mission_report(
            "rb-demo-000001",
            "01JD3Z8Q5K6M7N8P9R0S1T2V3W",
            1,
            "2026-11-24T10:00:00Z",
            "2026-11-24T10:00:00Z",
            0.0,
        );
        let parsed =
            fleet_core::MissionReport::from_record(r1.to_string().as_bytes(), "rb-demo-000001");
        assert!(parsed.is_ok(), "{parsed:?}");
        let r2 = mission_report(
            "rb-demo-000001",
            "01JD3Z8Q5K6M7N8P9R0S1T2V3W",
            2,
            "2026-11-24T10:00:00Z",
            "2026-11-24T10:10:00Z",
            12.0,
        );
        let parsed =
            fleet_core::MissionReport::from_record(r2.to_string().as_bytes(), "rb-demo-000001");
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn topics_are_the_iot_core_ones() {
        assert_eq!(
            mission_topic("rb-1"),
            "$aws/rules/mission_reports/robots/rb-1/missions"
        );
        assert_eq!(shadow_topic("rb-1"), "$aws/things/rb-1/shadow/update");
    }
}
