//! breaker-probe: the half-open probes of the circuit breakers, on a schedule (every minute).
//!
//! For each downstream it keeps the mappings in line with its breaker (paused while open, even
//! after a deploy re-enabled them; running while closed), applies the pause cap, and when an
//! opening is over takes the half-open lease and probes the downstream itself, with the mappings
//! still paused:
//!
//! - the OpenSearch robots index: cluster health (not red), then a canary write and read in
//!   `<alias>_breaker_canary`, an index outside the alias's pattern, so no robot query sees it;
//! - the DynamoDB missions table: a conditional write of a canary item (`pk = BREAKER#probe`),
//!   which no robot key can collide with and which expires after a day.
//!
//! `probes_to_close` successes in a row close the breaker and resume the mappings; a failure
//! opens it again, for longer (docs/breaker.md).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use fleet_aws::OpenSearchHttp;
use fleet_breaker::breaker::now_ms;
use fleet_breaker::probe::{self, Probe};
use fleet_breaker::{BreakerConfig, DynamoStore, LambdaSwitch, Policy, downstreams};
use fleet_lambda::ConfigError;
use fleet_lambda::config::Env;
use fleet_lambda::config::split_list;
use serde_json::{Value, json};

/// The function's name in logs.
pub const FUNCTION: &str = "breaker-probe";

/// Everything the function reads from its environment (template.yaml sets exactly these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `BREAKER_TABLE` and the `BREAKER_*` knobs.
    pub breaker: BreakerConfig,
    /// `PROBE_OPENSEARCH_ENDPOINT`: the robots domain.
    pub opensearch_endpoint: String,
    /// `PROBE_ROBOTS_ALIAS`: the robots alias (the canary index is `<alias>_breaker_canary`).
    pub robots_alias: String,
    /// `PROBE_INDEXER_FUNCTIONS`: the functions that feed the robots index (comma-separated).
    pub indexer_functions: Vec<String>,
    /// `PROBE_MISSIONS_TABLE`: the missions table.
    pub missions_table: String,
    /// `PROBE_MISSION_FUNCTIONS`: the functions that feed the missions table (comma-separated).
    pub mission_functions: Vec<String>,
}

impl Config {
    /// The environment variables [`Config`] reads; a test checks template.yaml sets exactly these.
    pub const ENV_VARS: &'static [&'static str] = &[
        "BREAKER_TABLE",
        "BREAKER_CONSECUTIVE_FAILURES",
        "BREAKER_INTERVAL_SECONDS",
        "BREAKER_FAILURE_PERCENTAGE",
        "BREAKER_REQUEST_VOLUME",
        "BREAKER_BASE_EJECTION_SECONDS",
        "BREAKER_MAX_EJECTION_SECONDS",
        "BREAKER_PROBES_TO_CLOSE",
        "BREAKER_MAX_PAUSE_SECONDS",
        "PROBE_OPENSEARCH_ENDPOINT",
        "PROBE_ROBOTS_ALIAS",
        "PROBE_INDEXER_FUNCTIONS",
        "PROBE_MISSIONS_TABLE",
        "PROBE_MISSION_FUNCTIONS",
    ];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let breaker = BreakerConfig::from_lookup(&lookup).map_err(|e| ConfigError::Invalid {
            name: e.var,
            value: lookup(e.var).unwrap_or_default(),
            problem: e.detail,
        })?;
        let env = Env::from_lookup(lookup);
        if breaker.table.is_none() {
            // Required here: the probe has nothing to do without the breakers' state.
            env.required("BREAKER_TABLE")?;
        }
        Ok(Config {
            breaker,
            opensearch_endpoint: env.required("PROBE_OPENSEARCH_ENDPOINT")?,
            robots_alias: env.required("PROBE_ROBOTS_ALIAS")?,
            indexer_functions: split_list(&env.required("PROBE_INDEXER_FUNCTIONS")?),
            missions_table: env.required("PROBE_MISSIONS_TABLE")?,
            mission_functions: split_list(&env.required("PROBE_MISSION_FUNCTIONS")?),
        })
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// The robots domain answers: cluster health is not red, and a canary write reads back.
#[derive(Debug, Clone)]
pub struct OpenSearchProbe {
    http: OpenSearchHttp,
    canary_index: String,
}

