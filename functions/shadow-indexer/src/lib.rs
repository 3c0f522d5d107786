//! shadow-indexer: Kinesis batches of shadow update documents and presence events into the
//! OpenSearch robots index.
//!
//! Each record is decoded on its own (`fleet-lambda`) into a [`ShadowRecord`] (`fleet-core`),
//! checked against its partition key, and turned into one document with an external version
//! derived from the shadow's timestamp and version (so a shadow re-created at version 0 still
//! moves forward). The whole batch becomes one `_bulk` request (`fleet-aws`); within a batch only
//! the newest version of each document is sent. A 409 is a stale update (success); 429, 5xx,
//! 401/403 and a missing alias are retried and then reported (the records wait in the stream);
//! other 4xx are about the document and dead-lettered.
//!
//! The OpenSearch domain has a circuit breaker (`fleet-breaker`, docs/breaker.md): while it is
//! open the batch defers its records without calling OpenSearch, and the mappings are paused.
//!
//! The index template from `opensearch/` is embedded in the binary and installed on the first
//! invocation when missing (not during init, to keep cold starts short and to survive an
//! OpenSearch outage at start-up: the batch is then retried, and the stream holds the records).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fleet_aws::sigv4::Signer;
use fleet_aws::summary::Parts;
use fleet_aws::{IndexDoc, ItemResult, RobotIndex, SqsRejectSink};
use fleet_breaker::{Admission, BreakerConfig, CallOutcome, FunctionBreaker, counts_as};
use fleet_core::{RejectKind, ShadowRecord};
use fleet_lambda::batch::Finished;
use fleet_lambda::config::Env;
use fleet_lambda::{Batch, BatchHandler, ConfigError, Deadline, EventError, Outcome, Reject};
use serde_json::Value;
use tokio::sync::OnceCell;

/// The function's name in logs, metrics and reject envelopes.
pub const FUNCTION: &str = "shadow-indexer";

/// The index template, the same file the local stack installs.
pub const INDEX_TEMPLATE: &str = include_str!("../../../opensearch/robots-template.json");

/// Everything the function reads from its environment (template.yaml sets exactly these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `OPENSEARCH_ENDPOINT`: `https://<domain endpoint>` or a local URL.
    pub opensearch_endpoint: String,
    /// `ROBOTS_ALIAS`: the alias written through (`robots`).
    pub robots_alias: String,
    /// `REJECTS_QUEUE_URL`: the SQS rejects queue.
    pub rejects_queue_url: String,
    /// `REJECT_PAYLOADS_BUCKET`: where a reject's payload goes when it is too large for the
    /// queue (the failed-batches bucket).
    pub reject_payloads_bucket: String,
    /// `BREAKER_TABLE`, `BREAKER_FUNCTIONS` and the `BREAKER_*` knobs: the circuit breaker of the domain.
    pub breaker: BreakerConfig,
    /// `TOMBSTONES_TABLE`: decommissioned and reset robots, whose earlier records are dropped
    /// (fleet_aws::tombstones); unset, nothing is checked.
    pub tombstones_table: Option<String>,
}

impl Config {
    /// The environment variables [`Config`] reads; a test checks template.yaml sets exactly these.
    pub const ENV_VARS: &'static [&'static str] = &[
        "OPENSEARCH_ENDPOINT",
        "ROBOTS_ALIAS",
        "REJECTS_QUEUE_URL",
        "REJECT_PAYLOADS_BUCKET",
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
        let endpoint = env.required("OPENSEARCH_ENDPOINT")?;
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "OPENSEARCH_ENDPOINT",
                value: endpoint,
                problem: "must start with https:// (or http:// for a local cluster)".into(),
            });
        }
        Ok(Config {
            opensearch_endpoint: endpoint,
            robots_alias: env.required("ROBOTS_ALIAS")?,
            rejects_queue_url: env.required("REJECTS_QUEUE_URL")?,
            reject_payloads_bucket: env.required("REJECT_PAYLOADS_BUCKET")?,
            breaker,
            tombstones_table: env.optional("TOMBSTONES_TABLE"),
        })
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// The function could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error("could not build the http client: {0}")]
    Http(#[from] reqwest::Error),
    /// The embedded index template is not JSON (a build defect).
    #[error("the embedded index template is not valid json: {0}")]
    Template(#[from] serde_json::Error),
    /// Signing needs a region.
    #[error(
        "the function has credentials but no region to sign OpenSearch requests for (AWS_REGION)"
    )]
    NoRegion,
}

