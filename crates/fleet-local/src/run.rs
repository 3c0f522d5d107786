//! `robofleet dev` as a command: start the stack, print its endpoints and write the report at
//! once, run a workload, show progress until `--duration` ends or SIGINT / SIGTERM arrives, then
//! drain, stop, print the summary and rewrite the report with it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fleet_console::parse_duration;
use tokio::sync::watch;

use crate::dev::{self, DevOptions, RunningStack};
use crate::error::DevError;
use crate::progress::{self, ProgressView};
use crate::report::{DEFAULT_REPORT, DevSummary};
use crate::workload::{self, DemoCounters};

/// What traffic `robofleet dev` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// None: the stack only serves (publish yourself, e.g. with mosquitto_pub).
    None,
    /// The built-in demo: a few robots, shadow updates, missions, one duplicate, one malformed.
    Demo,
    /// The fleet simulator (`robofleet sim`) against the stack.
    Sim,
}

/// The workload, with the simulator's flags parsed.
enum Workload {
    None,
    Demo,
    Sim(Box<fleet_sim::SimArgs>),
}

/// `robofleet dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: DevOptions,
    /// Traffic to generate.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Demo)]
    pub workload: WorkloadKind,
    /// Robots of the demo or the simulator.
    #[arg(long, default_value_t = 5)]
    pub robots: u64,
    /// Extra `robofleet sim` arguments for `--workload sim` (repeatable), e.g. --sim-arg=--mode=steady.
    #[arg(long = "sim-arg", allow_hyphen_values = true)]
    pub sim_args: Vec<String>,
    /// Stop after this long (e.g. 90s, 5m); default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// The JSON report: endpoints at start-up, the summary at exit.
    #[arg(long, default_value = DEFAULT_REPORT)]
    pub report: PathBuf,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

/// The simulator's flags: the user's `--sim-arg`s, with defaults for what they leave out
/// (`--robots`, and a steady run as long as the dev run).
pub fn sim_flags(robots: u64, duration: Option<Duration>, extra: &[String]) -> Vec<String> {
    let has = |flag: &str| {
        extra
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let mut argv = Vec::new();
    if !has("--robots") {
        argv.extend(["--robots".to_string(), robots.to_string()]);
    }
    if !has("--mode") {
        argv.extend(["--mode".to_string(), "steady".to_string()]);
    }
    if !has("--duration") {
        let secs = duration.map_or(3600, |d| d.as_secs().saturating_sub(15).max(10));
        argv.extend(["--duration".to_string(), format!("{secs}s")]);
    }
    argv.extend(extra.iter().cloned());
    argv
}

fn sim_targets(stack: &RunningStack) -> Result<fleet_sim::Targets, DevError> {
    let mqtt =
        fleet_sim::MqttTarget::parse_url(&stack.endpoints.mqtt).map_err(DevError::MqttUrl)?;
    let missions_table = stack
        .resources
        .tables
        .get("MissionsTable")
        .or_else(|| stack.resources.tables.values().next())
        .cloned();
    Ok(fleet_sim::Targets {
        mqtt,
        aws_endpoint: Some(stack.endpoints.aws.clone()),
        opensearch_url: Some(stack.endpoints.opensearch.clone()),
        missions_table,
        robots_alias: stack.resources.opensearch.alias.clone(),
        rejects_queue_url: stack.resources.rejects_queue_url.clone(),
        // The stack's region: without it the SDK's region chain would ask EC2's metadata
        // service, and log its refusal.
        aws: fleet_aws::config::AwsAccess {
            profile: None,
            region: stack.sdk.region().map(|r| r.to_string()),
        },
    })
}

async fn terminate() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    futures::future::pending::<()>().await
}

