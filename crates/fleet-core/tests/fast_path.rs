//! The typed fast paths of `MissionReport::from_json` and `ShadowRecord::from_json` /
//! `from_record_current` against the `Value` walk they fall back to: on every input, the same
//! value or the same error (kind, field and message).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use fleet_core::{DecodeError, MissionReport, ShadowRecord};
use proptest::prelude::*;
use serde_json::Value;

mod common;
use common::arb_json::{KEYS, arb_json};
use common::load;

fn same_error(a: &DecodeError, b: &DecodeError) -> bool {
    a.kind() == b.kind() && a.field() == b.field() && a.to_string() == b.to_string()
}

fn assert_mission_agrees(bytes: &[u8]) {
    let fast = MissionReport::from_json(bytes);
    let walk = MissionReport::from_json_walk(bytes);
    let text = String::from_utf8_lossy(bytes);
    match (&fast, &walk) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
        (Err(a), Err(b)) => assert!(same_error(a, b), "{a} vs {b} for {text}"),
        _ => panic!("fast {fast:?} vs walk {walk:?} for {text}"),
    }
}

fn assert_shadow_agrees(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let walk = ShadowRecord::from_json_walk(bytes);
    let fast = ShadowRecord::from_json(bytes);
    match (&fast, &walk) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
        (Err(a), Err(b)) => assert!(same_error(a, b), "{a} vs {b} for {text}"),
        _ => panic!("fast {fast:?} vs walk {walk:?} for {text}"),
    }
    // The indexer's decoder: the same, without `previous` and `current.metadata`.
    let key = match &walk {
        Ok(r) => r.robot_id().as_str().to_owned(),
        Err(_) => "rb-000123".to_owned(),
    };
    let current = ShadowRecord::from_record_current(bytes, &key);
    let stripped = walk.map(|mut r| {
        if let ShadowRecord::Documents(d) = &mut r {
            d.previous = None;
            d.current.metadata = None;
        }
        r
    });
    match (&current, &stripped) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
        (Err(a), Err(b)) => assert!(same_error(a, b), "{a} vs {b} for {text}"),
        _ => panic!("current {current:?} vs walk {stripped:?} for {text}"),
    }
}

