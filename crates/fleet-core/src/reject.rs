//! The reject envelope: how a record that can never succeed is dead-lettered
//! (`schemas/reject-envelope.schema.json`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DecodeError;
use crate::timefmt::rfc3339_utc;

/// Why a record was rejected. Serialised in snake_case (`bad_base64`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// The stream record's data is not base64 (only possible with hand-made events).
    BadBase64,
    /// The payload is not UTF-8 JSON.
    BadJson,
    /// JSON, but it breaks the contract's schema.
    SchemaViolation,
    /// Over [`crate::MAX_PAYLOAD_BYTES`].
    TooLarge,
    /// The robot id in the payload differs from the record's partition key.
    RobotMismatch,
    /// A required field is absent.
    MissingField,
    /// Processing the record panicked (a bug on our side; the record is kept for replay).
    Panic,
    /// The downstream refused the record for good (a 4xx other than 409/429).
    PermanentDownstream,
}

impl RejectKind {
    /// Every kind.
    pub const ALL: [RejectKind; 8] = [
        RejectKind::BadBase64,
        RejectKind::BadJson,
        RejectKind::SchemaViolation,
        RejectKind::TooLarge,
        RejectKind::RobotMismatch,
        RejectKind::MissingField,
        RejectKind::Panic,
        RejectKind::PermanentDownstream,
    ];

    /// The wire spelling, also usable as a metric dimension.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::BadBase64 => "bad_base64",
            RejectKind::BadJson => "bad_json",
            RejectKind::SchemaViolation => "schema_violation",
            RejectKind::TooLarge => "too_large",
            RejectKind::RobotMismatch => "robot_mismatch",
            RejectKind::MissingField => "missing_field",
            RejectKind::Panic => "panic",
            RejectKind::PermanentDownstream => "permanent_downstream",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<RejectKind> {
        RejectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for RejectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the rejected record came from: enough to find it in the stream and to dedupe replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectSource {
    /// The Kinesis stream ARN (the event's `eventSourceARN`).
    pub stream_arn: String,
    /// The shard, such as `shardId-000000000000` (see [`shard_id_from_event_id`]).
    pub shard_id: String,
    /// The record's sequence number (an opaque string; do not assume a format).
    pub sequence_number: String,
    /// The record's partition key (the thing name).
    pub partition_key: String,
    /// When Kinesis accepted the record (RFC 3339 UTC), if known.
    #[serde(
        with = "rfc3339_utc::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub approximate_arrival_timestamp: Option<OffsetDateTime>,
}

/// The kind and a human-readable detail (the error's Display text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectReason {
    /// Machine-readable kind.
    pub kind: RejectKind,
    /// Human-readable detail naming the field and the problem.
    pub detail: String,
}

impl From<&DecodeError> for RejectReason {
    fn from(e: &DecodeError) -> Self {
        RejectReason {
            kind: e.kind(),
            detail: e.to_string(),
        }
    }
}

/// Where a payload too large for the rejects queue is kept: one S3 object holding the record's
/// data exactly as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPayload {
    /// The bucket (the stack's failed-batches bucket).
    pub bucket: String,
    /// The object key (`rejects/<function>/<shard>/<sequence number>`).
    pub key: String,
    /// The payload's length in bytes.
    pub bytes: u64,
}

/// One rejected record, as sent to the rejects queue. The payload travels in the envelope
/// (`payloadBase64`) or, when the envelope would not fit in one SQS message, in S3
/// (`payloadS3`): exactly one of the two is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "EnvelopeWire")]
pub struct RejectEnvelope {
    /// The function that rejected it (`mission-ingest`, `shadow-indexer`).
    pub function: String,
    /// Where the record came from.
    pub source: RejectSource,
    /// Why it was rejected.
    pub reason: RejectReason,
    /// The record's data exactly as received, base64-encoded (the caller encodes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// Where the record's data is, when it is too large to travel in the envelope.
    #[serde(default, rename = "payloadS3", skip_serializing_if = "Option::is_none")]
    pub payload_s3: Option<StoredPayload>,
    /// When it was rejected (RFC 3339 UTC).
    #[serde(with = "rfc3339_utc")]
    pub rejected_at: OffsetDateTime,
}

/// The envelope as it arrives, before the one-payload rule is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeWire {
    function: String,
    source: RejectSource,
    reason: RejectReason,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default, rename = "payloadS3")]
    payload_s3: Option<StoredPayload>,
    #[serde(with = "rfc3339_utc")]
    rejected_at: OffsetDateTime,
}

