//! fleet-sim: the fleet simulator behind `robofleet sim`.
//!
//! Virtual robots connect as real MQTT sessions (rumqttc, client id = thing name) to the local
//! stack's broker, any broker URL, or AWS IoT Core with mutual TLS; they behave like robots of
//! docs/architecture.md §2 (reported shadow state, desired-state commands, mission reports rev 1 and rev 2
//! on Basic Ingest at QoS 0) following a traffic shape, with faults injected on purpose. With
//! `--verify` the simulator then reads DynamoDB, OpenSearch and the rejects queue and accounts for
//! every message it handed to the broker.
//!
//! Layout:
//! - [`args`]: [`SimArgs`] (clap), [`Targets`], [`MqttTarget`], `--shard i/n`.
//! - [`shape`]: the traffic shapes (day, Christmas morning, steady) as a seeded, pure [`shape::Plan`].
//! - [`payload`]: topics, mission reports, shadow updates, malformed payloads.
//! - [`faults`]: duplicate, reorder, malformed and disconnect injection.
//! - [`mqtt`]: per-robot session options (mutual TLS, ALPN on 443), CONNECT pacing, eventloop driver.
//! - [`robot`]: one robot's life: plan, state, commands, and its [`ledger::RobotLedger`].
//! - [`verify`]: reading the stores back; latency probes.
//! - [`cost`]: the plan and IoT Core cost estimate printed before a run.
//! - [`cleanup`]: deleting test things and certificates from AWS IoT.
//! - [`report`]: [`SimReport`], the summary and the JSON report.
//!
//! [`run`] ties them together and is what both `robofleet sim` and `robofleet dev` call.

pub mod args;
pub mod cleanup;
pub mod cost;
pub mod error;
pub mod faults;
pub mod ledger;
pub mod mqtt;
pub mod payload;
pub mod provision;
pub mod quota;
pub mod report;
pub mod robot;
pub mod session;
pub mod shape;
pub mod verify;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fleet_console::{ProgressLine, Rate};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use args::{Mode, MqttTarget, Shard, SimArgs, TargetArgs, Targets, TlsTarget};
pub use error::SimError;
pub use fleet_console::Progress;
pub use report::SimReport;

use crate::faults::FaultConfig;
use crate::ledger::RobotLedger;
use crate::mqtt::{ConnectLimiter, SessionFactory};
use crate::robot::{LiveStats, Shared, SimClock};
use crate::verify::Verifier;

fn fault_config(args: &SimArgs) -> FaultConfig {
    FaultConfig {
        duplicate: args.duplicates / 100.0,
        reorder: args.reorders / 100.0,
        malformed: args.malformed / 100.0,
        malformed_kinds: args.malformed_kinds.clone(),
        disconnect: args.disconnects / 100.0,
    }
}

fn progress_task(
    progress: Progress,
    shared: Arc<Shared>,
    robots: u64,
    end: Instant,
    mut done: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut line = ProgressLine::new(progress);
        let mut rate = Rate::new(Duration::from_secs(5));
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = done.changed() => break,
            }
            let live = &shared.live;
            let published = live.published.load(Ordering::Relaxed);
            let per_s = rate.sample(started.elapsed().as_secs_f64(), published);
            let left = end.saturating_duration_since(Instant::now()).as_secs();
            line.update(format!(
                "sim: {}/{} robots connected, {:.0} msg/s, {} missions in flight, {} published, {}s left",
                live.connected.load(Ordering::Relaxed),
                robots,
                per_s,
                live.in_flight.load(Ordering::Relaxed),
                published,
                left
            ));
        }
        line.finish();
    })
}

