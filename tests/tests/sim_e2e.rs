//! End to end: `robofleet sim` against the local stack (`fleet_local::dev::start` on the shared
//! moto / osmem stand-ins, a fresh stack name per test). A small fleet runs with duplicates,
//! reorders, malformed payloads and abrupt disconnects on; verification must find nothing lost,
//! nothing extra, no stale robot, and exactly the injected rejects.
//!
//! Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet_local::dev::{self, DevOptions};
use fleet_sim::{MqttTarget, Progress, SimArgs, Targets};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sim_args(args: &[&str]) -> SimArgs {
    SimArgs::from_flags(args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_fleet_with_faults_verifies_exactly_once() {
    let logs = tempfile::tempdir().unwrap();
    let name = fleet_testkit::unique_name("e2e-sim");
    let mut opts = DevOptions::new(root().join("template.yaml"), &name);
    opts.aws_endpoint = Some(fleet_testkit::aws_endpoint());
    opts.log_dir = Some(logs.path().to_path_buf());
    opts.drain = Duration::from_secs(60);
    let stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));

    let targets = Targets {
        mqtt: MqttTarget::parse_url(&stack.endpoints.mqtt).unwrap(),
        aws_endpoint: Some(stack.endpoints.aws.clone()),
        opensearch_url: Some(stack.endpoints.opensearch.clone()),
        missions_table: Some(stack.resources.tables["MissionsTable"].clone()),
        robots_alias: stack.resources.opensearch.alias.clone(),
        rejects_queue_url: stack.resources.rejects_queue_url.clone(),
        aws: Default::default(),
    };
    assert!(
        targets.rejects_queue_url.is_some(),
        "the stack must name its rejects queue"
    );
    let report_file = logs.path().join("sim-report.json");
    let args = sim_args(&[
        "--mode",
        "steady",
        "--robots",
        "10",
        "--rate",
        "30",
        "--duration",
        "10s",
        "--mission-share",
        "0.4",
        "--duplicates",
        "10",
        "--reorders",
        "40",
        "--malformed",
        "10",
        "--disconnects",
        "60",
        "--verify",
        "--grace",
        "120s",
        "--latency-every",
        "5",
        "--prefix",
        &format!("{name}-rb"),
        "--report",
        report_file.to_str().unwrap(),
    ]);
    let report = fleet_sim::run(args, targets, Progress::Silent)
        .await
        .unwrap();
    println!("{}", report.summary());

    let p = &report.published;
    assert_eq!(report.connections.robots_connected, 10);
    assert!(p.missions > 0 && p.shadow_updates > 0, "{p:?}");
    assert!(
        p.duplicates > 0 && p.reorders > 0 && p.malformed > 0 && p.disconnects > 0,
        "{p:?}"
    );
    // Every robot reconnected after its injected drop.
    assert_eq!(report.connections.connects, 10 + p.disconnects);
    assert_eq!(report.lost, 0, "{}", report.summary());
    assert_eq!(report.lost_revs, 0, "{}", report.summary());
    assert_eq!(report.extra, 0, "{}", report.summary());
    assert_eq!(report.stale_robots, 0, "{}", report.summary());
    assert_eq!(report.stored.missions, Some(p.missions));
    assert_eq!(report.stored.robots_indexed, Some(10));
    let rejects = report.rejects.clone().unwrap();
    assert_eq!(rejects.found, p.malformed, "{rejects:?}");
    for (kind, n) in &p.malformed_by_kind {
        assert_eq!(rejects.by_kind.get(kind), Some(n), "{kind}: {rejects:?}");
    }
    assert!(report.latency_ms.samples > 0);
    assert_eq!(report.latency_ms.timed_out, 0, "{:?}", report.latency_ms);
    assert!(report.passed(), "{}", report.summary());
    // The JSON report is on disk with the documented fields.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(json["lost"], 0);
    assert_eq!(json["published"]["missions"], p.missions);
    stack.shutdown().await;
}

/// Not a test: holds a local stack up for `crates/fleet-sim/bench/pipeline.sh`, which drives it
/// with `robofleet sim` at increasing rates from another process and measures every process's
/// CPU. Writes the stack's targets to `$BENCH_STACK_FILE` and stops when `$BENCH_STOP_FILE`
/// appears (or after `$BENCH_HOLD_SECS`, default 3600). `$BENCH_MQTT_URL` puts the broker in its
/// own process (mosquitto) so its CPU can be measured apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark helper, run by crates/fleet-sim/bench/pipeline.sh"]
async fn bench_hold_stack() {
    let file = std::env::var("BENCH_STACK_FILE").expect("BENCH_STACK_FILE");
    let stop = std::env::var("BENCH_STOP_FILE").expect("BENCH_STOP_FILE");
    let hold: u64 = std::env::var("BENCH_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let logs = tempfile::tempdir().unwrap();
    let name = fleet_testkit::unique_name("bench");
    let mut opts = DevOptions::new(root().join("template.yaml"), &name);
    opts.aws_endpoint = Some(fleet_testkit::aws_endpoint());
    opts.mqtt_url = std::env::var("BENCH_MQTT_URL").ok();
    opts.log_dir = Some(logs.path().to_path_buf());
    let stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));
    let targets = serde_json::json!({
        "mqtt": stack.endpoints.mqtt,
        "aws": stack.endpoints.aws,
        "opensearch": stack.endpoints.opensearch,
        "table": stack.resources.tables["MissionsTable"],
        "alias": stack.resources.opensearch.alias,
        "rejects": stack.resources.rejects_queue_url,
        "pid": std::process::id(),
    });
    std::fs::write(&file, targets.to_string()).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(hold);
    while std::time::Instant::now() < until && !Path::new(&stop).exists() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s = stack.counters();
    println!("stack counters at the end: {s:?}");
    stack.shutdown().await;
}
