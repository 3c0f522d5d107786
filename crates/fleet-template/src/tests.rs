//! Whole-template tests: small snippets for each extraction and validation rule, and the real
//! template.yaml of the repository.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::*;

fn opts() -> LoadOptions {
    LoadOptions {
        stack_name: "rf".into(),
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        parameter_overrides: BTreeMap::new(),
    }
}

/// A minimal template with one function and one Kinesis event whose properties are `props`.
fn with_event(props: &str) -> String {
    format!(
        r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: provided.al2023
    Architectures: [arm64]
    Environment:
      Variables:
        SHARED: "1"
Resources:
  Stream:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub "${{AWS::StackName}}-s"
      StreamModeDetails: {{StreamMode: ON_DEMAND}}
  Dlq:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: my-fn
    Properties:
      Environment:
        Variables:
          OWN: !Ref Dlq
      Events:
        Ev:
          Type: Kinesis
          Properties:
            Stream: !GetAtt Stream.Arn
{props}
"#
    )
}

fn load_event(props: &str) -> Result<Stack, TemplateError> {
    load_str(&with_event(props), &opts())
}

const GOOD: &str = "            StartingPosition: TRIM_HORIZON
            BatchSize: 50
            MaximumBatchingWindowInSeconds: 5
            ParallelizationFactor: 3
            BisectBatchOnFunctionError: true
            FunctionResponseTypes: [ReportBatchItemFailures]
            MaximumRetryAttempts: 7
            MaximumRecordAgeInSeconds: 3600
            DestinationConfig:
              OnFailure:
                Type: SQS
                Destination: !GetAtt Dlq.Arn";

#[test]
fn sam_kinesis_event_becomes_a_mapping() {
    let stack = load_event(GOOD).unwrap();
    let m = stack.event_source_mappings();
    assert_eq!(m.len(), 1);
    let m = m[0];
    assert_eq!(m.logical_id, "FnEv");
    assert_eq!(m.function_logical_id, "Fn");
    assert_eq!(m.stream_logical_id, "Stream");
    assert_eq!(m.stream_name, "rf-s");
    assert_eq!(m.batch_size, 50);
    assert_eq!(m.max_batching_window_s, 5);
    assert_eq!(m.parallelization_factor, 3);
    assert_eq!(m.starting_position, StartingPosition::TrimHorizon);
    assert!(m.bisect_on_error);
    assert!(m.report_batch_item_failures);
    assert_eq!(m.max_retry_attempts, Some(7));
    assert_eq!(m.max_record_age_s, Some(3600));
    assert_eq!(
        m.on_failure,
        Some(Destination::Sqs {
            queue_logical_id: "Dlq".into(),
            queue_name: "rf-Dlq".into()
        })
    );
    assert!(m.enabled);
}

#[test]
fn globals_merge_into_functions() {
    let stack = load_event(GOOD).unwrap();
    let f = stack.function("Fn").unwrap();
    assert_eq!(f.binary, "my-fn");
    assert_eq!(f.runtime, "provided.al2023");
    assert_eq!(f.architectures, vec!["arm64".to_string()]);
    assert_eq!(f.memory_mb, 128);
    assert_eq!(f.timeout_s, 3);
    assert_eq!(f.environment["SHARED"], json!("1"));
    assert_eq!(
        f.environment["OWN"],
        json!("https://sqs.us-east-1.amazonaws.com/123456789012/rf-Dlq")
    );
}

#[test]
fn minus_one_means_infinite() {
    let stack = load_event(
        "            StartingPosition: LATEST
            MaximumRetryAttempts: -1
            MaximumRecordAgeInSeconds: -1",
    )
    .unwrap();
    let m = stack.event_source_mappings()[0];
    assert_eq!(m.max_retry_attempts, None);
    assert_eq!(m.max_record_age_s, None);
    assert_eq!(m.starting_position, StartingPosition::Latest);
    assert!(!m.report_batch_item_failures);
    assert_eq!(m.on_failure, None);
    assert_eq!(m.batch_size, 100, "Lambda's default batch size");
}

