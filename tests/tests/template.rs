//! The deployable template against the code: every function in template.yaml is arm64, sets
//! exactly the environment variables its config struct reads, and every Kinesis mapping is
//! safe (partial batch responses, an on-failure destination, bounded retries).
//!
//! Linting (cfn-lint, `sam validate --lint`, checkov) does not look inside SAM `Events`; these
//! assertions and the validation in fleet-template do.

use std::collections::BTreeSet;
use std::path::PathBuf;

use fleet_template::{Destination, LoadOptions, Stack, StartingPosition, load};

fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

fn stack_with(overrides: &[(&str, &str)]) -> Stack {
    let mut opts = LoadOptions::default();
    for (k, v) in overrides {
        opts.parameter_overrides
            .insert(k.to_string(), v.to_string());
    }
    match load(&template_path(), &opts) {
        Ok(s) => s,
        Err(e) => panic!("template.yaml does not load: {e}"),
    }
}

fn stack() -> Stack {
    stack_with(&[])
}

/// The variables each function's `Config` reads, by binary name, from the function registry.
fn config_env_vars(binary: &str) -> Option<&'static [&'static str]> {
    fleet_local::functions::find(binary).map(|f| f.env_vars)
}

#[test]
fn every_function_gets_the_allocator_settings() {
    for f in stack().functions() {
        for (name, value) in fleet_lambda::ALLOCATOR_ENV {
            assert_eq!(
                f.environment.get(*name).and_then(|v| v.as_str()),
                Some(*value),
                "{}: {name}",
                f.logical_id
            );
        }
    }
}

#[test]
fn every_function_is_arm64_on_al2023() {
    let stack = stack();
    assert!(!stack.functions().is_empty());
    for f in stack.functions() {
        assert_eq!(
            f.architectures,
            ["arm64"],
            "{} must be arm64 only",
            f.logical_id
        );
        assert_eq!(f.runtime, "provided.al2023", "{}", f.logical_id);
    }
}

#[test]
fn every_function_sets_exactly_the_variables_its_config_reads() {
    let stack = stack();
    for f in stack.functions() {
        let Some(expected) = config_env_vars(&f.binary) else {
            panic!(
                "{} (binary {}) is not in the function registry (crates/fleet-local/src/functions.rs)",
                f.logical_id, f.binary
            );
        };
        let allocator = fleet_lambda::ALLOCATOR_ENV.iter().map(|(k, _)| *k);
        let expected: BTreeSet<&str> = expected.iter().copied().chain(allocator).collect();
        let actual: BTreeSet<&str> = f.environment.keys().map(String::as_str).collect();
        assert_eq!(
            actual, expected,
            "{}: template env vs Config::ENV_VARS",
            f.logical_id
        );
        for (name, value) in &f.environment {
            let text = value.as_str().unwrap_or_default();
            assert!(
                !text.is_empty() || fleet_template::deferred(value).is_some(),
                "{}: {name} evaluates to nothing ({value})",
                f.logical_id
            );
        }
    }
}

#[test]
fn every_kinesis_mapping_reports_item_failures_and_keeps_failed_batches() {
    let stack = stack();
    let mappings = stack.event_source_mappings();
    assert!(!mappings.is_empty());
    for m in mappings {
        let id = &m.logical_id;
        assert!(
            m.report_batch_item_failures,
            "{id}: FunctionResponseTypes must hold ReportBatchItemFailures"
        );
        assert!(
            m.bisect_on_error,
            "{id}: BisectBatchOnFunctionError isolates poison records"
        );
        assert!(m.enabled, "{id}");
        assert!(
            !matches!(m.starting_position, StartingPosition::AtTimestamp(_)),
            "{id}: a deploy must not skip or replay by clock"
        );
        match &m.on_failure {
            Some(Destination::S3 {
                bucket_logical_id, ..
            }) => {
                assert!(
                    stack
                        .buckets()
                        .iter()
                        .any(|b| &b.logical_id == bucket_logical_id),
                    "{id}"
                );
            }
            Some(Destination::Sqs {
                queue_logical_id, ..
            }) => {
                assert!(
                    stack
                        .queues()
                        .iter()
                        .any(|q| &q.logical_id == queue_logical_id),
                    "{id}"
                );
            }
            None => panic!("{id}: no OnFailure destination: a discarded batch would vanish"),
        }
    }
}

