//! `robofleet status --stack NAME`: one view of a stack, from its CloudFormation outputs, for the
//! person on call. Against an account it reads the deployed stack; against the local stack the
//! stack record `robofleet dev` registers in moto's CloudFormation, the same way.
//!
//! It shows, by part of the data flow (the template's `robofleet:part` tag, the dashboard and
//! docs/operations.md name the same parts):
//! - **ingest**: the streams (mode, open shards or warm throughput, iterator age) and the
//!   rule-errors queue's depth;
//! - **missions**, **index**: each consumer's mappings (state, last result);
//! - **breaker**: each downstream's circuit breaker;
//! - **failures**: the rejects queue's depth, the failed-batches bucket's object count, the
//!   alarms in ALARM;
//! - every part's function and the version its `live` alias points at (missions, index,
//!   breaker, capacity, jobs).
//!
//! It exits non-zero when something needs attention: a mapping not enabled, a breaker not
//! closed, a queue with messages, failed batches kept, an alarm in ALARM, an iterator age above
//! `--max-iterator-age`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::StatusError;

/// `robofleet status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The stack to show; default: the `robofleet dev` report's.
    #[arg(long)]
    pub stack: Option<String>,
    /// AWS endpoint (the local stack's AWS front); default: the dev report's when the stack is
    /// the local one, else the SDK's own.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint: Option<String>,
    /// Profile and region.
    #[command(flatten)]
    pub aws: fleet_aws::config::AwsAccess,
    /// An iterator age above this many seconds needs attention.
    #[arg(long, default_value_t = 60)]
    pub max_iterator_age: u64,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One stream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    pub name: String,
    pub mode: String,
    pub open_shards: Option<i32>,
    pub warm_throughput_mibps: Option<i32>,
    /// The largest iterator age of the last 10 minutes (`GetRecords.IteratorAgeMilliseconds`).
    pub iterator_age_ms: Option<f64>,
}

/// One event source mapping.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingView {
    pub function: String,
    pub uuid: String,
    pub state: String,
    pub last_result: Option<String>,
}

/// One function.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionView {
    pub part: String,
    pub name: String,
    /// The version the `live` alias points at.
    pub live_version: Option<String>,
}

/// The whole view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackStatus {
    pub stack: String,
    pub streams: Vec<StreamView>,
    pub mappings: Vec<MappingView>,
    pub breakers: Vec<serde_json::Value>,
    /// Queue output name → approximate depth.
    pub queues: BTreeMap<String, i64>,
    /// Objects in the failed-batches bucket (counted up to 1,000).
    pub failed_batches: Option<usize>,
    pub alarms_in_alarm: Vec<String>,
    pub functions: Vec<FunctionView>,
    /// What needs attention, one line each.
    pub attention: Vec<String>,
}

impl StackStatus {
    /// Whether nothing needs attention.
    pub fn healthy(&self) -> bool {
        self.attention.is_empty()
    }

    /// The readable table.
    pub fn to_text(&self) -> String {
        let mut out = format!("stack {}\n\ningest: streams\n", self.stack);
        for s in &self.streams {
            let capacity = match (s.open_shards, s.warm_throughput_mibps) {
                (_, Some(w)) if w > 0 => format!("warm {w} MiB/s"),
                (Some(n), _) => format!("{n} shards"),
                _ => "-".into(),
            };
            let age = s
                .iterator_age_ms
                .map_or_else(|| "no data".to_string(), |a| format!("{:.1} s", a / 1000.0));
            out.push_str(&format!(
                "  {:<40} {:<12} {:<16} iterator age {age}\n",
                s.name, s.mode, capacity
            ));
        }
        out.push_str("ingest, failures: queues\n");
        for (q, depth) in &self.queues {
            out.push_str(&format!("  {q:<40} {depth} messages\n"));
        }
        out.push_str("missions, index: mappings\n");
        for m in &self.mappings {
            out.push_str(&format!(
                "  {:<40} {:<10} {}\n",
                m.function,
                m.state,
                m.last_result.as_deref().unwrap_or("-")
            ));
        }
        out.push_str("breaker\n");
        for b in &self.breakers {
            out.push_str(&format!(
                "  {:<40} {:<10} {}\n",
                b["downstream"].as_str().unwrap_or(""),
                b["status"].as_str().unwrap_or(""),
                b["cause"].as_str().unwrap_or("")
            ));
        }
        out.push_str("failures\n");
        out.push_str(&format!(
            "  failed batches kept: {}\n  alarms in ALARM: {}\n",
            self.failed_batches
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
            if self.alarms_in_alarm.is_empty() {
                "none".to_string()
            } else {
                self.alarms_in_alarm.join(", ")
            }
        ));
        out.push_str("functions by part (live version)\n");
        for f in &self.functions {
            out.push_str(&format!(
                "  {:<10} {:<40} {}\n",
                f.part,
                f.name,
                f.live_version.as_deref().unwrap_or("-")
            ));
        }
        if self.attention.is_empty() {
            out.push_str("\nhealthy: nothing needs attention\n");
        } else {
            out.push_str("\nneeds attention:\n");
            for a in &self.attention {
                out.push_str(&format!("  ! {a}\n"));
            }
        }
        out
    }
}

