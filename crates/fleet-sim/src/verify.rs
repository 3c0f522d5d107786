//! `--verify`: after the run, read the stores through the same endpoints the pipeline writes to,
//! and account for every message the robots handed to the broker.
//!
//! - Missions (DynamoDB): one Query per robot (`pk = ROBOT#<thing>`), 16 in flight at most, since
//!   moto serves about 200 requests/s. An item whose ULID is older than the run belongs to an
//!   earlier run and is ignored; an item of this run that the ledger does not expect (a second
//!   item for one mission, a malformed report that got stored) is `extra`.
//! - Robots index (OpenSearch): `_mget` of the robots' documents through the alias; a robot is
//!   stale when the indexed `version` is below the last version its shadow reached.
//! - Rejects (SQS): messages are received with a visibility timeout covering the verification,
//!   counted when their envelope's partition key is one of this run's robots, deduplicated on
//!   stream and sequence number, and then made visible again (or deleted with
//!   `--drain-rejects`).
//! - Latency: probes sent by the robots while the run goes on are polled until visible.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::args::Targets;
use crate::error::SimError;
use crate::ledger::RobotLedger;
use crate::robot::Sample;

/// Requests in flight against DynamoDB or OpenSearch.
pub const VERIFY_CONCURRENCY: usize = 16;

/// An SDK configuration for the targets: the given endpoint (the local stack's front) as the
/// local developer unless a profile or keys are given, or the normal AWS chain with
/// `--profile`/`AWS_PROFILE` (SSO included) and `--region`/`AWS_REGION`.
pub async fn sdk_config(targets: &Targets) -> Result<aws_config::SdkConfig, SimError> {
    targets
        .aws
        .sdk_config(targets.aws_endpoint.as_deref())
        .await
        .map_err(|e| SimError::Credentials(e.to_string()))
}

/// Reads the stores.
#[derive(Clone)]
pub struct Verifier {
    ddb: Option<(aws_sdk_dynamodb::Client, String)>,
    os: Option<(fleet_aws::OpenSearchHttp, String)>,
    sqs: Option<(aws_sdk_sqs::Client, String)>,
}

/// Mission accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MissionCounts {
    /// Missions with at least one report flushed to the broker.
    pub expected: u64,
    /// Of those, stored (one item, right key).
    pub stored: u64,
    /// Expected but not stored.
    pub lost: u64,
    /// Stored, but below the last revision sent.
    pub lost_revs: u64,
    /// Items of this run that should not exist.
    pub extra: u64,
    /// Missions whose only publishes were cut by a broken connection, found stored anyway.
    pub uncertain_stored: u64,
}

/// Robots-index accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RobotCounts {
    /// Robots with a known final shadow version.
    pub expected: u64,
    /// Robots with a document in the index.
    pub indexed: u64,
    /// Robots whose indexed version is behind their last reported version (or missing).
    pub stale: u64,
}

/// Rejects accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RejectCounts {
    /// Malformed reports injected and flushed.
    pub expected: u64,
    /// Distinct rejects of this run's robots found in the queue.
    pub found: u64,
    /// Found, by reason kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Copies dropped as retried duplicates (same stream and sequence number).
    pub deduplicated: u64,
}

fn sk_parts(sk: &str) -> Option<(&str, &str)> {
    sk.strip_prefix("MISSION#")?.rsplit_once('#')
}

