//! The JSON Lambda exchanges with a Kinesis-triggered function: the event it sends, the partial
//! batch response it reads back, and the invocation record it sends to an on-failure
//! destination.
//!
//! Shapes follow the Lambda developer guide: "Using Lambda with Kinesis Data Streams" (the
//! example event), "Configuring partial batch response with Kinesis Data Streams and Lambda"
//! (success and failure conditions) and "Retain discarded batch records for a Kinesis Data
//! Streams event source" (the SQS/SNS and S3 invocation records, and the S3 key layout).

use std::cmp::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

use fleet_lambda::record::compare_sequence;

use crate::config::MappingConfig;
use crate::ports::StreamRecord;

/// Seconds since the epoch with millisecond precision, as a JSON float
/// (`approximateArrivalTimestamp` of the Kinesis event).
pub fn epoch_seconds(t: SystemTime) -> f64 {
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as f64,
        Err(e) => -(e.duration().as_millis() as f64),
    };
    ms / 1000.0
}

/// ISO 8601 UTC with milliseconds (`2019-11-14T00:38:04.835Z`), as in failure records.
pub fn iso_millis(t: SystemTime) -> String {
    let dt = OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// The Lambda Kinesis event for `records` of `shard_id`.
pub fn kinesis_event(config: &MappingConfig, shard_id: &str, records: &[&StreamRecord]) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let items: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": b64.encode(&r.data),
                    "approximateArrivalTimestamp": epoch_seconds(r.approximate_arrival),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard_id}:{}", r.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": config.invoke_identity_arn,
                "awsRegion": config.region,
                "eventSourceARN": config.stream_arn,
            })
        })
        .collect();
    json!({ "Records": items })
}

/// Bytes one record adds to the event (its base64 data plus the fixed envelope), used to keep
/// a batch under Lambda's 6 MB payload limit.
pub fn record_event_size(config: &MappingConfig, shard_id: &str, r: &StreamRecord) -> usize {
    const ENVELOPE: usize = 330;
    r.data.len().div_ceil(3) * 4
        + r.partition_key.len()
        + 2 * r.sequence_number.len()
        + shard_id.len()
        + config.invoke_identity_arn.len()
        + config.region.len()
        + config.stream_arn.len()
        + ENVELOPE
}

/// How Lambda reads a function's answer for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// The whole batch succeeded: checkpoint at its last record.
    Success,
    /// Records before index `first_failed` succeeded; the batch is retried from it.
    /// `reported` is how many item failures the function named.
    Partial {
        /// Position in the batch of the lowest failed sequence number.
        first_failed: usize,
        /// Number of `batchItemFailures` entries.
        reported: usize,
    },
    /// The whole batch failed.
    Failure {
        /// Why, for logs.
        reason: String,
    },
}

/// Reads a partial batch response against the batch it answers.
///
/// Success: no payload, a payload without `batchItemFailures`, or a null or empty list. Whole
/// failure: an `itemIdentifier` that is null, empty, not a string, or not a sequence number of
/// this batch (Lambda's "wrong key name" case). Otherwise the checkpoint is the lowest failed
/// sequence number: compared numerically when both are digit strings, else by position.
pub fn read_response(payload: &Value, batch: &[&StreamRecord]) -> BatchVerdict {
    let failures = match payload.get("batchItemFailures") {
        None | Some(Value::Null) => return BatchVerdict::Success,
        Some(Value::Array(items)) if items.is_empty() => return BatchVerdict::Success,
        Some(Value::Array(items)) => items,
        Some(other) => {
            return BatchVerdict::Failure {
                reason: format!("batchItemFailures is not a list: {other}"),
            };
        }
    };
    let mut lowest: Option<usize> = None;
    for item in failures {
        let id = match item.get("itemIdentifier") {
            Some(Value::String(s)) if !s.is_empty() => s,
            other => {
                return BatchVerdict::Failure {
                    reason: format!("itemIdentifier is null, empty or not a string: {other:?}"),
                };
            }
        };
        let Some(pos) = batch.iter().position(|r| r.sequence_number == *id) else {
            return BatchVerdict::Failure {
                reason: format!("itemIdentifier {id} is not a sequence number of this batch"),
            };
        };
        lowest = Some(match lowest {
            None => pos,
            Some(cur) => {
                let (a, b) = (&batch[pos].sequence_number, &batch[cur].sequence_number);
                match compare_sequence(a, b) {
                    Some(Ordering::Less) => pos,
                    Some(_) => cur,
                    None => pos.min(cur),
                }
            }
        });
    }
    match lowest {
        Some(first_failed) => BatchVerdict::Partial {
            first_failed,
            reported: failures.len(),
        },
        None => BatchVerdict::Success,
    }
}

