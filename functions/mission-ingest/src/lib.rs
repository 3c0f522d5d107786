//! mission-ingest: Kinesis batches of mission reports into the DynamoDB missions table.
//!
//! Each record is decoded on its own (`fleet-lambda`), validated against the mission report
//! contract (`fleet-core`), checked against its partition key (a robot may only report its own
//! missions) and written with one conditional `PutItem` (`fleet-aws`). A duplicate or a stale rev
//! is success; a malformed record goes to the rejects queue; throttling and 5xx are retried here,
//! then handed back to Lambda as an item failure at the lowest failed sequence number.
//!
//! The missions table has a circuit breaker (`fleet-breaker`, docs/breaker.md): while it is open
//! the batch defers its records without calling DynamoDB, and the mappings are paused.
//! Throttling never opens it: that is a capacity problem, not a sick table.
//!
//! `main.rs` only wires [`Config`], the clients and [`Handler`] to the Lambda runtime; the local
//! stack calls [`Handler::handle`] in-process with the same code.

use fleet_aws::{MissionStore, PutOutcome, SqsRejectSink, StoreError};
use fleet_breaker::{Admission, BreakerConfig, CallOutcome, FunctionBreaker, counts_as};
use fleet_core::{MissionReport, RejectKind};
use fleet_lambda::batch::Finished;
use fleet_lambda::config::Env;
use fleet_lambda::{Batch, BatchHandler, ConfigError, Deadline, EventError, Outcome, Reject};
use serde_json::Value;

/// The function's name in logs, metrics and reject envelopes.
pub const FUNCTION: &str = "mission-ingest";

/// Robots written concurrently within one batch. Records of one robot stay in order. 32 keeps a
/// 512 MB function busy on DynamoDB latency (~5–10 ms a write) without exhausting its sockets.
pub const CONCURRENCY: usize = 32;

/// Everything the function reads from its environment (template.yaml sets exactly these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `MISSIONS_TABLE`: the DynamoDB table.
    pub missions_table: String,
    /// `REJECTS_QUEUE_URL`: the SQS rejects queue.
    pub rejects_queue_url: String,
    /// `REJECT_PAYLOADS_BUCKET`: where a reject's payload goes when it is too large for the
    /// queue (the failed-batches bucket).
    pub reject_payloads_bucket: String,
    /// `MISSION_TTL_DAYS`: days a mission is kept after it ended (0 = forever).
    pub mission_ttl_days: u32,
    /// `DAY_SHARDS`: write shards of the by-day GSI.
    pub day_shards: u32,
    /// `BREAKER_TABLE`, `BREAKER_FUNCTIONS` and the `BREAKER_*` knobs: the circuit breaker of the table.
    pub breaker: BreakerConfig,
    /// `TOMBSTONES_TABLE`: decommissioned and reset robots, whose earlier records are dropped
    /// (fleet_aws::tombstones); unset, nothing is checked.
    pub tombstones_table: Option<String>,
}