/// Runs `robofleet dev` to the end and returns its summary.
pub async fn run(args: DevArgs) -> Result<DevSummary, DevError> {
    // The simulator's flags are checked before anything starts.
    let workload = match args.workload {
        WorkloadKind::None => Workload::None,
        WorkloadKind::Demo => Workload::Demo,
        WorkloadKind::Sim => {
            let flags = sim_flags(args.robots, args.duration, &args.sim_args);
            Workload::Sim(Box::new(
                fleet_sim::SimArgs::from_flags(flags).map_err(DevError::SimArgs)?,
            ))
        }
    };
    // In-process handlers would print their EMF metric lines over the progress display.
    fleet_lambda::metrics::disable();
    println!(
        "robofleet dev: starting stack `{}` from {}",
        args.stack.stack_name,
        args.stack.template.display()
    );
    // Ctrl-C during start-up drops the half-built stack, which kills what it started.
    let mut stack = tokio::select! {
        r = dev::start(args.stack.clone()) => r?,
        _ = tokio::signal::ctrl_c() => return Err(DevError::Interrupted("interrupted during start-up")),
        _ = terminate() => return Err(DevError::Interrupted("terminated during start-up")),
    };
    stack.write_report(&args.report)?;
    let mut view = ProgressView::new(args.plain);
    view.println(&progress::endpoints_text(&stack.report(), &stack.notes));
    view.println(&format!("report: {}", args.report.display()));

    let (stop_tx, stop_rx) = watch::channel(false);
    let demo = Arc::new(DemoCounters::default());
    let mut demo_task = None;
    // The simulator's future is not `Send`: it is polled here, beside the progress ticks.
    let mut sim_fut: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<fleet_sim::SimReport, fleet_sim::SimError>>>,
    > = Box::pin(futures::future::pending());
    let mut sim_running = false;
    match workload {
        Workload::None => view.println("workload: none (publish to the broker yourself)"),
        Workload::Demo => {
            view.println(&format!("workload: demo, {} robots", args.robots));
            let mqtt = fleet_sim::MqttTarget::parse_url(&stack.endpoints.mqtt)
                .map_err(DevError::MqttUrl)?;
            let broker = fleet_iot::BrokerAddr::new(mqtt.host, mqtt.port);
            let demo = demo.clone();
            demo_task = Some(tokio::spawn(workload::run_demo(
                broker,
                args.robots,
                demo,
                stop_rx,
            )));
        }
        Workload::Sim(sim) => {
            let targets = sim_targets(&stack)?;
            // The local thing registry, so `robofleet reindex` finds the simulated robots.
            crate::provision::register_things(&stack.sdk, (0..sim.robots).map(|k| sim.robot_id(k)))
                .await?;
            view.println(&format!("workload: fleet simulator, {} robots", sim.robots));
            sim_fut = Box::pin(fleet_sim::run(*sim, targets, fleet_sim::Progress::Silent));
            sim_running = true;
        }
    }

    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let sleep_until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => futures::future::pending::<()>().await,
        }
    };
    tokio::pin!(sleep_until);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let term = terminate();
    tokio::pin!(term);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // With the simulator, the run lasts until it has published for its own --duration and
    // verified what arrived; --duration then only bounds how long the stack waits for it.
    let mut sim_failure: Option<String> = None;
    let mut duration_passed = false;
    let reason = loop {
        tokio::select! {
            _ = tick.tick() => {
                let stats = stack.stats().await;
                view.update(&stats);
            }
            r = &mut sim_fut, if sim_running => {
                sim_running = false;
                match r {
                    Ok(report) => {
                        view.println(&format!("fleet simulator finished:\n{}", report.summary()));
                        if !report.passed() {
                            sim_failure = Some("lost, extra, stale or rejects off: see the summary above".into());
                        }
                    }
                    Err(e) => {
                        view.println(&format!("fleet simulator failed: {e}"));
                        sim_failure = Some(e.to_string());
                    }
                }
                if duration_passed || args.duration.is_some() {
                    break "fleet simulator finished";
                }
            }
            _ = &mut sleep_until, if !duration_passed => {
                if sim_running {
                    duration_passed = true;
                    view.println("robofleet dev: duration reached; waiting for the fleet simulator to verify (Ctrl-C stops now)");
                    continue;
                }
                break "duration reached";
            }
            _ = &mut ctrl_c => break "interrupted (Ctrl-C)",
            _ = &mut term => break "terminated (SIGTERM)",
        }
    };
    view.finish();
    println!(
        "robofleet dev: {reason}; stopping the workload and draining the streams (Ctrl-C again to skip)"
    );
    let _ = stop_tx.send(true);
    drop(sim_fut);
    if let Some(task) = demo_task {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        println!(
            "demo workload published {} mission reports and {} shadow updates ({} errors)",
            demo.mission_reports
                .load(std::sync::atomic::Ordering::Relaxed),
            demo.shadow_updates
                .load(std::sync::atomic::Ordering::Relaxed),
            demo.errors.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    // A second Ctrl-C skips the drain: dropping the stack kills what it started.
    let summary = tokio::select! {
        s = stack.shutdown() => s,
        _ = tokio::signal::ctrl_c() => {
            println!("robofleet dev: second Ctrl-C, stopped without draining; no summary written");
            return Err(DevError::Interrupted("stopped without draining (second Ctrl-C)"));
        }
    };
    println!("{}", progress::summary_text(&summary));
    println!("report written to {}", args.report.display());
    if let Some(why) = sim_failure {
        return Err(DevError::Workload(why));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_arguments_get_defaults_the_user_did_not_give() {
        let argv = sim_flags(7, Some(Duration::from_secs(120)), &[]);
        assert_eq!(
            argv,
            ["--robots", "7", "--mode", "steady", "--duration", "105s"]
        );
        let argv = sim_flags(
            7,
            None,
            &["--mode=day".into(), "--robots".into(), "50".into()],
        );
        assert_eq!(
            argv,
            ["--duration", "3600s", "--mode=day", "--robots", "50"]
        );
        assert!(fleet_sim::SimArgs::from_flags(sim_flags(3, None, &[])).is_ok());
    }

    #[test]
    fn dev_args_parse_like_the_cli() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            dev: DevArgs,
        }
        let cli = Cli::try_parse_from([
            "dev",
            "--stack-name",
            "s1",
            "--aws-endpoint",
            "http://127.0.0.1:1",
            "--workload",
            "none",
            "--duration",
            "90s",
            "--invoke",
            "watch",
            "--parameter-override",
            "StreamMode=PROVISIONED",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.dev.stack.stack_name, "s1");
        assert_eq!(cli.dev.workload, WorkloadKind::None);
        assert_eq!(cli.dev.duration, Some(Duration::from_secs(90)));
        assert_eq!(cli.dev.stack.invoke, crate::dev::InvokeMode::Watch);
        assert_eq!(
            cli.dev.stack.parameter_overrides,
            vec![("StreamMode".to_string(), "PROVISIONED".to_string())]
        );
    }
}
