//! Kinesis record decoding: the event Lambda hands a function, taken apart record by record
//! (`fleet_lambda::parse_event`), with record fields of any shape, data that is or is not
//! base64, and the decoded bytes through both functions' decoders. Raw bytes that parse as
//! JSON are tried as whole events too.
#![no_main]

use base64::Engine as _;
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Debug, Arbitrary)]
enum Text {
    Absent,
    Number(i64),
    Raw(String),
    Base64(Vec<u8>),
}

fn text(t: Text) -> Option<Value> {
    Some(match t {
        Text::Absent => return None,
        Text::Number(n) => json!(n),
        Text::Raw(s) => json!(s),
        Text::Base64(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
    })
}

fn decode_all(event: Value) {
    let Ok(records) = fleet_lambda::parse_event(event) else {
        return;
    };
    for record in &records {
        if let Some(bytes) = record.bytes() {
            let _ = mission_ingest::decode(record, bytes);
            let _ = shadow_indexer::decode(record, bytes);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        decode_all(v);
    }
    let mut u = Unstructured::new(data);
    let mut records = Vec::new();
    while let Ok(more) = u.arbitrary::<bool>() {
        if !more || records.len() >= 8 {
            break;
        }
        let mut kinesis = serde_json::Map::new();
        for key in ["data", "partitionKey", "sequenceNumber", "approximateArrivalTimestamp"] {
            if let Some(v) = Text::arbitrary(&mut u).ok().and_then(text) {
                kinesis.insert(key.into(), v);
            }
        }
        let mut record = serde_json::Map::new();
        record.insert("kinesis".into(), Value::Object(kinesis));
        for key in ["eventID", "eventSourceARN"] {
            if let Some(v) = Text::arbitrary(&mut u).ok().and_then(text) {
                record.insert(key.into(), v);
            }
        }
        records.push(Value::Object(record));
    }
    decode_all(json!({ "Records": records }));
});
