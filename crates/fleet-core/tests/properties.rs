//! Property tests: the decoders never panic, every failure has a reason, and on arbitrary
//! mutations of valid payloads the domain types and the JSON Schemas give the same verdict.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleet_core::{DecodeError, MissionReport, ShadowRecord};
use proptest::prelude::*;
use serde_json::Value;

mod common;
use common::arb_json::{KEYS, arb_json};
use common::load;

fn validator(name: &str) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&load(&format!("schemas/{name}.schema.json")))
        .unwrap()
}

/// One edit of a JSON document: remove or replace the value at a path.
#[derive(Debug, Clone)]
enum Edit {
    Remove(Vec<PathStep>),
    Set(Vec<PathStep>, Value),
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(&'static str),
    Index(usize),
}

fn path() -> impl Strategy<Value = Vec<PathStep>> {
    let step = prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(PathStep::Key),
        1 => (0usize..2).prop_map(PathStep::Index),
    ];
    prop::collection::vec(step, 1..4)
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        path().prop_map(Edit::Remove),
        (path(), arb_json()).prop_map(|(p, v)| Edit::Set(p, v)),
    ]
}

fn apply(doc: &mut Value, edit: &Edit) {
    let (steps, new) = match edit {
        Edit::Remove(p) => (p, None),
        Edit::Set(p, v) => (p, Some(v)),
    };
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut cur = doc;
    for step in parents {
        let next = match (step, cur) {
            (PathStep::Key(k), Value::Object(m)) => m.get_mut(*k),
            (PathStep::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return;
        };
        cur = next;
    }
    match (last, cur, new) {
        (PathStep::Key(k), Value::Object(m), None) => {
            m.remove(*k);
        }
        (PathStep::Key(k), Value::Object(m), Some(v)) => {
            m.insert((*k).to_owned(), v.clone());
        }
        (PathStep::Index(i), Value::Array(a), None) if *i < a.len() => {
            a.remove(*i);
        }
        (PathStep::Index(i), Value::Array(a), Some(v)) if *i < a.len() => a[*i] = v.clone(),
        _ => {}
    }
}

fn reason_is_meaningful(e: &DecodeError) {
    let text = e.to_string();
    assert!(!text.trim().is_empty(), "empty reason for {e:?}");
    if let Some(field) = e.field() {
        assert!(!field.is_empty(), "empty field for {e:?}");
    }
}

fn is_domain_only_rule(e: &DecodeError) -> bool {
    // endedAt >= startedAt cannot be written in JSON Schema (see tests/schemas.rs).
    matches!(e, DecodeError::Validation(v) if v.field == "endedAt" && v.problem.contains("before startedAt"))
}

fn check_mission(bytes: &[u8]) -> Result<MissionReport, DecodeError> {
    let r = MissionReport::from_json(bytes);
    match &r {
        Ok(report) => {
            // Whatever decodes has keys and re-encodes to something that decodes the same.
            assert!(report.pk().starts_with("ROBOT#"));
            assert!(report.sk().starts_with("MISSION#"));
            assert!(report.day_shard_key(16).starts_with("DAY#"));
            let again = MissionReport::from_json(&serde_json::to_vec(report).unwrap()).unwrap();
            assert_eq!(&again, report);
        }
        Err(e) => reason_is_meaningful(e),
    }
    r
}

fn check_shadow(bytes: &[u8]) -> Result<ShadowRecord, DecodeError> {
    let r = ShadowRecord::from_json(bytes);
    match &r {
        Ok(record) => {
            assert!(!record.doc_id().is_empty());
            assert!(record.external_version() <= i64::MAX as u64);
            assert!(record.index_source().is_object());
            let again = ShadowRecord::from_json(&serde_json::to_vec(record).unwrap()).unwrap();
            assert_eq!(&again, record);
        }
        Err(e) => reason_is_meaningful(e),
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = check_mission(&bytes);
        let _ = check_shadow(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = check_mission(&bytes);
        let _ = check_shadow(&bytes);
    }

    #[test]
    fn mutated_mission_reports_agree_with_the_schema(
        base in prop::sample::select(vec!["completed", "running"]),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut v = load(&format!("schemas/examples/mission-report.{base}.json"));
        for e in &edits {
            apply(&mut v, e);
        }
        let domain = check_mission(&serde_json::to_vec(&v).unwrap());
        let schema_ok = validator("mission-report").is_valid(&v);
        match &domain {
            Err(e) if is_domain_only_rule(e) => prop_assert!(schema_ok),
            _ => prop_assert_eq!(
                domain.is_ok(), schema_ok,
                "domain {:?} vs schema {} for {}", domain.as_ref().err(), schema_ok, v
            ),
        }
    }

    #[test]
    fn mutated_shadow_records_agree_with_the_schemas(
        base in prop::sample::select(vec![
            "shadow-documents.classic", "shadow-documents.named",
            "presence-event.connected", "presence-event.disconnected",
        ]),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut v = load(&format!("schemas/examples/{base}.json"));
        for e in &edits {
            apply(&mut v, e);
        }
        let domain = check_shadow(&serde_json::to_vec(&v).unwrap());
        let docs_ok = validator("shadow-documents").is_valid(&v);
        let presence_ok = validator("presence-event").is_valid(&v);
        match &domain {
            Ok(ShadowRecord::Documents(_)) => prop_assert!(docs_ok && !presence_ok, "{}", v),
            Ok(ShadowRecord::Presence(_)) => prop_assert!(presence_ok && !docs_ok, "{}", v),
            Err(e) => prop_assert!(!docs_ok && !presence_ok, "domain {} but a schema accepts {}", e, v),
        }
    }
}
