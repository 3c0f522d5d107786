//! End to end: `robofleet reindex` under load. Simulated robots keep publishing shadow updates
//! through the local stack while the robots index is rebuilt from the thing registry and the
//! shadows into `<alias>-v2` and the alias is swapped to it. Afterwards the simulator's own
//! verification reads every robot through the alias, which is the new index: each must be at
//! the last version its shadow reached.
//!
//! Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use fleet_ops::reindex::{Clients, ReindexArgs};
use fleet_sim::{Progress, SimArgs};

mod common;
use common::root;

/// The reindex's clients on `stack`: its front, its IoT Data Plane, its OpenSearch endpoint.
fn clients(stack: &fleet_local::dev::RunningStack, iot: &aws_sdk_iot::Client) -> Clients {
    let shadows = aws_sdk_iotdataplane::config::Builder::from(&stack.sdk)
        .endpoint_url(&stack.endpoints.iot_data)
        .build();
    Clients {
        opensearch_endpoint: stack.endpoints.opensearch.clone(),
        iot: iot.clone(),
        shadows: aws_sdk_iotdataplane::Client::from_conf(shadows),
        sdk: stack.sdk.clone(),
    }
}

/// `robofleet reindex --alias ALIAS --rate RATE --state STATE`.
fn args(alias: &str, rate: f64, state: &Path) -> ReindexArgs {
    ReindexArgs {
        opensearch_endpoint: None,
        alias: alias.to_string(),
        rate,
        state: Some(state.to_path_buf()),
        iot_data_endpoint: None,
        json: None,
        force: false,
    }
}