#[test]
fn hand_written_edge_cases_agree() {
    let mission = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../schemas/examples/mission-report.completed.json"),
    )
    .unwrap();
    let m = |from: &str, to: &str| {
        assert!(mission.contains(from), "{from}");
        mission.replacen(from, to, 1)
    };
    let mission_cases = [
        mission.clone(),
        m("\"rev\": 2", "\"rev\": 2.0"),
        m("\"rev\": 2", "\"rev\": 0"),
        m("\"rev\": 2", "\"rev\": -0"),
        m("\"rev\": 2", "\"rev\": 2e0"),
        m("\"rev\": 2", "\"rev\": 1e400"),
        m("\"rev\": 2", "\"rev\": 2, \"rev\": 3"),
        m("\"rev\": 2", "\"r\\u0065v\": 2"),
        m("\"robotId\": \"", "\"robotId\": \"\\u0072"),
        m(
            "\"status\": \"completed\"",
            "\"status\": \"c\\u006fmpleted\"",
        ),
        m("\"durationS\": 2466", "\"durationS\": 2466.0"),
        m("\"durationS\": 2466", "\"durationS\": -0"),
        m("\"areaM2\": 42.5", "\"areaM2\": -0"),
        m("\"areaM2\": 42.5", "\"areaM2\": -0.0"),
        m("\"areaM2\": 42.5", "\"areaM2\": 1e308"),
        m("\"areaM2\": 42.5", "\"areaM2\": 18446744073709551616"),
        m(
            "\"areaM2\": 42.5",
            "\"areaM2\": 0.1000000000000000055511151231257827",
        ),
        m("\"start\": 100", "\"start\": 100.0"),
        m("\"start\": 100", "\"start\": 256"),
        m("\"start\": 100", "\"start\": 101"),
        m("\"start\": 100", "\"start\": 100, \"start\": 99"),
        m("\"battery\": {", "\"battery\": {\"x\": 1, "),
        m("\"schema\": 1", "\"schema\": 1.0"),
        m("\"schema\": 1", "\"schema\": 2"),
        m("\"endedAt\": \"", "\"endedAt\": null, \"x\": \""),
        m("\"endedAt\": ", "\"endedAt\": null, \"endedAt\": "),
        m("Z\"", "z\""),
        m("Z\"", "+00:00\""),
        m("Z\"", ".123456789Z\""),
        m("Z\"", ".1234567891Z\""),
        m("23T15:00:04Z", "23t15:00:04Z"),
        m("\"errors\": [", "\"errors\": null, \"e\": ["),
        m(
            "\"errors\": [",
            "\"errors\": [{\"code\": \"\\ud800\", \"at\": \"2026-11-23T15:20:00Z\"}, ",
        ),
        m(
            "\"errors\": [",
            "\"errors\": [{\"code\": \"\", \"at\": \"2026-11-23T15:20:00Z\"}, ",
        ),
        m(
            "\"errors\": [",
            "\"errors\": [{\"code\": \"x\", \"code\": \"y\", \"at\": \"2026-11-23T15:20:00Z\"}, ",
        ),
        m(
            "\"errors\": [",
            "\"errors\": [[\"x\", \"2026-11-23T15:20:00Z\"], ",
        ),
        format!("[{mission}]"),
        format!("{mission} x"),
        format!(" \n{mission}\n "),
        "[1, \"rb-1\"]".to_owned(),
        "".to_owned(),
    ];
    for case in &mission_cases {
        assert_mission_agrees(case.as_bytes());
    }
    let mut bytes = mission.clone().into_bytes();
    bytes.insert(bytes.len() - 3, 0xff);
    assert_mission_agrees(&bytes);

    let shadow = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../schemas/examples/shadow-documents.classic.json"),
    )
    .unwrap();
    let s = |from: &str, to: &str| {
        assert!(shadow.contains(from), "{from}");
        shadow.replacen(from, to, 1)
    };
    let shadow_cases = [
        shadow.clone(),
        s("\"thingName\"", "\"x\": 1e400, \"thingName\""),
        s("\"thingName\"", "\"x\": \"\\ud800\", \"thingName\""),
        s("\"thingName\"", "\"x\": \"\\u00e9\", \"thingName\""),
        s(
            "\"thingName\"",
            "\"x\": [[[[[[[[[[]]]]]]]]]], \"thingName\"",
        ),
        s(
            "\"thingName\"",
            "\"eventType\": \"connected\", \"thingName\"",
        ),
        s("\"thingName\"", "\"clientId\": 5, \"thingName\""),
        s("\"thingName\"", "\"shadowName\": null, \"thingName\""),
        s(
            "\"thingName\"",
            "\"shadowName\": \"presence\", \"thingName\"",
        ),
        s(
            "\"thingName\"",
            "\"shadowName\": \"sch\\u0065dule\", \"thingName\"",
        ),
        s(
            "\"thingName\"",
            "\"clientToken\": null, \"c\": 1, \"thingName\"",
        ),
        s("\"thingName\"", "\"timestamp\": 1, \"thingName\""),
        s(
            "\"thingName\"",
            "\"previous\": null, \"p\": 1, \"thingName\"",
        ),
        s("\"thingName\"", "\"previous\": 5, \"p\": 1, \"thingName\""),
        s(
            "\"thingName\"",
            "\"th\\u0069ngName\": \"rb-1\", \"thingName\"",
        ),
        s("\"version\"", "\"version\": 1, \"version\""),
        s("\"version\"", "\"state\": null, \"s\": 1, \"version\""),
        s("\"version\"", "\"metadata\": null, \"m\": 1, \"version\""),
        s("\"version\"", "\"metadata\": [], \"m\": 1, \"version\""),
        s("\"reported\"", "\"delta\": {\"a\": 1}, \"reported\""),
        s("\"reported\"", "\"delta\": 1, \"reported\""),
        s("\"reported\"", "\"reported\": null, \"r\""),
        s(
            "\"reported\": {",
            "\"reported\": {\"n\": 1.0, \"n\": 2, \"e\": 1e2, \"big\": 123456789012345678901234567890, ",
        ),
        format!("{shadow} ,"),
        "{\"current\": null}".to_owned(),
        "{\"current\": {\"version\": 1}, \"timestamp\": 1, \"thingName\": \"rb-1\"}".to_owned(),
        "{\"current\": {\"version\": 1.0}, \"timestamp\": 1, \"thingName\": \"rb-1\"}".to_owned(),
        "{\"current\": {\"version\": 9007199254740992}, \"timestamp\": 1, \"thingName\": \"rb-1\"}"
            .to_owned(),
        "{\"current\": {\"version\": 1}, \"timestamp\": 4294967296, \"thingName\": \"rb-1\"}"
            .to_owned(),
        "{\"current\": {\"version\": 1}, \"timestamp\": 4294967295, \"thingName\": \"rb-1\"}"
            .to_owned(),
        "{\"clientId\": \"rb-1\", \"timestamp\": 1, \"eventType\": \"connected\"}".to_owned(),
        format!(
            "{{\"x\": {}1{}, \"current\": {{\"version\": 1}}, \"timestamp\": 1, \"thingName\": \"rb-1\"}}",
            "[".repeat(130),
            "]".repeat(130)
        ),
        format!(
            "{{\"x\": {}1{}, \"current\": {{\"version\": 1}}, \"timestamp\": 1, \"thingName\": \"rb-1\"}}",
            "[".repeat(126),
            "]".repeat(126)
        ),
        format!(
            "{{\"x\": {}1{}, \"current\": {{\"version\": 1}}, \"timestamp\": 1, \"thingName\": \"rb-1\"}}",
            "[".repeat(127),
            "]".repeat(127)
        ),
    ];
    for case in &shadow_cases {
        assert_shadow_agrees(case.as_bytes());
    }
    // Invalid UTF-8 inside a part the fast path does not keep.
    let mut bytes = s("\"thingName\"", "\"x\": \"ab\", \"thingName\"").into_bytes();
    let at = bytes.windows(4).position(|w| w == b"\"ab\"").unwrap();
    bytes[at + 1] = 0xff;
    assert_shadow_agrees(&bytes);
}