impl Config {
    /// The environment variables [`Config`] reads; a test checks template.yaml sets exactly these.
    pub const ENV_VARS: &'static [&'static str] = &[
        "MISSIONS_TABLE",
        "REJECTS_QUEUE_URL",
        "REJECT_PAYLOADS_BUCKET",
        "MISSION_TTL_DAYS",
        "DAY_SHARDS",
        "BREAKER_TABLE",
        "BREAKER_FUNCTIONS",
        "BREAKER_CONSECUTIVE_FAILURES",
        "BREAKER_INTERVAL_SECONDS",
        "BREAKER_FAILURE_PERCENTAGE",
        "BREAKER_REQUEST_VOLUME",
        "BREAKER_BASE_EJECTION_SECONDS",
        "BREAKER_MAX_EJECTION_SECONDS",
        "BREAKER_PROBES_TO_CLOSE",
        "BREAKER_MAX_PAUSE_SECONDS",
        "TOMBSTONES_TABLE",
    ];

    /// Reads the configuration through `lookup` (the process environment, or a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let breaker = BreakerConfig::from_lookup(&lookup).map_err(|e| ConfigError::Invalid {
            name: e.var,
            value: lookup(e.var).unwrap_or_default(),
            problem: e.detail,
        })?;
        let env = Env::from_lookup(lookup);
        let day_shards: u32 = env.parse("DAY_SHARDS")?;
        if day_shards == 0 {
            return Err(ConfigError::Invalid {
                name: "DAY_SHARDS",
                value: "0".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(Config {
            missions_table: env.required("MISSIONS_TABLE")?,
            rejects_queue_url: env.required("REJECTS_QUEUE_URL")?,
            reject_payloads_bucket: env.required("REJECT_PAYLOADS_BUCKET")?,
            mission_ttl_days: env.parse("MISSION_TTL_DAYS")?,
            day_shards,
            breaker,
            tombstones_table: env.optional("TOMBSTONES_TABLE"),
        })
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// The handler, built once per cold start and reused by every invocation.
#[derive(Debug)]
pub struct Handler {
    store: MissionStore,
    rejects: SqsRejectSink,
    breaker: Option<FunctionBreaker>,
    tombstones: Option<fleet_aws::tombstones::Tombstones>,
}

/// Builds the handler's clients from `sdk` (endpoints, region and credentials).
pub async fn build(config: Config, sdk: &aws_config::SdkConfig) -> Handler {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let breaker = config
        .breaker
        .build(sdk, fleet_breaker::downstreams::MISSIONS_TABLE);
    Handler {
        breaker,
        tombstones: config
            .tombstones_table
            .map(|t| fleet_aws::tombstones::Tombstones::new(dynamodb.clone(), t)),
        store: MissionStore::new(
            dynamodb,
            config.missions_table,
            config.mission_ttl_days,
            config.day_shards,
        ),
        rejects: SqsRejectSink::for_function(
            sdk,
            config.rejects_queue_url,
            config.reject_payloads_bucket,
        ),
    }
}

/// A report's robot and the instant its mission started (Unix ms), for the tombstone check.
fn robot_and_time(r: &MissionReport) -> (&str, i64) {
    let ms = (r.started_at.unix_timestamp_nanos() / 1_000_000) as i64;
    (r.robot_id.as_str(), ms)
}

/// Decodes one record: the mission report contract, and the robot must be the partition key.
pub fn decode(record: &fleet_lambda::KinesisRecord, bytes: &[u8]) -> Result<MissionReport, Reject> {
    Ok(MissionReport::from_record(bytes, &record.partition_key)?)
}

impl BatchHandler for Handler {
    async fn handle_batch(&self, event: Value, deadline: Deadline) -> Result<Finished, EventError> {
        let mut batch = Batch::new(FUNCTION, event)?;
        let items = batch.decode(decode);
        // Reports of a decommissioned or reset robot from before its tombstone are dropped: a
        // late record must not bring back what was purged.
        let Some(items) = fleet_aws::tombstones::screen(
            self.tombstones.as_ref(),
            &mut batch,
            items,
            robot_and_time,
        )
        .await
        else {
            return Ok(batch.finish(&self.rejects, deadline).await);
        };
        let breaker = self.breaker.as_ref();
        if !items.is_empty()
            && let Some(b) = breaker
            && let Admission::Deny { cause } = b.admit().await
        {
            batch.defer_pending(&cause);
            return Ok(batch.finish(&self.rejects, deadline).await);
        }
        const OPENED: &str = "circuit breaker of the missions table opened";
        batch
            .for_each_by_key(items, CONCURRENCY, |report| async move {
                // The breaker may open during the batch: stop calling the table at once.
                if breaker.is_some_and(|b| b.is_open()) {
                    return Outcome::Deferred(OPENED.into());
                }
                let result = self.store.put(&report, deadline).await;
                if let Some(b) = breaker {
                    let health = match &result {
                        Err(StoreError::Retry { failure, .. }) => counts_as(*failure),
                        _ => CallOutcome::Success,
                    };
                    b.record(&health).await;
                }
                match result {
                    Ok(PutOutcome::Stored) => Outcome::Succeeded,
                    Ok(PutOutcome::DuplicateOrStale) => Outcome::Duplicate,
                    Err(e @ StoreError::Retry { .. }) => Outcome::Retry(e.to_string()),
                    Err(e @ StoreError::Rejected { .. }) => Outcome::Rejected(Reject::new(
                        RejectKind::PermanentDownstream,
                        e.to_string(),
                    )),
                }
            })
            .await;
        if breaker.is_some_and(|b| b.is_open()) {
            batch.defer_retries(OPENED);
        }
        Ok(batch.finish(&self.rejects, deadline).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_reads_exactly_its_declared_variables() {
        let read = std::cell::RefCell::new(Vec::new());
        let all: Vec<(&str, &str)> = vec![
            ("MISSIONS_TABLE", "t"),
            ("REJECTS_QUEUE_URL", "http://q"),
            ("REJECT_PAYLOADS_BUCKET", "b"),
            ("MISSION_TTL_DAYS", "365"),
            ("DAY_SHARDS", "8"),
        ];
        let base = lookup(&all);
        let config = Config::from_lookup(|k| {
            read.borrow_mut().push(k.to_string());
            base(k)
        })
        .unwrap();
        assert_eq!(config.day_shards, 8);
        let mut read = read.into_inner();
        read.sort();
        let mut declared: Vec<String> = Config::ENV_VARS.iter().map(|s| s.to_string()).collect();
        declared.sort();
        assert_eq!(read, declared);
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = Config::from_lookup(lookup(&[("MISSIONS_TABLE", "t")])).unwrap_err();
        assert!(
            err.to_string().contains("DAY_SHARDS") || err.to_string().contains("REJECTS_QUEUE_URL"),
            "{err}"
        );
        let err = Config::from_lookup(lookup(&[
            ("MISSIONS_TABLE", "t"),
            ("REJECTS_QUEUE_URL", "q"),
            ("MISSION_TTL_DAYS", "1"),
            ("DAY_SHARDS", "0"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("DAY_SHARDS"), "{err}");
    }
}