/// Why a batch went to the on-failure destination (`requestContext.condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCondition {
    /// `MaximumRetryAttempts` used up.
    RetryAttemptsExhausted,
    /// Records older than `MaximumRecordAgeInSeconds`.
    RecordAgeExceeded,
}

impl FailureCondition {
    /// The string Lambda writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Self::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// What the last invocation of a discarded batch answered (`responseContext`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastResponse {
    /// HTTP status of the Invoke call (200 when the function ran, even if it failed); `None`
    /// when the function was never reached.
    pub status_code: Option<u16>,
    /// `Unhandled` / `Handled`, or `None` (a partial batch response).
    pub function_error: Option<String>,
}

/// The invocation record Lambda sends to an SQS queue or SNS topic (metadata only).
pub fn invocation_record(
    config: &MappingConfig,
    shard_id: &str,
    records: &[&StreamRecord],
    condition: FailureCondition,
    invoke_count: u32,
    last: &LastResponse,
    now: SystemTime,
) -> Value {
    let first = records.first();
    let last_rec = records.last();
    let seq = |r: Option<&&StreamRecord>| r.map(|r| r.sequence_number.clone()).unwrap_or_default();
    let arrival = |r: Option<&&StreamRecord>| r.map(|r| iso_millis(r.approximate_arrival));
    let mut response = json!({
        "statusCode": last.status_code,
        "executedVersion": "$LATEST",
        "functionError": last.function_error,
    });
    if last.status_code.is_none() {
        // The function was never reached: there is no response to describe.
        response = json!({});
    }
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": config.function_arn,
            "condition": condition.as_str(),
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso_millis(now),
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": seq(first),
            "endSequenceNumber": seq(last_rec),
            "approximateArrivalOfFirstRecord": arrival(first),
            "approximateArrivalOfLastRecord": arrival(last_rec),
            "batchSize": records.len(),
            "streamArn": config.stream_arn,
        },
    })
}

/// The S3 object body: the invocation record plus `payload`, the whole event as an escaped
/// JSON string.
pub fn s3_object_body(metadata: &Value, event: &Value) -> Value {
    let mut body = metadata.clone();
    if let Value::Object(map) = &mut body {
        map.insert("payload".to_owned(), Value::String(event.to_string()));
    }
    body
}