/// Compares one robot's stored items (`(sk, rev)`) with its ledger. Items of earlier runs (ULID
/// time before `run_started_ms`) are ignored.
pub fn account_missions(
    ledger: &RobotLedger,
    items: &[(String, u32)],
    run_started_ms: u64,
) -> MissionCounts {
    let mut c = MissionCounts::default();
    let mut seen: HashSet<&str> = HashSet::new();
    for (sk, rev) in items {
        let Some((started_at, mission_id)) = sk_parts(sk) else {
            continue;
        };
        match ledger.missions.get(mission_id) {
            Some(m) if m.started_at == started_at && seen.insert(mission_id) => {
                if m.max_rev == 0 {
                    c.uncertain_stored += 1;
                } else if *rev < m.max_rev && m.uncertain_rev <= m.max_rev {
                    c.lost_revs += 1;
                }
            }
            Some(_) => c.extra += 1,
            None => {
                let ours = ulid::Ulid::from_string(mission_id)
                    .map(|u| u.timestamp_ms() + 1000 >= run_started_ms)
                    .unwrap_or(false);
                if ours {
                    c.extra += 1;
                }
            }
        }
    }
    for (id, m) in &ledger.missions {
        if m.max_rev == 0 {
            continue;
        }
        c.expected += 1;
        if seen.contains(id.as_str()) {
            c.stored += 1;
        } else {
            c.lost += 1;
        }
    }
    c
}

impl MissionCounts {
    /// Adds another robot's counts.
    pub fn add(&mut self, o: &MissionCounts) {
        self.expected += o.expected;
        self.stored += o.stored;
        self.lost += o.lost;
        self.lost_revs += o.lost_revs;
        self.extra += o.extra;
        self.uncertain_stored += o.uncertain_stored;
    }

    /// Every expected mission is stored at its last revision.
    pub fn complete(&self) -> bool {
        self.lost == 0 && self.lost_revs == 0
    }
}

impl Verifier {
    /// Clients for whatever targets are given; verification skips what is missing.
    pub async fn new(targets: &Targets) -> Result<Verifier, SimError> {
        let sdk = sdk_config(targets).await?;
        let ddb = targets
            .missions_table
            .as_ref()
            .map(|t| (aws_sdk_dynamodb::Client::new(&sdk), t.clone()));
        let sqs = targets
            .rejects_queue_url
            .as_ref()
            .map(|q| (aws_sdk_sqs::Client::new(&sdk), q.clone()));
        // Signed as whoever the SDK config signs as: the robots index answers only to IAM.
        let os = targets.opensearch_url.as_ref().map(|u| {
            (
                fleet_aws::OpenSearchHttp::from_sdk(&sdk, u),
                targets.robots_alias.clone(),
            )
        });
        Ok(Verifier { ddb, os, sqs })
    }

    /// True when missions can be checked.
    pub fn has_missions(&self) -> bool {
        self.ddb.is_some()
    }

    /// True when the robots index can be checked.
    pub fn has_index(&self) -> bool {
        self.os.is_some()
    }

    /// True when rejects can be counted.
    pub fn has_rejects(&self) -> bool {
        self.sqs.is_some()
    }