fn mapping_error(props: &str) -> (String, String, String, String) {
    match load_event(props) {
        Err(TemplateError::InvalidMapping {
            function,
            event,
            property,
            detail,
        }) => (function, event, property, detail),
        other => panic!("expected InvalidMapping, got {other:?}"),
    }
}

#[test]
fn unknown_starting_position_is_rejected_with_names() {
    let (f, e, p, d) = mapping_error("            StartingPosition: OLDEST");
    assert_eq!(
        (f.as_str(), e.as_str(), p.as_str()),
        ("Fn", "Ev", "StartingPosition")
    );
    assert!(d.contains("OLDEST"), "{d}");
}

#[test]
fn missing_starting_position_is_rejected() {
    let (_, _, p, _) = mapping_error("            BatchSize: 10");
    assert_eq!(p, "StartingPosition");
}

#[test]
fn out_of_range_values_are_rejected() {
    let cases = [
        ("MaximumRetryAttempts: 30000", "MaximumRetryAttempts"),
        ("MaximumRetryAttempts: -2", "MaximumRetryAttempts"),
        ("MaximumRecordAgeInSeconds: 30", "MaximumRecordAgeInSeconds"),
        (
            "MaximumRecordAgeInSeconds: 604801",
            "MaximumRecordAgeInSeconds",
        ),
        ("BatchSize: 0", "BatchSize"),
        ("BatchSize: 10001", "BatchSize"),
        (
            "MaximumBatchingWindowInSeconds: 301",
            "MaximumBatchingWindowInSeconds",
        ),
        ("ParallelizationFactor: 11", "ParallelizationFactor"),
        ("ParallelizationFactor: 0", "ParallelizationFactor"),
        ("BatchSize: lots", "BatchSize"),
    ];
    for (line, prop) in cases {
        let (_, _, p, d) = mapping_error(&format!(
            "            StartingPosition: LATEST\n            {line}"
        ));
        assert_eq!(p, prop, "{line}: {d}");
    }
}

#[test]
fn boundary_values_are_accepted() {
    let stack = load_event(
        "            StartingPosition: LATEST
            MaximumRetryAttempts: 10000
            MaximumRecordAgeInSeconds: 604800
            BatchSize: 10000
            MaximumBatchingWindowInSeconds: 300
            ParallelizationFactor: 10",
    )
    .unwrap();
    let m = stack.event_source_mappings()[0];
    assert_eq!(m.max_retry_attempts, Some(10_000));
    assert_eq!(m.max_record_age_s, Some(604_800));
}

#[test]
fn misspelled_response_type_and_property_are_rejected() {
    let (_, _, p, _) = mapping_error(
        "            StartingPosition: LATEST\n            FunctionResponseTypes: [ReportBatchItemFailure]",
    );
    assert_eq!(p, "FunctionResponseTypes");
    let (_, _, p, d) =
        mapping_error("            StartingPosition: LATEST\n            MaxRetryAttempts: 3");
    assert_eq!(p, "MaxRetryAttempts");
    assert!(d.contains("misspelled"), "{d}");
}

#[test]
fn tumbling_windows_and_filters_are_refused_by_name() {
    let err =
        load_event("            StartingPosition: LATEST\n            TumblingWindowInSeconds: 60")
            .unwrap_err();
    assert!(
        matches!(&err, TemplateError::Unsupported { what, .. } if what.contains("TumblingWindowInSeconds")),
        "{err}"
    );
}

#[test]
fn parameter_driven_mapping_values_are_validated_after_evaluation() {
    let yaml =
        with_event("            StartingPosition: LATEST\n            BatchSize: !Ref Batch")
            .replace(
                "Resources:",
                "Parameters:\n  Batch:\n    Type: Number\n    Default: 20\nResources:",
            );
    let stack = load_str(&yaml, &opts()).unwrap();
    assert_eq!(stack.event_source_mappings()[0].batch_size, 20);
    let mut o = opts();
    o.parameter_overrides.insert("Batch".into(), "20000".into());
    assert!(matches!(
        load_str(&yaml, &o),
        Err(TemplateError::InvalidMapping { .. })
    ));
}

