//! The DynamoDB missions table (docs/architecture.md §3).
//!
//! One conditional `PutItem` per report: the write lands only if the mission is new or the stored
//! `rev` is lower (`attribute_not_exists(pk) OR rev < :rev`). A failed condition is a duplicate
//! or a stale replay, which is success. A validation error is the record's fault: it is rejected.
//! Every other failure (throttling, 5xx, timeouts, and the deployment's own mistakes: access
//! denied, a missing KMS grant or table) is retried here with backoff, and what still fails when
//! the invocation's budget runs out goes back to Lambda as an item failure, so the record waits
//! in the stream.

use std::collections::HashMap;
use std::sync::OnceLock;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use fleet_core::MissionReport;
use fleet_core::timefmt::format_rfc3339;
use fleet_lambda::Deadline;
use time::OffsetDateTime;

use crate::error::{Failure, StoreError, describe};
use crate::retry::{Attempt, Backoff, one_bounded_dynamodb_attempt as one_bounded_attempt};

/// The attribute names of a mission item; the GSI and TTL names match template.yaml.
pub mod attr {
    /// Partition key `ROBOT#<robotId>`.
    pub const PK: &str = "pk";
    /// Sort key `MISSION#<startedAt>#<missionId>`.
    pub const SK: &str = "sk";
    /// The report's revision; the condition compares it.
    pub const REV: &str = "rev";
    /// GSI `byDay` partition key `DAY#<date>#<shard>`.
    pub const GSI1_PK: &str = "gsi1pk";
    /// GSI `byDay` sort key `<startedAt>#<robotId>#<missionId>`.
    pub const GSI1_SK: &str = "gsi1sk";
    /// TTL attribute (epoch seconds).
    pub const EXPIRES_AT: &str = "expiresAt";
}

/// The outcome of a successful write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The report was new, or newer than the stored one.
    Stored,
    /// The same or a newer revision is already stored: an at-least-once replay.
    DuplicateOrStale,
}

/// Writes mission reports.
#[derive(Debug, Clone)]
pub struct MissionStore {
    client: Client,
    table: String,
    ttl_days: u32,
    day_shards: u32,
    backoff: Backoff,
}

impl MissionStore {
    /// A store writing to `table`; items expire `ttl_days` after the mission ended (0 = never),
    /// and spread over `day_shards` GSI partitions per day.
    pub fn new(client: Client, table: impl Into<String>, ttl_days: u32, day_shards: u32) -> Self {
        MissionStore {
            client,
            table: table.into(),
            ttl_days,
            day_shards: day_shards.max(1),
            backoff: Backoff::default(),
        }
    }

    /// Replaces the retry policy.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The table written to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes one report with one conditional `PutItem`, retrying failures outside the record
    /// with backoff until `deadline`. This is the only retry layer: the SDK's own retries are off
    /// for the call, and every attempt is bounded by the time left before the deadline, minus
    /// the reserve the function needs to answer Lambda.
    pub async fn put(
        &self,
        report: &MissionReport,
        deadline: Deadline,
    ) -> Result<PutOutcome, StoreError> {
        let item = mission_item(
            report,
            self.ttl_days,
            self.day_shards,
            OffsetDateTime::now_utc(),
        );
        let result = self
            .backoff
            .run(deadline, |_| {
                let budget = self.backoff.attempt_budget(deadline);
                let request = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()))
                    .condition_expression("attribute_not_exists(#pk) OR #rev < :rev")
                    .expression_attribute_names("#pk", attr::PK)
                    .expression_attribute_names("#rev", attr::REV)
                    .expression_attribute_values(":rev", AttributeValue::N(report.rev.to_string()))
                    .customize()
                    .config_override(one_bounded_attempt(budget));
                async move {
                    if budget.is_zero() {
                        return Attempt::Transient((
                            Failure::Unavailable,
                            "no time left before the deadline".to_string(),
                        ));
                    }
                    match request.send().await {
                        Ok(_) => Attempt::Done(Ok(PutOutcome::Stored)),
                        Err(e) => match classify(&e) {
                            Class::ConditionFailed => {
                                Attempt::Done(Ok(PutOutcome::DuplicateOrStale))
                            }
                            Class::Failed(failure) => Attempt::Transient((failure, describe(&e))),
                            Class::Rejected => Attempt::Done(Err(StoreError::Rejected {
                                code: e.code().unwrap_or("unknown").to_string(),
                                message: describe(&e),
                            })),
                        },
                    }
                }
            })
            .await;
        match result {
            Ok(outcome) => outcome,
            Err(((failure, message), attempts)) => Err(StoreError::Retry {
                failure,
                attempts,
                message,
            }),
        }
    }
}

enum Class {
    ConditionFailed,
    Failed(Failure),
    Rejected,
}

type HttpResponse = aws_smithy_runtime_api::client::orchestrator::HttpResponse;