/// Runs the reindex with the repository's index template.
async fn reindex(
    clients: &Clients,
    args: &ReindexArgs,
) -> Result<fleet_ops::reindex::ReindexReport, fleet_ops::reindex::ReindexError> {
    fleet_ops::reindex::run(
        args,
        clients,
        &root().join("opensearch/robots-template.json"),
        &fleet_console::Progress::Silent,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reindex_under_load_leaves_every_robot_at_its_last_version_in_the_new_index() {
    let (stack, name, logs) = common::stack("e2e-reindex").await;
    let alias = stack.resources.opensearch.alias.clone();

    // The thing registry the reindex walks: one thing per simulated robot (as `robofleet sim
    // provision` does on IoT Core).
    let robots = 24u64;
    let prefix = format!("{name}-rb");
    let iot = aws_sdk_iot::Client::new(&stack.sdk);
    for k in 0..robots {
        iot.create_thing()
            .thing_name(fleet_sim::args::robot_id(&prefix, k))
            .send()
            .await
            .unwrap();
    }

    let targets = common::targets(&stack);
    let sim = SimArgs::from_flags([
        "--mode",
        "steady",
        "--robots",
        &robots.to_string(),
        "--rate",
        "12",
        "--duration",
        "30s",
        "--mission-share",
        "0",
        "--commands",
        "0",
        "--prefix",
        &prefix,
        "--verify",
        "--grace",
        "90s",
    ])
    .unwrap();
    let fleet = fleet_sim::run(sim, targets, Progress::Silent);

    let state = logs.path().join("reindex-state.json");
    let rebuild = async {
        // The robots connect and publish for a while first, so the old index has their shadows.
        tokio::time::sleep(Duration::from_secs(8)).await;
        reindex(&clients(&stack, &iot), &args(&alias, 200.0, &state))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (report, rebuilt) = tokio::join!(fleet, rebuild);
    let report = report.unwrap();
    println!("{}\n{}", report.summary(), rebuilt.to_text());

    assert_eq!(
        rebuilt.source.as_deref(),
        Some(format!("{alias}-v1").as_str())
    );
    assert_eq!(rebuilt.target, format!("{alias}-v2"));
    // The registry is the account's (other tests' things are in the shared stand-in too, with no
    // shadow in this stack): every thing is walked, and each of these robots has its shadow.
    assert!(rebuilt.things >= robots, "{rebuilt:?}");
    assert_eq!(rebuilt.shadows, robots, "one classic shadow per robot");
    // The alias names the new index only, and the state file says done.
    let os = fleet_aws::OpenSearchHttp::from_sdk(&stack.sdk, &stack.endpoints.opensearch);
    assert_eq!(
        fleet_testkit::alias_indices(&os, &alias).await,
        vec![rebuilt.target.clone()]
    );
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["phase"], "done");
    // Every robot at its last shadow version, read through the alias: nothing lost across the
    // swap while the robots kept publishing.
    assert!(report.published.shadow_updates > robots, "{report:?}");
    assert_eq!(report.stale_robots, 0, "{}", report.summary());
    assert_eq!(report.stored.robots_indexed, Some(robots));
    assert!(report.passed(), "{}", report.summary());
    // Each robot has a summary in the new index for the fleet search.
    let count = os
        .call(
            reqwest::Method::POST,
            &format!("/{}/_count", rebuilt.target),
            Some(&serde_json::json!({"query": {"term": {"docType": "robot"}}})),
        )
        .await
        .unwrap()
        .json();
    assert_eq!(count["count"], robots, "{count}");

    // A registry that no longer lists half the robots: the next rebuild (v3) stops before the
    // swap instead of shrinking the index, and the alias stays on v2.
    for k in 0..robots / 2 {
        iot.delete_thing()
            .thing_name(fleet_sim::args::robot_id(&prefix, k))
            .send()
            .await
            .unwrap();
    }
    let err = reindex(&clients(&stack, &iot), &args(&alias, 200.0, &state))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--force") && err.contains("v3"), "{err}");
    assert_eq!(
        fleet_testkit::alias_indices(&os, &alias).await,
        vec![rebuilt.target.clone()]
    );
    // Run again with --force: the state file resumes the same rebuild (v3, not a v4), which
    // now swaps in.
    let mut forced = args(&alias, 200.0, &state);
    forced.force = true;
    let resumed = reindex(&clients(&stack, &iot), &forced).await.unwrap();
    assert_eq!(resumed.target, format!("{alias}-v3"));
    assert_eq!(resumed.source, Some(rebuilt.target.clone()));
    assert_eq!(
        fleet_testkit::alias_indices(&os, &alias).await,
        vec![resumed.target.clone()]
    );
    stack.shutdown().await;
}

/// Not a test: the throughput of `robofleet reindex` over `BENCH_ROBOTS` (default 1,000) robots
/// with a classic shadow each and no live load, at `BENCH_REINDEX_RATE` reads/s (default
/// 5,000, that is unpaced here). Writes `target/bench/reindex.json`.
/// `cargo test -p robofleet-e2e --test reindex_e2e -- --ignored --nocapture` after
/// `source tools/dev-env.sh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: reindex throughput"]
async fn bench_reindex_throughput() {
    use futures::StreamExt as _;
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let robots = env("BENCH_ROBOTS", 1000.0) as u64;
    let (stack, name, logs) = common::stack("bench-reindex").await;
    let iot = aws_sdk_iot::Client::new(&stack.sdk);
    let shadows = clients(&stack, &iot).shadows;
    let t = std::time::Instant::now();
    futures::stream::iter(0..robots)
        .map(|k| {
            let (iot, shadows) = (iot.clone(), shadows.clone());
            let thing = format!("{name}-rb-{k:06}");
            async move {
                iot.create_thing().thing_name(&thing).send().await.unwrap();
                let body = serde_json::json!({"state": {"reported": {"battery": k % 100, "status": "docked", "firmware": "3.4.2"}}});
                shadows
                    .update_thing_shadow()
                    .thing_name(&thing)
                    .payload(aws_sdk_iotdataplane::primitives::Blob::new(body.to_string()))
                    .send()
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!(
        "{robots} things and shadows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(stack.wait_drained(Duration::from_secs(300)).await);
    let rate = env("BENCH_REINDEX_RATE", 5000.0);
    let state = logs.path().join("state.json");
    let report = reindex(
        &clients(&stack, &iot),
        &args(&stack.resources.opensearch.alias, rate, &state),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", report.to_text());
    assert_eq!(report.shadows, robots);
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("reindex.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    stack.shutdown().await;
}