#[test]
fn retries_are_bounded_or_bounded_by_the_stream_retention() {
    let stack = stack();
    for m in stack.event_source_mappings() {
        let id = &m.logical_id;
        let stream = stack
            .streams()
            .into_iter()
            .find(|s| s.logical_id == m.stream_logical_id)
            .unwrap_or_else(|| {
                panic!(
                    "{id}: stream {} is not in the template",
                    m.stream_logical_id
                )
            });
        let retention_s = stream.retention_hours * 3600;
        let age = m
            .max_record_age_s
            .unwrap_or_else(|| panic!("{id}: MaximumRecordAgeInSeconds must be finite"));
        assert!(
            age <= retention_s,
            "{id}: record age {age}s exceeds the stream retention {retention_s}s"
        );
        match m.max_retry_attempts {
            // Bounded retries must leave room to bisect a failing batch down to the one record
            // that fails, or a poison record takes its whole batch to the on-failure destination.
            Some(n) => {
                let halvings = u32::BITS - m.batch_size.saturating_sub(1).leading_zeros();
                assert!(
                    !m.bisect_on_error || n > halvings,
                    "{id}: {n} retries cannot bisect a batch of {} down to one record ({halvings} halvings)",
                    m.batch_size
                );
            }
            // Justified only for the path that must ride out an outage: it retries until the
            // record is as old as the retention, then keeps it in the on-failure bucket.
            None => assert_eq!(
                age, retention_s,
                "{id}: infinite retries need MaximumRecordAgeInSeconds = retention"
            ),
        }
    }
}

#[test]
fn shadow_stream_rides_out_a_week_long_opensearch_outage() {
    let stack = stack();
    let shadows = stack
        .streams()
        .into_iter()
        .find(|s| s.logical_id == "ShadowsStream")
        .unwrap();
    assert_eq!(shadows.retention_hours, 168);
    let m = stack
        .event_source_mappings()
        .into_iter()
        .find(|m| m.stream_logical_id == "ShadowsStream")
        .unwrap();
    assert_eq!(m.max_retry_attempts, None);
    assert_eq!(m.max_record_age_s, Some(168 * 3600));
}

/// `parameter_overrides` of each environment in samconfig.toml, as `(env, [(key, value)])`.
/// A small reader for the one shape samconfig.toml uses: a `[<env>.deploy.parameters]` table
/// with `parameter_overrides = [` followed by one `"Key=Value",` per line and `]`.
fn samconfig_overrides() -> Vec<(String, Vec<(String, String)>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samconfig.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut env = None;
    let mut in_list = false;
    for line in text.lines().map(str::trim) {
        if let Some(table) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            env = table.strip_suffix(".deploy.parameters").map(str::to_string);
            continue;
        }
        if line.starts_with("parameter_overrides = [") {
            let name = env
                .clone()
                .unwrap_or_else(|| panic!("parameter_overrides outside a deploy table"));
            out.push((name, Vec::new()));
            in_list = true;
            continue;
        }
        if in_list {
            if line.starts_with(']') {
                in_list = false;
            } else if let Some(pair) = line
                .trim_end_matches(',')
                .strip_prefix('"')
                .and_then(|l| l.strip_suffix('"'))
            {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad override {pair}"));
                if let Some(last) = out.last_mut() {
                    last.1.push((k.to_string(), v.to_string()));
                }
            }
        }
    }
    out
}

#[test]
fn every_samconfig_environment_loads_and_keeps_the_checks() {
    let envs = samconfig_overrides();
    let names: Vec<&str> = envs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["dev", "prod"]);
    for (env, overrides) in &envs {
        let pairs: Vec<(&str, &str)> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let stack = stack_with(&pairs);
        assert_eq!(stack.event_source_mappings().len(), 2, "{env}");
        for m in stack.event_source_mappings() {
            assert!(
                m.report_batch_item_failures && m.on_failure.is_some(),
                "{env}: {}",
                m.logical_id
            );
        }
        let suffix = &stack.parameters()["RuleSuffix"];
        for r in stack.topic_rules() {
            assert!(
                r.rule_name.ends_with(suffix.as_str()),
                "{env}: {}",
                r.rule_name
            );
        }
    }
}

#[test]
fn provisioned_mode_keeps_the_checks() {
    let stack = stack_with(&[
        ("StreamMode", "PROVISIONED"),
        ("MissionsShardCount", "4"),
        ("ShadowsShardCount", "8"),
    ]);
    assert_eq!(stack.event_source_mappings().len(), 2);
    for s in stack.streams() {
        assert!(s.shard_count.is_some(), "{}", s.logical_id);
    }
}
