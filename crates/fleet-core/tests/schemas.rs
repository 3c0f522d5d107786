//! The JSON Schemas in `schemas/` and the domain types must agree: every example passes both, and
//! every invalid example (one per rule) fails both, with the reject kind the consumers will use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use fleet_core::{MissionReport, RejectEnvelope, RejectKind, ShadowRecord};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(rel: &str) -> Value {
    let path = repo_root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(name: &str) -> jsonschema::Validator {
    let schema = load(&format!("schemas/{name}.schema.json"));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"))
}

fn schema_errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| e.to_string()).collect()
}

fn examples(prefix: &str) -> Vec<(String, Value)> {
    let dir = repo_root().join("schemas/examples");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .map(|n| {
            let v = load(&format!("schemas/examples/{n}"));
            (n, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no examples for {prefix}");
    out
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn mission_examples_pass_schema_and_domain() {
    let schema = validator("mission-report");
    for (name, v) in examples("mission-report.") {
        assert_eq!(schema_errors(&schema, &v), Vec::<String>::new(), "{name}");
        let r = MissionReport::from_json(&bytes(&v)).unwrap_or_else(|e| panic!("{name}: {e}"));
        // What we write back is itself valid.
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(
            schema_errors(&schema, &back),
            Vec::<String>::new(),
            "{name} re-serialised"
        );
    }
}

#[test]
fn shadow_examples_pass_schema_and_domain() {
    let docs = validator("shadow-documents");
    let presence = validator("presence-event");
    for (name, v) in examples("shadow-documents.") {
        assert_eq!(schema_errors(&docs, &v), Vec::<String>::new(), "{name}");
        assert!(!presence.is_valid(&v), "{name} must not pass as presence");
        let r = ShadowRecord::from_json(&bytes(&v)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(r, ShadowRecord::Documents(_)), "{name}");
    }
    for (name, v) in examples("presence-event.") {
        assert_eq!(schema_errors(&presence, &v), Vec::<String>::new(), "{name}");
        assert!(!docs.is_valid(&v), "{name} must not pass as documents");
        let r = ShadowRecord::from_json(&bytes(&v)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(r, ShadowRecord::Presence(_)), "{name}");
    }
}

#[test]
fn reject_envelope_example_and_serialised_envelopes_pass() {
    let schema = validator("reject-envelope");
    for (name, v) in examples("reject-envelope") {
        assert_eq!(schema_errors(&schema, &v), Vec::<String>::new(), "{name}");
        let env: RejectEnvelope = serde_json::from_value(v.clone()).unwrap();
        let back = serde_json::to_value(&env).unwrap();
        assert_eq!(back, v, "{name} round trip");
    }
    // Every kind the code can emit is in the schema's enum.
    let mut env: RejectEnvelope =
        serde_json::from_value(load("schemas/examples/reject-envelope.json")).unwrap();
    for kind in RejectKind::ALL {
        env.reason.kind = kind;
        env.source.approximate_arrival_timestamp = None;
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(schema_errors(&schema, &v), Vec::<String>::new(), "{kind}");
    }
}

/// Applies `edit` to a copy of `base`.
fn edited(base: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = base.clone();
    edit(&mut v);
    v
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}

fn mission_invalid_cases() -> Vec<(&'static str, Value, RejectKind)> {
    let base = load("schemas/examples/mission-report.completed.json");
    let e = |edit: fn(&mut Value)| edited(&base, edit);
    let mut cases = vec![
        (
            "not an object",
            json!([1, 2, 3]),
            RejectKind::SchemaViolation,
        ),
        (
            "schema 2",
            e(|v| v["schema"] = json!(2)),
            RejectKind::SchemaViolation,
        ),
        (
            "schema as string",
            e(|v| v["schema"] = json!("1")),
            RejectKind::SchemaViolation,
        ),
        (
            "unknown top-level field",
            e(|v| v["endAt"] = json!("2026-11-23T15:41:10Z")),
            RejectKind::SchemaViolation,
        ),
        (
            "robotId with a space",
            e(|v| v["robotId"] = json!("rb 000123")),
            RejectKind::SchemaViolation,
        ),
        (
            "robotId empty",
            e(|v| v["robotId"] = json!("")),
            RejectKind::SchemaViolation,
        ),
        (
            "robotId too long",
            e(|v| v["robotId"] = json!("r".repeat(129))),
            RejectKind::SchemaViolation,
        ),
        (
            "missionId lower case",
            e(|v| v["missionId"] = json!("01jd3z8q6m9x4v2k7t5r3n1pza")),
            RejectKind::SchemaViolation,
        ),
        (
            "missionId short",
            e(|v| v["missionId"] = json!("01JD3Z")),
            RejectKind::SchemaViolation,
        ),
        (
            "missionId overflow",
            e(|v| v["missionId"] = json!("8ZZZZZZZZZZZZZZZZZZZZZZZZZ")),
            RejectKind::SchemaViolation,
        ),
        (
            "rev 0",
            e(|v| v["rev"] = json!(0)),
            RejectKind::SchemaViolation,
        ),
        (
            "rev fractional",
            e(|v| v["rev"] = json!(1.5)),
            RejectKind::SchemaViolation,
        ),
        (
            "rev over u32",
            e(|v| v["rev"] = json!(4_294_967_296_u64)),
            RejectKind::SchemaViolation,
        ),
        (
            "status unknown",
            e(|v| v["status"] = json!("done")),
            RejectKind::SchemaViolation,
        ),
        (
            "startedAt without T",
            e(|v| v["startedAt"] = json!("2026-11-23 15:00:04Z")),
            RejectKind::SchemaViolation,
        ),
        (
            "startedAt date only",
            e(|v| v["startedAt"] = json!("2026-11-23")),
            RejectKind::SchemaViolation,
        ),
        (
            "startedAt impossible date",
            e(|v| v["startedAt"] = json!("2026-02-30T15:00:04Z")),
            RejectKind::SchemaViolation,
        ),
        (
            "startedAt epoch number",
            e(|v| v["startedAt"] = json!(1_763_910_004)),
            RejectKind::SchemaViolation,
        ),
        (
            "endedAt null",
            e(|v| v["endedAt"] = json!(null)),
            RejectKind::SchemaViolation,
        ),
        (
            "running with endedAt",
            e(|v| v["status"] = json!("running")),
            RejectKind::SchemaViolation,
        ),
        (
            "completed without endedAt",
            e(|v| remove(v, "endedAt")),
            RejectKind::SchemaViolation,
        ),
        (
            "areaM2 negative",
            e(|v| v["areaM2"] = json!(-1.0)),
            RejectKind::SchemaViolation,
        ),
        (
            "areaM2 string",
            e(|v| v["areaM2"] = json!("42.5")),
            RejectKind::SchemaViolation,
        ),
        (
            "durationS negative",
            e(|v| v["durationS"] = json!(-5)),
            RejectKind::SchemaViolation,
        ),
        (
            "durationS fractional",
            e(|v| v["durationS"] = json!(12.5)),
            RejectKind::SchemaViolation,
        ),
        (
            "battery not an object",
            e(|v| v["battery"] = json!(37)),
            RejectKind::SchemaViolation,
        ),
        (
            "battery.end over 100",
            e(|v| v["battery"]["end"] = json!(120)),
            RejectKind::SchemaViolation,
        ),
        (
            "battery.start negative",
            e(|v| v["battery"]["start"] = json!(-1)),
            RejectKind::SchemaViolation,
        ),
        (
            "battery extra field",
            e(|v| v["battery"]["mid"] = json!(50)),
            RejectKind::SchemaViolation,
        ),
        (
            "errors not an array",
            e(|v| v["errors"] = json!({"code": "x"})),
            RejectKind::SchemaViolation,
        ),
        (
            "errors[0].code empty",
            e(|v| v["errors"][0]["code"] = json!("")),
            RejectKind::SchemaViolation,
        ),
        (
            "errors[0].code too long",
            e(|v| v["errors"][0]["code"] = json!("c".repeat(65))),
            RejectKind::SchemaViolation,
        ),
        (
            "errors[0].at bad",
            e(|v| v["errors"][0]["at"] = json!("noon")),
            RejectKind::SchemaViolation,
        ),
        (
            "errors[0] extra field",
            e(|v| v["errors"][0]["detail"] = json!("x")),
            RejectKind::SchemaViolation,
        ),
        (
            "errors over 256 entries",
            e(|v| {
                v["errors"] = json!(vec![
                    json!({"code": "e", "at": "2026-11-23T15:20:00Z"});
                    257
                ])
            }),
            RejectKind::SchemaViolation,
        ),
    ];
    for field in [
        "schema",
        "robotId",
        "missionId",
        "rev",
        "status",
        "startedAt",
        "areaM2",
        "durationS",
        "battery",
    ] {
        let name: &'static str = Box::leak(format!("missing {field}").into_boxed_str());
        cases.push((
            name,
            edited(&base, |v| remove(v, field)),
            RejectKind::MissingField,
        ));
    }
    cases.push((
        "missing battery.end",
        e(|v| remove(&mut v["battery"], "end")),
        RejectKind::MissingField,
    ));
    cases.push((
        "missing errors[0].code",
        e(|v| remove(&mut v["errors"][0], "code")),
        RejectKind::MissingField,
    ));
    cases
}

#[test]
fn invalid_mission_reports_fail_schema_and_domain() {
    let schema = validator("mission-report");
    for (name, v, kind) in mission_invalid_cases() {
        assert!(!schema.is_valid(&v), "schema accepts: {name}");
        let err = MissionReport::from_json(&bytes(&v)).expect_err(name);
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert!(!err.to_string().is_empty());
    }
}

/// Rules JSON Schema cannot express: the schema lets these through, the consumers refuse them.
/// Kept as a list so that the gap is explicit (and documented in the schema's description).
#[test]
fn domain_only_rules_are_known_and_enforced() {
    let schema = validator("mission-report");
    let base = load("schemas/examples/mission-report.completed.json");
    let cases = [(
        "endedAt before startedAt",
        edited(&base, |v| v["endedAt"] = json!("2026-11-23T14:00:00Z")),
    )];
    for (name, v) in cases {
        assert!(
            schema.is_valid(&v),
            "{name}: schema now catches it; move it to the main table"
        );
        let err = MissionReport::from_json(&bytes(&v)).expect_err(name);
        assert_eq!(err.kind(), RejectKind::SchemaViolation, "{name}");
    }
    // And the robot/topic rule needs the topic, which the payload alone does not have.
    let err = MissionReport::from_record(&bytes(&base), "rb-999999").unwrap_err();
    assert_eq!(err.kind(), RejectKind::RobotMismatch);
}

#[test]
fn invalid_shadow_documents_fail_schema_and_domain() {
    let schema = validator("shadow-documents");
    let base = load("schemas/examples/shadow-documents.classic.json");
    let e = |edit: fn(&mut Value)| edited(&base, edit);
    let cases = vec![
        (
            "missing current",
            e(|v| remove(v, "current")),
            RejectKind::MissingField,
        ),
        (
            "missing thingName",
            e(|v| remove(v, "thingName")),
            RejectKind::MissingField,
        ),
        (
            "missing timestamp",
            e(|v| remove(v, "timestamp")),
            RejectKind::MissingField,
        ),
        (
            "missing current.version",
            e(|v| remove(&mut v["current"], "version")),
            RejectKind::MissingField,
        ),
        (
            "thingName with a slash",
            e(|v| v["thingName"] = json!("rb/1")),
            RejectKind::SchemaViolation,
        ),
        (
            "timestamp negative",
            e(|v| v["timestamp"] = json!(-1)),
            RejectKind::SchemaViolation,
        ),
        (
            "timestamp beyond 2106",
            e(|v| v["timestamp"] = json!(4_294_967_296_i64)),
            RejectKind::SchemaViolation,
        ),
        (
            "timestamp as string",
            e(|v| v["timestamp"] = json!("1732374000")),
            RejectKind::SchemaViolation,
        ),
        (
            "current not an object",
            e(|v| v["current"] = json!("x")),
            RejectKind::SchemaViolation,
        ),
        (
            "previous an array",
            e(|v| v["previous"] = json!([])),
            RejectKind::SchemaViolation,
        ),
        (
            "version negative",
            e(|v| v["current"]["version"] = json!(-1)),
            RejectKind::SchemaViolation,
        ),
        (
            "state a string",
            e(|v| v["current"]["state"] = json!("on")),
            RejectKind::SchemaViolation,
        ),
        (
            "reported a number",
            e(|v| v["current"]["state"]["reported"] = json!(5)),
            RejectKind::SchemaViolation,
        ),
        (
            "metadata an array",
            e(|v| v["current"]["metadata"] = json!([])),
            RejectKind::SchemaViolation,
        ),
        (
            "clientToken a number",
            e(|v| v["clientToken"] = json!(7)),
            RejectKind::SchemaViolation,
        ),
        (
            "shadowName empty",
            e(|v| v["shadowName"] = json!("")),
            RejectKind::SchemaViolation,
        ),
        (
            "shadowName with a slash",
            e(|v| v["shadowName"] = json!("a/b")),
            RejectKind::SchemaViolation,
        ),
        (
            "shadowName reserved",
            e(|v| v["shadowName"] = json!("presence")),
            RejectKind::SchemaViolation,
        ),
        (
            "shadowName too long",
            e(|v| v["shadowName"] = json!("s".repeat(65))),
            RejectKind::SchemaViolation,
        ),
    ];
    for (name, v, kind) in cases {
        assert!(!schema.is_valid(&v), "schema accepts: {name}");
        let err = ShadowRecord::from_json(&bytes(&v)).expect_err(name);
        assert_eq!(err.kind(), kind, "{name}: {err}");
    }
}

#[test]
fn invalid_presence_events_fail_schema_and_domain() {
    let schema = validator("presence-event");
    let base = load("schemas/examples/presence-event.connected.json");
    let e = |edit: fn(&mut Value)| edited(&base, edit);
    let cases = vec![
        (
            "missing clientId",
            e(|v| remove(v, "clientId")),
            RejectKind::MissingField,
        ),
        (
            "missing timestamp",
            e(|v| remove(v, "timestamp")),
            RejectKind::MissingField,
        ),
        (
            "eventType subscribed",
            e(|v| v["eventType"] = json!("subscribed")),
            RejectKind::SchemaViolation,
        ),
        (
            "eventType a number",
            e(|v| v["eventType"] = json!(1)),
            RejectKind::SchemaViolation,
        ),
        (
            "clientId with a space",
            e(|v| v["clientId"] = json!("rb 1")),
            RejectKind::SchemaViolation,
        ),
        (
            "timestamp negative",
            e(|v| v["timestamp"] = json!(-1)),
            RejectKind::SchemaViolation,
        ),
        (
            "timestamp fractional",
            e(|v| v["timestamp"] = json!(1.5)),
            RejectKind::SchemaViolation,
        ),
        (
            "timestamp beyond 2^53",
            e(|v| v["timestamp"] = json!(9_007_199_254_740_992_i64)),
            RejectKind::SchemaViolation,
        ),
        (
            "versionNumber negative",
            e(|v| v["versionNumber"] = json!(-1)),
            RejectKind::SchemaViolation,
        ),
        (
            "sessionIdentifier a number",
            e(|v| v["sessionIdentifier"] = json!(5)),
            RejectKind::SchemaViolation,
        ),
        (
            "disconnectReason a bool",
            e(|v| v["disconnectReason"] = json!(true)),
            RejectKind::SchemaViolation,
        ),
    ];
    for (name, v, kind) in cases {
        assert!(!schema.is_valid(&v), "schema accepts: {name}");
        let err = ShadowRecord::from_json(&bytes(&v)).expect_err(name);
        assert_eq!(err.kind(), kind, "{name}: {err}");
    }
    // A record that is neither documents nor presence fails both schemas.
    let neither = json!({ "state": { "reported": {} }, "version": 3 });
    assert!(!schema.is_valid(&neither));
    assert!(!validator("shadow-documents").is_valid(&neither));
    assert_eq!(
        ShadowRecord::from_json(&bytes(&neither))
            .unwrap_err()
            .kind(),
        RejectKind::MissingField
    );
}

#[test]
fn invalid_reject_envelopes_fail_schema_and_serde() {
    let schema = validator("reject-envelope");
    let base = load("schemas/examples/reject-envelope.json");
    let e = |edit: fn(&mut Value)| edited(&base, edit);
    let cases = vec![
        ("unknown kind", e(|v| v["reason"]["kind"] = json!("oops"))),
        ("missing rejectedAt", e(|v| remove(v, "rejectedAt"))),
        (
            "rejectedAt not a timestamp",
            e(|v| v["rejectedAt"] = json!("yesterday")),
        ),
        (
            "missing sequenceNumber",
            e(|v| remove(&mut v["source"], "sequenceNumber")),
        ),
        (
            "sequenceNumber a number",
            e(|v| v["source"]["sequenceNumber"] = json!(4959)),
        ),
        ("missing payloadBase64", e(|v| remove(v, "payloadBase64"))),
        (
            "both payloads",
            e(|v| v["payloadS3"] = json!({"bucket": "b", "key": "k", "bytes": 1})),
        ),
        (
            "missing reason.detail",
            e(|v| remove(&mut v["reason"], "detail")),
        ),
    ];
    for (name, v) in cases {
        assert!(!schema.is_valid(&v), "schema accepts: {name}");
        assert!(
            serde_json::from_value::<RejectEnvelope>(v).is_err(),
            "serde accepts: {name}"
        );
    }
}