impl OpenSearchProbe {
    /// A probe of the domain behind `http`, writing to `<alias>_breaker_canary`.
    pub fn new(http: OpenSearchHttp, alias: &str) -> Self {
        OpenSearchProbe {
            http,
            canary_index: format!("{alias}_breaker_canary"),
        }
    }
}

impl Probe for OpenSearchProbe {
    async fn check(&self, timeout: Duration) -> Result<(), String> {
        let send = |method: reqwest::Method, path: String, body: Option<Value>| async move {
            let body = body.map(|b| (bytes_of(&b), "application/json"));
            self.http
                .send(method, &path, body, timeout)
                .await
                .map_err(|e| e.to_string())
        };
        let health = send(reqwest::Method::GET, "/_cluster/health".into(), None).await?;
        let status = health.json()["status"].as_str().unwrap_or("").to_string();
        if !health.is_success() || status == "red" {
            return Err(format!(
                "cluster health answered {} ({status})",
                health.status
            ));
        }
        let index = &self.canary_index;
        let head = send(reqwest::Method::HEAD, format!("/{index}"), None).await?;
        if head.status == 404 {
            let made = send(
                reqwest::Method::PUT,
                format!("/{index}"),
                Some(json!({"settings": {"index": {"number_of_shards": 1}}})),
            )
            .await?;
            if !made.is_success() && !made.text().contains("resource_already_exists") {
                return Err(format!(
                    "creating {index} answered {}: {}",
                    made.status,
                    made.text()
                ));
            }
        }
        let stamp = now_ms();
        let put = send(
            reqwest::Method::PUT,
            format!("/{index}/_doc/probe?refresh=true"),
            Some(json!({"probedAtMs": stamp})),
        )
        .await?;
        if !put.is_success() {
            return Err(format!(
                "canary write answered {}: {}",
                put.status,
                put.text()
            ));
        }
        let got = send(reqwest::Method::GET, format!("/{index}/_doc/probe"), None).await?;
        if got.json()["_source"]["probedAtMs"].as_u64() != Some(stamp) {
            return Err(format!(
                "canary read back answered {}: {}",
                got.status,
                got.text()
            ));
        }
        Ok(())
    }
}

fn bytes_of(v: &Value) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// The missions table takes a conditional write of its canary item.
#[derive(Debug, Clone)]
pub struct DynamoProbe {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoProbe {
    /// A probe of `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoProbe {
            client,
            table: table.into(),
        }
    }
}

impl Probe for DynamoProbe {
    async fn check(&self, timeout: Duration) -> Result<(), String> {
        let now = now_ms();
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("BREAKER#probe".into())),
            ("sk".to_string(), AttributeValue::S("CANARY".into())),
            ("probedAtMs".to_string(), AttributeValue::N(now.to_string())),
            (
                "expiresAt".to_string(),
                AttributeValue::N((now / 1000 + 86_400).to_string()),
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR probedAtMs < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .customize()
            .config_override(fleet_aws::retry::one_bounded_dynamodb_attempt(timeout))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fleet_aws::error::chain(&e))
    }
}

/// The handler, built once per cold start.
#[derive(Debug)]
pub struct Handler {
    store: DynamoStore,
    switch: LambdaSwitch,
    policy: Policy,
    opensearch: OpenSearchProbe,
    indexer_functions: Vec<String>,
    dynamodb: DynamoProbe,
    mission_functions: Vec<String>,
}

