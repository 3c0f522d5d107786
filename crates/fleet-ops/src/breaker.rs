//! `robofleet breaker status|open|close`: the circuit breakers during an incident.
//!
//! `status` shows each downstream's breaker (closed, open, half-open; why; when the next probe
//! may run) and whether its mappings run. `open <downstream>` holds a breaker open (the
//! mappings pause, and no probe closes it) until `close <downstream>`, which closes it and
//! resumes the mappings. The same against an AWS account (`--table`, `--stack`) and the local
//! stack (both from the `robofleet dev` report).

use fleet_breaker::probe::force;
use fleet_breaker::{DynamoStore, LambdaSwitch, MappingSwitch, State, StateStore, downstreams};
use serde_json::json;

use crate::error::BreakerError;

/// `robofleet breaker`.
#[derive(Debug, clap::Args)]
pub struct BreakerArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BreakerCommand,
    /// Where the breakers are.
    #[command(flatten)]
    pub target: BreakerTarget,
}

/// Where the breakers live. The `robofleet` command fills what is not given from the
/// `robofleet dev` report.
#[derive(Debug, Clone, clap::Args)]
pub struct BreakerTarget {
    /// AWS endpoint (the local stack's AWS front); default: the dev report's, else the SDK's own.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint: Option<String>,
    /// The breaker table (the stack's `BreakerTableName` output); default: the dev report's.
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// The stack name: the consumers are `<stack>-shadow-indexer:live` and
    /// `<stack>-mission-ingest:live`; default: the dev report's.
    #[arg(long, global = true)]
    pub stack: Option<String>,
    /// Profile and region (the local stack: the dev report's region).
    #[command(flatten)]
    pub aws: fleet_aws::config::AwsAccess,
}

/// The breaker subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BreakerCommand {
    /// Every breaker: state, cause, next probe, mappings.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Hold a breaker open: pause its mappings; no probe closes it until `close`.
    Open {
        /// `robots-index` or `missions-table`.
        downstream: String,
    },
    /// Close a breaker and resume its mappings.
    Close {
        /// `robots-index` or `missions-table`.
        downstream: String,
    },
}

/// The consumers of `downstream` in stack `stack`, as their mappings name them.
pub fn consumers(stack: &str, downstream: &str) -> Result<Vec<String>, BreakerError> {
    match downstream {
        downstreams::ROBOTS_INDEX => Ok(vec![format!("{stack}-shadow-indexer:live")]),
        downstreams::MISSIONS_TABLE => Ok(vec![format!("{stack}-mission-ingest:live")]),
        other => Err(BreakerError::UnknownDownstream(other.to_string())),
    }
}

/// Who is acting (for the `forcedBy` of an override): `$USER@host`, or `operator`.
fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    match std::env::var("HOSTNAME") {
        Ok(host) if !host.is_empty() => format!("{user}@{host}"),
        _ => user,
    }
}

/// Runs the command.
pub async fn run(args: BreakerArgs) -> Result<(), BreakerError> {
    let t = &args.target;
    let table = t.table.clone().ok_or(BreakerError::NoTable)?;
    let stack = t.stack.clone().ok_or(BreakerError::NoStack)?;
    let sdk = t
        .aws
        .sdk_config(t.aws_endpoint.as_deref())
        .await
        .map_err(|e| BreakerError::Aws(e.to_string()))?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let switch = LambdaSwitch::new(aws_sdk_lambda::Client::new(&sdk));
    let open = matches!(args.command, BreakerCommand::Open { .. });
    match args.command {
        BreakerCommand::Status { json } => {
            let rows = status(&store, &switch, &stack).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                print!("{}", render(&rows));
            }
        }
        BreakerCommand::Open { downstream } | BreakerCommand::Close { downstream } => {
            let functions = consumers(&stack, &downstream)?;
            let state = force(&store, &switch, &downstream, &functions, open, &operator())
                .await
                .map_err(BreakerError::Aws)?;
            println!(
                "{downstream}: {} ({}); mappings of {} {}",
                state.status.as_str(),
                state.cause,
                functions.join(", "),
                if open { "paused" } else { "resumed" }
            );
        }
    }
    Ok(())
}

/// One breaker, as `status` shows it.
pub async fn status<S: StateStore, W: MappingSwitch>(
    store: &S,
    switch: &W,
    stack: &str,
) -> Result<Vec<serde_json::Value>, BreakerError> {
    let now = fleet_breaker::breaker::now_ms();
    let mut rows = Vec::new();
    for downstream in [downstreams::ROBOTS_INDEX, downstreams::MISSIONS_TABLE] {
        let state: State = store
            .load(downstream)
            .await
            .map_err(|e| BreakerError::Aws(e.to_string()))?;
        let functions = consumers(stack, downstream)?;
        let mappings = switch
            .mappings(&functions)
            .await
            .map_err(|e| BreakerError::Aws(e.to_string()))?;
        let running = mappings.iter().filter(|(_, on)| *on).count();
        rows.push(json!({
            "downstream": downstream,
            "status": state.status.as_str(),
            "cause": state.cause,
            "openings": state.openings,
            "forcedBy": state.forced_by,
            "probeInSeconds": (state.status != fleet_breaker::Status::Closed && state.forced_by.is_none())
                .then(|| state.open_until_ms.saturating_sub(now).div_ceil(1000)),
            "mappings": mappings.len(),
            "mappingsRunning": running,
        }));
    }
    Ok(rows)
}

/// The status table.
pub fn render(rows: &[serde_json::Value]) -> String {
    let mut out = format!(
        "{:<16} {:<10} {:>8} {:>9}  {}\n",
        "downstream", "status", "probe in", "mappings", "cause"
    );
    for r in rows {
        let probe = r["probeInSeconds"]
            .as_u64()
            .map_or_else(|| "-".to_string(), |s| format!("{s} s"));
        out.push_str(&format!(
            "{:<16} {:<10} {:>8} {:>9}  {}\n",
            r["downstream"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            probe,
            format!("{}/{}", r["mappingsRunning"], r["mappings"]),
            r["cause"].as_str().unwrap_or(""),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_breaker::{MemoryStore, MemorySwitch, Policy};

    #[tokio::test]
    async fn status_shows_each_breaker_and_its_mappings() {
        let (store, switch) = (MemoryStore::default(), MemorySwitch::default());
        let open = State::new("robots-index")
            .trip(
                fleet_breaker::breaker::now_ms(),
                "5 consecutive failures",
                &Policy::default(),
                0.0,
            )
            .unwrap();
        assert!(store.save(&open).await.unwrap());
        switch
            .set_enabled(&consumers("s", "robots-index").unwrap(), false)
            .await
            .unwrap();
        let rows = status(&store, &switch, "s").await.unwrap();
        assert_eq!(rows[0]["status"], "open");
        assert_eq!(rows[0]["mappingsRunning"], 0);
        assert!(rows[0]["probeInSeconds"].as_u64().unwrap() >= 59);
        assert_eq!(rows[1]["status"], "closed");
        let table = render(&rows);
        assert!(table.contains("robots-index     open"), "{table}");
        assert!(table.contains("5 consecutive failures"));
        assert!(consumers("s", "nope").is_err());
    }
}