/// The part of the data flow each function output belongs to (docs/operations.md).
const FUNCTIONS: &[(&str, &str)] = &[
    ("MissionIngestFunctionName", "missions"),
    ("ShadowIndexerFunctionName", "index"),
    ("BreakerProbeFunctionName", "breaker"),
    ("StreamScalerFunctionName", "capacity"),
    ("JobWorkerFunctionName", "jobs"),
    ("FleetApiFunctionName", "api"),
];
/// The stack's alarms, `<stack>-<suffix>` (template.yaml's `AlarmName`s; a template test keeps
/// the two in step). A prefix alone would also take another stack's alarms (`prod-eu-…` for
/// stack `prod`).
pub const ALARM_SUFFIXES: &[&str] = &[
    "missions-iterator-age",
    "shadows-iterator-age",
    "failed-batches",
    "rejects-depth",
    "rule-errors-depth",
    "mission-ingest-canary",
    "mission-ingest-errors",
    "mission-ingest-throttles",
    "shadow-indexer-canary",
    "shadow-indexer-errors",
    "shadow-indexer-throttles",
    "breaker-open",
    "breaker-unavailable",
    "stream-scaler-errors",
    "streams-throttled",
];
/// Outputs `status` reads; a stack without them is not (yet) a Robofleet stack it can show.
const EXPECTED_OUTPUTS: &[&str] = &[
    "MissionsStreamName",
    "ShadowsStreamName",
    "RejectsQueueUrl",
    "RuleErrorsQueueUrl",
    "FailedBatchesBucketName",
    "BreakerTableName",
    "MissionIngestFunctionName",
    "ShadowIndexerFunctionName",
];
/// The consumers, whose mappings run on the `live` alias.
const CONSUMERS: &[&str] = &["MissionIngestFunctionName", "ShadowIndexerFunctionName"];

fn aws<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> StatusError {
    move |e| StatusError::Aws {
        what,
        message: fleet_aws::error::chain(&e),
    }
}

/// The stack's status (`CREATE_COMPLETE`, ...) and its outputs, from CloudFormation: a deployed
/// stack's, or the record `robofleet dev` keeps of the local one.
pub async fn stack_outputs(
    sdk: &aws_config::SdkConfig,
    stack: &str,
) -> Result<(String, BTreeMap<String, String>), StatusError> {
    let described = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| StatusError::NoStack {
            stack: stack.to_string(),
            message: fleet_aws::error::describe(&e),
        })?;
    let first = described.stacks().first();
    let status = first
        .and_then(|s| s.stack_status())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let outputs = first
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok((status, outputs))
}

