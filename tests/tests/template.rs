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
    let mut opts = LoadOptions::default().with_parameter(
        "OpenSearchMasterUserArn",
        "arn:aws:iam::123456789012:role/Admin",
    );
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

/// Time between a record reaching its mapping's `MaximumRecordAgeInSeconds` (it goes to the
/// on-failure bucket) and the stream trimming it. Lambda checks record age when it reads or
/// retries a batch, not continuously, so the margin must cover a slow retry round.
const RETENTION_MARGIN_S: u32 = 12 * 3600;

/// The smallest retention a stream can have under the template's parameter constraints.
fn min_retention_hours(stack: &Stack, stream_logical_id: &str) -> u32 {
    let stream = stack
        .stream(stream_logical_id)
        .unwrap_or_else(|| panic!("stream {stream_logical_id} is not in the template"));
    // MissionsRetentionHours is a parameter: check its floor (MinValue 72, pinned by
    // the_retention_parameter_cannot_go_below_the_mapping_margin), not only its default.
    if stream_logical_id == "MissionsStream" {
        let floor = stack_with(&[("MissionsRetentionHours", "72")])
            .stream(stream_logical_id)
            .expect("the stream exists at the retention floor")
            .retention_hours;
        return floor;
    }
    stream.retention_hours
}

#[test]
fn a_deployment_mistake_waits_in_the_stream_and_records_leave_before_the_trim() {
    // Defects 6 and 9: every mapping retries without a count limit (a configuration error is
    // retried, not rejected, so its records must not run out of attempts), and gives a record up
    // (to the on-failure bucket) at least RETENTION_MARGIN_S before the stream trims it.
    let stack = stack();
    let mappings = stack.event_source_mappings();
    assert_eq!(mappings.len(), 2);
    for m in mappings {
        let id = &m.logical_id;
        assert_eq!(
            m.max_retry_attempts, None,
            "{id}: a count limit would dead-letter records during a deployment mistake"
        );
        let age = m
            .max_record_age_s
            .unwrap_or_else(|| panic!("{id}: MaximumRecordAgeInSeconds must be finite"));
        let retention_s = min_retention_hours(&stack, &m.stream_logical_id) * 3600;
        assert!(
            age + RETENTION_MARGIN_S <= retention_s,
            "{id}: record age {age}s leaves less than {RETENTION_MARGIN_S}s before the stream's {retention_s}s retention"
        );
    }
}

#[test]
fn the_retention_parameter_cannot_go_below_the_mapping_margin() {
    // MissionsRetentionHours below 72 would leave less than the margin: the template refuses it.
    let mut opts = LoadOptions::default().with_parameter(
        "OpenSearchMasterUserArn",
        "arn:aws:iam::123456789012:role/Admin",
    );
    opts.parameter_overrides
        .insert("MissionsRetentionHours".into(), "71".into());
    let err = load(&template_path(), &opts).unwrap_err();
    assert!(err.to_string().contains("MissionsRetentionHours"), "{err}");
}

#[test]
fn shadow_stream_rides_out_a_six_day_opensearch_outage() {
    let stack = stack();
    let shadows = stack.stream("ShadowsStream").unwrap();
    assert_eq!(shadows.retention_hours, 168);
    let m = stack
        .event_source_mappings()
        .into_iter()
        .find(|m| m.stream_logical_id == "ShadowsStream")
        .unwrap();
    assert_eq!(m.max_retry_attempts, None);
    assert_eq!(m.max_record_age_s, Some(156 * 3600));
}

/// Each environment's name and its `(key, value)` overrides.
type Environments = Vec<(String, Vec<(String, String)>)>;

/// `parameter_overrides` of each environment in samconfig.toml, as `(env, [(key, value)])`,
/// read as SAM CLI reads them: each entry is `Key=Value`, where the value is either quoted
/// (`"..."` or `'...'`, which may be empty) or a non-empty run without spaces or quotes. SAM CLI
/// refuses `Key=` (an empty unquoted value) with "Invalid value for '--parameter-overrides'";
/// so does this reader. tools/check_samconfig.py runs SAM CLI's own parser on the same file.
fn samconfig_overrides() -> Environments {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samconfig.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    samconfig_overrides_of(&text).unwrap_or_else(|e| panic!("samconfig.toml: {e}"))
}

