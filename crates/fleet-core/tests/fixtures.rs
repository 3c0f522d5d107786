//! The sample Kinesis events in `events/` are what their names say: every record decodes (or
//! fails) exactly as `events/<function>/expected.json` records, payloads agree with the schemas,
//! and the keys and external versions the generator wrote are the ones fleet-core computes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fleet_core::{
    DecodeError, MAX_PAYLOAD_BYTES, MissionReport, RejectKind, ShadowRecord, shard_id_from_event_id,
};
use serde_json::Value;

const FIXTURES: [&str; 5] = ["valid", "duplicate", "out-of-order", "malformed", "mixed"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(name: &str) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&load(&root().join(format!("schemas/{name}.schema.json"))))
        .unwrap()
}

/// One record of a fixture, next to what expected.json says about it.
struct Case {
    fixture: String,
    record: Value,
    expected: Value,
}

impl Case {
    fn label(&self) -> String {
        format!(
            "{} seq {}",
            self.fixture,
            self.expected["sequenceNumber"].as_str().unwrap_or("?")
        )
    }
    fn outcome(&self) -> &str {
        self.expected["outcome"].as_str().unwrap()
    }
    fn reject_kind(&self) -> Option<RejectKind> {
        self.expected["rejectKind"]
            .as_str()
            .map(|k| RejectKind::parse(k).unwrap_or_else(|| panic!("unknown kind {k}")))
    }
    fn partition_key(&self) -> &str {
        self.record["kinesis"]["partitionKey"].as_str().unwrap()
    }
    fn data(&self) -> Result<Vec<u8>, base64::DecodeError> {
        STANDARD.decode(self.record["kinesis"]["data"].as_str().unwrap())
    }
}

