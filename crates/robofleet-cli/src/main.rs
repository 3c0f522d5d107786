//! `robofleet`: the operator's command line. One subcommand per job; each is a thin call into
//! the library crate that does the work.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
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
    Sim(Box<SimCli>),
    /// Run the whole pipeline on this machine from template.yaml (stand-ins, broker, rules,
    /// shadows, event source mappings, schedules), with a workload and live progress.
    Dev(fleet_local::run::DevArgs),
    /// List the rejects queue, or replay chosen records into their stream after a fix.
    Rejects(RejectsCli),
    /// Show the circuit breakers, or hold one open or closed during an incident.
    Breaker(BreakerCli),
    /// Plan capacity and cost for a fleet: demand curves, shards or warm throughput, pre-warm
    /// rules for the stream-scaler, quotas, and the monthly bill by component.
    Plan(fleet_ops::plan::PlanArgs),
    /// Fleet jobs: run one on the local stack, or see, pause, resume and cancel one.
    Job(JobCli),
    /// One view of a stack from its outputs: streams, queues, mappings, breakers, failed
    /// batches, alarms, versions; exits 1 when something needs attention.
    Status(StatusCli),
    /// Rebuild the robots index from the thing registry and the shadows into a new index and
    /// swap the alias to it while live updates keep flowing; resumable, paced.
    Reindex(Box<ReindexCli>),
}

/// `robofleet reindex`: the tool's flags; the dev report names the local stack's endpoints.
#[derive(clap::Args)]
struct ReindexCli {
    #[command(flatten)]
    args: fleet_ops::reindex::ReindexArgs,
    /// AWS endpoint (the local stack's front); default: the dev report's, else AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    aws_endpoint: Option<String>,
    #[command(flatten)]
    aws: fleet_aws::config::AwsAccess,
    /// The index template the new index gets.
    #[arg(long, default_value = "opensearch/robots-template.json")]
    template: PathBuf,
    /// The `robofleet dev` report to take the local stack's endpoints and alias from when
    /// `--opensearch-endpoint` is not given.
    #[arg(long, default_value = fleet_local::report::DEFAULT_REPORT)]
    report: PathBuf,
}

/// `robofleet status`: the tool's flags, and the dev report that names the local stack.
#[derive(clap::Args)]
struct StatusCli {
    #[command(flatten)]
    args: fleet_ops::status::StatusArgs,
    /// The `robofleet dev` report to take the stack, endpoint and region from when `--stack` is
    /// not given (or names the local stack).
    #[arg(long, default_value = fleet_local::report::DEFAULT_REPORT)]
    report: PathBuf,
}

/// `robofleet job`: on the stack `--stack` names (its outputs), else the dev report's.
#[derive(clap::Args)]
struct JobCli {
    #[command(subcommand)]
    command: JobCommand,
    #[command(flatten)]
    target: fleet_ops::jobs::JobsTarget,
    /// The `robofleet dev` report to take the table, endpoint and region from.
    #[arg(long, global = true, default_value = fleet_local::report::DEFAULT_REPORT)]
    report: PathBuf,
}

#[derive(Subcommand)]
enum JobCommand {
    /// Upload FILE to the stack's jobs bucket, start the job on its state machine as
    /// `POST /jobs` does, and follow it to the end with progress and a summary.
    Run(fleet_ops::jobs::JobRunArgs),
    #[command(flatten)]
    Ops(fleet_ops::jobs::JobOps),
}

/// `robofleet sim`: a run (the flags), or the test robots' life cycle on IoT Core.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct SimCli {
    #[command(subcommand)]
    action: Option<SimAction>,
    #[command(flatten)]
    run: fleet_sim::SimArgs,
}

#[derive(Subcommand)]
enum SimAction {
    /// Make test robots on AWS IoT: a thing, an active certificate with the stack's robot
    /// policy, and the certificate and key files, per robot, within the control-plane rates.
    Provision(fleet_sim::provision::ProvisionArgs),
    /// Delete the things named `<prefix>-*` and the certificates only they use.
    Cleanup {
        /// Thing name prefix.
        #[arg(long, default_value = "rb")]
        prefix: String,
        /// Endpoint URL of the IoT control plane (the local stack's AWS front); unset: AWS.
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        aws_endpoint: Option<String>,
    },
}

/// `robofleet breaker`: the tool's own flags, and the dev report that names the local stack's
/// breaker table, stack and endpoint when no flag does.
#[derive(clap::Args)]
struct BreakerCli {
    #[command(flatten)]
    args: fleet_ops::breaker::BreakerArgs,
    /// The `robofleet dev` report to take the table, stack, endpoint and region from.
    #[arg(long, global = true, default_value = fleet_local::report::DEFAULT_REPORT)]
    report: PathBuf,
}