/// The handler, built once per cold start and reused by every invocation.
#[derive(Debug)]
pub struct Handler {
    index: RobotIndex,
    rejects: SqsRejectSink,
    template: Value,
    template_ready: OnceCell<()>,
    breaker: Option<FunctionBreaker>,
    tombstones: Option<fleet_aws::tombstones::Tombstones>,
}

/// Builds the handler's clients. With credentials (the function's role in Lambda, the role's
/// credentials from the AWS front locally) every OpenSearch request is SigV4-signed, whatever
/// the endpoint's host name; each request is bounded by the invocation's deadline.
pub async fn build(config: Config, sdk: &aws_config::SdkConfig) -> Result<Handler, BuildError> {
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(50))
        .connect_timeout(Duration::from_secs(3))
        .build()?;
    let signer = match sdk.credentials_provider() {
        Some(credentials) => {
            let region = sdk.region().ok_or(BuildError::NoRegion)?.to_string();
            Some(Signer::new(credentials, region))
        }
        None => None,
    };
    Ok(Handler {
        index: RobotIndex::new(
            http,
            &config.opensearch_endpoint,
            config.robots_alias,
            signer,
        ),
        rejects: SqsRejectSink::for_function(
            sdk,
            config.rejects_queue_url,
            config.reject_payloads_bucket,
        ),
        template: serde_json::from_str(INDEX_TEMPLATE)?,
        template_ready: OnceCell::new(),
        breaker: config
            .breaker
            .build(sdk, fleet_breaker::downstreams::ROBOTS_INDEX),
        tombstones: config
            .tombstones_table
            .map(|t| fleet_aws::tombstones::Tombstones::new(aws_sdk_dynamodb::Client::new(sdk), t)),
    })
}

/// A record's robot and its instant (Unix ms), for the tombstone check.
fn robot_and_time(r: &ShadowRecord) -> (&str, i64) {
    let ms = match r {
        ShadowRecord::Documents(d) => d.timestamp.saturating_mul(1000),
        ShadowRecord::Presence(p) => p.timestamp_ms,
    };
    (r.robot_id().as_str(), ms)
}

/// Decodes one record: shadow documents or presence, for the robot of the partition key.
pub fn decode(record: &fleet_lambda::KinesisRecord, bytes: &[u8]) -> Result<ShadowRecord, Reject> {
    // The index keeps the current state only: the previous document and the per-field metadata
    // are validated but not kept (they are most of a record's parsing and memory).
    Ok(ShadowRecord::from_record_current(
        bytes,
        &record.partition_key,
    )?)
}

/// The bulk request of a batch: one document per id, the newest version of it. Consumes the
/// items (their state moves into the documents) and returns the docs and, per item, its
/// position in the batch and the index of its doc (`None` when a newer version in the batch
/// supersedes it).
pub fn plan(
    items: Vec<fleet_lambda::batch::Item<ShadowRecord>>,
) -> (Vec<IndexDoc>, Vec<(usize, Option<usize>)>) {
    let keyed: Vec<(String, u64)> = items
        .iter()
        .map(|item| (item.value.doc_id(), item.value.external_version()))
        .collect();
    let mut newest: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for (i, (id, version)) in keyed.iter().enumerate() {
        match newest.get(id.as_str()) {
            Some(&j) if keyed[j].1 >= *version => {}
            _ => {
                newest.insert(id, i);
            }
        }
    }
    let mut docs = Vec::with_capacity(newest.len());
    let mut placement = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let (id, version) = &keyed[i];
        if newest.get(id.as_str()) == Some(&i) {
            placement.push((item.position, Some(docs.len())));
            docs.push(IndexDoc {
                id: id.clone(),
                version: *version,
                source: item.value.into_index_source(),
            });
        } else {
            placement.push((item.position, None));
        }
    }
    (docs, placement)
}

