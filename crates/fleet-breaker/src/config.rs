//! What a consumer function reads to build its breaker, and how a downstream failure counts.

use fleet_aws::error::Failure;

use crate::breaker::Breaker;
use crate::counter::CallOutcome;
use crate::policy::{Policy, PolicyError};
use crate::store::DynamoStore;
use crate::switch::LambdaSwitch;

/// The breaker a function runs with: its state in DynamoDB, its mappings switched through
/// Lambda's API.
pub type FunctionBreaker = Breaker<DynamoStore, LambdaSwitch>;

/// The breaker part of a function's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// `BREAKER_TABLE`: the breaker table. Empty or absent: the function runs without a breaker.
    pub table: Option<String>,
    /// `BREAKER_FUNCTIONS`: whose mappings to pause when this breaker opens, comma-separated,
    /// as the mappings name them (`<stack>-shadow-indexer:live`: SAM attaches a function's
    /// mappings to its alias).
    pub functions: Vec<String>,
    /// The `BREAKER_*` knobs.
    pub policy: Policy,
}

impl Default for BreakerConfig {
    /// No breaker (no table), default knobs.
    fn default() -> Self {
        BreakerConfig {
            table: None,
            functions: Vec::new(),
            policy: Policy::default(),
        }
    }
}

impl BreakerConfig {
    /// The variables the template sets for it.
    pub fn env_vars() -> impl Iterator<Item = &'static str> {
        ["BREAKER_TABLE", "BREAKER_FUNCTIONS"]
            .into_iter()
            .chain(Policy::ENV_VARS.iter().copied())
    }

    /// Reads it through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, PolicyError> {
        let env = fleet_lambda::config::Env::from_lookup(&lookup);
        Ok(BreakerConfig {
            table: env.optional("BREAKER_TABLE"),
            functions: env.list("BREAKER_FUNCTIONS"),
            policy: Policy::from_lookup(&lookup)?,
        })
    }

    /// The breaker of `downstream` for this function, or `None` without a table. Without
    /// functions the breaker still opens and closes, but pauses nothing itself (the probe keeps
    /// the mappings in line).
    pub fn build(&self, sdk: &aws_config::SdkConfig, downstream: &str) -> Option<FunctionBreaker> {
        let table = self.table.clone()?;
        Some(Breaker::new(
            downstream,
            self.functions.clone(),
            self.policy.clone(),
            DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table),
            LambdaSwitch::new(aws_sdk_lambda::Client::new(sdk)),
        ))
    }
}

/// How a downstream failure counts: unavailability (5xx, timeouts, no connection) and refused
/// authentication are the downstream's sickness; throttling is a capacity problem (pausing
/// mission-ingest at the 10:00 spike would be the wrong answer) and a deployment mistake
/// (AccessDenied, a missing grant) is not fixed by pausing: neither counts.
pub fn counts_as(failure: Failure) -> CallOutcome {
    if failure.is_downstream_fault() {
        CallOutcome::Failure(failure.as_str().to_string())
    } else {
        CallOutcome::Ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sick_downstream_counts() {
        assert!(matches!(
            counts_as(Failure::Unavailable),
            CallOutcome::Failure(_)
        ));
        assert!(matches!(
            counts_as(Failure::Authentication),
            CallOutcome::Failure(_)
        ));
        assert_eq!(counts_as(Failure::Throttled), CallOutcome::Ignored);
        assert_eq!(counts_as(Failure::Configuration), CallOutcome::Ignored);
    }

    #[test]
    fn no_table_no_breaker() {
        let c = BreakerConfig::from_lookup(|k| (k == "BREAKER_TABLE").then(|| " ".to_string()))
            .unwrap();
        assert_eq!(c.table, None);
        let names: Vec<&str> = BreakerConfig::env_vars().collect();
        assert_eq!(names[..2], ["BREAKER_TABLE", "BREAKER_FUNCTIONS"]);
        assert!(names.contains(&"BREAKER_PROBES_TO_CLOSE"));
    }
}
