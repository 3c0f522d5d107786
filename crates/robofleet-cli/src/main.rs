//! `robofleet`: the operator's command line. One subcommand per job; each is a thin call into
//! the library crate that does the work.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "robofleet", version, about = "Robofleet: local stack, fleet simulator and operations tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