impl BatchHandler for Handler {
    async fn handle_batch(&self, event: Value, deadline: Deadline) -> Result<Finished, EventError> {
        let mut batch = Batch::new(FUNCTION, event)?;
        let items = batch.decode(decode);
        // Records of a decommissioned or reset robot from before its tombstone are dropped: a
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
        if items.is_empty() {
            return Ok(batch.finish(&self.rejects, deadline).await);
        }
        if let Some(breaker) = &self.breaker
            && let Admission::Deny { cause } = breaker.admit().await
        {
            batch.defer_pending(&cause);
            return Ok(batch.finish(&self.rejects, deadline).await);
        }
        let ready = self
            .template_ready
            .get_or_try_init(|| async {
                let created = self.index.ensure_template(&self.template, deadline).await?;
                if created {
                    tracing::info!(
                        alias = self.index.alias(),
                        "installed the robots index template"
                    );
                }
                Ok::<(), fleet_aws::IndexError>(())
            })
            .await;
        if let Err(e) = ready {
            tracing::error!(error = %e, "robots index template could not be checked; the batch will be retried");
            self.record(&counts_as(e.failure())).await;
            for item in &items {
                batch.set(item.position, Outcome::Retry(e.to_string()));
            }
            return Ok(self.finish(batch, deadline).await);
        }
        let (parts, robot_of) = summary_parts(&items);
        let (docs, placement) = plan(items);
        let results = self.index.bulk(&docs, &self.template, deadline).await;
        self.record(&call_outcome(&results)).await;
        let mut outcomes: Vec<(usize, Outcome)> = placement
            .into_iter()
            .map(|(position, doc)| {
                let outcome = match doc.and_then(|d| results.get(d)) {
                    None => Outcome::Duplicate, // superseded by a newer version in the same batch
                    Some(result) => outcome_of(result, "the document"),
                };
                (position, outcome)
            })
            .collect();
        // The robots' summaries, from the parts just indexed (fleet_aws::summary). A robot whose
        // summary could not be written has its records retried (they are stale for the part
        // documents then, and merge again).
        if !parts.is_empty() {
            let merged = self
                .index
                .merge_summaries(&parts, &self.template, deadline)
                .await;
            let results: Vec<ItemResult> = merged.values().cloned().collect();
            self.record(&call_outcome(&results)).await;
            for (position, outcome) in &mut outcomes {
                let Some(result) = robot_of.get(position).and_then(|r| merged.get(r)) else {
                    continue;
                };
                if matches!(outcome, Outcome::Succeeded | Outcome::Duplicate)
                    && matches!(result, ItemResult::Retry { .. } | ItemResult::Permanent(_))
                {
                    *outcome = outcome_of(result, "the robot's summary");
                }
            }
        }
        for (position, outcome) in outcomes {
            batch.set(position, outcome);
        }
        Ok(self.finish(batch, deadline).await)
    }
}

impl Handler {
    async fn record(&self, outcome: &CallOutcome) {
        if let Some(b) = &self.breaker {
            b.record(outcome).await;
        }
    }

    /// Finishes the batch; if the breaker opened meanwhile, what is left is deferred, not
    /// retried (the mappings are being paused; the canary does not count it).
    async fn finish(&self, mut batch: Batch, deadline: Deadline) -> Finished {
        if self.breaker.as_ref().is_some_and(|b| b.is_open()) {
            batch.defer_retries("circuit breaker of the robots index opened");
        }
        batch.finish(&self.rejects, deadline).await
    }
}

/// A record's outcome from its write's result.
fn outcome_of(result: &ItemResult, what: &str) -> Outcome {
    match result {
        ItemResult::Indexed => Outcome::Succeeded,
        ItemResult::Stale => Outcome::Duplicate,
        ItemResult::Retry { failure, reason } => {
            Outcome::Retry(format!("{what}: {}: {reason}", failure.as_str()))
        }
        ItemResult::Permanent(why) => Outcome::Rejected(Reject::new(
            RejectKind::PermanentDownstream,
            format!("opensearch refused {what}: {why}"),
        )),
    }
}