/// Runs the simulator: plan, guard rails, connect, traffic, verification, report.
///
/// Returns the report whether or not the run passed ([`SimReport::passed`]); an `Err` means the
/// run could not be carried out at all. `--report FILE` is written here.
pub async fn run(
    args: SimArgs,
    targets: Targets,
    progress: Progress,
) -> Result<SimReport, SimError> {
    args.validate()?;
    let today = time::OffsetDateTime::now_utc().date();
    let plan = shape::plan(&args, today)?;
    // Against IoT Core: the account's CONNECT quota of the endpoint's region, one CONNECT a
    // second per client id, 100 publishes a second per connection.
    let iot_region = targets.mqtt.is_aws().then(|| {
        quota::region_of_endpoint(&targets.mqtt.host)
            .map(str::to_string)
            .or_else(|| targets.aws.region.clone())
            .unwrap_or_else(|| "us-east-1".into())
    });
    let fleet_rate =
        quota::connect_rate(args.connect_rate, iot_region.as_deref(), args.connect_quota)?;
    if iot_region.is_some() && args.mode == Mode::Steady {
        let per_robot = args.rate / args.robots.max(1) as f64 * (1.0 + args.duplicates / 100.0);
        if per_robot > quota::PUBLISHES_PER_CONNECTION_PER_S {
            return Err(SimError::arg(
                "--rate",
                format!(
                    "{per_robot:.0} publishes/s per robot is above IoT Core's {} per connection; use more robots or a lower rate",
                    quota::PUBLISHES_PER_CONNECTION_PER_S
                ),
            ));
        }
    }
    let shard_rate = fleet_rate / args.shard.count as f64;
    let share = plan.mission_reports() as f64 / plan.publishes().max(1) as f64;
    let fault_extra =
        args.duplicates / 100.0 + (args.malformed + args.reorders / 2.0) / 100.0 * share;
    let estimate = cost::estimate(&plan, shard_rate, fault_extra);
    progress.say(&estimate.to_string());
    if let Some(existing) = plan.existing_robots {
        progress.say(&format!(
            "      christmas morning: {existing} robots in service, {} brand-new robots activate 07:00-11:00 ET",
            args.robots - existing
        ));
    }

    let mut report = SimReport {
        robots: plan.robots.len() as u64,
        fleet_robots: args.robots,
        shard: format!("{}/{}", args.shard.index, args.shard.count),
        mode: format!("{:?}", args.mode).to_lowercase(),
        broker: targets.mqtt.display(),
        plan: Some(estimate.clone()),
        ..Default::default()
    };
    if args.dry_run {
        return Ok(report);
    }
    if targets.mqtt.is_aws() && !args.allow_aws {
        return Err(SimError::AwsNotAllowed {
            endpoint: targets.mqtt.host.clone(),
            robots: estimate.robots,
            cost: estimate.cost_usd,
        });
    }
    if args.verify && targets.missions_table.is_none() && targets.opensearch_url.is_none() {
        return Err(SimError::VerifyTarget {
            what: "--missions-table or --opensearch-url",
        });
    }

    // One socket per robot: say how many fit before connecting any.
    let open_files = mqtt::check_open_files(report.robots)?;
    progress.say(&format!(
        "      open files: limit {open_files}, room for {} robots ({} in this shard)",
        mqtt::robots_that_fit(open_files),
        report.robots
    ));
    let sessions = SessionFactory::new(targets.mqtt.clone())?;
    // Fail fast on missing certificates rather than after the first thousand connects.
    if let Some(first) = plan.robots.first() {
        sessions.options(&args.robot_id(first.k))?;
    }
    let verifier = if args.verify {
        Some(Verifier::new(&targets).await?)
    } else {
        None
    };
    let (sample_tx, sample_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let initial = plan.robots.iter().filter(|r| r.connect_at_s <= 0.0).count() as f64;
    let connect_phase = Duration::from_secs_f64(initial / shard_rate * 1.1 + 1.0);
    let run_started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let clock = SimClock {
        real_start: Instant::now() + connect_phase,
        sim_start: plan.start,
        compression: plan.compression,
    };
    let shared = Arc::new(Shared {
        sessions,
        limiter: ConnectLimiter::new(shard_rate),
        clock,
        faults: fault_config(&args),
        live: LiveStats::default(),
        samples: verifier.as_ref().map(|_| sample_tx),
        sample_every: args.latency_every,
        seed: args.seed,
        length_s: plan.length_s,
        stop: stop_rx,
    });
    let sampler = verifier
        .as_ref()
        .filter(|_| args.latency_every > 0)
        .map(|v| {
            tokio::spawn(verify::run_sampler(
                v.clone(),
                sample_rx,
                args.grace + Duration::from_secs(30),
            ))
        });

    let traffic_end = clock.instant(plan.length_s);
    let (done_tx, done_rx) = watch::channel(false);
    let progress_handle = progress_task(
        progress,
        shared.clone(),
        report.robots,
        traffic_end,
        done_rx,
    );
    let ctrl_c = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!(
                    "interrupted: robots finish and disconnect; verification still runs"
                );
                let _ = stop_tx.send(true);
            }
        })
    };

    let mut commands: Vec<(f64, String, shape::CommandKind)> = plan
        .robots
        .iter()
        .filter_map(|r| r.command.map(|(t, k)| (t, args.robot_id(r.k), k)))
        .collect();
    commands.sort_by(|a, b| a.0.total_cmp(&b.0));
    let sink = if targets.mqtt.is_aws() {
        // Against IoT Core the app side is a backend calling the IoT Data Plane API on the same
        // ATS endpoint, with the operator's AWS credentials.
        let sdk = verify::sdk_config(&targets).await?;
        let conf = aws_sdk_iotdataplane::config::Builder::from(&sdk)
            .endpoint_url(format!("https://{}", targets.mqtt.host))
            .build();
        Some(robot::CommandSink::DataPlane(
            aws_sdk_iotdataplane::Client::from_conf(conf),
        ))
    } else if targets
        .mqtt
        .tls
        .as_ref()
        .is_some_and(|t| t.certs_dir.is_some())
    {
        // A private TLS broker with per-robot certificates: the app has no identity there.
        None
    } else {
        Some(robot::CommandSink::Mqtt {
            client_id: format!("{}-app-{}", args.prefix, args.shard.index),
        })
    };
    let controller =
        sink.map(|sink| tokio::spawn(robot::run_controller(commands, shared.clone(), sink)));

    let mut tasks = tokio::task::JoinSet::new();
    for r in plan.robots.iter().cloned() {
        let id = args.robot_id(r.k);
        tasks.spawn(robot::run_robot(r, id, shared.clone()));
    }
    let traffic_started = Instant::now();
    let mut ledgers: Vec<RobotLedger> = Vec::with_capacity(plan.robots.len());
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(l) => ledgers.push(l),
            Err(e) => tracing::error!(error = %e, "a robot task failed"),
        }
    }
    let (commands_sent, _) = match controller {
        Some(h) => h.await.unwrap_or((0, 0)),
        None => (0, 0),
    };
    let traffic_done = Instant::now();
    ctrl_c.abort();
    let _ = done_tx.send(true);
    let _ = progress_handle.await;
    // The live line's counter is the summary's: one count of what was flushed.
    let flushed = shared.live.published.load(Ordering::Relaxed);
    report.connections.peak_connects_per_s = shared.limiter.admitted.peak();
    report.connections.connect_limit_per_s = shard_rate;
    drop(shared);

    // What was handed over.
    let p = &mut report.published;
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for l in &ledgers {
        p.missions += l.expected_missions() as u64;
        p.mission_reports += l.mission_reports;
        p.shadow_updates += l.shadow_updates;
        p.shadow_gets += l.shadow_gets;
        p.duplicates += l.duplicates;
        p.reorders += l.reorders;
        p.malformed += l.malformed_total();
        for (k, v) in &l.malformed {
            *by_kind.entry(k.as_str().to_string()).or_default() += v;
        }
        p.commands_handled += l.commands_handled;
        p.disconnects += l.disconnects;
        p.unexpected_disconnects += l.unexpected_disconnects;
        p.unflushed += l.unflushed;
        report.connections.connects += u64::from(l.connects);
        report.connections.connect_errors += u64::from(l.connect_errors);
        if l.connects > 0 {
            report.connections.robots_connected += 1;
        }
        if l.last_error.is_some() {
            report.connections.last_error = l.last_error.clone();
        }
    }
    p.malformed_by_kind = by_kind;
    p.peak_publishes_per_connection_per_s = ledgers
        .iter()
        .map(|l| l.publishes.peak())
        .max()
        .unwrap_or(0);
    p.commands = commands_sent;
    p.total = flushed;
    let kinds = p.mission_reports + p.shadow_updates + p.malformed + p.shadow_gets;
    if kinds != p.total {
        // A robot task that failed took its ledger with it; its publishes are in the counter.
        tracing::warn!(
            total = p.total,
            kinds,
            "the publishes by kind do not add up to the counter (a robot task failed)"
        );
    }
    let window_s = traffic_done
        .saturating_duration_since(clock.real_start.min(traffic_started))
        .as_secs_f64()
        .max(0.001);
    report.duration_s = plan.real_length_s();
    report.rate.published_per_s = p.total as f64 / window_s;

    if report.connections.robots_connected == 0 && report.robots > 0 {
        return Err(SimError::Connect {
            broker: targets.mqtt.display(),
            connected: 0,
            robots: report.robots,
            last_error: report.connections.last_error.clone().unwrap_or_default(),
        });
    }

    if let Some(v) = &verifier {
        verify_run(
            &args,
            v,
            &ledgers,
            run_started_ms,
            traffic_done,
            &mut report,
            progress,
        )
        .await?;
        if let Some(s) = sampler {
            report.latency_ms = s.await.unwrap_or_default();
        }
        if let Some(d) = report.drained_after_s {
            let since_first = (traffic_done - clock.real_start.min(traffic_done)).as_secs_f64() + d;
            report.rate.processed_per_s =
                Some(report.published.total as f64 / since_first.max(0.001));
        }
    }

    if args.cleanup {
        let sdk = verify::sdk_config(&targets).await?;
        let iot = aws_sdk_iot::Client::new(&sdk);
        report.cleanup = Some(cleanup::delete_things(&iot, &args.prefix).await?);
    }

    report.judge();
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|source| SimError::Report {
            path: path.clone(),
            source,
        })?;
    }
    progress.say(&report.summary());
    Ok(report)
}

