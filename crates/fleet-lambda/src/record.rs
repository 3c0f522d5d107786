//! Splitting a Kinesis event into records, one at a time.
//!
//! The event is taken apart by hand from a `serde_json::Value` rather than deserialised into a
//! typed struct in one piece: a single record with, say, data that is not base64 would otherwise
//! fail the whole invocation and stall the shard. Here it becomes one rejected record.

use std::cmp::Ordering;

use base64::Engine as _;
use fleet_core::{MAX_PAYLOAD_BYTES, RejectKind};
use serde_json::Value;

use crate::error::EventError;
use crate::outcome::Reject;

/// One record of a Kinesis batch, as Lambda delivered it.
#[derive(Debug, Clone)]
pub struct KinesisRecord {
    /// Position in the batch (0-based). Batches are in shard order.
    pub position: usize,
    /// The record's sequence number: the identifier reported back on failure. `None` when the
    /// event did not carry a usable one; such a record can't be retried, only rejected.
    pub sequence_number: Option<String>,
    /// The partition key: the robot's thing name, set by the IoT rule.
    pub partition_key: String,
    /// The shard, from the `eventID` (`shardId-…:<sequence>`).
    pub shard_id: String,
    /// The stream's ARN.
    pub stream_arn: String,
    /// When Kinesis received the record (epoch seconds), if given.
    pub approximate_arrival: Option<f64>,
    /// The record data as Lambda sent it (base64), kept for the reject envelope.
    pub data_base64: String,
    /// The decoded payload, or why it could not be decoded.
    pub payload: Result<Vec<u8>, Reject>,
}

impl KinesisRecord {
    /// The decoded payload bytes, if the record got that far.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.payload.as_deref().ok()
    }
}

/// Splits a Kinesis event into its records. Only an event without a `Records` array is an
/// error; anything wrong with one record is recorded on that record.
pub fn parse_event(event: Value) -> Result<Vec<KinesisRecord>, EventError> {
    let records = match event {
        Value::Object(mut map) => match map.remove("Records") {
            Some(Value::Array(records)) => records,
            _ => return Err(EventError::NoRecords),
        },
        _ => return Err(EventError::NoRecords),
    };
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(position, record)| parse_record(position, record))
        .collect())
}