/// The parts of each robot's summary in a batch: the newest classic shadow and the newest
/// presence event per robot (named shadows have none), and the robot of each such record's
/// position. Only the chosen records' documents are built.
pub fn summary_parts(
    items: &[fleet_lambda::batch::Item<ShadowRecord>],
) -> (BTreeMap<String, Parts>, HashMap<usize, String>) {
    // Per robot: (version, item) of the newest shadow, and of the newest presence.
    type Newest = (Option<(u64, usize)>, Option<(u64, usize)>);
    let mut newest: BTreeMap<String, Newest> = BTreeMap::new();
    let mut robot_of = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let presence = match &item.value {
            ShadowRecord::Documents(d) if d.shadow_name.is_none() => false,
            ShadowRecord::Presence(_) => true,
            ShadowRecord::Documents(_) => continue,
        };
        let robot = item.value.robot_id().as_str().to_string();
        let version = item.value.external_version();
        let entry = newest.entry(robot.clone()).or_default();
        let slot = if presence { &mut entry.1 } else { &mut entry.0 };
        if slot.is_none_or(|(v, _)| v < version) {
            *slot = Some((version, i));
        }
        robot_of.insert(item.position, robot);
    }
    let parts = newest
        .into_iter()
        .map(|(robot, (shadow, presence))| {
            let part = |n: Option<(u64, usize)>| n.map(|(v, i)| (v, items[i].value.index_source()));
            (
                robot,
                Parts {
                    shadow: part(shadow),
                    presence: part(presence),
                },
            )
        })
        .collect();
    (parts, robot_of)
}