#[test]
fn other_sam_event_types_are_refused_by_name() {
    let yaml =
        with_event("            StartingPosition: LATEST").replace("Type: Kinesis", "Type: SQS");
    let err = load_str(&yaml, &opts()).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Unsupported { what, .. } if what.contains("\"SQS\"")),
        "{err}"
    );
}

const RAW_ESM: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Stream:
    Type: AWS::Kinesis::Stream
    Properties:
      StreamModeDetails: {StreamMode: PROVISIONED}
      ShardCount: 2
  Failed:
    Type: AWS::S3::Bucket
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: {Binary: fn-bin}
    Properties:
      FunctionName: rf-fn
      AutoPublishAlias: live
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Fn.Alias
      EventSourceArn: !GetAtt Stream.Arn
      StartingPosition: AT_TIMESTAMP
      StartingPositionTimestamp: 1732374000
      FunctionResponseTypes: [ReportBatchItemFailures]
      MaximumRetryAttempts: 5
      MaximumRecordAgeInSeconds: 600
      Enabled: false
      DestinationConfig:
        OnFailure:
          Destination: !GetAtt Failed.Arn
  Tick:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: rate(1 minute)
      Targets:
        - Id: fn
          Arn: !Ref Fn.Alias
  Probe:
    Type: AWS::Scheduler::Schedule
    Properties:
      ScheduleExpression: cron(0 10 * * ? *)
      State: DISABLED
      FlexibleTimeWindow: {Mode: "OFF"}
      Target:
        Arn: !GetAtt Fn.Arn
        RoleArn: arn:aws:iam::123456789012:role/x
        Input: '{"probe":true}'
"#;

#[test]
fn raw_event_source_mappings_on_the_alias_are_read() {
    let stack = load_str(RAW_ESM, &opts()).unwrap();
    let m = stack.event_source_mappings();
    assert_eq!(m.len(), 1);
    let m = m[0];
    assert_eq!(m.logical_id, "Mapping");
    assert_eq!(m.function_logical_id, "Fn");
    assert_eq!(m.stream_name, "rf-Stream");
    assert_eq!(
        m.starting_position,
        StartingPosition::AtTimestamp(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_732_374_000)
        )
    );
    assert!(!m.enabled);
    assert_eq!(
        m.on_failure,
        Some(Destination::S3 {
            bucket_logical_id: "Failed".into(),
            bucket_name: "rf-failed".into()
        })
    );
    let s = stack.streams();
    assert_eq!(s[0].mode, StreamMode::Provisioned);
    assert_eq!(s[0].shard_count, Some(2));
    assert_eq!(s[0].retention_hours, 24);
}

#[test]
fn schedules_from_rules_and_scheduler() {
    let stack = load_str(RAW_ESM, &opts()).unwrap();
    let mut s = stack.schedules();
    s.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].logical_id, "Probe");
    assert_eq!(s[0].expression, "cron(0 10 * * ? *)");
    assert!(!s[0].enabled);
    assert_eq!(s[0].input.as_deref(), Some(r#"{"probe":true}"#));
    assert_eq!(s[1].logical_id, "Tick");
    assert_eq!(s[1].target_function_logical_id, "Fn");
    assert!(s[1].enabled);
}

#[test]
fn sam_schedule_events_are_read() {
    let yaml = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: b}}
    Properties:
      Events:
        Every:
          Type: Schedule
          Properties: {Schedule: rate(5 minutes), Enabled: false}
        V2:
          Type: ScheduleV2
          Properties: {ScheduleExpression: rate(1 hour)}
"#;
    let stack = load_str(yaml, &opts()).unwrap();
    let s = stack.schedules();
    assert_eq!(s.len(), 2);
    let every = s.iter().find(|s| s.logical_id == "FnEvery").unwrap();
    assert_eq!(every.expression, "rate(5 minutes)");
    assert!(!every.enabled);
    assert!(s.iter().any(|s| s.logical_id == "FnV2" && s.enabled));
}

