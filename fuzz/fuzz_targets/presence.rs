//! Presence (lifecycle) events: structure-aware. The input picks, for each field IoT Core puts
//! in a lifecycle event, a value of any JSON type (or none), so the validator sees well-formed
//! JSON with every combination of missing, mistyped and out-of-range fields, not only bytes
//! that fail to parse.
#![no_main]

use fleet_core::ShadowRecord;
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};

#[derive(Debug, Arbitrary)]
enum Field {
    Absent,
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Known(u8),
    Nested,
}

const FIELDS: &[&str] = &[
    "clientId",
    "timestamp",
    "eventType",
    "sessionIdentifier",
    "principalIdentifier",
    "versionNumber",
    "clientInitiatedDisconnect",
    "disconnectReason",
    "ipAddress",
];

/// Plausible values, so the validator's later checks are reached too.
const KNOWN: &[&str] = &[
    "connected",
    "disconnected",
    "rb-000001",
    "iotconsole-1",
    "CLIENT_INITIATED_DISCONNECT",
    "1700000000000",
    "",
];

fn value(field: Field) -> Option<Value> {
    Some(match field {
        Field::Absent => return None,
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(b),
        Field::Int(i) => Value::Number(Number::from(i)),
        Field::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Field::Text(s) => Value::String(s),
        Field::Known(k) => Value::String(KNOWN[k as usize % KNOWN.len()].to_string()),
        Field::Nested => Value::Object(Map::new()),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut event = Map::new();
    for name in FIELDS {
        let Ok(field) = Field::arbitrary(&mut u) else {
            break;
        };
        if let Some(v) = value(field) {
            event.insert((*name).to_string(), v);
        }
    }
    // Sometimes a plausible robot event, so that valid events are decoded too.
    if u.arbitrary::<bool>().unwrap_or(false) {
        event.insert("clientId".into(), "rb-000001".into());
        event.insert("eventType".into(), "connected".into());
        event.insert(
            "timestamp".into(),
            u.arbitrary::<u32>().map(u64::from).unwrap_or(0).into(),
        );
    }
    let bytes = serde_json::to_vec(&Value::Object(event)).unwrap_or_default();
    if let Ok(record) = ShadowRecord::from_record(&bytes, "rb-000001") {
        let _ = (record.doc_id(), record.external_version());
        let _ = record.into_index_source();
    }
    let _ = ShadowRecord::from_json_walk(&bytes);
});