/// What one bulk request says about the domain's health: a failure when any document failed
/// for a reason that counts (the domain unavailable, authentication refused), nothing when only
/// throttling or a deployment mistake failed documents, a success otherwise.
pub fn call_outcome(results: &[ItemResult]) -> CallOutcome {
    let mut ignored = false;
    for r in results {
        if let ItemResult::Retry { failure, reason } = r {
            match counts_as(*failure) {
                CallOutcome::Failure(kind) => {
                    return CallOutcome::Failure(format!("{kind}: {reason}"));
                }
                _ => ignored = true,
            }
        }
    }
    if ignored {
        CallOutcome::Ignored
    } else {
        CallOutcome::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_lambda::batch::Item;
    use serde_json::json;

    /// A classic shadow's documents message for `thing` at `version`, at `timestamp`.
    fn shadow(position: usize, thing: &str, version: u64, timestamp: u64) -> Item<ShadowRecord> {
        let doc = json!({
            "current": {"state": {"reported": {"battery": version}}, "metadata": {}, "version": version},
            "timestamp": timestamp,
            "thingName": thing,
        });
        let bytes = serde_json::to_vec(&doc).unwrap();
        Item {
            position,
            key: thing.to_string(),
            value: ShadowRecord::from_record_current(&bytes, thing).unwrap(),
        }
    }

    #[test]
    fn a_batch_gives_each_robot_its_newest_shadow_and_presence_part_and_named_shadows_none() {
        let presence = |position: usize, thing: &str, ts: i64, kind: &str| {
            let bytes = serde_json::to_vec(&json!({
                "clientId": thing, "timestamp": ts, "eventType": kind,
                "sessionIdentifier": "s", "principalIdentifier": "p", "versionNumber": 1
            }))
            .unwrap();
            Item {
                position,
                key: thing.to_string(),
                value: ShadowRecord::from_record_current(&bytes, thing).unwrap(),
            }
        };
        let named = {
            let doc = json!({
                "current": {"state": {"reported": {"x": 1}}, "metadata": {}, "version": 9},
                "timestamp": 1_795_900_000u64, "thingName": "rb-1", "shadowName": "lidar",
            });
            let bytes = serde_json::to_vec(&doc).unwrap();
            Item {
                position: 5,
                key: "rb-1".into(),
                value: ShadowRecord::from_record_current(&bytes, "rb-1").unwrap(),
            }
        };
        let items = vec![
            shadow(0, "rb-1", 4, 1_795_900_000),
            shadow(1, "rb-1", 2, 1_795_900_000),
            presence(2, "rb-1", 1_795_900_000_000, "connected"),
            presence(3, "rb-1", 1_795_900_000_500, "disconnected"),
            shadow(4, "rb-2", 1, 1_795_900_000),
            named,
        ];
        let (parts, robot_of) = summary_parts(&items);
        assert_eq!(parts.len(), 2);
        let rb1 = &parts["rb-1"];
        assert_eq!(rb1.shadow.as_ref().unwrap().1["version"], 4);
        assert_eq!(rb1.presence.as_ref().unwrap().1["connected"], false);
        assert!(parts["rb-2"].presence.is_none());
        assert_eq!(
            robot_of.len(),
            5,
            "the named shadow has no part: {robot_of:?}"
        );
        assert!(!robot_of.contains_key(&5));
    }

    #[test]
    fn a_batch_indexes_each_document_once_at_its_newest_version() {
        let items = vec![
            shadow(0, "rb-000001", 5, 1_732_374_000),
            shadow(1, "rb-000002", 1, 1_732_374_000),
            shadow(2, "rb-000001", 7, 1_732_374_010),
            shadow(3, "rb-000001", 6, 1_732_374_005),
            // The same version again (a redelivery): the first copy stays.
            shadow(4, "rb-000002", 1, 1_732_374_000),
        ];
        let (docs, placement) = plan(items);
        let ids: Vec<(&str, u64)> = docs
            .iter()
            .map(|d| {
                (
                    d.id.as_str(),
                    d.source["reported"]["battery"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(ids, [("rb-000002", 1), ("rb-000001", 7)]);
        assert_eq!(
            placement,
            [(0, None), (1, Some(0)), (2, Some(1)), (3, None), (4, None)]
        );
        assert!(
            docs[1].version
                > shadow(9, "rb-000001", 6, 1_732_374_005)
                    .value
                    .external_version()
        );
    }

    #[test]
    fn the_embedded_template_is_json_for_the_robots_indices_and_adds_no_alias() {
        let t: Value = serde_json::from_str(INDEX_TEMPLATE).unwrap();
        assert_eq!(t["index_patterns"][0], "robots-*");
        // An index joins the alias only when made for it, so a rebuilt `robots-v2` does not
        // give the alias a second index to write to (robofleet reindex).
        assert!(t["template"].get("aliases").is_none());
        let mine = fleet_aws::robots::template_for_alias(&t, "robots-other");
        assert_eq!(mine["index_patterns"][0], "robots-other-*");
        assert!(mine["template"].get("aliases").is_none());
        assert_eq!(
            fleet_aws::robots::first_index_body("robots-other")["aliases"],
            serde_json::json!({"robots-other": {}})
        );
    }

    #[test]
    fn config_names_the_bad_endpoint() {
        let err = Config::from_lookup(|k| match k {
            "OPENSEARCH_ENDPOINT" => Some("search-x.es.amazonaws.com".into()),
            "ROBOTS_ALIAS" => Some("robots".into()),
            "REJECTS_QUEUE_URL" => Some("q".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("OPENSEARCH_ENDPOINT"), "{err}");
    }

    #[test]
    fn config_reads_exactly_its_declared_variables() {
        let read = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|k| {
            read.borrow_mut().push(k.to_string());
            Some(if k == "OPENSEARCH_ENDPOINT" {
                "http://127.0.0.1:1".into()
            } else if k.starts_with("BREAKER_") && k != "BREAKER_TABLE" && k != "BREAKER_FUNCTIONS"
            {
                "100".into()
            } else {
                "x".into()
            })
        })
        .unwrap();
        let mut read = read.into_inner();
        read.sort();
        let mut declared: Vec<String> = Config::ENV_VARS.iter().map(|s| s.to_string()).collect();
        declared.sort();
        assert_eq!(read, declared);
    }
}
