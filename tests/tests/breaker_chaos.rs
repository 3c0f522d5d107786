//! Chaos: the OpenSearch cluster freezes (SIGSTOP) under a running pipeline with the fleet
//! simulator at a steady rate, and thaws again. With the circuit breaker on (make test):
//!
//! 1. the breaker opens within its configured failures;
//! 2. the shadows mapping is paused; invocations while open are bounded by what was in flight;
//! 3. the test fires the probe directly (not waiting for the schedule): frozen, it stays open;
//! 4. after the thaw, the probe closes it, the mapping resumes and the backlog drains;
//! 5. every robot ends at its last shadow version, and the missions path was never touched.
//!
//! `ROBOFLEET_CHAOS_BREAKER=off` runs the same scenario with every trip rule off, for the
//! comparison of `crates/fleet-breaker/bench/chaos.sh`; `ROBOFLEET_CHAOS_REPORT=<file>` writes
//! the measurements as JSON. Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleet_breaker::{DynamoStore, StateStore, Status, downstreams};
use fleet_local::dev::{self, DevOptions, RunningStack};
use fleet_sim::{MqttTarget, Progress, SimArgs, Targets};
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const SHADOWS_MAPPING: &str = "ShadowIndexerFunctionShadowsStream";
const MISSIONS_MAPPING: &str = "MissionIngestFunctionMissionsStream";

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

fn mapping(stack: &RunningStack, id: &str) -> fleet_local::dev::MappingStats {
    stack.counters().mappings[id].clone()
}

