//! Arbitrary JSON for the decoder property tests, shared by `crates/fleet-core/tests/` and
//! `tests/tests/decoders.rs` (included there with `#[path]`): objects keyed mostly by the
//! contracts' own field names, numbers at the integer and float edges, and strings that look
//! like ids, statuses and timestamps (with up to 10 fractional digits, one more than the
//! contracts take), so that generated documents reach deep into the validators.

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

/// Keys the contracts use, so that generated objects hit real fields often.
pub const KEYS: &[&str] = &[
    "schema",
    "robotId",
    "missionId",
    "rev",
    "status",
    "startedAt",
    "endedAt",
    "areaM2",
    "durationS",
    "battery",
    "start",
    "end",
    "errors",
    "code",
    "at",
    "current",
    "previous",
    "state",
    "reported",
    "desired",
    "delta",
    "metadata",
    "version",
    "timestamp",
    "clientToken",
    "thingName",
    "shadowName",
    "clientId",
    "eventType",
    "sessionIdentifier",
    "versionNumber",
    "disconnectReason",
    "extra",
];

fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        "[a-zA-Z0-9:_-]{1,10}",
        "[0-7][0-9A-HJKMNP-TV-Z]{25}",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,10})?([Zz]|[+-][0-2][0-9]:[0-5][0-9])",
        Just("running".to_owned()),
        Just("completed".to_owned()),
        Just("battery_low".to_owned()),
        Just("connected".to_owned()),
        Just("disconnected".to_owned()),
        Just("presence".to_owned()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-5i64..200).prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        (-5.0f64..200.0).prop_map(|f| json!(f)),
        prop_oneof![
            Just(json!(4_294_967_295_u64)),
            Just(json!(4_294_967_296_u64)),
            Just(json!(9_007_199_254_740_991_u64)),
            Just(json!(9_007_199_254_740_992_u64)),
            Just(json!(1.0)),
            Just(json!(100.0)),
            Just(json!(1e300)),
        ],
    ]
}

/// An arbitrary JSON document (see the module doc).
pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}
