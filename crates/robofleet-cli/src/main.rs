//! `robofleet`: the operator's command line. One subcommand per job; each is a thin call into
//! the library crate that does the work.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "robofleet",
    version,
    about = "Robofleet: local stack, fleet simulator and operations tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a fleet over real MQTT sessions, inject faults, verify everything arrived once.
    Sim(fleet_sim::SimArgs),
    /// Run the whole pipeline on this machine from template.yaml (stand-ins, broker, rules,
    /// shadows, event source mappings, schedules), with a workload and live progress.
    Dev(fleet_local::run::DevArgs),
    /// List the rejects queue, or replay chosen records into their stream after a fix.
    Rejects(fleet_local::rejects::RejectsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim(args),
        Command::Dev(args) => {
            init_logs();
            let summary = runtime()?.block_on(fleet_local::run::run(args))?;
            if summary.records_lost > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Rejects(args) => {
            init_logs();
            Ok(runtime()?.block_on(fleet_local::rejects::run(args))?)
        }
    }
}

/// Logs to stderr, `RUST_LOG` or warnings; rumqttd's router reports every client that leaves
/// as an error, so it is silenced unless asked for, and the in-process functions' per-record
/// reject lines are left to `robofleet rejects list` (the progress line counts them).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttd=off,fleet_lambda::batch=error".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// `robofleet sim`: exits 1 when verification finds lost, extra or stale data.
fn sim(args: fleet_sim::SimArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let targets = args.target.to_targets()?;
    let progress = if std::io::stderr().is_terminal() {
        fleet_sim::Progress::Bar
    } else {
        fleet_sim::Progress::Log
    };
    let report =
        tokio::runtime::Runtime::new()?.block_on(fleet_sim::run(args, targets, progress))?;
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