fn classify<E>(e: &SdkError<E, HttpResponse>) -> Class
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            if code == "ConditionalCheckFailedException" {
                return Class::ConditionFailed;
            }
            match Failure::of_aws_error(code, se.raw().status().as_u16()) {
                Some(failure) => Class::Failed(failure),
                None => Class::Rejected,
            }
        }
        // Timeouts, connection failures and unreadable responses are worth another try.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Class::Failed(Failure::Unavailable)
        }
        // The request could not even be built or signed (missing credentials, say).
        _ => Class::Failed(Failure::Configuration),
    }
}

/// The attributes of a mission item (those in [`attr`] and the report's fields).
const ITEM_ATTRIBUTES: [&str; 18] = [
    attr::PK,
    attr::SK,
    "robotId",
    "missionId",
    "schema",
    attr::REV,
    "status",
    "startedAt",
    "endedAt",
    "areaM2",
    "durationS",
    "batteryStart",
    "batteryEnd",
    "errors",
    attr::GSI1_PK,
    attr::GSI1_SK,
    attr::EXPIRES_AT,
    "ingestedAt",
];

/// A map holding `keys`, every value a placeholder. Items are clones of these: cloning a map
/// copies its table as it is, so the keys are neither hashed nor inserted again per item (an
/// item has about 18 attributes plus a two-key map per error entry).
fn template(keys: &[&str]) -> HashMap<String, AttributeValue> {
    keys.iter()
        .map(|k| ((*k).to_owned(), AttributeValue::Null(true)))
        .collect()
}