async fn until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fires the probe now, waiting first until an opening is over (jitter included).
async fn probe(stack: &RunningStack, store: &DynamoStore) -> serde_json::Value {
    let state = store.load(downstreams::ROBOTS_INDEX).await.unwrap();
    let now = fleet_breaker::breaker::now_ms();
    if state.status == Status::Open && state.open_until_ms > now {
        tokio::time::sleep(Duration::from_millis(state.open_until_ms - now + 50)).await;
    }
    stack
        .invoke(
            "BreakerProbeFunction",
            json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_cluster_opens_the_breaker_pauses_the_stream_and_loses_nothing() {
    let breaker_on = std::env::var("ROBOFLEET_CHAOS_BREAKER").map_or(true, |v| v != "off");
    let logs = tempfile::tempdir().unwrap();
    let venv = PathBuf::from(fleet_testkit::venv());
    // This test's own cluster: frozen by it alone.
    let osmem = fleet_local::standins::start_osmem(&venv, logs.path())
        .await
        .unwrap();
    let pid = osmem.process.as_ref().and_then(|p| p.pid()).unwrap();

    let name = fleet_testkit::unique_name("e2e-brk");
    let mut opts = DevOptions::new(root().join("template.yaml"), &name);
    opts.aws_endpoint = Some(fleet_testkit::aws_endpoint());
    opts.opensearch_url = Some(osmem.url.clone());
    opts.log_dir = Some(logs.path().to_path_buf());
    opts.drain = Duration::from_secs(120);
    let mut overrides = vec![
        ("BreakerBaseEjectionSeconds", "1"),
        ("BreakerProbesToClose", "2"),
    ];
    if !breaker_on {
        overrides.extend([
            ("BreakerConsecutiveFailures", "0"),
            ("BreakerRequestVolume", "0"),
        ]);
    }
    opts.parameter_overrides = overrides
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        stack.resources.tables["BreakerTable"].clone(),
    );

    let targets = Targets {
        mqtt: MqttTarget::parse_url(&stack.endpoints.mqtt).unwrap(),
        aws_endpoint: Some(stack.endpoints.aws.clone()),
        opensearch_url: Some(stack.endpoints.opensearch.clone()),
        missions_table: Some(stack.resources.tables["MissionsTable"].clone()),
        robots_alias: stack.resources.opensearch.alias.clone(),
        rejects_queue_url: stack.resources.rejects_queue_url.clone(),
        aws: Default::default(),
    };
    let args = SimArgs::from_flags([
        "--mode",
        "steady",
        "--robots",
        "20",
        "--rate",
        "40",
        "--duration",
        "45s",
        "--mission-share",
        "0.3",
        "--verify",
        "--grace",
        "180s",
        "--prefix",
        &format!("{name}-rb"),
    ])
    .unwrap();
    let sim = fleet_sim::run(args, targets, Progress::Silent);
    // The chaos runs beside the simulator, which publishes for 45 s and then verifies.
    let chaos = async {
        // Normal traffic first.
        until(
            "the first robots indexed",
            Duration::from_secs(60),
            async || mapping(&stack, SHADOWS_MAPPING).records_done > 20,
        )
        .await;
        let es_before = es_requests(&stack).await;
        let invocations_before = mapping(&stack, SHADOWS_MAPPING).invocations;

        // Freeze the cluster.
        signal(pid, "-STOP");
        let frozen = Instant::now();
        let mut measured = serde_json::Map::new();
        if breaker_on {
            let to_open = until("the breaker opened", Duration::from_secs(90), async || {
                store.load(downstreams::ROBOTS_INDEX).await.unwrap().status != Status::Closed
            })
            .await;
            until(
                "the shadows mapping paused",
                Duration::from_secs(30),
                async || !mapping(&stack, SHADOWS_MAPPING).enabled,
            )
            .await;
            let at_open = mapping(&stack, SHADOWS_MAPPING).invocations;
            // Open: what was in flight finishes, nothing new is invoked.
            tokio::time::sleep(Duration::from_secs(12)).await;
            let while_open = mapping(&stack, SHADOWS_MAPPING).invocations - at_open;
            // 4 local shards × ParallelizationFactor 2 batches were in flight at most.
            assert!(while_open <= 8, "{while_open} invocations while open");
            let state = store.load(downstreams::ROBOTS_INDEX).await.unwrap();
            assert!(
                state.cause.contains("consecutive failures"),
                "{}",
                state.cause
            );
            // The probe, fired now, finds the cluster still frozen: it stays open.
            let run = probe(&stack, &store).await;
            assert_eq!(run["runs"][0]["downstream"], "robots-index", "{run}");
            assert_ne!(run["runs"][0]["after"], "closed", "{run}");
            measured.insert("time_to_open_s".into(), json!(to_open.as_secs_f64()));
            measured.insert("invocations_while_open".into(), json!(while_open));
        } else {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let outage_invocations = mapping(&stack, SHADOWS_MAPPING).invocations - invocations_before;

        // Thaw it. The requests that hung on the frozen cluster complete now: the front counts
        // a request when it completes, so its count a second after the thaw is what the outage
        // sent (and at most a second of the drain).
        signal(pid, "-CONT");
        let thawed = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let es_during = es_requests(&stack).await - es_before;
        measured.insert("outage_s".into(), json!(frozen.elapsed().as_secs_f64()));
        if breaker_on {
            until(
                "the probe closed the breaker",
                Duration::from_secs(120),
                async || {
                    let run = probe(&stack, &store).await;
                    run["runs"][0]["after"] == "closed"
                        || store.load(downstreams::ROBOTS_INDEX).await.unwrap().status
                            == Status::Closed
                },
            )
            .await;
            until(
                "the shadows mapping resumed",
                Duration::from_secs(30),
                async || mapping(&stack, SHADOWS_MAPPING).enabled,
            )
            .await;
        }
        (measured, outage_invocations, es_during, thawed)
    };
    let (report, (mut measured, outage_invocations, es_during, thawed)) = tokio::join!(sim, chaos);
    let report = report.unwrap();
    println!("{}", report.summary());
    assert!(
        stack.wait_drained(Duration::from_secs(120)).await,
        "{:?}",
        stack.counters()
    );
    let drain = thawed.elapsed();

    // Nothing lost: every robot at its last shadow version, every mission stored.
    assert_eq!(report.lost, 0, "{}", report.summary());
    assert_eq!(report.lost_revs, 0, "{}", report.summary());
    assert_eq!(report.stale_robots, 0, "{}", report.summary());
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.stored.robots_indexed, Some(20));
    // The missions path was untouched: its breaker never opened, its mapping never paused.
    let missions = store.load(downstreams::MISSIONS_TABLE).await.unwrap();
    assert_eq!((missions.status, missions.version), (Status::Closed, 0));
    let m = mapping(&stack, MISSIONS_MAPPING);
    assert!(m.enabled && m.sent_to_on_failure == 0, "{m:?}");
    let s = mapping(&stack, SHADOWS_MAPPING);
    assert_eq!(s.sent_to_on_failure, 0, "{s:?}");

    measured.insert("breaker".into(), json!(breaker_on));
    measured.insert(
        "invocations_during_outage".into(),
        json!(outage_invocations),
    );
    measured.insert("opensearch_requests_during_outage".into(), json!(es_during));
    measured.insert("time_to_drain_s".into(), json!(drain.as_secs_f64()));
    measured.insert("records_lost".into(), json!(report.lost + report.lost_revs));
    measured.insert(
        "shadow_updates".into(),
        json!(report.published.shadow_updates),
    );
    let measured = serde_json::Value::Object(measured);
    println!("chaos: {measured}");
    if let Ok(path) = std::env::var("ROBOFLEET_CHAOS_REPORT") {
        std::fs::write(path, serde_json::to_vec_pretty(&measured).unwrap()).unwrap();
    }
    stack.shutdown().await;
    osmem.stop().await;
}

/// OpenSearch requests the front has seen (all stacks: exact only when the front is this
/// test's own, as in the bench script).
async fn es_requests(stack: &RunningStack) -> u64 {
    let stats = stack.front().stats().await.unwrap();
    stats["by_service"]["es"]["requests"].as_u64().unwrap_or(0)
}