/// Loads every fixture of a function and checks the Lambda event shape on the way.
fn cases(function: &str) -> (Value, Vec<Case>) {
    let dir = root().join("events").join(function);
    let expected = load(&dir.join("expected.json"));
    assert_eq!(expected["function"], function);
    let listed: BTreeSet<&str> = expected["fixtures"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let wanted: BTreeSet<String> = FIXTURES.iter().map(|f| format!("{f}.json")).collect();
    assert_eq!(
        listed,
        wanted.iter().map(String::as_str).collect(),
        "{function}: expected.json must describe exactly the five fixtures"
    );
    let mut out = Vec::new();
    for name in &wanted {
        let path = dir.join(name);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(
            size < 250 * 1024,
            "{}: {size} bytes, keep fixtures small",
            path.display()
        );
        let event = load(&path);
        let records = event["Records"].as_array().unwrap();
        let exp = expected["fixtures"][name]["records"].as_array().unwrap();
        assert_eq!(
            records.len(),
            exp.len(),
            "{name}: one expectation per record"
        );
        assert!(!records.is_empty(), "{name}: empty fixture");
        for (record, e) in records.iter().zip(exp) {
            // The real Lambda Kinesis event shape.
            let k = &record["kinesis"];
            assert_eq!(k["kinesisSchemaVersion"], "1.0");
            assert_eq!(record["eventSource"], "aws:kinesis");
            assert_eq!(record["eventName"], "aws:kinesis:record");
            assert_eq!(record["eventVersion"], "1.0");
            assert_eq!(record["awsRegion"], "us-east-1");
            assert_eq!(record["eventSourceARN"], expected["streamArn"]);
            assert!(
                record["invokeIdentityArn"]
                    .as_str()
                    .unwrap()
                    .starts_with("arn:aws:iam::")
            );
            assert!(k["approximateArrivalTimestamp"].is_f64());
            let seq = k["sequenceNumber"].as_str().unwrap();
            assert_eq!(
                shard_id_from_event_id(record["eventID"].as_str().unwrap()),
                Some("shardId-000000000000")
            );
            assert!(record["eventID"].as_str().unwrap().ends_with(seq));
            assert_eq!(e["sequenceNumber"], seq);
            assert_eq!(e["partitionKey"], k["partitionKey"]);
            out.push(Case {
                fixture: name.clone(),
                record: record.clone(),
                expected: e.clone(),
            });
        }
    }
    (expected, out)
}

/// Decodes a record as the function will: base64, then the domain decoder with the partition
/// key check. `Err(kind)` is the reject kind.
fn decode<T>(
    case: &Case,
    parse: impl Fn(&[u8], &str) -> Result<T, DecodeError>,
) -> Result<T, RejectKind> {
    let bytes = case.data().map_err(|_| RejectKind::BadBase64)?;
    parse(&bytes, case.partition_key()).map_err(|e| {
        assert!(!e.to_string().is_empty(), "{}: empty reason", case.label());
        e.kind()
    })
}

/// Schema verdicts for a payload that is JSON: accepted records pass, schema rejects fail,
/// a robot mismatch passes (the payload alone is fine).
fn check_schema(case: &Case, pass: impl Fn(&Value) -> bool) {
    let Ok(bytes) = case.data() else { return };
    let Ok(json) = serde_json::from_slice::<Value>(&bytes) else {
        return;
    };
    match case.reject_kind() {
        None | Some(RejectKind::RobotMismatch) => {
            assert!(
                pass(&json),
                "{}: schema refuses an accepted payload",
                case.label()
            )
        }
        Some(RejectKind::SchemaViolation | RejectKind::MissingField) => {
            assert!(
                !pass(&json),
                "{}: schema accepts a rejected payload",
                case.label()
            )
        }
        // Over the size limit: refused on size alone, whatever its content.
        Some(RejectKind::TooLarge) => assert!(bytes.len() > MAX_PAYLOAD_BYTES),
        Some(other) => panic!(
            "{}: JSON payload expected to fail with {other}",
            case.label()
        ),
    }
}

fn check_fixture_semantics(cases: &[Case], accepted_outcomes: &[&str], repeat: &str) {
    let by_fixture = |f: &str| -> Vec<&Case> {
        cases
            .iter()
            .filter(|c| c.fixture == format!("{f}.json"))
            .collect()
    };
    let outcomes = |f: &str| -> BTreeSet<String> {
        by_fixture(f)
            .iter()
            .map(|c| c.outcome().to_owned())
            .collect()
    };
    for c in by_fixture("valid") {
        assert_eq!(c.outcome(), accepted_outcomes[0], "{}", c.label());
    }
    assert!(outcomes("duplicate").contains(repeat));
    assert!(!outcomes("duplicate").contains("reject"));
    assert!(
        outcomes("out-of-order").contains(accepted_outcomes[2]),
        "out-of-order must contain a late record"
    );
    assert!(!outcomes("out-of-order").contains("reject"));
    for c in by_fixture("malformed") {
        assert_eq!(c.outcome(), "reject", "{}", c.label());
    }
    let kinds: BTreeSet<RejectKind> = by_fixture("malformed")
        .iter()
        .filter_map(|c| c.reject_kind())
        .collect();
    let needed: BTreeSet<RejectKind> = [
        RejectKind::BadBase64,
        RejectKind::BadJson,
        RejectKind::SchemaViolation,
        RejectKind::TooLarge,
        RejectKind::RobotMismatch,
        RejectKind::MissingField,
    ]
    .into();
    assert_eq!(
        kinds, needed,
        "malformed must cover every decode reject kind"
    );
    let mixed = outcomes("mixed");
    assert!(mixed.contains("reject") && mixed.contains(accepted_outcomes[0]));
    assert!(
        mixed.len() >= 3,
        "mixed should mix accepted, repeated and rejected records"
    );
    for c in cases {
        assert_eq!(
            c.outcome() == "reject",
            c.reject_kind().is_some(),
            "{}: rejectKind goes with outcome reject",
            c.label()
        );
        assert!(
            c.outcome() == "reject" || accepted_outcomes.contains(&c.outcome()),
            "{}: unknown outcome {}",
            c.label(),
            c.outcome()
        );
    }
}

/// (pk, sk) → (rev, status): the missions table as far as these tests care.
type MissionTable = BTreeMap<(String, String), (u32, String)>;

#[test]
fn mission_ingest_fixtures() {
    let (expected, cases) = cases("mission-ingest");
    check_fixture_semantics(&cases, &["write", "duplicate", "stale"], "duplicate");
    let schema = validator("mission-report");
    // Replays each fixture against an empty store with the table's rule:
    // write iff the item is new or its stored rev is lower.
    let mut stores: BTreeMap<String, MissionTable> = BTreeMap::new();
    for case in &cases {
        check_schema(case, |v| schema.is_valid(v));
        let store = stores.entry(case.fixture.clone()).or_default();
        match decode(case, MissionReport::from_record) {
            Err(kind) => {
                assert_eq!(Some(kind), case.reject_kind(), "{}", case.label());
            }
            Ok(report) => {
                assert_eq!(
                    case.reject_kind(),
                    None,
                    "{}: decoded but expected a reject",
                    case.label()
                );
                assert_eq!(case.expected["pk"], report.pk(), "{}", case.label());
                assert_eq!(case.expected["sk"], report.sk(), "{}", case.label());
                assert_eq!(case.expected["rev"], report.rev, "{}", case.label());
                let key = (report.pk(), report.sk());
                let outcome = match store.get(&key) {
                    None => "write",
                    Some((rev, _)) if *rev < report.rev => "write",
                    Some((rev, _)) if *rev == report.rev => "duplicate",
                    Some(_) => "stale",
                };
                if outcome == "write" {
                    store.insert(key, (report.rev, report.status.as_str().to_owned()));
                }
                assert_eq!(case.outcome(), outcome, "{}", case.label());
            }
        }
    }
    for name in FIXTURES {
        let file = format!("{name}.json");
        let want: Vec<(String, String, u64, String)> = expected["fixtures"][&file]["final"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["pk"].as_str().unwrap().to_owned(),
                    i["sk"].as_str().unwrap().to_owned(),
                    i["rev"].as_u64().unwrap(),
                    i["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let got: Vec<(String, String, u64, String)> = stores
            .get(&file)
            .map(|s| {
                s.iter()
                    .map(|((pk, sk), (rev, st))| {
                        (pk.clone(), sk.clone(), u64::from(*rev), st.clone())
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(got, want, "{file}: final table");
    }
}

#[test]
fn shadow_indexer_fixtures() {
    let (expected, cases) = cases("shadow-indexer");
    check_fixture_semantics(&cases, &["index", "conflict", "conflict"], "conflict");
    let docs = validator("shadow-documents");
    let presence = validator("presence-event");
    let mut kinds = BTreeSet::new();
    // Replays each fixture against an empty index with OpenSearch's external-version rule:
    // index iff the new version is greater than the stored one (equal is a 409).
    let mut indexes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for case in &cases {
        check_schema(case, |v| docs.is_valid(v) || presence.is_valid(v));
        let index = indexes.entry(case.fixture.clone()).or_default();
        match decode(case, ShadowRecord::from_record) {
            Err(kind) => assert_eq!(Some(kind), case.reject_kind(), "{}", case.label()),
            Ok(record) => {
                assert_eq!(
                    case.reject_kind(),
                    None,
                    "{}: decoded but expected a reject",
                    case.label()
                );
                kinds.insert(match &record {
                    ShadowRecord::Presence(_) => "presence",
                    ShadowRecord::Documents(d) if d.shadow_name.is_some() => "named",
                    ShadowRecord::Documents(_) => "classic",
                });
                let id = record.doc_id();
                let version = record.external_version();
                assert_eq!(case.expected["docId"], id, "{}", case.label());
                assert_eq!(
                    case.expected["externalVersion"],
                    version,
                    "{}",
                    case.label()
                );
                assert!(record.index_source()["robotId"] == case.partition_key());
                let outcome = match index.get(&id) {
                    Some(stored) if *stored >= version => "conflict",
                    _ => "index",
                };
                if outcome == "index" {
                    index.insert(id, version);
                }
                assert_eq!(case.outcome(), outcome, "{}", case.label());
            }
        }
    }
    assert_eq!(
        kinds,
        ["classic", "named", "presence"].into(),
        "record kinds covered"
    );
    for name in FIXTURES {
        let file = format!("{name}.json");
        let want: Vec<(String, u64)> = expected["fixtures"][&file]["final"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["docId"].as_str().unwrap().to_owned(),
                    i["externalVersion"].as_u64().unwrap(),
                )
            })
            .collect();
        let got: Vec<(String, u64)> = indexes
            .get(&file)
            .map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        assert_eq!(got, want, "{file}: final index");
    }
}

/// The committed fixtures are what `events/generate.py` produces. It needs python3; on a machine
/// without it, `ROBOFLEET_SKIP_PYTHON=1` skips the check, and says so.
#[test]
fn fixtures_are_up_to_date_with_the_generator() {
    let script = root().join("events/generate.py");
    match std::process::Command::new("python3")
        .arg(&script)
        .arg("--check")
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if std::env::var_os("ROBOFLEET_SKIP_PYTHON").is_some() => {
            eprintln!(
                "python3 not available ({e}); generator check skipped (ROBOFLEET_SKIP_PYTHON)"
            )
        }
        Err(e) => panic!(
            "python3 is needed to check the fixtures against events/generate.py ({e}); install it, or set ROBOFLEET_SKIP_PYTHON=1 to skip this check"
        ),
    }
}