/// The item written for a report. Pure, so the layout is unit-tested.
///
/// `endedAt` is present when the report has one, `errors` (a list of `{code, at}` maps) when
/// it is not empty, `expiresAt` when `ttl_days > 0`.
pub fn mission_item(
    report: &MissionReport,
    ttl_days: u32,
    day_shards: u32,
    now: OffsetDateTime,
) -> HashMap<String, AttributeValue> {
    static ITEM: OnceLock<HashMap<String, AttributeValue>> = OnceLock::new();
    static ERROR_ENTRY: OnceLock<HashMap<String, AttributeValue>> = OnceLock::new();
    let s = AttributeValue::S;
    let n = AttributeValue::N;
    let mut started = format_rfc3339(report.started_at);
    let (robot, mission) = (report.robot_id.as_str(), report.mission_id.as_str());
    let mut gsi1sk = String::with_capacity(started.len() + robot.len() + mission.len() + 2);
    for part in [started.as_str(), "#", robot, "#", mission] {
        gsi1sk.push_str(part);
    }
    let mut item = ITEM.get_or_init(|| template(&ITEM_ATTRIBUTES)).clone();
    for (name, value) in item.iter_mut() {
        *value = match name.as_str() {
            attr::PK => s(report.pk()),
            attr::SK => s(report.sk()),
            "robotId" => s(robot.to_owned()),
            "missionId" => s(mission.to_owned()),
            "schema" => n(report.schema.to_string()),
            attr::REV => n(report.rev.to_string()),
            "status" => s(report.status.as_str().to_owned()),
            // Each attribute name occurs once: the strings built above are moved in.
            "startedAt" => s(std::mem::take(&mut started)),
            "endedAt" => match report.ended_at {
                Some(ended) => s(format_rfc3339(ended)),
                None => continue, // removed below
            },
            "areaM2" => n(report.area_m2.to_string()),
            "durationS" => n(report.duration_s.to_string()),
            "batteryStart" => n(report.battery.start.to_string()),
            "batteryEnd" => n(report.battery.end.to_string()),
            "errors" => {
                let entry = ERROR_ENTRY.get_or_init(|| template(&["code", "at"]));
                let errors = report
                    .errors
                    .iter()
                    .map(|e| {
                        let mut map = entry.clone();
                        for (name, value) in map.iter_mut() {
                            *value = if name == "code" {
                                s(e.code.clone())
                            } else {
                                s(format_rfc3339(e.at))
                            };
                        }
                        AttributeValue::M(map)
                    })
                    .collect();
                AttributeValue::L(errors)
            }
            attr::GSI1_PK => s(report.day_shard_key(day_shards)),
            attr::GSI1_SK => s(std::mem::take(&mut gsi1sk)),
            attr::EXPIRES_AT => {
                let base = report.ended_at.unwrap_or(report.started_at);
                n((base.unix_timestamp() + i64::from(ttl_days) * 86_400).to_string())
            }
            "ingestedAt" => s(format_rfc3339(now)),
            _ => continue,
        };
    }
    if report.ended_at.is_none() {
        item.remove("endedAt");
    }
    if report.errors.is_empty() {
        item.remove("errors");
    }
    if ttl_days == 0 {
        item.remove(attr::EXPIRES_AT);
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rev: u32) -> MissionReport {
        MissionReport::from_json(
            format!(
                r#"{{"schema":1,"robotId":"rb-000123","missionId":"01JD3Z8X6Y7ZQ4W5V6T7S8R9PQ","rev":{rev},
                "status":"completed","startedAt":"2026-11-23T15:00:04Z","endedAt":"2026-11-23T15:41:10Z",
                "areaM2":42.5,"durationS":2466,"battery":{{"start":100,"end":37}},
                "errors":[{{"code":"stuck","at":"2026-11-23T15:20:00Z"}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn item_has_keys_gsi_and_ttl() {
        let item = mission_item(&report(2), 30, 8, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(item["pk"], AttributeValue::S("ROBOT#rb-000123".into()));
        assert_eq!(
            item["sk"],
            AttributeValue::S("MISSION#2026-11-23T15:00:04Z#01JD3Z8X6Y7ZQ4W5V6T7S8R9PQ".into())
        );
        assert_eq!(item["rev"], AttributeValue::N("2".into()));
        let gsi = item["gsi1pk"].as_s().unwrap();
        assert!(gsi.starts_with("DAY#2026-11-23#"), "{gsi}");
        let shard: u32 = gsi.rsplit('#').next().unwrap().parse().unwrap();
        assert!(shard < 8);
        assert_eq!(
            item["gsi1sk"],
            AttributeValue::S("2026-11-23T15:00:04Z#rb-000123#01JD3Z8X6Y7ZQ4W5V6T7S8R9PQ".into())
        );
        // endedAt 2026-11-23T15:41:10Z + 30 days
        let ended = 1_795_448_470i64;
        assert_eq!(
            item["expiresAt"],
            AttributeValue::N((ended + 30 * 86_400).to_string())
        );
        assert_eq!(item["errors"].as_l().unwrap().len(), 1);
    }

    /// The item layout written plainly, one insert per attribute: `mission_item` builds the
    /// same map from templates.
    fn reference_item(
        report: &MissionReport,
        ttl_days: u32,
        day_shards: u32,
        now: OffsetDateTime,
    ) -> HashMap<String, AttributeValue> {
        let s = |v: String| AttributeValue::S(v);
        let n = |v: String| AttributeValue::N(v);
        let started = format_rfc3339(report.started_at);
        let mut item = HashMap::new();
        item.insert("pk".into(), s(report.pk()));
        item.insert("sk".into(), s(report.sk()));
        item.insert("robotId".into(), s(report.robot_id.as_str().into()));
        item.insert("missionId".into(), s(report.mission_id.as_str().into()));
        item.insert("schema".into(), n(report.schema.to_string()));
        item.insert("rev".into(), n(report.rev.to_string()));
        item.insert("status".into(), s(report.status.as_str().into()));
        item.insert("startedAt".into(), s(started.clone()));
        if let Some(ended) = report.ended_at {
            item.insert("endedAt".into(), s(format_rfc3339(ended)));
        }
        item.insert("areaM2".into(), n(report.area_m2.to_string()));
        item.insert("durationS".into(), n(report.duration_s.to_string()));
        item.insert("batteryStart".into(), n(report.battery.start.to_string()));
        item.insert("batteryEnd".into(), n(report.battery.end.to_string()));
        if !report.errors.is_empty() {
            let errors = report
                .errors
                .iter()
                .map(|e| {
                    AttributeValue::M(HashMap::from([
                        ("code".to_string(), s(e.code.clone())),
                        ("at".to_string(), s(format_rfc3339(e.at))),
                    ]))
                })
                .collect();
            item.insert("errors".into(), AttributeValue::L(errors));
        }
        item.insert("gsi1pk".into(), s(report.day_shard_key(day_shards)));
        item.insert(
            "gsi1sk".into(),
            s(format!(
                "{started}#{}#{}",
                report.robot_id, report.mission_id
            )),
        );
        if ttl_days > 0 {
            let base = report.ended_at.unwrap_or(report.started_at);
            let expires = base.unix_timestamp() + i64::from(ttl_days) * 86_400;
            item.insert("expiresAt".into(), n(expires.to_string()));
        }
        item.insert("ingestedAt".into(), s(format_rfc3339(now)));
        item
    }

    #[test]
    fn item_matches_the_plain_layout() {
        let running = MissionReport::from_json(
            br#"{"schema":1,"robotId":"rb-7","missionId":"01JD3Z8X6Y7ZQ4W5V6T7S8R9PQ","rev":1,
            "status":"running","startedAt":"2026-11-23T23:30:00.125-02:00","areaM2":0,
            "durationS":0,"battery":{"start":90,"end":80}}"#,
        )
        .unwrap();
        let mut many = report(3);
        many.errors = (0..20)
            .map(|i| fleet_core::MissionError {
                code: format!("code-{i}"),
                at: many.started_at + time::Duration::milliseconds(i * 1_250),
            })
            .collect();
        let now =
            OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(1_732_374_000_123_456_789);
        for r in [report(1), report(2), running, many] {
            for ttl in [0, 30, 365] {
                for shards in [1, 8] {
                    assert_eq!(
                        mission_item(&r, ttl, shards, now),
                        reference_item(&r, ttl, shards, now)
                    );
                }
            }
        }
    }

    #[test]
    fn no_ttl_when_retention_is_zero() {
        assert!(
            !mission_item(&report(1), 0, 8, OffsetDateTime::UNIX_EPOCH).contains_key("expiresAt")
        );
    }
}
