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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim(args),
    }
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