/// Reads the stack's outputs and every part they name.
pub async fn status(
    sdk: &aws_config::SdkConfig,
    stack: &str,
    max_iterator_age_s: u64,
) -> Result<StackStatus, StatusError> {
    let (stack_status, outputs) = stack_outputs(sdk, stack).await?;
    let out = |k: &str| outputs.get(k).cloned();
    let mut view = StackStatus {
        stack: stack.to_string(),
        streams: Vec::new(),
        mappings: Vec::new(),
        breakers: Vec::new(),
        queues: BTreeMap::new(),
        failed_batches: None,
        alarms_in_alarm: Vec::new(),
        functions: Vec::new(),
        attention: Vec::new(),
    };
    if stack_status.contains("FAILED")
        || stack_status.contains("ROLLBACK")
        || stack_status.ends_with("IN_PROGRESS")
    {
        view.attention.push(format!("the stack is {stack_status}"));
    }
    for key in EXPECTED_OUTPUTS {
        if !outputs.contains_key(*key) {
            view.attention.push(format!(
                "the stack has no output {key} (not deployed from this template yet?)"
            ));
        }
    }

    // Streams.
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(sdk);
    for key in ["MissionsStreamName", "ShadowsStreamName"] {
        let Some(name) = out(key) else { continue };
        let d = kinesis
            .describe_stream_summary()
            .stream_name(&name)
            .send()
            .await
            .map_err(aws("DescribeStreamSummary"))?;
        let Some(s) = d.stream_description_summary() else {
            continue;
        };
        let age = iterator_age_ms(&cloudwatch, &name).await?;
        if let Some(a) = age
            && a > (max_iterator_age_s * 1000) as f64
        {
            view.attention.push(format!(
                "stream {name}: iterator age {:.0} s, above {max_iterator_age_s} s (the consumers are behind)",
                a / 1000.0
            ));
        }
        view.streams.push(StreamView {
            name,
            mode: s
                .stream_mode_details()
                .map(|m| m.stream_mode().as_str().to_string())
                .unwrap_or_else(|| "PROVISIONED".into()),
            open_shards: Some(s.open_shard_count()),
            warm_throughput_mibps: s.warm_throughput().and_then(|w| w.current_mibps()),
            iterator_age_ms: age,
        });
    }

    // Queues.
    let sqs = aws_sdk_sqs::Client::new(sdk);
    for key in ["RejectsQueueUrl", "RuleErrorsQueueUrl"] {
        let Some(url) = out(key) else { continue };
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(aws("GetQueueAttributes"))?;
        let depth: i64 = attrs
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if depth > 0 {
            view.attention
                .push(format!("{key}: {depth} messages (robofleet rejects list)"));
        }
        view.queues.insert(key.to_string(), depth);
    }

    // Functions, their live versions, and the consumers' mappings.
    let lambda = aws_sdk_lambda::Client::new(sdk);
    for (key, part) in FUNCTIONS {
        let Some(name) = out(key) else { continue };
        let live = lambda
            .get_alias()
            .function_name(&name)
            .name("live")
            .send()
            .await
            .ok()
            .and_then(|a| a.function_version().map(str::to_string));
        if CONSUMERS.contains(key) {
            let listed = lambda
                .list_event_source_mappings()
                .function_name(format!("{name}:live"))
                .send()
                .await
                .map_err(aws("ListEventSourceMappings"))?;
            if listed.event_source_mappings().is_empty() {
                view.attention
                    .push(format!("{name}:live has no event source mapping"));
            }
            for m in listed.event_source_mappings() {
                let state = m.state().unwrap_or("unknown").to_string();
                if state != "Enabled" {
                    view.attention.push(format!(
                        "the mapping of {name} is {state} (a breaker, or an operator, paused it?)"
                    ));
                }
                view.mappings.push(MappingView {
                    function: name.clone(),
                    uuid: m.uuid().unwrap_or_default().to_string(),
                    state,
                    last_result: m.last_processing_result().map(str::to_string),
                });
            }
        }
        view.functions.push(FunctionView {
            part: part.to_string(),
            name,
            live_version: live,
        });
    }

    // Breakers.
    if let Some(table) = out("BreakerTableName") {
        let store = fleet_breaker::DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table);
        let switch = fleet_breaker::LambdaSwitch::new(lambda.clone());
        view.breakers = crate::breaker::status(&store, &switch, stack)
            .await
            .map_err(|e| StatusError::Aws {
                what: "the breaker table",
                message: e.to_string(),
            })?;
        for b in &view.breakers {
            if b["status"] != "closed" {
                view.attention.push(format!(
                    "breaker {} is {}: {}",
                    b["downstream"].as_str().unwrap_or(""),
                    b["status"].as_str().unwrap_or(""),
                    b["cause"].as_str().unwrap_or("")
                ));
            }
        }
    }

    // Failed batches and alarms.
    if let Some(bucket) = out("FailedBatchesBucketName") {
        let s3 = fleet_aws::config::s3_client(sdk);
        let listed = s3
            .list_objects_v2()
            .bucket(&bucket)
            .prefix("aws/lambda/")
            .max_keys(1000)
            .send()
            .await
            .map_err(aws("ListObjectsV2"))?;
        let n = listed.contents().len();
        if n > 0 {
            view.attention.push(format!(
                "{n} failed batches kept in s3://{bucket}/aws/lambda/ (docs/operations.md)"
            ));
        }
        view.failed_batches = Some(n);
    }
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-"))
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .send()
        .await
        .map_err(aws("DescribeAlarms"))?;
    for a in alarms.metric_alarms() {
        if let Some(n) = a.alarm_name().filter(|n| {
            n.strip_prefix(&format!("{stack}-"))
                .is_some_and(|suffix| ALARM_SUFFIXES.contains(&suffix))
        }) {
            view.alarms_in_alarm.push(n.to_string());
            view.attention.push(format!("alarm {n} is in ALARM"));
        }
    }
    Ok(view)
}

/// The largest `GetRecords.IteratorAgeMilliseconds` of the last 10 minutes, if CloudWatch has
/// any.
async fn iterator_age_ms(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    stream: &str,
) -> Result<Option<f64>, StatusError> {
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
    let now = std::time::SystemTime::now();
    let metric = Metric::builder()
        .namespace("AWS/Kinesis")
        .metric_name("GetRecords.IteratorAgeMilliseconds")
        .dimensions(
            Dimension::builder()
                .name("StreamName")
                .value(stream)
                .build(),
        )
        .build();
    let query = MetricDataQuery::builder()
        .id("age")
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(60)
                .stat("Maximum")
                .build(),
        )
        .build();
    let out = cloudwatch
        .get_metric_data()
        .metric_data_queries(query)
        .start_time((now - std::time::Duration::from_secs(600)).into())
        .end_time(now.into())
        .send()
        .await
        .map_err(aws("GetMetricData"))?;
    Ok(out
        .metric_data_results()
        .iter()
        .flat_map(|r| r.values().iter().copied())
        .reduce(f64::max))
}

/// Runs `robofleet status`: prints the table or JSON; `Ok(false)` when something needs attention.
pub async fn run(args: StatusArgs) -> Result<bool, StatusError> {
    let stack = args.stack.clone().ok_or(StatusError::NoStackName)?;
    let sdk = args.aws.sdk_config(args.aws_endpoint.as_deref()).await?;
    let view = status(&sdk, &stack, args.max_iterator_age).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        );
    } else {
        print!("{}", view.to_text());
    }
    Ok(view.healthy())
}