/// Builds the handler's clients from `sdk` (region, credentials, endpoints).
pub fn build(config: Config, sdk: &aws_config::SdkConfig) -> Handler {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    Handler {
        store: DynamoStore::new(
            dynamodb.clone(),
            config.breaker.table.clone().unwrap_or_default(),
        ),
        switch: LambdaSwitch::new(aws_sdk_lambda::Client::new(sdk)),
        policy: config.breaker.policy.clone(),
        opensearch: OpenSearchProbe::new(
            OpenSearchHttp::from_sdk(sdk, &config.opensearch_endpoint),
            &config.robots_alias,
        ),
        indexer_functions: config.indexer_functions,
        dynamodb: DynamoProbe::new(dynamodb, config.missions_table),
        mission_functions: config.mission_functions,
    }
}

impl Handler {
    /// One scheduled run: every downstream, one after the other, within `budget`. `holder`
    /// names this prober (the request id). The answer lists what each run did.
    pub async fn handle(&self, holder: &str, budget: Duration) -> Value {
        let started = std::time::Instant::now();
        let mut runs = Vec::new();
        let half = budget / 2;
        let os = probe::run(
            &self.store,
            &self.switch,
            &self.policy,
            downstreams::ROBOTS_INDEX,
            &self.indexer_functions,
            &self.opensearch,
            holder,
            half,
        )
        .await;
        runs.push(report(downstreams::ROBOTS_INDEX, os));
        let ddb = probe::run(
            &self.store,
            &self.switch,
            &self.policy,
            downstreams::MISSIONS_TABLE,
            &self.mission_functions,
            &self.dynamodb,
            holder,
            budget.saturating_sub(started.elapsed()),
        )
        .await;
        runs.push(report(downstreams::MISSIONS_TABLE, ddb));
        json!({ "function": FUNCTION, "runs": runs })
    }
}

fn report(downstream: &str, run: Result<probe::ProbeRun, String>) -> Value {
    match run {
        Ok(r) => {
            tracing::info!(downstream, before = r.before.as_str(), after = r.after.as_str(),
                probes = r.probes, switched = r.switched, note = %r.note, "breaker probe run");
            json!({"downstream": downstream, "before": r.before.as_str(), "after": r.after.as_str(),
                   "probes": r.probes, "switched": r.switched, "note": r.note})
        }
        Err(e) => {
            // The breaker table is unavailable: the functions fail open meanwhile.
            tracing::error!(downstream, error = %e, "breaker probe run failed");
            fleet_breaker::metrics::emit("BreakerUnavailable", downstream);
            json!({"downstream": downstream, "error": e})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_reads_its_targets_and_names_what_is_missing() {
        let c = Config::from_lookup(lookup(&[
            ("BREAKER_TABLE", "s-BreakerTable"),
            ("PROBE_OPENSEARCH_ENDPOINT", "https://search-x"),
            ("PROBE_ROBOTS_ALIAS", "robots"),
            ("PROBE_INDEXER_FUNCTIONS", "s-shadow-indexer"),
            ("PROBE_MISSIONS_TABLE", "s-MissionsTable"),
            ("PROBE_MISSION_FUNCTIONS", "s-mission-ingest, "),
            ("BREAKER_PROBES_TO_CLOSE", "2"),
        ]))
        .unwrap();
        assert_eq!(c.indexer_functions, ["s-shadow-indexer"]);
        assert_eq!(c.mission_functions, ["s-mission-ingest"]);
        assert_eq!(c.breaker.policy.probes_to_close, 2);
        let e = Config::from_lookup(lookup(&[("PROBE_ROBOTS_ALIAS", "robots")])).unwrap_err();
        assert!(e.to_string().contains("BREAKER_TABLE"), "{e}");
    }

    #[test]
    fn every_breaker_knob_is_listed() {
        for v in BreakerConfig::env_vars().filter(|v| *v != "BREAKER_FUNCTIONS") {
            assert!(Config::ENV_VARS.contains(&v), "{v}");
        }
    }
}