#[test]
fn mapping_on_a_queue_is_refused_by_name() {
    let yaml = RAW_ESM.replace(
        "EventSourceArn: !GetAtt Stream.Arn",
        "EventSourceArn: !GetAtt Q.Arn",
    ) + "  Q:\n    Type: AWS::SQS::Queue\n";
    let err = load_str(&yaml, &opts()).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Unsupported { what, .. } if what.contains("AWS::SQS::Queue")),
        "{err}"
    );
}

#[test]
fn conditions_remove_resources() {
    let yaml = r#"
Parameters:
  WithQueue: {Type: String, Default: "no", AllowedValues: ["yes", "no"]}
Conditions:
  Has: !Equals [!Ref WithQueue, "yes"]
Resources:
  Q:
    Type: AWS::SQS::Queue
    Condition: Has
    Properties: {QueueName: q, MessageRetentionPeriod: 1209600}
  B:
    Type: AWS::S3::Bucket
    Properties: {BucketName: !If [Has, with-q, without-q]}
"#;
    let stack = load_str(yaml, &opts()).unwrap();
    assert!(stack.queues().is_empty());
    assert_eq!(stack.buckets()[0].bucket_name, "without-q");
    let mut o = opts();
    o.parameter_overrides
        .insert("WithQueue".into(), "yes".into());
    let stack = load_str(yaml, &o).unwrap();
    assert_eq!(stack.queues()[0].retention_s, 1_209_600);
    assert_eq!(stack.buckets()[0].bucket_name, "with-q");
    assert_eq!(stack.parameters()["WithQueue"], "yes");
}

#[test]
fn other_transforms_and_sections_are_refused() {
    let err = load_str(
        "Transform: AWS::LanguageExtensions\nResources: {}\n",
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(err, TemplateError::Unsupported { .. }), "{err}");
    let err = load_str(
        "Resources:\n  A:\n    Type: AWS::Serverless::Api\n",
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(err, TemplateError::Unsupported { .. }), "{err}");
}