impl TryFrom<EnvelopeWire> for RejectEnvelope {
    type Error = &'static str;

    fn try_from(w: EnvelopeWire) -> Result<Self, Self::Error> {
        if w.payload_base64.is_some() == w.payload_s3.is_some() {
            return Err("a reject envelope carries exactly one of payloadBase64 and payloadS3");
        }
        Ok(RejectEnvelope {
            function: w.function,
            source: w.source,
            reason: w.reason,
            payload_base64: w.payload_base64,
            payload_s3: w.payload_s3,
            rejected_at: w.rejected_at,
        })
    }
}

impl RejectEnvelope {
    /// The identity of the rejected record: `<streamArn>#<sequenceNumber>`. Retries may send the
    /// same reject twice; a replay dedupes on this key.
    pub fn dedupe_key(&self) -> String {
        format!("{}#{}", self.source.stream_arn, self.source.sequence_number)
    }
}

/// The shard id of a Kinesis Lambda event's `eventID` (`shardId-000000000000:4959…`).
pub fn shard_id_from_event_id(event_id: &str) -> Option<&str> {
    let (shard, _) = event_id.split_once(':')?;
    (!shard.is_empty()).then_some(shard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> RejectEnvelope {
        RejectEnvelope {
            function: "mission-ingest".into(),
            source: RejectSource {
                stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/robofleet-missions"
                    .into(),
                shard_id: "shardId-000000000000".into(),
                sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
                partition_key: "rb-000123".into(),
                approximate_arrival_timestamp: crate::timefmt::from_unix_seconds_f64(
                    1_732_374_000.123,
                ),
            },
            reason: RejectReason {
                kind: RejectKind::BadJson,
                detail: "payload is not valid json".into(),
            },
            payload_base64: Some("e30=".into()),
            payload_s3: None,
            rejected_at: crate::timefmt::from_unix_seconds(1_732_374_001).unwrap(),
        }
    }

    #[test]
    fn kinds_serialise_in_snake_case() {
        for k in RejectKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
            assert_eq!(RejectKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(
            serde_json::to_value(RejectKind::PermanentDownstream).unwrap(),
            "permanent_downstream"
        );
    }

    #[test]
    fn envelope_wire_shape() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            v,
            json!({
                "function": "mission-ingest",
                "source": {
                    "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/robofleet-missions",
                    "shardId": "shardId-000000000000",
                    "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
                    "partitionKey": "rb-000123",
                    "approximateArrivalTimestamp": "2024-11-23T15:00:00.123Z"
                },
                "reason": { "kind": "bad_json", "detail": "payload is not valid json" },
                "payloadBase64": "e30=",
                "rejectedAt": "2024-11-23T15:00:01Z"
            })
        );
        let back: RejectEnvelope = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn a_stored_payload_replaces_the_inline_one() {
        let mut e = sample();
        e.payload_base64 = None;
        e.payload_s3 = Some(StoredPayload {
            bucket: "b".into(),
            key: "rejects/mission-ingest/shardId-000000000000/1".into(),
            bytes: 1_048_576,
        });
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.get("payloadBase64").is_none());
        assert_eq!(
            v["payloadS3"],
            json!({"bucket": "b", "key": "rejects/mission-ingest/shardId-000000000000/1", "bytes": 1_048_576})
        );
        assert_eq!(serde_json::from_value::<RejectEnvelope>(v).unwrap(), e);
    }

    #[test]
    fn dedupe_key_is_stream_and_sequence() {
        assert_eq!(
            sample().dedupe_key(),
            "arn:aws:kinesis:us-east-1:123456789012:stream/robofleet-missions#49590338271490256608559692538361571095921575989136588898"
        );
    }

    #[test]
    fn reason_from_decode_error() {
        let e = crate::MissionReport::from_json(b"nope").unwrap_err();
        let r = RejectReason::from(&e);
        assert_eq!(r.kind, RejectKind::BadJson);
        assert!(!r.detail.is_empty());
    }

    #[test]
    fn shard_id_parsing() {
        assert_eq!(
            shard_id_from_event_id("shardId-000000000000:4959"),
            Some("shardId-000000000000")
        );
        assert_eq!(shard_id_from_event_id("nocolon"), None);
        assert_eq!(shard_id_from_event_id(":1"), None);
    }
}