    /// Every mission item (`sk`, `rev`) of one robot.
    pub async fn robot_items(&self, robot: &str) -> Result<Vec<(String, u32)>, SimError> {
        let Some((client, table)) = &self.ddb else {
            return Ok(Vec::new());
        };
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :m)")
                .expression_attribute_values(":pk", AttributeValue::S(format!("ROBOT#{robot}")))
                .expression_attribute_values(":m", AttributeValue::S("MISSION#".into()))
                .projection_expression("sk, #r")
                .expression_attribute_names("#r", "rev")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| SimError::aws("dynamodb Query", e))?;
            for item in out.items() {
                let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned();
                let rev = item
                    .get("rev")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(0);
                if let Some(sk) = sk {
                    items.push((sk, rev));
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Whether each ledger's missions are all stored at their last revision, by key: consistent
    /// BatchGetItems of 100 keys, [`VERIFY_CONCURRENCY`] in flight.
    ///
    /// The drain wait asks this every half second. A key lookup is cheap on any backend, where a
    /// Query per robot is not on moto (it sorts the whole table for each one), and polling with
    /// Queries slowed the very writes being waited for. Extra items (duplicates under another
    /// key) aren't visible this way: the final pass counts them with [`Verifier::missions`].
    pub async fn missions_stored(&self, ledgers: &[&RobotLedger]) -> Result<Vec<bool>, SimError> {
        if self.ddb.is_none() {
            return Ok(vec![true; ledgers.len()]);
        }
        // (ledger index, pk, sk, needed rev); uncertain revisions may or may not have landed.
        let wanted: Vec<(usize, String, String, u32)> = ledgers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                l.missions
                    .iter()
                    .filter(|(_, m)| m.max_rev > 0)
                    .map(move |(id, m)| {
                        let need = if m.uncertain_rev > m.max_rev {
                            0
                        } else {
                            m.max_rev
                        };
                        let sk = format!("MISSION#{}#{id}", m.started_at);
                        (i, format!("ROBOT#{}", l.robot), sk, need)
                    })
            })
            .collect();
        let keys = wanted.iter().map(|(_, pk, sk, _)| (pk.clone(), sk.clone()));
        let found = self.stored_revs(keys.collect()).await?;
        let mut complete = vec![true; ledgers.len()];
        for (i, pk, sk, need) in wanted {
            if found.get(&(pk, sk)).is_none_or(|rev| *rev < need) {
                complete[i] = false;
            }
        }
        Ok(complete)
    }

    /// `rev` of each stored mission item among `keys` (`(pk, sk)`): consistent BatchGetItems of
    /// 100 keys, [`VERIFY_CONCURRENCY`] in flight.
    async fn stored_revs(
        &self,
        keys: Vec<(String, String)>,
    ) -> Result<HashMap<(String, String), u32>, SimError> {
        let Some((client, table)) = &self.ddb else {
            return Ok(HashMap::new());
        };
        let reads: Vec<_> = keys
            .chunks(100)
            .map(|chunk| self.batch_revs(client, table, chunk))
            .collect();
        let found: Vec<HashMap<(String, String), u32>> = futures::stream::iter(reads)
            .buffer_unordered(VERIFY_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        Ok(found.into_iter().flatten().collect())
    }

    /// `rev` of each stored item among `keys` (`(pk, sk)`, at most 100), retrying unprocessed keys.
    async fn batch_revs(
        &self,
        client: &aws_sdk_dynamodb::Client,
        table: &str,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), u32>, SimError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let key_map = |(pk, sk): &(String, String)| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.clone())),
                ("sk".to_string(), AttributeValue::S(sk.clone())),
            ])
        };
        let mut out = HashMap::new();
        let mut pending: Vec<HashMap<String, AttributeValue>> = keys.iter().map(key_map).collect();
        // Unprocessed keys are retried with exponential backoff and jitter, as DynamoDB asks.
        let backoff =
            fleet_aws::Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1));
        let mut rounds = 0;
        while !pending.is_empty() {
            if rounds > 0 {
                tokio::time::sleep(backoff.delay(rounds - 1)).await;
            }
            rounds += 1;
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .projection_expression("pk, sk, #r")
                .expression_attribute_names("#r", "rev")
                .build()
                .map_err(|e| SimError::aws("dynamodb BatchGetItem request", e))?;
            let resp = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| SimError::aws("dynamodb BatchGetItem", e))?;
            for item in resp
                .responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
            {
                let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let rev = item
                    .get("rev")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok());
                if let (Some(pk), Some(sk), Some(rev)) = (s("pk"), s("sk"), rev) {
                    out.insert((pk, sk), rev);
                }
            }
            if let Some(left) = resp.unprocessed_keys().and_then(|u| u.get(table)) {
                pending = left.keys().to_vec();
            }
        }
        Ok(out)
    }

    /// Mission accounting for `ledgers`, 16 queries in flight.
    pub async fn missions(
        &self,
        ledgers: &[&RobotLedger],
        run_started_ms: u64,
    ) -> Result<Vec<MissionCounts>, SimError> {
        let results: Vec<Result<MissionCounts, SimError>> = futures::stream::iter(ledgers.iter())
            .map(|l| async move {
                let items = self.robot_items(&l.robot).await?;
                Ok(account_missions(l, &items, run_started_ms))
            })
            .buffered(VERIFY_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Indexed shadow versions of `ids` (absent ids are missing from the map).
    pub async fn indexed_versions(&self, ids: &[String]) -> Result<HashMap<String, u64>, SimError> {
        let Some((http, alias)) = &self.os else {
            return Ok(HashMap::new());
        };
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let reply = http
                .call(
                    reqwest::Method::POST,
                    &format!("/{alias}/_mget"),
                    Some(&json!({ "ids": chunk })),
                )
                .await?;
            let body = reply.json();
            if reply.status == 404 {
                // No index yet: nothing indexed.
                continue;
            }
            if !reply.is_success() {
                return Err(SimError::OpenSearchAnswer(format!(
                    "_mget answered {}: {}",
                    reply.status,
                    reply.text()
                )));
            }
            let docs = body
                .get("docs")
                .and_then(Value::as_array)
                .ok_or_else(|| SimError::OpenSearchAnswer(format!("_mget without docs: {body}")))?;
            for d in docs {
                if d.get("found").and_then(Value::as_bool) != Some(true) {
                    continue;
                }
                let id = d.get("_id").and_then(Value::as_str).unwrap_or_default();
                let version = d
                    .pointer("/_source/version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                out.insert(id.to_string(), version);
            }
        }
        Ok(out)
    }

    /// Robots-index accounting: which robots are behind.
    pub async fn robots(
        &self,
        ledgers: &[&RobotLedger],
    ) -> Result<(RobotCounts, Vec<String>), SimError> {
        // Version 0 means the robot has no shadow at all (`get` answered 404): nothing to index.
        let with_version: Vec<&&RobotLedger> = ledgers
            .iter()
            .filter(|l| l.expected_version().is_some_and(|v| v > 0))
            .collect();
        let ids: Vec<String> = with_version.iter().map(|l| l.robot.clone()).collect();
        let versions = self.indexed_versions(&ids).await?;
        let mut c = RobotCounts {
            expected: ids.len() as u64,
            ..Default::default()
        };
        let mut stale = Vec::new();
        for l in with_version {
            let want = l.expected_version().unwrap_or(0);
            match versions.get(&l.robot) {
                Some(v) => {
                    c.indexed += 1;
                    if *v < want {
                        c.stale += 1;
                        stale.push(l.robot.clone());
                    }
                }
                None => {
                    c.stale += 1;
                    stale.push(l.robot.clone());
                }
            }
        }
        Ok((c, stale))
    }

    /// Receives rejects until `deadline` or until `expected` are found; counts those of `robots`.
    pub async fn rejects(
        &self,
        robots: &HashSet<String>,
        expected: u64,
        deadline: Instant,
        drain: bool,
    ) -> Result<RejectCounts, SimError> {
        let mut c = RejectCounts {
            expected,
            ..Default::default()
        };
        let Some((sqs, url)) = &self.sqs else {
            return Ok(c);
        };
        let visibility =
            (deadline.saturating_duration_since(Instant::now()).as_secs() + 30).min(43_000) as i32;
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut receipts: Vec<(String, bool)> = Vec::new();
        let mut empty_in_a_row = 0;
        loop {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(visibility)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| SimError::aws("sqs ReceiveMessage", e))?;
            let msgs = out.messages();
            if msgs.is_empty() {
                empty_in_a_row += 1;
            } else {
                empty_in_a_row = 0;
            }
            for m in msgs {
                let env: Value = m
                    .body()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null);
                let pk = env
                    .pointer("/source/partitionKey")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ours = robots.contains(pk);
                if let Some(h) = m.receipt_handle() {
                    receipts.push((h.to_string(), ours));
                }
                if !ours {
                    continue;
                }
                // Sequence numbers are unique per stream on AWS, but per shard on moto: the shard
                // is part of the key.
                let key = (
                    format!(
                        "{}/{}",
                        env.pointer("/source/streamArn")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        env.pointer("/source/shardId")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    ),
                    env.pointer("/source/sequenceNumber")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                );
                if !seen.insert(key) {
                    c.deduplicated += 1;
                    continue;
                }
                c.found += 1;
                let kind = env
                    .pointer("/reason/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                *c.by_kind.entry(kind.to_string()).or_default() += 1;
            }
            let done = c.found >= expected && empty_in_a_row >= 2;
            if done || (Instant::now() >= deadline && empty_in_a_row >= 1) {
                break;
            }
            if empty_in_a_row >= 2 && c.found < expected {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        // Give the messages back to the queue (or delete ours with --drain-rejects).
        for (handle, ours) in receipts {
            let r = if drain && ours {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| SimError::aws("sqs DeleteMessage", e))
            } else {
                sqs.change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| SimError::aws("sqs ChangeMessageVisibility", e))
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not release a reject message");
            }
        }
        Ok(c)
    }

    /// Which of `probes` are visible now, in order. A read that fails counts as not visible
    /// (the probe is tried again on the next tick).
    async fn visible_now(&self, probes: &[Sample]) -> Vec<bool> {
        let robots: Vec<String> = probes
            .iter()
            .filter_map(|p| match p {
                Sample::Shadow { robot, .. } => Some(robot.clone()),
                Sample::Mission { .. } => None,
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let versions = if robots.is_empty() {
            HashMap::new()
        } else {
            self.indexed_versions(&robots).await.unwrap_or_default()
        };
        let mut seen: Vec<bool> = probes
            .iter()
            .map(|p| match p {
                Sample::Shadow { robot, version, .. } => {
                    versions.get(robot).is_some_and(|got| got >= version)
                }
                Sample::Mission { .. } => false,
            })
            .collect();
        let keys: Vec<(String, String)> = probes
            .iter()
            .filter_map(|p| match p {
                Sample::Mission { robot, sk, .. } => Some((format!("ROBOT#{robot}"), sk.clone())),
                Sample::Shadow { .. } => None,
            })
            .collect();
        if !keys.is_empty() {
            let revs = self.stored_revs(keys).await.unwrap_or_default();
            for (seen, p) in seen.iter_mut().zip(probes) {
                if let Sample::Mission { robot, sk, rev, .. } = p {
                    let key = (format!("ROBOT#{robot}"), sk.clone());
                    *seen = revs.get(&key).is_some_and(|r| r >= rev);
                }
            }
        }
        seen
    }
}

/// Publish-to-visible latencies.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Latency {
    /// Probes that became visible.
    pub samples: u64,
    /// Probes that never became visible within the bound.
    pub timed_out: u64,
    /// Median, milliseconds.
    pub p50: Option<f64>,
    /// 99th percentile, milliseconds.
    pub p99: Option<f64>,
    /// Maximum, milliseconds.
    pub max: Option<f64>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Latency {
    /// Summarises raw latencies in milliseconds.
    pub fn from_values(mut ms: Vec<f64>, timed_out: u64) -> Latency {
        ms.sort_by(f64::total_cmp);
        Latency {
            samples: ms.len() as u64,
            timed_out,
            p50: percentile(&ms, 50.0),
            p99: percentile(&ms, 99.0),
            max: ms.last().copied(),
        }
    }
}

/// How often the sampler looks at the probes still pending: the error bound of a latency.
pub const SAMPLE_TICK: Duration = Duration::from_millis(100);

/// Polls the pending probes every [`SAMPLE_TICK`] until each is visible (at most `bound` each),
/// then returns when the channel closes and every probe is settled.
///
/// One tick reads every pending shadow probe with one `_mget` and the mission probes with
/// [`VERIFY_CONCURRENCY`] consistent GetItems in flight, so the probe count doesn't queue the
/// probes behind each other: a latency is the time to the first tick that saw the write, off by
/// at most one tick plus one read.
pub async fn run_sampler(
    verifier: Verifier,
    mut rx: mpsc::UnboundedReceiver<Sample>,
    bound: Duration,
) -> Latency {
    let mut pending: Vec<Sample> = Vec::new();
    let mut ms = Vec::new();
    let mut timed_out = 0;
    let mut open = true;
    let mut tick = tokio::time::interval(SAMPLE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while open || !pending.is_empty() {
        tokio::select! {
            got = rx.recv(), if open => match got {
                Some(sample) => pending.push(sample),
                None => open = false,
            },
            _ = tick.tick() => {
                let seen = verifier.visible_now(&pending).await;
                let now = Instant::now();
                let mut keep = Vec::with_capacity(pending.len());
                for (sample, visible) in pending.drain(..).zip(seen) {
                    let at = sample.at();
                    if visible {
                        ms.push(now.duration_since(at).as_secs_f64() * 1000.0);
                    } else if now >= at + bound {
                        timed_out += 1;
                    } else {
                        keep.push(sample);
                    }
                }
                pending = keep;
            }
        }
    }
    Latency::from_values(ms, timed_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> RobotLedger {
        let mut l = RobotLedger::new("rb-1");
        l.report_flushed("01JD3Z8Q6M9X4V2K7T5R3N1PZA", "2026-11-23T15:00:04Z", 1);
        l.report_flushed("01JD3Z8Q6M9X4V2K7T5R3N1PZA", "2026-11-23T15:00:04Z", 2);
        l.report_flushed("01JD3Z8Q6M9X4V2K7T5R3N1PZB", "2026-11-23T16:00:04Z", 1);
        l
    }

    #[test]
    fn counts_stored_lost_extra_and_lost_revisions() {
        let l = ledger();
        let run_start = 0;
        let items = vec![
            (
                "MISSION#2026-11-23T15:00:04Z#01JD3Z8Q6M9X4V2K7T5R3N1PZA".to_string(),
                2,
            ),
            // Same mission under another startedAt: a second item for one mission.
            (
                "MISSION#2026-11-23T15:00:05Z#01JD3Z8Q6M9X4V2K7T5R3N1PZA".to_string(),
                1,
            ),
        ];
        let c = account_missions(&l, &items, run_start);
        assert_eq!(
            c,
            MissionCounts {
                expected: 2,
                stored: 1,
                lost: 1,
                lost_revs: 0,
                extra: 1,
                uncertain_stored: 0
            }
        );
        let items = vec![
            (
                "MISSION#2026-11-23T15:00:04Z#01JD3Z8Q6M9X4V2K7T5R3N1PZA".to_string(),
                1,
            ),
            (
                "MISSION#2026-11-23T16:00:04Z#01JD3Z8Q6M9X4V2K7T5R3N1PZB".to_string(),
                1,
            ),
        ];
        let c = account_missions(&l, &items, run_start);
        assert_eq!((c.stored, c.lost, c.lost_revs, c.extra), (2, 0, 1, 0));
    }

    #[test]
    fn items_of_earlier_runs_are_ignored_and_this_runs_strangers_are_extra() {
        let l = ledger();
        let old = ulid::Ulid::from_parts(1_000, 1).to_string();
        let new = ulid::Ulid::from_parts(5_000_000, 1).to_string();
        let items = vec![
            (format!("MISSION#2026-11-22T10:00:00Z#{old}"), 1),
            (format!("MISSION#2026-11-23T10:00:00Z#{new}"), 1),
        ];
        let c = account_missions(&l, &items, 4_000_000);
        assert_eq!(c.extra, 1);
        assert_eq!(c.lost, 2);
    }

    #[test]
    fn uncertain_missions_are_neither_lost_nor_extra() {
        let mut l = RobotLedger::new("rb-1");
        l.report_uncertain("01JD3Z8Q6M9X4V2K7T5R3N1PZC", "2026-11-23T15:00:04Z", 1);
        let c = account_missions(&l, &[], 0);
        assert_eq!((c.expected, c.lost), (0, 0));
        let items = vec![(
            "MISSION#2026-11-23T15:00:04Z#01JD3Z8Q6M9X4V2K7T5R3N1PZC".to_string(),
            1,
        )];
        let c = account_missions(&l, &items, 0);
        assert_eq!((c.extra, c.uncertain_stored), (0, 1));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[], 50.0), None);
        let l = Latency::from_values(vec![3.0, 1.0, 2.0], 1);
        assert_eq!(
            (l.p50, l.max, l.samples, l.timed_out),
            (Some(2.0), Some(3.0), 3, 1)
        );
    }
}