#[test]
fn function_without_binary_is_invalid() {
    let yaml = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {}\n";
    let err = load_str(yaml, &opts()).unwrap_err();
    assert!(err.to_string().contains("BuildProperties.Binary"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The real template
// ---------------------------------------------------------------------------------------------

fn real_template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// The administrators' role: the template requires it (its `Rules` and the parameter's pattern).
const ADMIN_ARN: &str = "arn:aws:iam::123456789012:role/Admin";

fn real_opts() -> LoadOptions {
    let mut o = opts();
    o.parameter_overrides
        .insert("OpenSearchMasterUserArn".into(), ADMIN_ARN.into());
    o
}

fn real() -> Stack {
    match load(&real_template(), &real_opts()) {
        Ok(s) => s,
        Err(e) => panic!("template.yaml does not load: {e}"),
    }
}

#[test]
fn real_template_loads_with_defaults() {
    let stack = real();
    assert_eq!(stack.parameters()["StreamMode"], "ON_DEMAND");
    assert_eq!(stack.parameters()["RuleSuffix"], "");
    assert!(stack.resource("RobotsDomain").is_some());
    // docs/architecture.md §2: with the default suffix the Basic Ingest topic is exactly this one.
    assert_eq!(
        stack.outputs()["MissionReportTopic"],
        json!("$aws/rules/mission_reports/robots/<thing>/missions")
    );
}

#[test]
fn real_template_functions_are_arm64_al2023_with_their_binaries() {
    let stack = real();
    let fns = stack.functions();
    assert!(fns.len() >= 2);
    for f in &fns {
        assert_eq!(
            f.architectures,
            vec!["arm64".to_string()],
            "{}",
            f.logical_id
        );
        assert_eq!(f.runtime, "provided.al2023", "{}", f.logical_id);
        assert_eq!(
            f.auto_publish_alias.as_deref(),
            Some("live"),
            "{}",
            f.logical_id
        );
    }
    assert_eq!(
        stack.function("MissionIngestFunction").unwrap().binary,
        "mission-ingest"
    );
    assert_eq!(
        stack.function("ShadowIndexerFunction").unwrap().binary,
        "shadow-indexer"
    );
}

#[test]
fn real_template_environment_values_resolve() {
    let stack = real();
    let mi = stack.function("MissionIngestFunction").unwrap();
    assert_eq!(mi.environment["MISSIONS_TABLE"], json!("rf-MissionsTable"));
    assert_eq!(
        mi.environment["REJECTS_QUEUE_URL"],
        json!("https://sqs.us-east-1.amazonaws.com/123456789012/rf-rejects")
    );
    assert_eq!(mi.environment["MISSION_TTL_DAYS"], json!("400"));
    assert_eq!(mi.environment["DAY_SHARDS"], json!("8"));
    let si = stack.function("ShadowIndexerFunction").unwrap();
    assert_eq!(si.environment["ROBOTS_ALIAS"], json!("robots"));
    assert_eq!(
        si.environment["OPENSEARCH_ENDPOINT"],
        json!("https://search-robofleet-local.us-east-1.es.amazonaws.com")
    );
}

#[test]
fn real_template_every_kinesis_mapping_is_safe() {
    let stack = real();
    let mappings = stack.event_source_mappings();
    assert_eq!(mappings.len(), 2);
    for m in mappings {
        assert!(m.report_batch_item_failures, "{}", m.logical_id);
        assert!(m.bisect_on_error, "{}", m.logical_id);
        assert!(
            matches!(m.on_failure, Some(Destination::S3 { .. })),
            "{}: on-failure must keep payloads (S3)",
            m.logical_id
        );
        let stream = stack
            .streams()
            .into_iter()
            .find(|s| s.logical_id == m.stream_logical_id)
            .unwrap();
        // Unlimited retries (a deployment mistake waits in the stream), and a maximum age
        // that leaves 12 h before the stream trims the record.
        assert_eq!(m.max_retry_attempts, None, "{}", m.logical_id);
        let age = m.max_record_age_s.expect("finite record age");
        assert!(
            age + 12 * 3600 <= stream.retention_hours * 3600,
            "{}",
            m.logical_id
        );
    }
}

#[test]
fn real_template_shadow_path_retries_until_twelve_hours_before_the_trim() {
    let stack = real();
    let m = stack
        .event_source_mappings()
        .into_iter()
        .find(|m| m.function_logical_id == "ShadowIndexerFunction")
        .unwrap();
    assert_eq!(m.max_retry_attempts, None);
    assert_eq!(m.max_record_age_s, Some(604_800 - 12 * 3600));
    let s = stack
        .streams()
        .into_iter()
        .find(|s| s.logical_id == "ShadowsStream")
        .unwrap();
    assert_eq!(s.retention_hours, 168);
    assert_eq!(s.mode, StreamMode::OnDemand);
    assert_eq!(s.shard_count, None);
}

#[test]
fn real_template_rules_route_to_streams_keyed_by_thing() {
    let stack = real();
    let rules = stack.topic_rules();
    assert_eq!(rules.len(), 4);
    let missions = rules
        .iter()
        .find(|r| r.rule_name == "mission_reports")
        .unwrap();
    assert_eq!(missions.sql, "SELECT * FROM 'robots/+/missions'");
    assert_eq!(missions.sql_version, "2016-03-23");
    assert_eq!(
        missions.actions,
        vec![RuleAction::Kinesis {
            stream_logical_id: Some("MissionsStream".into()),
            stream_name: "rf-missions".into(),
            partition_key_template: Some("${topic(2)}".into()),
        }]
    );
    for r in &rules {
        assert!(r.enabled);
        assert!(
            matches!(&r.error_action, Some(RuleAction::Sqs { queue_name, .. }) if queue_name == "rf-rule-errors"),
            "{}",
            r.rule_name
        );
        for a in &r.actions {
            match a {
                RuleAction::Kinesis {
                    partition_key_template,
                    ..
                } => {
                    let key = partition_key_template.as_deref().unwrap_or("");
                    assert!(key.starts_with("${topic("), "{}: key {key}", r.rule_name);
                    assert!(!key.contains("newuuid"), "{}", r.rule_name);
                }
                other => panic!("{}: unexpected action {other:?}", r.rule_name),
            }
        }
    }
    let presence = rules
        .iter()
        .find(|r| r.rule_name == "presence_events")
        .unwrap();
    assert!(
        matches!(&presence.actions[0], RuleAction::Kinesis { partition_key_template: Some(k), .. } if k == "${topic(5)}")
    );
}

#[test]
fn real_template_rule_suffix_renames_every_rule() {
    let mut o = real_opts();
    o.parameter_overrides
        .insert("RuleSuffix".into(), "_dev".into());
    let stack = load(&real_template(), &o).unwrap();
    for r in stack.topic_rules() {
        assert!(r.rule_name.ends_with("_dev"), "{}", r.rule_name);
    }
    assert_eq!(
        stack.outputs()["MissionReportTopic"],
        json!("$aws/rules/mission_reports_dev/robots/<thing>/missions")
    );
    o.parameter_overrides
        .insert("RuleSuffix".into(), "-dev".into());
    assert!(matches!(
        load(&real_template(), &o),
        Err(TemplateError::Parameter { .. })
    ));
}

#[test]
fn real_template_missions_table_matches_the_storage_rules() {
    let stack = real();
    assert_eq!(
        stack.tables().len(),
        5,
        "the missions table, the breaker table, the stream-scaler's state table, the jobs table and the robot tombstones table"
    );
    let t = stack.table("MissionsTable").unwrap();
    assert_eq!(t.table_name, "rf-MissionsTable");
    assert_eq!(t.billing_mode, "PAY_PER_REQUEST");
    assert_eq!(
        t.key_schema,
        KeySchema {
            hash_key: "pk".into(),
            range_key: Some("sk".into())
        }
    );
    assert_eq!(t.ttl_attribute.as_deref(), Some("expiresAt"));
    assert_eq!(t.gsis.len(), 1);
    assert_eq!(t.gsis[0].index_name, "byDay");
    assert_eq!(
        t.gsis[0].keys,
        KeySchema {
            hash_key: "gsi1pk".into(),
            range_key: Some("gsi1sk".into())
        }
    );
}

#[test]
fn real_template_queues_keep_messages_fourteen_days() {
    let stack = real();
    assert_eq!(
        stack.queue("RejectsQueue").unwrap().queue_name,
        "rf-rejects"
    );
    assert_eq!(
        stack.table("MissionsTable").unwrap().table_name,
        "rf-MissionsTable"
    );
    let q = stack.queues();
    assert_eq!(q.len(), 2);
    for q in q {
        assert_eq!(q.retention_s, 1_209_600, "{}", q.queue_name);
    }
}

#[test]
fn real_template_provisioned_mode_sets_shard_counts() {
    let mut o = real_opts();
    o.parameter_overrides
        .insert("StreamMode".into(), "PROVISIONED".into());
    o.parameter_overrides
        .insert("MissionsShardCount".into(), "3".into());
    let stack = load(&real_template(), &o).unwrap();
    let m = stack
        .streams()
        .into_iter()
        .find(|s| s.logical_id == "MissionsStream")
        .unwrap();
    assert_eq!(m.mode, StreamMode::Provisioned);
    assert_eq!(m.shard_count, Some(3));
    o.parameter_overrides
        .insert("StreamMode".into(), "FAST".into());
    assert!(load(&real_template(), &o).is_err());
}

#[test]
fn real_template_robot_policy_keeps_iot_variables_literal() {
    let stack = real();
    let policy = stack.resource("RobotPolicy").unwrap();
    let text = policy.properties.to_string();
    assert!(
        text.contains("client/${iot:Connection.Thing.ThingName}"),
        "{text}"
    );
    assert!(
        !text.contains("${!"),
        "the !Sub escape must be gone after evaluation"
    );
    // No statement may use a bare wildcard resource.
    for stmt in policy.properties["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
    {
        let resources = match &stmt["Resource"] {
            serde_json::Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        };
        for r in resources {
            let r = r.as_str().unwrap();
            assert!(
                r.contains("${iot:Connection.Thing.ThingName}"),
                "{r} is not scoped to the robot"
            );
        }
    }
}

const RULES: &str = r#"
Parameters:
  Admin: {Type: String, Default: ""}
  Env: {Type: String, Default: dev}
  Zones: {Type: CommaDelimitedList, Default: "a,b"}
Rules:
  AdminIsSet:
    RuleCondition: !Equals [!Ref Env, prod]
    Assertions:
      - Assert: !Not [!Equals [!Ref Admin, ""]]
        AssertDescription: set Admin in production
  ZonesKnown:
    Assertions:
      - Assert: !Or [!Contains [!Ref Zones, a], !Contains [[x, y], b]]
        AssertDescription: zone a is required
Resources: {}
"#;

fn load_rules(overrides: &[(&str, &str)]) -> Result<Stack, TemplateError> {
    let mut o = opts();
    for (k, v) in overrides {
        o.parameter_overrides.insert(k.to_string(), v.to_string());
    }
    load_str(RULES, &o)
}

#[test]
fn rules_are_checked_like_cloudformation_before_anything_else() {
    // dev: the RuleCondition is false, so an empty Admin passes.
    load_rules(&[]).unwrap();
    // prod: the assertion fails with its description.
    let err = load_rules(&[("Env", "prod")]).unwrap_err();
    match &err {
        TemplateError::RuleFailed { rule, description } => {
            assert_eq!(rule, "AdminIsSet");
            assert_eq!(description, "set Admin in production");
        }
        other => panic!("expected RuleFailed, got {other}"),
    }
    load_rules(&[("Env", "prod"), ("Admin", "arn:aws:iam::1:role/a")]).unwrap();
    // Fn::Contains over a list parameter.
    let err = load_rules(&[("Zones", "b,c")]).unwrap_err();
    assert!(
        matches!(&err, TemplateError::RuleFailed { rule, .. } if rule == "ZonesKnown"),
        "{err}"
    );
}

#[test]
fn rule_functions_that_need_the_cloud_are_refused_by_name() {
    for f in ["Fn::EachMemberEquals", "Fn::ValueOf", "Fn::RefAll"] {
        let text = format!(
            "Rules:\n  R:\n    Assertions:\n      - Assert: {{\"{f}\": [a, b]}}\nResources: {{}}\n"
        );
        let err = load_str(&text, &opts()).unwrap_err();
        assert!(
            matches!(&err, TemplateError::Unsupported { what, .. } if what.contains(f)),
            "{f}: {err}"
        );
    }
    // A rule may only refer to parameters.
    let err = load_str(
        "Rules:\n  R:\n    Assertions:\n      - Assert: !Equals [!Ref Q, x]\nResources:\n  Q: {Type: AWS::SQS::Queue}\n",
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(err, TemplateError::Invalid { .. }), "{err}");
}

#[test]
fn a_function_version_is_deferred_through_split_and_select() {
    let text = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: f}}
    Properties:
      Runtime: provided.al2023
      AutoPublishAlias: live
  Q:
    Type: AWS::SQS::Queue
    Properties:
      Tags:
        - Key: version
          Value: !Select [7, !Split [":", !Ref Fn.Version]]
"#;
    let stack = load_str(text, &opts()).unwrap();
    let tag = &stack.resource("Q").unwrap().properties["Tags"][0]["Value"];
    assert_eq!(
        deferred(tag),
        Some("Fn::Select 7 of Fn::Split of Ref Fn.Version")
    );
    let err = load_str(&text.replace("AutoPublishAlias: live", ""), &opts()).unwrap_err();
    assert!(err.to_string().contains("no AutoPublishAlias"), "{err}");
}