fn samconfig_overrides_of(text: &str) -> Result<Environments, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (env, table) in &doc {
        let Some(list) = table
            .get("deploy")
            .and_then(|d| d.get("parameters"))
            .and_then(|p| p.get("parameter_overrides"))
        else {
            continue;
        };
        let entries: Vec<String> = match list {
            toml::Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or("an entry is not a string")
                })
                .collect::<Result<_, _>>()?,
            // One string: entries separated by spaces, as on the command line.
            toml::Value::String(s) => vec![s.clone()],
            _ => {
                return Err(format!(
                    "{env}: parameter_overrides is not a list or a string"
                ));
            }
        };
        let mut pairs = Vec::new();
        for entry in &entries {
            pairs.extend(sam_pairs(entry).map_err(|e| format!("{env}: {e}"))?);
        }
        out.push((env.clone(), pairs));
    }
    Ok(out)
}

/// SAM CLI's `Key=Value Key2=Value2` syntax (samcli.cli.types.CfnParameterOverridesType).
fn sam_pairs(entry: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = entry.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("{entry} is not Key=Value"))?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("{key:?} is not a parameter name"));
        }
        let (value, tail) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end = after[1..]
                    .find(q)
                    .ok_or_else(|| format!("{key}: unterminated quote"))?;
                (after[1..1 + end].to_string(), &after[end + 2..])
            }
            Some(c) if c != ' ' => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
            _ => {
                return Err(format!(
                    "{key}= is not a valid format (SAM CLI refuses an empty unquoted value; write {key}=\"\")"
                ));
            }
        };
        out.push((key.to_string(), value));
        rest = tail.trim_start();
    }
    Ok(out)
}