/// The S3 key Lambda uses:
/// `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>`.
pub fn s3_object_key(mapping_uuid: &str, shard_id: &str, at: SystemTime) -> String {
    let dt = OffsetDateTime::from(at);
    let (y, m, d) = (dt.year(), u8::from(dt.month()), dt.day());
    format!(
        "aws/lambda/{mapping_uuid}/{shard_id}/{y:04}/{m:02}/{d:02}/{y:04}-{m:02}-{d:02}T{:02}.{:02}.{:02}-{}",
        dt.hour(),
        dt.minute(),
        dt.second(),
        uuid::Uuid::new_v4()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rec(seq: &str) -> StreamRecord {
        StreamRecord {
            sequence_number: seq.to_owned(),
            partition_key: "rb-1".to_owned(),
            data: b"hello".to_vec(),
            approximate_arrival: UNIX_EPOCH + Duration::from_millis(1_545_084_650_987),
        }
    }

    #[test]
    fn event_has_lambdas_kinesis_shape() {
        let c = MappingConfig::new("u", "fn", "missions");
        let r = rec("49590338271490256608559692538361571095921575989136588898");
        let e = kinesis_event(&c, "shardId-000000000006", &[&r]);
        let item = &e["Records"][0];
        assert_eq!(item["kinesis"]["kinesisSchemaVersion"], "1.0");
        assert_eq!(item["kinesis"]["data"], "aGVsbG8=");
        assert_eq!(
            item["kinesis"]["approximateArrivalTimestamp"],
            json!(1545084650.987)
        );
        assert_eq!(item["kinesis"]["partitionKey"], "rb-1");
        assert_eq!(item["eventSource"], "aws:kinesis");
        assert_eq!(item["eventVersion"], "1.0");
        assert_eq!(item["eventName"], "aws:kinesis:record");
        assert_eq!(
            item["eventID"],
            "shardId-000000000006:49590338271490256608559692538361571095921575989136588898"
        );
        assert_eq!(
            item["eventSourceARN"],
            "arn:aws:kinesis:us-east-1:123456789012:stream/missions"
        );
        assert_eq!(item["awsRegion"], "us-east-1");
        assert!(
            item["invokeIdentityArn"]
                .as_str()
                .is_some_and(|s| s.starts_with("arn:aws:iam::"))
        );
    }

    #[test]
    fn the_size_estimate_is_never_below_the_serialised_record() {
        let c = MappingConfig::new("u", "mission-ingest", "robofleet-missions");
        for n in [0usize, 1, 2, 3, 100, 1000] {
            let mut r = rec("49590338271490256608559692538361571095921575989136588898");
            r.data = vec![b'x'; n];
            r.partition_key = "rb-000123".into();
            let shard = "shardId-000000000123";
            let one = kinesis_event(&c, shard, &[&r]).to_string().len();
            let two = kinesis_event(&c, shard, &[&r, &r]).to_string().len();
            let per_record = two - one;
            assert!(
                record_event_size(&c, shard, &r) >= per_record,
                "{n}: {per_record}"
            );
            assert!(
                record_event_size(&c, shard, &r) < per_record + 200,
                "{n}: too pessimistic"
            );
        }
    }

    #[test]
    fn response_checkpoints_at_the_lowest_failed_sequence_number() {
        let rs = [rec("8"), rec("9"), rec("10"), rec("11")];
        let batch: Vec<&StreamRecord> = rs.iter().collect();
        let p = json!({"batchItemFailures": [{"itemIdentifier": "11"}, {"itemIdentifier": "9"}]});
        assert_eq!(
            read_response(&p, &batch),
            BatchVerdict::Partial {
                first_failed: 1,
                reported: 2
            }
        );
    }

    #[test]
    fn empty_or_missing_failures_are_a_success() {
        let rs = [rec("1")];
        let batch: Vec<&StreamRecord> = rs.iter().collect();
        for p in [
            json!(null),
            json!({}),
            json!({"batchItemFailures": []}),
            json!({"batchItemFailures": null}),
        ] {
            assert_eq!(read_response(&p, &batch), BatchVerdict::Success, "{p}");
        }
    }

    #[test]
    fn bad_item_identifiers_fail_the_whole_batch() {
        let rs = [rec("1"), rec("2")];
        let batch: Vec<&StreamRecord> = rs.iter().collect();
        for p in [
            json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": "3"}]}),
            json!({"batchItemFailures": [{"itemIdentifer": "1"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": "1"}, {"itemIdentifier": 2}]}),
            json!({"batchItemFailures": "1"}),
        ] {
            assert!(
                matches!(read_response(&p, &batch), BatchVerdict::Failure { .. }),
                "{p}"
            );
        }
    }

    #[test]
    fn invocation_record_matches_the_documented_example_shape() {
        let c = MappingConfig::new("u", "fn", "missions");
        let (a, b) = (rec("1"), rec("2"));
        let last = LastResponse {
            status_code: Some(200),
            function_error: Some("Unhandled".into()),
        };
        let now = UNIX_EPOCH + Duration::from_millis(1_573_691_886_021);
        let v = invocation_record(
            &c,
            "shardId-000000000001",
            &[&a, &b],
            FailureCondition::RetryAttemptsExhausted,
            3,
            &last,
            now,
        );
        assert_eq!(v["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(v["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(v["requestContext"]["functionArn"], c.function_arn);
        assert_eq!(
            v["responseContext"],
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
        );
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["timestamp"], "2019-11-14T00:38:06.021Z");
        let info = &v["KinesisBatchInfo"];
        assert_eq!(info["shardId"], "shardId-000000000001");
        assert_eq!(info["startSequenceNumber"], "1");
        assert_eq!(info["endSequenceNumber"], "2");
        assert_eq!(
            info["approximateArrivalOfFirstRecord"],
            "2018-12-17T22:10:50.987Z"
        );
        assert_eq!(info["batchSize"], 2);
        assert_eq!(info["streamArn"], c.stream_arn);
        assert!(v.get("payload").is_none());
        let body = s3_object_body(&v, &json!({"Records": []}));
        assert_eq!(body["payload"], "{\"Records\":[]}");
    }

    #[test]
    fn s3_key_follows_lambdas_layout() {
        let at = UNIX_EPOCH + Duration::from_secs(1_573_691_886);
        let key = s3_object_key("esm-1", "shardId-000000000001", at);
        assert!(
            key.starts_with(
                "aws/lambda/esm-1/shardId-000000000001/2019/11/14/2019-11-14T00.38.06-"
            ),
            "{key}"
        );
        assert_eq!(
            key.len(),
            "aws/lambda/esm-1/shardId-000000000001/2019/11/14/2019-11-14T00.38.06-".len() + 36
        );
    }
}