/// `robofleet rejects`: the tool's own flags, and the dev report that names the local stack's
/// queue and endpoint when no flag does.
#[derive(clap::Args)]
struct RejectsCli {
    #[command(flatten)]
    args: fleet_ops::rejects::RejectsArgs,
    /// The `robofleet dev` report to take the queue, endpoint and region from when
    /// `--queue-url` is not given.
    #[arg(long, global = true, default_value = fleet_local::report::DEFAULT_REPORT)]
    report: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(cli) => match cli.action {
            None => sim(cli.run),
            Some(action) => sim_robots(action, &cli.run.target.aws),
        },
        Command::Dev(args) => {
            init_logs();
            let summary = runtime()?.block_on(fleet_local::run::run(args))?;
            if summary.records_lost > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Rejects(cli) => {
            init_logs();
            let mut args = cli.args;
            fill_from_dev_report(&mut args.target, &cli.report)?;
            Ok(runtime()?.block_on(fleet_ops::rejects::run(args))?)
        }
        Command::Breaker(cli) => {
            init_logs();
            let mut args = cli.args;
            fill_breaker_from_dev_report(&mut args.target, &cli.report)?;
            Ok(runtime()?.block_on(fleet_ops::breaker::run(args))?)
        }
        Command::Job(cli) => {
            init_logs();
            job(cli)
        }
        Command::Status(cli) => {
            init_logs();
            let mut args = cli.args;
            if let Ok(report) = fleet_local::report::DevReport::read(&cli.report)
                && args.stack.as_deref().is_none_or(|s| s == report.stack_name)
            {
                args.stack.get_or_insert(report.stack_name.clone());
                fill_endpoint_and_region(&mut args.aws_endpoint, &mut args.aws.region, &report);
            }
            if !runtime()?.block_on(fleet_ops::status::run(args))? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Reindex(cli) => reindex(*cli),
        Command::Plan(args) => {
            if args.print_input {
                print!(
                    "{}",
                    fleet_ops::plan::input_toml(&fleet_ops::plan::input(&args)?)
                );
                return Ok(());
            }
            let plan = fleet_ops::plan::run(&args)?;
            if args.json.as_deref() == Some(Path::new("-")) {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", plan.to_text());
                if let Some(chart) = &args.chart {
                    println!("\nchart: {}", chart.display());
                }
            }
            Ok(())
        }
    }
}

/// `robofleet reindex`.
fn reindex(mut cli: ReindexCli) -> anyhow::Result<()> {
    init_logs();
    if cli.args.opensearch_endpoint.is_none()
        && let Ok(report) = fleet_local::report::DevReport::read(&cli.report)
    {
        fill_endpoint_and_region(&mut cli.aws_endpoint, &mut cli.aws.region, &report);
        cli.args.opensearch_endpoint = Some(report.endpoints.opensearch.clone());
        cli.args
            .iot_data_endpoint
            .get_or_insert(report.endpoints.iot_data.clone());
        if cli.args.alias == "robots" && !report.resources.opensearch.alias.is_empty() {
            cli.args.alias = report.resources.opensearch.alias.clone();
        }
    }
    let endpoint = cli.args.opensearch_endpoint.clone().context(
        "--opensearch-endpoint is required (the stack's OpenSearchEndpoint output), or start `robofleet dev`",
    )?;
    let report = runtime()?.block_on(async {
        let sdk = cli.aws.sdk_config(cli.aws_endpoint.as_deref()).await?;
        let mut shadows = aws_sdk_iotdataplane::config::Builder::from(&sdk);
        if let Some(url) = &cli.args.iot_data_endpoint {
            shadows = shadows.endpoint_url(url);
        }
        let clients = fleet_ops::reindex::Clients {
            opensearch_endpoint: endpoint,
            iot: aws_sdk_iot::Client::new(&sdk),
            shadows: aws_sdk_iotdataplane::Client::from_conf(shadows.build()),
            sdk,
        };
        let progress = fleet_console::Progress::detect(false);
        anyhow::Ok(fleet_ops::reindex::run(&cli.args, &clients, &cli.template, &progress).await?)
    })?;
    print!("{}", report.to_text());
    if let Some(path) = &cli.args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// `robofleet job`: exits 1 when a run does not end succeeded.
fn job(cli: JobCli) -> anyhow::Result<()> {
    match cli.command {
        JobCommand::Run(args) => {
            let mut target = cli.target;
            fill_jobs_stack_from_dev_report(&mut target, &cli.report)?;
            let stack = target.stack.clone().unwrap_or_default();
            let progress = fleet_console::Progress::detect(false);
            let summary = runtime()?.block_on(async {
                let sdk = target
                    .aws
                    .sdk_config(target.aws_endpoint.as_deref())
                    .await?;
                let jobs = fleet_ops::jobs::JobStack::from_outputs(&sdk, &stack).await?;
                anyhow::Ok(fleet_ops::jobs::run_job(&args, &sdk, &jobs, progress).await?)
            })?;
            match args.json.as_deref() {
                Some(p) if p == Path::new("-") => {
                    println!("{}", serde_json::to_string_pretty(&summary)?)
                }
                Some(p) => {
                    std::fs::write(p, serde_json::to_vec_pretty(&summary)?)
                        .with_context(|| format!("writing {}", p.display()))?;
                    print!("{}", summary.to_text());
                }
                None => print!("{}", summary.to_text()),
            }
            if !summary.succeeded() {
                std::process::exit(1);
            }
            Ok(())
        }
        JobCommand::Ops(op) => {
            let mut target = cli.target;
            if target.table.is_none() {
                fill_jobs_stack_from_dev_report(&mut target, &cli.report)?;
            }
            Ok(runtime()?.block_on(fleet_ops::jobs::run(op, target))?)
        }
    }
}

/// Without `--stack`, the dev report's stack, endpoint and region: the local stack, read
/// through its outputs as a deployed one is.
fn fill_jobs_stack_from_dev_report(
    target: &mut fleet_ops::jobs::JobsTarget,
    report: &Path,
) -> anyhow::Result<()> {
    if target.stack.is_some() {
        return Ok(());
    }
    let report = fleet_local::report::DevReport::read(report).context(
        "pass --stack NAME (a deployed stack; --table also works for status, pause, resume and cancel), or run `robofleet dev` first",
    )?;
    target.stack = Some(report.stack_name.clone());
    fill_endpoint_and_region(&mut target.aws_endpoint, &mut target.aws.region, &report);
    Ok(())
}

/// What `--table`, `--stack` and `--aws-endpoint` leave out comes from the dev report.
fn fill_breaker_from_dev_report(
    target: &mut fleet_ops::breaker::BreakerTarget,
    report: &Path,
) -> anyhow::Result<()> {
    if target.table.is_some() && target.stack.is_some() {
        return Ok(());
    }
    let report = fleet_local::report::DevReport::read(report)
        .context("pass --table and --stack (and --aws-endpoint), or run `robofleet dev` first")?;
    if target.table.is_none() {
        target.table = report.resources.tables.get("BreakerTable").cloned();
    }
    target.stack.get_or_insert(report.stack_name.clone());
    fill_endpoint_and_region(&mut target.aws_endpoint, &mut target.aws.region, &report);
    Ok(())
}

/// What `--queue-url` and `--aws-endpoint` leave out comes from the dev report: the local
/// stack's queue, endpoint and region. Flags given win over the report; without a queue from
/// either, the report's error says what to pass.
fn fill_from_dev_report(
    target: &mut fleet_ops::rejects::RejectsTarget,
    report: &Path,
) -> anyhow::Result<()> {
    if target.queue_url.is_some() && target.aws_endpoint.is_some() {
        return Ok(());
    }
    let report = match fleet_local::report::DevReport::read(report) {
        Ok(r) => r,
        Err(_) if target.queue_url.is_some() => return Ok(()),
        Err(e) => {
            return Err(e)
                .context("pass --queue-url (and --aws-endpoint), or run `robofleet dev` first");
        }
    };
    if target.queue_url.is_none() {
        target.queue_url = report.resources.rejects_queue_url.clone();
    }
    fill_endpoint_and_region(&mut target.aws_endpoint, &mut target.aws.region, &report);
    Ok(())
}

/// The report's AWS endpoint and region, where `--aws-endpoint`/`AWS_ENDPOINT_URL` and
/// `--region`/`AWS_REGION` gave none: flags win over the report.
fn fill_endpoint_and_region(
    endpoint: &mut Option<String>,
    region: &mut Option<String>,
    report: &fleet_local::report::DevReport,
) {
    endpoint.get_or_insert_with(|| report.endpoints.aws.clone());
    if region.is_none() && !report.region.is_empty() {
        *region = Some(report.region.clone());
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

/// `robofleet sim provision|cleanup`: exits 1 when some robot could not be made or removed.
fn sim_robots(action: SimAction, aws: &fleet_aws::config::AwsAccess) -> anyhow::Result<()> {
    init_logs();
    let rt = runtime()?;
    let endpoint = match &action {
        SimAction::Provision(a) => a.aws_endpoint.clone(),
        SimAction::Cleanup { aws_endpoint, .. } => aws_endpoint.clone(),
    };
    let sdk = rt.block_on(aws.sdk_config(endpoint.as_deref()))?;
    let iot = aws_sdk_iot::Client::new(&sdk);
    let (text, failed) = match action {
        SimAction::Provision(args) => {
            eprintln!(
                "provisioning {} robots at {}/s per API: about {} s",
                args.count,
                args.tps,
                fleet_sim::provision::estimated(args.count, args.tps).as_secs()
            );
            let r = rt.block_on(fleet_sim::provision::provision(&iot, &args))?;
            (serde_json::to_string_pretty(&r)?, !r.errors.is_empty())
        }
        SimAction::Cleanup { prefix, .. } => {
            let r = rt.block_on(fleet_sim::cleanup::delete_things(&iot, &prefix))?;
            (serde_json::to_string_pretty(&r)?, !r.errors.is_empty())
        }
    };
    println!("{text}");
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// `robofleet sim`: exits 1 when verification finds lost, extra or stale data.
fn sim(args: fleet_sim::SimArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let targets = args.target.to_targets()?;
    let progress = fleet_console::Progress::detect(false);
    let report =
        tokio::runtime::Runtime::new()?.block_on(fleet_sim::run(args, targets, progress))?;
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_runs_and_its_robot_subcommands_parse() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["robofleet", "sim", "--robots", "5", "--profile", "ops"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Sim(sim) = cli.command else {
            panic!("not sim")
        };
        assert!(sim.action.is_none());
        assert_eq!(sim.run.robots, 5);
        assert_eq!(sim.run.target.aws.profile.as_deref(), Some("ops"));
        let cli = Cli::try_parse_from([
            "robofleet",
            "sim",
            "provision",
            "--count",
            "3",
            "--policy",
            "p",
            "--certs-dir",
            "d",
            "--region",
            "eu-west-1",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Sim(sim) = cli.command else {
            panic!("not sim")
        };
        assert!(matches!(sim.action, Some(SimAction::Provision(ref a)) if a.count == 3));
        assert_eq!(sim.run.target.aws.region.as_deref(), Some("eu-west-1"));
        let cli = Cli::try_parse_from(["robofleet", "sim", "cleanup", "--prefix", "lt"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Sim(sim) = cli.command else {
            panic!("not sim")
        };
        assert!(
            matches!(sim.action, Some(SimAction::Cleanup { ref prefix, .. }) if prefix == "lt")
        );
    }

    #[test]
    fn job_subcommands_parse_as_documented() {
        let cli = Cli::try_parse_from([
            "robofleet",
            "job",
            "run",
            "robots.csv",
            "--command",
            "dock",
            "--machine",
            "map",
            "--rate",
            "600",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Job(JobCli {
            command: JobCommand::Run(args),
            ..
        }) = cli.command
        else {
            panic!("not job run");
        };
        assert_eq!(args.machine, fleet_jobs::Machine::Map);
        assert_eq!(args.rate, Some(600));
        let cli = Cli::try_parse_from(["robofleet", "job", "cancel", "j1", "--table", "t"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Job(JobCli {
            command: JobCommand::Ops(op),
            target,
            ..
        }) = cli.command
        else {
            panic!("not a job operation");
        };
        assert!(matches!(op, fleet_ops::jobs::JobOps::Cancel { ref id, .. } if id == "j1"));
        assert_eq!(target.table.as_deref(), Some("t"));
        assert!(
            Cli::try_parse_from(["robofleet", "job", "run", "f.jsonl"]).is_err(),
            "--command is required"
        );
    }

    #[test]
    fn flags_win_over_the_dev_report_and_the_report_fills_the_rest() {
        let mut report = fleet_local::report::DevReport {
            region: "eu-west-1".into(),
            ..Default::default()
        };
        report.endpoints.aws = "http://127.0.0.1:4566".into();
        let (mut endpoint, mut region) = (None, Some("ap-south-1".to_string()));
        fill_endpoint_and_region(&mut endpoint, &mut region, &report);
        assert_eq!(region.as_deref(), Some("ap-south-1"), "--region is kept");
        assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        let mut none = None;
        fill_endpoint_and_region(&mut endpoint, &mut none, &report);
        assert_eq!(none.as_deref(), Some("eu-west-1"));
    }
}