fn edit(doc: &mut Value, path: &[(usize, Option<&'static str>)], new: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for (i, key) in parents {
        let next = match (key, cur) {
            (Some(k), Value::Object(m)) => m.get_mut(*k),
            (None, Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return };
        cur = next;
    }
    match (last, cur, new) {
        ((_, Some(k)), Value::Object(m), None) => {
            m.remove(*k);
        }
        ((_, Some(k)), Value::Object(m), Some(v)) => {
            m.insert((*k).to_owned(), v);
        }
        ((i, None), Value::Array(a), None) if *i < a.len() => {
            a.remove(*i);
        }
        ((i, None), Value::Array(a), Some(v)) if *i < a.len() => a[*i] = v,
        _ => {}
    }
}

fn step() -> impl Strategy<Value = (usize, Option<&'static str>)> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(|k| (0, Some(k))),
        1 => (0usize..3).prop_map(|i| (i, None)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_agree(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        assert_mission_agrees(&bytes);
        assert_shadow_agrees(&bytes);
    }

    #[test]
    fn arbitrary_json_agrees(v in arb_json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        assert_mission_agrees(&bytes);
        assert_shadow_agrees(&bytes);
    }

    #[test]
    fn mutated_payloads_agree(
        base in prop::sample::select(vec![
            "mission-report.completed", "mission-report.running",
            "shadow-documents.classic", "shadow-documents.named",
            "presence-event.connected", "presence-event.disconnected",
        ]),
        edits in prop::collection::vec(
            (prop::collection::vec(step(), 1..4), prop::option::of(arb_json())),
            1..4,
        ),
        pretty in any::<bool>(),
    ) {
        let mut v = load(&format!("schemas/examples/{base}.json"));
        for (path, new) in edits {
            edit(&mut v, &path, new);
        }
        let bytes = if pretty {
            serde_json::to_vec_pretty(&v).unwrap()
        } else {
            serde_json::to_vec(&v).unwrap()
        };
        assert_mission_agrees(&bytes);
        assert_shadow_agrees(&bytes);
    }
}