#[test]
fn the_samconfig_reader_refuses_what_sam_refuses() {
    let env = |list: &str| format!("[e.deploy.parameters]\nparameter_overrides = [{list}]\n");
    let err = samconfig_overrides_of(&env(r#""RuleSuffix=""#)).unwrap_err();
    assert!(err.contains("RuleSuffix="), "{err}");
    let ok = samconfig_overrides_of(&env(r#"'RuleSuffix=""', "A=x B='y z'""#)).unwrap();
    assert_eq!(
        ok[0].1,
        [
            ("RuleSuffix".to_string(), String::new()),
            ("A".to_string(), "x".to_string()),
            ("B".to_string(), "y z".to_string())
        ]
    );
}

/// The placeholder samconfig.toml carries for the administrators' role.
const MASTER_USER_PLACEHOLDER: &str = "SET-ME-to-your-administrators-IAM-role-ARN";

#[test]
fn every_samconfig_environment_loads_and_keeps_the_checks() {
    let envs = samconfig_overrides();
    let names: Vec<&str> = envs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["dev", "prod"]);
    for (env, overrides) in &envs {
        // Defect 4: every environment names the administrators' role; as shipped it is a
        // placeholder that the template refuses, so a deploy cannot go out without one.
        let master = overrides
            .iter()
            .find(|(k, _)| k == "OpenSearchMasterUserArn")
            .map(|(_, v)| v.as_str());
        assert_eq!(master, Some(MASTER_USER_PLACEHOLDER), "{env}");
        let opts = LoadOptions {
            parameter_overrides: overrides.iter().cloned().collect(),
            ..LoadOptions::default()
        };
        let err = load(&template_path(), &opts).unwrap_err();
        assert!(
            err.to_string().contains("OpenSearchMasterUserArn"),
            "{env}: {err}"
        );
        // With a real role it deploys, and keeps the checks.
        let pairs: Vec<(&str, &str)> = overrides
            .iter()
            .map(|(k, v)| {
                if k == "OpenSearchMasterUserArn" {
                    (k.as_str(), "arn:aws:iam::123456789012:role/Admin")
                } else {
                    (k.as_str(), v.as_str())
                }
            })
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
        // The stream-scaler starts with this environment's rules and limits (a rule that does
        // not parse would stop it at every cold start).
        let scaler = stack
            .functions()
            .into_iter()
            .find(|f| f.binary == "stream-scaler")
            .unwrap_or_else(|| panic!("{env}: no stream-scaler"));
        let config = stream_scaler::Config::from_lookup(|k| {
            scaler
                .environment
                .get(k)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        })
        .unwrap_or_else(|e| panic!("{env}: {e}"));
        if *env == "prod" {
            // Production carries the example fleet's plan (docs/capacity.md).
            assert!(!config.streams[1].rules.is_empty(), "{env}");
            assert!(!config.table.rules.is_empty(), "{env}");
        }
    }
}

#[test]
fn the_indexer_is_never_the_master_user() {
    // Defect 4: an empty OpenSearchMasterUserArn used to make the indexer role the master user.
    // The template's Rules (and the parameter's pattern) refuse it; fleet-template evaluates them.
    let opts = LoadOptions::default().with_parameter("OpenSearchMasterUserArn", "");
    let err = load(&template_path(), &opts).unwrap_err();
    assert!(err.to_string().contains("OpenSearchMasterUserArn"), "{err}");
    let err = load(&template_path(), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("OpenSearchMasterUserArn"), "{err}");
    let stack = stack();
    let domain = stack.resource("RobotsDomain").unwrap();
    let security = &domain.properties["AdvancedSecurityOptions"];
    assert_eq!(security["Enabled"], true);
    assert_eq!(security["InternalUserDatabaseEnabled"], false);
    assert_eq!(
        security["MasterUserOptions"]["MasterUserARN"],
        "arn:aws:iam::123456789012:role/Admin"
    );
    // The domain access policy lets the account's principals in; fine-grained access control
    // decides what each may do (the recommended configuration, docs/template-and-deploy.md).
    let statement = &domain.properties["AccessPolicies"]["Statement"][0];
    assert_eq!(
        statement["Principal"]["AWS"],
        "arn:aws:iam::123456789012:root"
    );
    assert_eq!(statement["Action"], "es:ESHttp*");
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

/// Defect 3: a release that fails every record answers Lambda with a partial batch response, so
/// `Errors` stays at zero. Each function's deployment also watches a canary alarm on the share
/// of *the new version's* records it reported for retry, from the functions' own EMF metrics.
#[test]
fn the_canary_rolls_back_a_version_that_fails_its_records() {
    let stack = stack();
    let emf = fleet_lambda::metrics::emf(&fleet_lambda::BatchReport::default(), "1");
    let emf_dimensions: Vec<Vec<String>> =
        serde_json::from_value(emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"].clone()).unwrap();
    let consumers: Vec<String> = stack
        .event_source_mappings()
        .iter()
        .map(|m| m.function_logical_id.clone())
        .collect();
    for f in stack
        .functions()
        .into_iter()
        .filter(|f| consumers.contains(&f.logical_id))
    {
        let id = &f.logical_id;
        let alarm_id = id.replace("Function", "CanaryAlarm");
        let alarm = stack
            .resource(&alarm_id)
            .unwrap_or_else(|| panic!("{id}: no {alarm_id}"));
        let function = stack.resource(id).unwrap();
        let watched = &function.properties["DeploymentPreference"]["Alarms"];
        assert!(
            watched
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str() == Some(alarm.physical_name.as_str())),
            "{id}: DeploymentPreference.Alarms must hold {alarm_id} ({watched})"
        );
        let p = &alarm.properties;
        assert_eq!(
            p["ComparisonOperator"], "GreaterThanThreshold",
            "{alarm_id}"
        );
        assert_eq!(p["Threshold"], stack.parameters()["CanaryRetriedRatio"]);
        // Inside a 5-minute canary: 2 of 3 one-minute periods.
        assert_eq!(p["EvaluationPeriods"], 3, "{alarm_id}");
        assert_eq!(p["DatapointsToAlarm"], 2, "{alarm_id}");
        assert_eq!(p["TreatMissingData"], "notBreaching", "{alarm_id}");
        let metrics = p["Metrics"].as_array().unwrap();
        let mut names = Vec::new();
        for m in metrics.iter().filter(|m| m.get("MetricStat").is_some()) {
            let metric = &m["MetricStat"]["Metric"];
            assert_eq!(metric["Namespace"], fleet_lambda::metrics::NAMESPACE);
            assert_eq!(m["MetricStat"]["Period"], 60, "{alarm_id}");
            let dims = metric["Dimensions"].as_array().unwrap();
            let dim_names: Vec<String> = dims
                .iter()
                .map(|d| d["Name"].as_str().unwrap().to_string())
                .collect();
            assert!(
                emf_dimensions.contains(&dim_names),
                "{alarm_id}: {dim_names:?} is not a dimension set the functions emit ({emf_dimensions:?})"
            );
            assert_eq!(dims[0]["Value"], f.binary.as_str(), "{alarm_id}");
            // Only the version being deployed: the version number from the version ARN.
            assert_eq!(
                fleet_template::deferred(&dims[1]["Value"]),
                Some(format!("Fn::Select 7 of Fn::Split of Ref {id}.Version").as_str()),
                "{alarm_id}"
            );
            names.push(metric["MetricName"].as_str().unwrap().to_string());
        }
        names.sort();
        // Retried over Records: rejected records (bad payloads) are not in the ratio.
        assert_eq!(names, ["Records", "Retried"], "{alarm_id}");
        let expression = metrics
            .iter()
            .find(|m| m["ReturnData"] == true)
            .and_then(|m| m["Expression"].as_str())
            .unwrap();
        assert_eq!(expression, "IF(records > 0, retried / records, 0)");
        for metric in ["Retried", "Records"] {
            assert!(emf[metric].is_number(), "the functions emit {metric}");
        }
    }
}

/// Point 14 (IAM propagation): IoT Core assumes a rule's role when the rule is created. The
/// rules role names its streams and queue by ARN text, so it does not wait for them and is
/// created at the start of the deploy; every rule waits for its stream, whose creation takes
/// tens of seconds. The role's ARN texts must still be exactly the resources' ARNs.
#[test]
fn the_rules_role_is_created_long_before_the_rules() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let raw = fleet_template::yaml::parse(&text).unwrap();
    let role = raw["Resources"]["IotRulesRole"].to_string();
    for resource in ["MissionsStream", "ShadowsStream", "RuleErrorsQueue"] {
        assert!(
            !role.contains(&format!("\"{resource}")),
            "IotRulesRole refers to {resource}: it would wait for it, and the rules right after it"
        );
    }
    for (id, r) in raw["Resources"].as_object().unwrap() {
        if r["Type"] == "AWS::IoT::TopicRule" {
            let payload = r["Properties"].to_string();
            assert!(
                payload.contains("{\"Ref\":\"MissionsStream\"}")
                    || payload.contains("{\"Ref\":\"ShadowsStream\"}"),
                "{id} must wait for its stream"
            );
        }
    }
    let stack = stack();
    let policy = stack.resource("IotRulesRole").unwrap().properties["Policies"].to_string();
    for s in stack.streams() {
        let arn = format!(
            "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
            s.stream_name
        );
        assert!(policy.contains(&arn), "{arn} missing from {policy}");
    }
    let queue = stack.queue("RuleErrorsQueue").unwrap();
    assert!(policy.contains(&format!(
        "arn:aws:sqs:us-east-1:123456789012:{}",
        queue.queue_name
    )));
}

/// Defect 11: a retained resource with a fixed name blocks deploying the same stack again after
/// `sam delete` (the kept one holds the name). Retained resources have generated names; named
/// resources are deleted with the stack; the domain's log group goes with the domain.
#[test]
fn retained_resources_have_generated_names_and_named_ones_are_not_retained() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let raw = fleet_template::yaml::parse(&text).unwrap();
    let name_property = |type_: &str| match type_ {
        "AWS::DynamoDB::Table" => Some("TableName"),
        "AWS::S3::Bucket" => Some("BucketName"),
        "AWS::OpenSearchService::Domain" => Some("DomainName"),
        "AWS::Logs::LogGroup" => Some("LogGroupName"),
        "AWS::SQS::Queue" => Some("QueueName"),
        "AWS::Kinesis::Stream" => Some("Name"),
        "AWS::KMS::Alias" => Some("AliasName"),
        "AWS::IoT::TopicRule" => Some("RuleName"),
        "AWS::Serverless::Function" | "AWS::Lambda::Function" => Some("FunctionName"),
        "AWS::CloudWatch::Alarm" => Some("AlarmName"),
        _ => None,
    };
    let mut retained = Vec::new();
    for (id, r) in raw["Resources"].as_object().unwrap() {
        let kept = r["DeletionPolicy"] == "Retain" || r["UpdateReplacePolicy"] == "Retain";
        let named = name_property(r["Type"].as_str().unwrap())
            .is_some_and(|p| r["Properties"].get(p).is_some());
        assert!(
            !(kept && named),
            "{id} is retained and has a fixed name: a redeploy after sam delete would collide"
        );
        if kept {
            retained.push(id.as_str());
        }
    }
    retained.sort_unstable();
    assert_eq!(
        retained,
        [
            "DataKey",
            "FailedBatchesBucket",
            "JobsBucket",
            "MissionsTable",
            "RobotTombstonesTable"
        ],
        "the retained resources (docs/template-and-deploy.md lists them)"
    );
    let domain = &raw["Resources"]["RobotsDomain"];
    let logs = &raw["Resources"]["OpenSearchLogGroup"];
    assert_eq!(domain["DeletionPolicy"], logs["DeletionPolicy"]);
}

/// The circuit breaker (docs/breaker.md): each consumer pauses only its own mappings (named as
/// SAM attaches them, to the alias), the probe runs every minute alone, and the IAM that lets
/// them switch mappings is scoped by the function the mapping feeds.
#[test]
fn each_consumer_pauses_only_its_own_mappings_and_the_probe_runs_every_minute() {
    let stack = stack();
    let consumers: Vec<String> = stack
        .event_source_mappings()
        .iter()
        .map(|m| m.function_logical_id.clone())
        .collect();
    assert_eq!(consumers.len(), 2);
    for id in &consumers {
        let f = stack.function(id).unwrap();
        let alias = f.auto_publish_alias.as_deref().unwrap();
        let own = format!("{}:{alias}", f.function_name);
        assert_eq!(f.environment["BREAKER_FUNCTIONS"], own.as_str(), "{id}");
        // The role's switch is scoped to this function's mappings (any alias or version).
        let role_id = id.replace("Function", "Role");
        let policy = stack.resource(&role_id).unwrap().properties["Policies"][0]["PolicyDocument"]
            ["Statement"]
            .as_array()
            .unwrap()
            .clone();
        let pause = policy
            .iter()
            .find(|s| s["Sid"] == "PauseOwnMappings")
            .unwrap_or_else(|| panic!("{role_id} has no PauseOwnMappings"));
        assert_eq!(pause["Action"], "lambda:UpdateEventSourceMapping");
        assert_eq!(
            pause["Condition"]["ArnLike"]["lambda:FunctionArn"],
            format!(
                "arn:aws:lambda:us-east-1:123456789012:function:{}:*",
                f.function_name
            )
            .as_str(),
            "{role_id}"
        );
    }
    let probe = stack.function("BreakerProbeFunction").unwrap();
    assert_eq!(probe.binary, "breaker-probe");
    let schedule = stack
        .schedules()
        .into_iter()
        .find(|s| s.target_function_logical_id == "BreakerProbeFunction")
        .unwrap();
    assert_eq!(
        (schedule.expression.as_str(), schedule.enabled),
        ("rate(1 minute)", true)
    );
    let probe_res = stack.resource("BreakerProbeFunction").unwrap();
    assert_eq!(probe_res.properties["ReservedConcurrentExecutions"], 1);
    assert!(
        probe.timeout_s < 60,
        "a run ends before the next one starts"
    );
    for (var, consumer) in [
        ("PROBE_INDEXER_FUNCTIONS", "ShadowIndexerFunction"),
        ("PROBE_MISSION_FUNCTIONS", "MissionIngestFunction"),
    ] {
        assert_eq!(
            probe.environment[var],
            stack.function(consumer).unwrap().environment["BREAKER_FUNCTIONS"],
            "{var}"
        );
    }
    // The breaker table: one item per downstream, and an alarm when a breaker opens.
    let table = stack.table("BreakerTable").unwrap();
    assert_eq!(table.key_schema.hash_key, "downstream");
    assert!(stack.resource("BreakerOpenAlarm").is_some());
    assert!(stack.resource("BreakerUnavailableAlarm").is_some());
    // The pause cap leaves the missions stream's margin: 60 h = 72 h minimum retention - 12 h.
    assert_eq!(
        probe.environment["BREAKER_MAX_PAUSE_SECONDS"],
        (60 * 3600).to_string().as_str()
    );
}

/// The actions a role's inline policies allow on `resource` (exact ARNs or `prefix*`).
fn role_allows(stack: &Stack, role: &str, action: &str, resource: &str) -> bool {
    let r = stack.resource(role).unwrap_or_else(|| panic!("no {role}"));
    let statements = r.properties["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        });
    let list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    };
    statements.into_iter().any(|s| {
        s["Effect"] == "Allow"
            && list(&s["Action"]).iter().any(|a| a == action)
            && list(&s["Resource"])
                .iter()
                .any(|p| match p.strip_suffix('*') {
                    Some(prefix) => resource.starts_with(prefix),
                    None => p == resource,
                })
    })
}

#[test]
fn both_job_machines_load_into_the_local_runner_and_their_roles_cover_their_tasks() {
    let stack = stack();
    let machines = fleet_esm::asl::machines(&stack).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = machines.iter().map(|m| m.logical_id.as_str()).collect();
    assert_eq!(ids, ["JobLoopStateMachine", "JobMapStateMachine"]);
    let worker = stack.resource("JobWorkerFunction").unwrap();
    let worker_alias = format!("{}:live", stack.arn(worker).unwrap());
    let role_of = |m: &str| match m {
        "JobLoopStateMachine" => "JobLoopRole",
        _ => "JobMapRole",
    };
    for m in &machines {
        let role = role_of(&m.logical_id);
        // Every Lambda task invokes the worker's alias, and the role may.
        let text = serde_json::to_string(
            &stack.resource(&m.logical_id).unwrap().properties["DefinitionSubstitutions"],
        )
        .unwrap();
        assert!(text.contains(&worker_alias), "{}: {text}", m.logical_id);
        assert!(
            role_allows(&stack, role, "lambda:InvokeFunction", &worker_alias),
            "{role}"
        );
    }
    // The loop continues as a new execution of itself, with StartExecution on its own ARN (the
    // front authorizes it in the jobs end-to-end test; here, that the ARN is the machine's).
    let loop_arn = &machines[0].arn;
    let subs =
        &stack.resource("JobLoopStateMachine").unwrap().properties["DefinitionSubstitutions"];
    assert_eq!(subs["Self"].as_str(), Some(loop_arn.as_str()));
    assert!(role_allows(
        &stack,
        "JobLoopRole",
        "states:StartExecution",
        loop_arn
    ));
    // The map reads inputs and writes results where the worker and `job run` put them.
    let bucket = stack.arn(stack.resource("JobsBucket").unwrap()).unwrap();
    assert!(role_allows(
        &stack,
        "JobMapRole",
        "s3:GetObject",
        &format!("{bucket}/inputs/j.csv")
    ));
    assert!(role_allows(
        &stack,
        "JobMapRole",
        "s3:PutObject",
        &format!("{bucket}/map-results/x/manifest.json")
    ));
    assert!(!role_allows(
        &stack,
        "JobMapRole",
        "s3:PutObject",
        &format!("{bucket}/inputs/j.csv")
    ));
    assert!(role_allows(
        &stack,
        "JobWorkerRole",
        "s3:GetObject",
        &format!("{bucket}/inputs/j.csv")
    ));
    assert!(role_allows(
        &stack,
        "JobWorkerRole",
        "s3:PutObject",
        &format!("{bucket}/reports/j/from-0.jsonl")
    ));
}

#[test]
fn a_machine_outside_the_runners_subset_is_refused_by_name() {
    let text = std::fs::read_to_string(template_path()).unwrap().replacen(
        "          Wait:\n            Type: Wait\n            SecondsPath: $.waitSeconds\n",
        "          Wait:\n            Type: Parallel\n            Branches: []\n",
        1,
    );
    let opts = LoadOptions::default().with_parameter(
        "OpenSearchMasterUserArn",
        "arn:aws:iam::123456789012:role/Admin",
    );
    let stack = fleet_template::load_str(&text, &opts).unwrap_or_else(|e| panic!("{e}"));
    let err = fleet_esm::asl::machines(&stack).unwrap_err().to_string();
    assert!(err.contains("JobLoopStateMachine"), "{err}");
    assert!(err.contains("state type Parallel"), "{err}");
}

#[test]
fn every_resource_names_its_part_and_the_application_and_dashboard_show_the_parts() {
    let stack = stack();
    let parts = [
        "shared", "ingest", "missions", "index", "failures", "breaker", "capacity", "jobs", "api",
    ];
    // Types without tags (aliases, policies of other resources, subscriptions, associations,
    // the dashboard).
    let untaggable = [
        "AWS::KMS::Alias",
        "AWS::Logs::ResourcePolicy",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Subscription",
        "AWS::ServiceCatalogAppRegistry::ResourceAssociation",
        "AWS::CloudWatch::Dashboard",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for r in stack.resources() {
        if untaggable.contains(&r.type_.as_str()) {
            continue;
        }
        let tags = &r.properties["Tags"];
        let part = match tags {
            serde_json::Value::Object(m) => m.get("robofleet:part").and_then(|v| v.as_str()),
            serde_json::Value::Array(list) => list
                .iter()
                .find(|t| t["Key"] == "robofleet:part")
                .and_then(|t| t["Value"].as_str()),
            _ => None,
        };
        let part = part.unwrap_or_else(|| panic!("{} has no robofleet:part tag", r.logical_id));
        assert!(
            parts.contains(&part),
            "{}: unknown part {part}",
            r.logical_id
        );
        seen.insert(part);
    }
    assert_eq!(
        seen.len(),
        parts.len(),
        "every part has resources: {seen:?}"
    );
    let assoc = stack.resource("ApplicationStackAssociation").unwrap();
    assert_eq!(assoc.properties["ResourceType"], "CFN_STACK");
    let body = stack.resource("Dashboard").unwrap().properties["DashboardBody"].to_string();
    for part in &parts[1..] {
        assert!(
            body.contains(&format!("**{part}**")),
            "the dashboard links the {part} part"
        );
    }
}

#[test]
fn status_knows_every_alarm_of_the_template() {
    let stack = stack();
    let mut suffixes: Vec<String> = stack
        .resources()
        .filter(|r| r.type_ == "AWS::CloudWatch::Alarm")
        .map(|r| {
            r.properties["AlarmName"]
                .as_str()
                .unwrap()
                .strip_prefix(&format!("{}-", stack.stack_name()))
                .unwrap()
                .to_string()
        })
        .collect();
    suffixes.sort();
    let mut known: Vec<String> = fleet_ops::status::ALARM_SUFFIXES
        .iter()
        .map(|s| s.to_string())
        .collect();
    known.sort();
    assert_eq!(suffixes, known);
}

#[test]
fn the_openapi_document_has_exactly_the_http_apis_routes_all_iam_authorized() {
    let stack = stack();
    let routes = stack.http_routes();
    assert!(!routes.is_empty());
    let functions = stack.functions();
    let mut from_template: Vec<String> = Vec::new();
    for r in routes {
        assert_eq!(
            r.authorization, "AWS_IAM",
            "{} is not IAM-authorized",
            r.logical_id
        );
        assert_eq!(r.api_logical_id, "FleetHttpApi");
        let f = functions
            .iter()
            .find(|f| f.logical_id == r.function_logical_id)
            .unwrap();
        assert_eq!(f.binary, "fleet-api");
        // An HTTP API integration ends at 30 s: the function must end first.
        assert!(
            f.timeout_s < 30,
            "{} runs up to {} s",
            f.logical_id,
            f.timeout_s
        );
        from_template.push(format!("{} {}", r.method, r.path));
    }
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/fleet-api.yaml"),
    )
    .unwrap();
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut from_spec: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                from_spec.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    from_template.sort();
    from_spec.sort();
    assert_eq!(from_template, from_spec);
}