fn take_string(map: &mut serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_record(position: usize, record: Value) -> KinesisRecord {
    let mut outer = match record {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let mut kinesis = match outer.remove("kinesis") {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let mut event_id = take_string(&mut outer, "eventID").unwrap_or_default();
    let sequence_number = take_string(&mut kinesis, "sequenceNumber")
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            // The eventID is `<shardId>:<sequenceNumber>`; use it if the field itself is missing.
            event_id
                .split_once(':')
                .map(|(_, seq)| seq.to_string())
                .filter(|s| !s.trim().is_empty())
        });
    // The shard id is the part before ':'; the event id's own string is reused for it.
    let shard_id = match event_id.find(':') {
        Some(colon) => {
            event_id.truncate(colon);
            event_id
        }
        None => String::new(),
    };
    let partition_key = take_string(&mut kinesis, "partitionKey").unwrap_or_default();
    let stream_arn = take_string(&mut outer, "eventSourceARN").unwrap_or_default();
    let approximate_arrival = kinesis
        .get("approximateArrivalTimestamp")
        .and_then(Value::as_f64);
    let data_base64 = take_string(&mut kinesis, "data");

    let payload = match (&sequence_number, &data_base64) {
        (None, _) => Err(Reject::new(
            RejectKind::MissingField,
            "record has no kinesis.sequenceNumber; it cannot be checkpointed or retried",
        )),
        (_, None) => Err(Reject::new(
            RejectKind::MissingField,
            "record has no kinesis.data string",
        )),
        (Some(_), Some(data)) => decode_data(data),
    };
    KinesisRecord {
        position,
        sequence_number,
        partition_key,
        shard_id,
        stream_arn,
        approximate_arrival,
        data_base64: data_base64.unwrap_or_default(),
        payload,
    }
}

fn decode_data(data: &str) -> Result<Vec<u8>, Reject> {
    // Base64 inflates by 4/3: reject an oversized record before decoding it.
    let max_encoded = MAX_PAYLOAD_BYTES.div_ceil(3) * 4;
    if data.len() > max_encoded + 4 {
        return Err(Reject::new(
            RejectKind::TooLarge,
            format!(
                "payload is about {} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit",
                data.len() / 4 * 3
            ),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| {
            Reject::new(
                RejectKind::BadBase64,
                format!("kinesis.data is not base64: {e}"),
            )
        })?;
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(Reject::new(
            RejectKind::TooLarge,
            format!(
                "payload is {} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Orders two sequence numbers. Kinesis sequence numbers are decimal strings of any length
/// (moto's are small integers, AWS's have 56 digits), so they are compared as numbers. `None`
/// when either is not a plain decimal string; the caller then falls back to batch order.
pub fn compare_sequence(a: &str, b: &str) -> Option<Ordering> {
    fn digits(s: &str) -> Option<&str> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.trim_start_matches('0'))
    }
    let (a, b) = (digits(a)?, digits(b)?);
    Some(a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(seq: &str, key: &str, data: &str) -> Value {
        json!({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key, "sequenceNumber": seq,
                        "data": data, "approximateArrivalTimestamp": 1732374000.5},
            "eventSource": "aws:kinesis",
            "eventID": format!("shardId-000000000001:{seq}"),
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/missions"
        })
    }

    #[test]
    fn every_field_is_taken_from_the_record() {
        let recs = parse_event(json!({"Records": [record("42", "rb-1", "eyJhIjoxfQ==")]})).unwrap();
        let r = &recs[0];
        assert_eq!(r.sequence_number.as_deref(), Some("42"));
        assert_eq!(r.partition_key, "rb-1");
        assert_eq!(r.shard_id, "shardId-000000000001");
        assert_eq!(
            r.stream_arn,
            "arn:aws:kinesis:us-east-1:123456789012:stream/missions"
        );
        assert_eq!(r.approximate_arrival, Some(1732374000.5));
        assert_eq!(r.bytes(), Some(&b"{\"a\":1}"[..]));
    }

    #[test]
    fn bad_base64_fails_only_its_own_record() {
        let recs = parse_event(json!({"Records": [
            record("1", "rb-1", "eyJhIjoxfQ=="),
            record("2", "rb-1", "not base64!!"),
            record("3", "rb-1", "eyJhIjoxfQ=="),
        ]}))
        .unwrap();
        assert!(recs[0].payload.is_ok() && recs[2].payload.is_ok());
        assert_eq!(
            recs[1].payload.as_ref().unwrap_err().kind,
            RejectKind::BadBase64
        );
    }

    #[test]
    fn oversized_payload_is_too_large() {
        let big =
            base64::engine::general_purpose::STANDARD.encode(vec![b'x'; MAX_PAYLOAD_BYTES + 1]);
        let recs = parse_event(json!({"Records": [record("1", "rb-1", &big)]})).unwrap();
        assert_eq!(
            recs[0].payload.as_ref().unwrap_err().kind,
            RejectKind::TooLarge
        );
        let exact = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; MAX_PAYLOAD_BYTES]);
        let recs = parse_event(json!({"Records": [record("1", "rb-1", &exact)]})).unwrap();
        assert!(recs[0].payload.is_ok());
    }

    #[test]
    fn record_that_is_not_an_object_is_kept_as_a_rejectable_record() {
        let recs = parse_event(json!({"Records": [42, record("7", "rb-1", "e30=")]})).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(recs[0].sequence_number.is_none());
        assert_eq!(
            recs[0].payload.as_ref().unwrap_err().kind,
            RejectKind::MissingField
        );
        assert!(recs[1].payload.is_ok());
    }

    #[test]
    fn sequence_number_falls_back_to_the_event_id() {
        let mut r = record("99", "rb-1", "e30=");
        r["kinesis"]
            .as_object_mut()
            .unwrap()
            .remove("sequenceNumber");
        let recs = parse_event(json!({"Records": [r]})).unwrap();
        assert_eq!(recs[0].sequence_number.as_deref(), Some("99"));
    }

    #[test]
    fn event_without_records_is_the_only_whole_event_error() {
        assert!(parse_event(json!({"foo": 1})).is_err());
        assert!(parse_event(json!([1, 2])).is_err());
        assert!(parse_event(json!({"Records": []})).unwrap().is_empty());
    }

    #[test]
    fn sequence_numbers_compare_as_numbers_of_any_length() {
        assert_eq!(compare_sequence("9", "10"), Some(Ordering::Less));
        assert_eq!(
            compare_sequence(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Some(Ordering::Less)
        );
        assert_eq!(compare_sequence("007", "7"), Some(Ordering::Equal));
        assert_eq!(compare_sequence("abc", "1"), None);
        assert_eq!(compare_sequence("", "1"), None);
    }
}