async fn verify_run(
    args: &SimArgs,
    v: &Verifier,
    ledgers: &[RobotLedger],
    run_started_ms: u64,
    traffic_done: Instant,
    report: &mut SimReport,
    progress: Progress,
) -> Result<(), SimError> {
    report.verified = true;
    report.checked = report::Checked {
        missions: v.has_missions(),
        robots_index: v.has_index(),
        rejects: v.has_rejects(),
    };
    let deadline = traffic_done + args.grace;
    let all: Vec<&RobotLedger> = ledgers.iter().collect();
    let mut pending_missions: Vec<&RobotLedger> = all.clone();
    let mut pending_robots: Vec<&RobotLedger> = all.clone();
    let mut drained_at = None;
    progress.say(&format!(
        "verifying: waiting up to {:.0} s for the pipeline to drain",
        args.grace.as_secs_f64()
    ));
    loop {
        if v.has_missions() && !pending_missions.is_empty() {
            let stored = v.missions_stored(&pending_missions).await?;
            pending_missions = pending_missions
                .into_iter()
                .zip(stored)
                .filter(|(_, complete)| !complete)
                .map(|(l, _)| l)
                .collect();
        } else if !v.has_missions() {
            pending_missions.clear();
        }
        if v.has_index() && !pending_robots.is_empty() {
            let (_, stale) = v.robots(&pending_robots).await?;
            let stale: HashSet<String> = stale.into_iter().collect();
            pending_robots.retain(|l| stale.contains(&l.robot));
        } else if !v.has_index() {
            pending_robots.clear();
        }
        if pending_missions.is_empty() && pending_robots.is_empty() {
            drained_at = Some(Instant::now());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.drained_after_s = drained_at.map(|t| (t - traffic_done).as_secs_f64());

    // Final full pass: the numbers in the report.
    if v.has_missions() {
        let mut total = verify::MissionCounts::default();
        for c in v.missions(&all, run_started_ms).await? {
            total.add(&c);
        }
        report.lost = total.lost;
        report.lost_revs = total.lost_revs;
        report.extra = total.extra;
        report.stored.missions = Some(total.stored);
        report.missions = Some(total);
    }
    if v.has_index() {
        let (c, _) = v.robots(&all).await?;
        report.stale_robots = c.stale;
        report.stored.robots_indexed = Some(c.indexed);
        report.robots_index = Some(c);
    }
    if report.drained_after_s.is_none()
        && report.lost == 0
        && report.lost_revs == 0
        && report.stale_robots == 0
    {
        // Drained just after the grace period, during the final pass: an upper bound.
        report.drained_after_s = Some((Instant::now() - traffic_done).as_secs_f64());
    }
    if v.has_rejects() {
        let robots: HashSet<String> = ledgers.iter().map(|l| l.robot.clone()).collect();
        let expected = report.published.malformed;
        let reject_deadline = deadline.max(Instant::now() + Duration::from_secs(3));
        report.rejects = Some(
            v.rejects(&robots, expected, reject_deadline, args.drain_rejects)
                .await?,
        );
    }
    Ok(())
}
