//! From evaluated resources to the specs in [`crate::model`], with Lambda's limits checked on
//! every Kinesis mapping (cfn-lint does not look inside SAM `Events`).

use serde_json::{Map, Value};

use crate::error::TemplateError;
use crate::eval::{Evaluator, deferred, single};
use crate::limits::{self, Limit};
use crate::model::{
    AttributeDefinition, BucketSpec, Destination, FunctionSpec, GsiSpec, HttpRouteSpec, KeySchema,
    KinesisMapping, QueueSpec, Resource, RuleAction, ScheduleSpec, StartingPosition, StreamMode,
    StreamSpec, TableSpec, TopicRuleSpec,
};
use crate::params::scalar_text;
use crate::yaml::join;

/// An integer from a number or a numeric string (parameters are strings).
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(scalar_text)
}

fn req_text(props: &Value, key: &str, at: &str) -> Result<String, TemplateError> {
    let v = props
        .get(key)
        .ok_or_else(|| TemplateError::invalid(at, format!("{key} is required")))?;
    if let Some(d) = deferred(v) {
        return Err(TemplateError::invalid(
            join(at, key),
            format!("depends on {d}, which is only known in the cloud"),
        ));
    }
    scalar_text(v).ok_or_else(|| TemplateError::invalid(join(at, key), "must be a string"))
}

fn u32_or(props: &Value, key: &str, default: u32, at: &str) -> Result<u32, TemplateError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => int(v).and_then(|i| u32::try_from(i).ok()).ok_or_else(|| {
            TemplateError::invalid(join(at, key), format!("{v} is not a whole number"))
        }),
    }
}

/// The logical id (and attribute) a raw value points at: `Ref X`, `Ref X.Alias`,
/// `GetAtt X.Attr`, a `Sub` that is exactly one `${X}` or `${X.Attr}`, or the branch an
/// `Fn::If` takes.
pub(crate) fn ref_target(
    ev: &Evaluator<'_>,
    raw: &Value,
    at: &str,
) -> Result<Option<(String, Option<String>)>, TemplateError> {
    let Some((key, arg)) = single(raw) else {
        return Ok(None);
    };
    Ok(match key {
        "Ref" => arg.as_str().map(|s| match s.split_once('.') {
            Some((id, attr)) => (id.to_string(), Some(attr.to_string())),
            None => (s.to_string(), None),
        }),
        "Fn::GetAtt" => match arg.as_array().map(Vec::as_slice) {
            Some([Value::String(id), Value::String(attr)]) => {
                Some((id.clone(), Some(attr.clone())))
            }
            _ => None,
        },
        "Fn::Sub" => arg.as_str().and_then(|s| {
            let inner = s.strip_prefix("${")?.strip_suffix('}')?;
            if inner.contains("${") || inner.starts_with('!') {
                return None;
            }
            Some(match inner.split_once('.') {
                Some((id, attr)) => (id.to_string(), Some(attr.to_string())),
                None => (inner.to_string(), None),
            })
        }),
        "Fn::If" => match arg.as_array().map(Vec::as_slice) {
            Some([Value::String(cond), a, b]) => {
                let branch = if ev.condition(cond, at)? { a } else { b };
                return ref_target(ev, branch, at);
            }
            _ => None,
        },
        _ => None,
    })
}

/// A resource a raw value references, if it is declared in the template with one of `types`.
fn target_of_type(
    ev: &Evaluator<'_>,
    raw: &Value,
    types: &[&str],
    at: &str,
) -> Result<Option<(String, String)>, TemplateError> {
    if let Some((id, _)) = ref_target(ev, raw, at)?
        && let Some(r) = ev.resources.get(&id)
        && types.contains(&r.type_.as_str())
    {
        return Ok(Some((id, r.type_.clone())));
    }
    Ok(None)
}

// -------------------------------------------------------------------------------------------
// Functions
// -------------------------------------------------------------------------------------------

pub(crate) fn function(res: &Resource) -> Result<FunctionSpec, TemplateError> {
    let at = format!("Resources.{}", res.logical_id);
    let p = &res.properties;
    let binary = res
        .metadata
        .get("BuildProperties")
        .and_then(|b| b.get("Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            TemplateError::invalid(
                format!("{at}.Metadata"),
                "BuildProperties.Binary is missing; name the Cargo binary of this function",
            )
        })?
        .to_string();
    let architectures = match p.get("Architectures") {
        None => vec!["x86_64".to_string()],
        Some(Value::Array(a)) => a.iter().filter_map(scalar_text).collect(),
        Some(_) => {
            return Err(TemplateError::invalid(
                format!("{at}.Properties.Architectures"),
                "must be a list",
            ));
        }
    };
    let environment = match p.get("Environment").and_then(|e| e.get("Variables")) {
        None => Default::default(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(_) => {
            return Err(TemplateError::invalid(
                format!("{at}.Properties.Environment.Variables"),
                "must be a mapping",
            ));
        }
    };
    Ok(FunctionSpec {
        logical_id: res.logical_id.clone(),
        function_name: res.physical_name.clone(),
        binary,
        runtime: text(p.get("Runtime")).unwrap_or_default(),
        architectures,
        memory_mb: u32_or(p, "MemorySize", 128, &format!("{at}.Properties"))?,
        timeout_s: u32_or(p, "Timeout", 3, &format!("{at}.Properties"))?,
        environment,
        auto_publish_alias: text(p.get("AutoPublishAlias")),
        tracing: text(p.get("Tracing")),
    })
}

// -------------------------------------------------------------------------------------------
// Kinesis mappings
// -------------------------------------------------------------------------------------------

/// Properties of a SAM `Kinesis` event the reader understands.
const SAM_KINESIS_KEYS: &[&str] = &[
    "Stream",
    "StartingPosition",
    "StartingPositionTimestamp",
    "BatchSize",
    "Enabled",
    "MaximumBatchingWindowInSeconds",
    "MaximumRetryAttempts",
    "BisectBatchOnFunctionError",
    "MaximumRecordAgeInSeconds",
    "DestinationConfig",
    "ParallelizationFactor",
    "FunctionResponseTypes",
    "MetricsConfig",
];

/// Properties of an `AWS::Lambda::EventSourceMapping` the reader understands.
const CFN_ESM_KEYS: &[&str] = &[
    "EventSourceArn",
    "FunctionName",
    "StartingPosition",
    "StartingPositionTimestamp",
    "BatchSize",
    "Enabled",
    "MaximumBatchingWindowInSeconds",
    "MaximumRetryAttempts",
    "BisectBatchOnFunctionError",
    "MaximumRecordAgeInSeconds",
    "DestinationConfig",
    "ParallelizationFactor",
    "FunctionResponseTypes",
    "MetricsConfig",
    "Tags",
];

/// Settings that change delivery semantics the local poller does not emulate: refused.
const UNSUPPORTED_ESM_KEYS: &[&str] = &[
    "TumblingWindowInSeconds",
    "FilterCriteria",
    "KmsKeyArn",
    "ProvisionedPollerConfig",
    "ScalingConfig",
];

struct MappingCtx<'c> {
    function: &'c str,
    event: &'c str,
}

impl MappingCtx<'_> {
    fn err(&self, property: &str, detail: impl Into<String>) -> TemplateError {
        TemplateError::InvalidMapping {
            function: self.function.to_string(),
            event: self.event.to_string(),
            property: property.to_string(),
            detail: detail.into(),
        }
    }

    fn ranged(&self, props: &Value, limit: Limit) -> Result<i64, TemplateError> {
        let key = limit.property;
        match props.get(key) {
            None => Ok(limit.default),
            Some(v) => {
                let n =
                    int(v).ok_or_else(|| self.err(key, format!("= {v} is not a whole number")))?;
                if limit.allows(n) {
                    Ok(n)
                } else {
                    Err(self.err(key, format!("= {n} is out of range: {}", limit.rule())))
                }
            }
        }
    }
}

/// Builds and validates one mapping. `raw` and `props` are the event's (or resource's)
/// properties before and after evaluation.
#[allow(clippy::too_many_arguments)]
fn mapping(
    ev: &Evaluator<'_>,
    logical_id: String,
    function_logical_id: &str,
    event_name: &str,
    raw: &Value,
    props: &Value,
    stream_key: &str,
    allowed: &[&str],
    at: &str,
) -> Result<KinesisMapping, TemplateError> {
    let cx = MappingCtx {
        function: function_logical_id,
        event: event_name,
    };
    let obj = props
        .as_object()
        .ok_or_else(|| TemplateError::invalid(at, "properties must be a mapping"))?;
    for key in obj.keys() {
        if UNSUPPORTED_ESM_KEYS.contains(&key.as_str()) {
            return Err(TemplateError::unsupported(
                format!("event source mapping property {key}"),
                join(at, key),
            ));
        }
        if !allowed.contains(&key.as_str()) {
            return Err(cx.err(
                key,
                "is not a Kinesis event source mapping property (misspelled?)",
            ));
        }
    }

    // The stream: a Kinesis stream declared in this template.
    let raw_stream = raw
        .get(stream_key)
        .ok_or_else(|| cx.err(stream_key, "is required"))?;
    let (stream_logical_id, _) = target_of_type(ev, raw_stream, &["AWS::Kinesis::Stream"], at)?
        .ok_or_else(|| {
            TemplateError::unsupported(
                "event source other than a Kinesis stream declared in this template (use !GetAtt <Stream>.Arn)",
                join(at, stream_key),
            )
        })?;
    let stream_name = ev.physical_name(&stream_logical_id)?;

    let starting_position_timestamp = match props.get("StartingPositionTimestamp") {
        None => None,
        Some(v) => Some(
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|secs| secs.is_finite() && *secs >= 0.0)
                .ok_or_else(|| {
                    cx.err(
                        "StartingPositionTimestamp",
                        "must be seconds since the epoch",
                    )
                })?,
        ),
    };
    let starting_position = match props.get("StartingPosition").and_then(Value::as_str) {
        Some("LATEST") => StartingPosition::Latest,
        Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
        Some("AT_TIMESTAMP") => match starting_position_timestamp {
            Some(secs) => StartingPosition::AtTimestamp(
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs),
            ),
            None => {
                return Err(cx.err("StartingPositionTimestamp", "is required with AT_TIMESTAMP"));
            }
        },
        Some(other) => {
            return Err(cx.err(
                "StartingPosition",
                format!("= {other:?} is not one of LATEST, TRIM_HORIZON, AT_TIMESTAMP"),
            ));
        }
        None => return Err(cx.err("StartingPosition", "is required for a Kinesis stream")),
    };

    let batch_size = cx.ranged(props, limits::BATCH_SIZE)?;
    let window = cx.ranged(props, limits::MAX_BATCHING_WINDOW_S)?;
    let parallel = cx.ranged(props, limits::PARALLELIZATION_FACTOR)?;
    let retries = cx.ranged(props, limits::MAX_RETRY_ATTEMPTS)?;
    let age = cx.ranged(props, limits::MAX_RECORD_AGE_S)?;
    let bisect = match props.get("BisectBatchOnFunctionError") {
        None => false,
        Some(v) => boolean(v)
            .ok_or_else(|| cx.err("BisectBatchOnFunctionError", "must be true or false"))?,
    };
    let enabled = match props.get("Enabled") {
        None => true,
        Some(v) => boolean(v).ok_or_else(|| cx.err("Enabled", "must be true or false"))?,
    };
    let mut report_batch_item_failures = false;
    if let Some(v) = props.get("FunctionResponseTypes") {
        let items = v
            .as_array()
            .ok_or_else(|| cx.err("FunctionResponseTypes", "must be a list"))?;
        for item in items {
            match item.as_str() {
                Some("ReportBatchItemFailures") => report_batch_item_failures = true,
                _ => {
                    return Err(cx.err(
                        "FunctionResponseTypes",
                        format!("contains {item}; the only value is ReportBatchItemFailures"),
                    ));
                }
            }
        }
    }

    let on_failure = match raw.get("DestinationConfig") {
        None => None,
        Some(dc) => {
            let at_d = join(at, "DestinationConfig");
            let keys: Vec<&String> = dc
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            if keys.iter().any(|k| k.as_str() != "OnFailure") {
                return Err(cx.err(
                    "DestinationConfig",
                    "only OnFailure is supported on a stream mapping",
                ));
            }
            match dc.get("OnFailure") {
                None => None,
                Some(of) => Some(destination(ev, &cx, of, &at_d)?),
            }
        }
    };

    Ok(KinesisMapping {
        logical_id,
        event_name: event_name.to_string(),
        function_logical_id: function_logical_id.to_string(),
        stream_logical_id,
        stream_name,
        batch_size: batch_size as u32,
        max_batching_window_s: window as u32,
        starting_position,
        parallelization_factor: parallel as u32,
        bisect_on_error: bisect,
        report_batch_item_failures,
        max_retry_attempts: u32::try_from(retries).ok(),
        max_record_age_s: u32::try_from(age).ok(),
        on_failure,
        enabled,
    })
}

fn destination(
    ev: &Evaluator<'_>,
    cx: &MappingCtx<'_>,
    on_failure: &Value,
    at: &str,
) -> Result<Destination, TemplateError> {
    let declared_type = match on_failure.get("Type") {
        None => None,
        Some(t) => match t.as_str() {
            Some(s @ ("SQS" | "SNS" | "S3")) => Some(s),
            _ => {
                return Err(cx.err(
                    "DestinationConfig.OnFailure.Type",
                    format!("= {t} is not one of SQS, SNS, S3"),
                ));
            }
        },
    };
    let raw = on_failure
        .get("Destination")
        .ok_or_else(|| cx.err("DestinationConfig.OnFailure.Destination", "is required"))?;
    let target = target_of_type(ev, raw, &["AWS::SQS::Queue", "AWS::S3::Bucket"], at)?.ok_or_else(|| {
        TemplateError::unsupported(
            "on-failure destination other than a queue or bucket declared in this template (use !GetAtt <Queue|Bucket>.Arn)",
            join(at, "OnFailure.Destination"),
        )
    })?;
    let (id, type_) = target;
    let name = ev.physical_name(&id)?;
    let dest = if type_ == "AWS::SQS::Queue" {
        Destination::Sqs {
            queue_logical_id: id,
            queue_name: name,
        }
    } else {
        Destination::S3 {
            bucket_logical_id: id,
            bucket_name: name,
        }
    };
    let matches = matches!(
        (declared_type, &dest),
        (None, _) | (Some("SQS"), Destination::Sqs { .. }) | (Some("S3"), Destination::S3 { .. })
    );
    if !matches {
        return Err(cx.err(
            "DestinationConfig.OnFailure.Type",
            format!(
                "= {} does not match the destination {dest:?}",
                declared_type.unwrap_or("")
            ),
        ));
    }
    Ok(dest)
}

/// Mappings and schedules declared in a SAM function's `Events`.
pub(crate) fn sam_events(
    ev: &Evaluator<'_>,
    res: &Resource,
    raw_props: &Value,
    mappings: &mut Vec<KinesisMapping>,
    schedules: &mut Vec<ScheduleSpec>,
    routes: &mut Vec<HttpRouteSpec>,
) -> Result<(), TemplateError> {
    let id = &res.logical_id;
    let Some(events) = res.properties.get("Events") else {
        return Ok(());
    };
    let events = events.as_object().ok_or_else(|| {
        TemplateError::invalid(
            format!("Resources.{id}.Properties.Events"),
            "must be a mapping",
        )
    })?;
    let empty = Map::new();
    let raw_events = raw_props
        .get("Events")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, event) in events {
        let at = format!("Resources.{id}.Properties.Events.{name}");
        let type_ = event.get("Type").and_then(Value::as_str).unwrap_or("");
        let props = event
            .get("Properties")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let raw = raw_events
            .get(name)
            .and_then(|e| e.get("Properties"))
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        match type_ {
            "Kinesis" => mappings.push(mapping(
                ev,
                format!("{id}{name}"),
                id,
                name,
                &raw,
                &props,
                "Stream",
                SAM_KINESIS_KEYS,
                &join(&at, "Properties"),
            )?),
            "Schedule" => {
                let enabled = match (props.get("Enabled"), props.get("State")) {
                    (Some(e), _) => boolean(e).unwrap_or(true),
                    (None, Some(s)) => s.as_str() != Some("DISABLED"),
                    (None, None) => true,
                };
                schedules.push(ScheduleSpec {
                    logical_id: format!("{id}{name}"),
                    target_function_logical_id: id.clone(),
                    expression: req_text(&props, "Schedule", &join(&at, "Properties"))?,
                    enabled,
                    input: text(props.get("Input")),
                });
            }
            "ScheduleV2" => schedules.push(ScheduleSpec {
                logical_id: format!("{id}{name}"),
                target_function_logical_id: id.clone(),
                expression: req_text(&props, "ScheduleExpression", &join(&at, "Properties"))?,
                enabled: props.get("State").and_then(Value::as_str) != Some("DISABLED"),
                input: text(props.get("Input")),
            }),
            "HttpApi" => routes.push(http_route(ev, id, name, &raw, &props, &at)?),
            other => {
                return Err(TemplateError::unsupported(
                    format!("SAM event type {other:?}"),
                    join(&at, "Type"),
                ));
            }
        }
    }
    Ok(())
}

/// A route from a SAM `HttpApi` event. Only routes of an explicit `AWS::Serverless::HttpApi`
/// (`ApiId: !Ref ...`) with payload format 2.0 are read.
fn http_route(
    ev: &Evaluator<'_>,
    function: &str,
    name: &str,
    raw: &Value,
    props: &Value,
    at: &str,
) -> Result<HttpRouteSpec, TemplateError> {
    let at_p = join(at, "Properties");
    let api_logical_id = match raw.get("ApiId") {
        Some(r) => target_of_type(ev, r, &["AWS::Serverless::HttpApi"], &join(&at_p, "ApiId"))?
            .map(|(id, _)| id),
        None => None,
    }
    .ok_or_else(|| {
        TemplateError::unsupported(
            "an HttpApi event without `ApiId: !Ref` to an AWS::Serverless::HttpApi of this template (SAM's implicit API)",
            join(&at_p, "ApiId"),
        )
    })?;
    let format = text(props.get("PayloadFormatVersion")).unwrap_or_else(|| "2.0".into());
    if format != "2.0" {
        return Err(TemplateError::unsupported(
            format!("payload format version {format:?} (only 2.0 is read)"),
            join(&at_p, "PayloadFormatVersion"),
        ));
    }
    let timeout_ms = u32_or(props, "TimeoutInMillis", 30_000, &at_p)?;
    if !(50..=30_000).contains(&timeout_ms) {
        return Err(TemplateError::invalid(
            join(&at_p, "TimeoutInMillis"),
            "must be 50 to 30000 (API Gateway's integration timeout)",
        ));
    }
    let api_auth = ev
        .resources
        .get(&api_logical_id)
        .and_then(|r| r.properties.get("Auth"))
        .cloned()
        .unwrap_or(Value::Null);
    let iam_enabled = api_auth
        .get("EnableIamAuthorizer")
        .and_then(boolean)
        .unwrap_or(false);
    let authorizer = props
        .get("Auth")
        .and_then(|a| text(a.get("Authorizer")))
        .or_else(|| text(api_auth.get("DefaultAuthorizer")))
        .unwrap_or_else(|| "NONE".into());
    if authorizer == "AWS_IAM" && !iam_enabled {
        return Err(TemplateError::invalid(
            format!("Resources.{api_logical_id}.Properties.Auth"),
            "AWS_IAM routes need EnableIamAuthorizer: true",
        ));
    }
    Ok(HttpRouteSpec {
        logical_id: format!("{function}{name}"),
        function_logical_id: function.to_string(),
        api_logical_id,
        method: req_text(props, "Method", &at_p)?.to_uppercase(),
        path: req_text(props, "Path", &at_p)?,
        authorization: authorizer,
        timeout_ms,
    })
}

/// A function logical id from a raw `FunctionName` / target `Arn`: a reference to a function
/// of the template, or its literal physical name.
fn function_target(
    ev: &Evaluator<'_>,
    raw: &Value,
    evaluated: Option<&Value>,
    functions: &[FunctionSpec],
    at: &str,
) -> Result<Option<String>, TemplateError> {
    if let Some((id, _)) = target_of_type(
        ev,
        raw,
        &["AWS::Serverless::Function", "AWS::Lambda::Function"],
        at,
    )? {
        return Ok(Some(id));
    }
    if let Some(Value::String(s)) = evaluated {
        let name = s.rsplit(':').next().unwrap_or(s);
        if let Some(f) = functions.iter().find(|f| {
            f.function_name == *s
                || f.function_name == name
                || s.contains(&format!(":function:{}", f.function_name))
        }) {
            return Ok(Some(f.logical_id.clone()));
        }
    }
    Ok(None)
}

pub(crate) fn raw_mapping(
    ev: &Evaluator<'_>,
    res: &Resource,
    raw_props: &Value,
    functions: &[FunctionSpec],
) -> Result<KinesisMapping, TemplateError> {
    let at = format!("Resources.{}.Properties", res.logical_id);
    let raw_fn = raw_props
        .get("FunctionName")
        .ok_or_else(|| TemplateError::invalid(&at, "FunctionName is required"))?;
    let function = function_target(
        ev,
        raw_fn,
        res.properties.get("FunctionName"),
        functions,
        &at,
    )?
    .ok_or_else(|| {
        TemplateError::unsupported(
            "event source mapping on a function outside this template",
            join(&at, "FunctionName"),
        )
    })?;
    // Only Kinesis sources are evaluated; say so by name for any other source.
    if let Some(raw_src) = raw_props.get("EventSourceArn")
        && let Some((src, _)) = ref_target(ev, raw_src, &at)?
        && let Some(r) = ev.resources.get(&src)
        && r.type_ != "AWS::Kinesis::Stream"
    {
        return Err(TemplateError::unsupported(
            format!("event source mapping on {}", r.type_),
            join(&at, "EventSourceArn"),
        ));
    }
    mapping(
        ev,
        res.logical_id.clone(),
        &function,
        &res.logical_id,
        raw_props,
        &res.properties,
        "EventSourceArn",
        CFN_ESM_KEYS,
        &at,
    )
}

/// Schedules from `AWS::Events::Rule` (with a ScheduleExpression) and `AWS::Scheduler::Schedule`.
pub(crate) fn raw_schedules(
    ev: &Evaluator<'_>,
    res: &Resource,
    raw_props: &Value,
    functions: &[FunctionSpec],
    out: &mut Vec<ScheduleSpec>,
) -> Result<(), TemplateError> {
    let at = format!("Resources.{}.Properties", res.logical_id);
    let p = &res.properties;
    let enabled = p.get("State").and_then(Value::as_str).unwrap_or("ENABLED") == "ENABLED";
    match res.type_.as_str() {
        "AWS::Events::Rule" => {
            let Some(expr) = text(p.get("ScheduleExpression")) else {
                return Ok(()); // an event-pattern rule, not a schedule
            };
            let empty = Vec::new();
            let raw_targets = raw_props
                .get("Targets")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            let targets = p.get("Targets").and_then(Value::as_array).unwrap_or(&empty);
            for (i, (raw_t, t)) in raw_targets.iter().zip(targets).enumerate() {
                let at_t = format!("{at}.Targets[{i}].Arn");
                let raw_arn = raw_t.get("Arn").unwrap_or(&Value::Null);
                let function = function_target(ev, raw_arn, t.get("Arn"), functions, &at_t)?
                    .ok_or_else(|| {
                        TemplateError::unsupported(
                            "schedule target other than a function of this template",
                            &at_t,
                        )
                    })?;
                out.push(ScheduleSpec {
                    logical_id: res.logical_id.clone(),
                    target_function_logical_id: function,
                    expression: expr.clone(),
                    enabled,
                    input: text(t.get("Input")),
                });
            }
        }
        "AWS::Scheduler::Schedule" => {
            let at_t = format!("{at}.Target.Arn");
            let raw_arn = raw_props
                .get("Target")
                .and_then(|t| t.get("Arn"))
                .unwrap_or(&Value::Null);
            let function = function_target(
                ev,
                raw_arn,
                p.get("Target").and_then(|t| t.get("Arn")),
                functions,
                &at_t,
            )?
            .ok_or_else(|| {
                TemplateError::unsupported(
                    "schedule target other than a function of this template",
                    &at_t,
                )
            })?;
            out.push(ScheduleSpec {
                logical_id: res.logical_id.clone(),
                target_function_logical_id: function,
                expression: req_text(p, "ScheduleExpression", &at)?,
                enabled,
                input: text(p.get("Target").and_then(|t| t.get("Input"))),
            });
        }
        _ => {}
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// IoT rules
// -------------------------------------------------------------------------------------------

fn rule_action(
    ev: &Evaluator<'_>,
    raw: &Value,
    action: &Value,
    at: &str,
) -> Result<RuleAction, TemplateError> {
    let (kind, props) = single(action)
        .ok_or_else(|| TemplateError::invalid(at, "an action is a mapping with one action type"))?;
    let raw_props = raw.get(kind).unwrap_or(&Value::Null);
    let at_k = join(at, kind);
    match kind {
        "Kinesis" => {
            let stream_logical_id = match raw_props.get("StreamName") {
                Some(r) => {
                    target_of_type(ev, r, &["AWS::Kinesis::Stream"], &at_k)?.map(|(id, _)| id)
                }
                None => None,
            };
            Ok(RuleAction::Kinesis {
                stream_logical_id,
                stream_name: req_text(props, "StreamName", &at_k)?,
                partition_key_template: text(props.get("PartitionKey")),
            })
        }
        "Sqs" => {
            let queue_logical_id = match raw_props.get("QueueUrl") {
                Some(r) => target_of_type(ev, r, &["AWS::SQS::Queue"], &at_k)?.map(|(id, _)| id),
                None => None,
            };
            let queue_url = req_text(props, "QueueUrl", &at_k)?;
            let queue_name = match &queue_logical_id {
                Some(id) => ev.physical_name(id)?,
                None => queue_url.rsplit('/').next().unwrap_or_default().to_string(),
            };
            Ok(RuleAction::Sqs {
                queue_logical_id,
                queue_name,
                queue_url,
                use_base64: props.get("UseBase64").and_then(boolean).unwrap_or(false),
            })
        }
        other => Err(TemplateError::unsupported(
            format!("IoT rule action {other}"),
            at_k,
        )),
    }
}

pub(crate) fn topic_rule(
    ev: &Evaluator<'_>,
    res: &Resource,
    raw_props: &Value,
) -> Result<TopicRuleSpec, TemplateError> {
    let at = format!("Resources.{}.Properties.TopicRulePayload", res.logical_id);
    let p = res
        .properties
        .get("TopicRulePayload")
        .ok_or_else(|| TemplateError::invalid(&at, "is required"))?;
    let raw = raw_props.get("TopicRulePayload").unwrap_or(&Value::Null);
    let empty = Vec::new();
    let actions_raw = raw
        .get("Actions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut actions = Vec::new();
    if let Some(list) = p.get("Actions").and_then(Value::as_array) {
        for (i, a) in list.iter().enumerate() {
            let raw_a = actions_raw.get(i).unwrap_or(&Value::Null);
            actions.push(rule_action(ev, raw_a, a, &format!("{at}.Actions[{i}]"))?);
        }
    }
    let error_action = match p.get("ErrorAction") {
        None => None,
        Some(a) => Some(rule_action(
            ev,
            raw.get("ErrorAction").unwrap_or(&Value::Null),
            a,
            &join(&at, "ErrorAction"),
        )?),
    };
    Ok(TopicRuleSpec {
        logical_id: res.logical_id.clone(),
        rule_name: res.physical_name.clone(),
        sql: req_text(p, "Sql", &at)?,
        sql_version: text(p.get("AwsIotSqlVersion")).unwrap_or_else(|| "2015-10-08".to_string()),
        actions,
        error_action,
        enabled: !p.get("RuleDisabled").and_then(boolean).unwrap_or(false),
    })
}

// -------------------------------------------------------------------------------------------
// Tables, streams, queues, buckets
// -------------------------------------------------------------------------------------------

fn key_schema(v: Option<&Value>, at: &str) -> Result<KeySchema, TemplateError> {
    let items = v
        .and_then(Value::as_array)
        .ok_or_else(|| TemplateError::invalid(at, "KeySchema must be a list"))?;
    let mut hash = None;
    let mut range = None;
    for item in items {
        let name = text(item.get("AttributeName"));
        match item.get("KeyType").and_then(Value::as_str) {
            Some("HASH") => hash = name,
            Some("RANGE") => range = name,
            _ => return Err(TemplateError::invalid(at, "KeyType must be HASH or RANGE")),
        }
    }
    Ok(KeySchema {
        hash_key: hash.ok_or_else(|| TemplateError::invalid(at, "KeySchema needs a HASH key"))?,
        range_key: range,
    })
}

pub(crate) fn table(res: &Resource) -> Result<TableSpec, TemplateError> {
    let at = format!("Resources.{}.Properties", res.logical_id);
    let p = &res.properties;
    let attribute_definitions = p
        .get("AttributeDefinitions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|d| AttributeDefinition {
                    name: text(d.get("AttributeName")).unwrap_or_default(),
                    type_: text(d.get("AttributeType")).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut gsis = Vec::new();
    if let Some(list) = p.get("GlobalSecondaryIndexes").and_then(Value::as_array) {
        for (i, g) in list.iter().enumerate() {
            let at_g = format!("{at}.GlobalSecondaryIndexes[{i}]");
            let projection = g.get("Projection");
            gsis.push(GsiSpec {
                index_name: req_text(g, "IndexName", &at_g)?,
                keys: key_schema(g.get("KeySchema"), &join(&at_g, "KeySchema"))?,
                projection_type: text(projection.and_then(|p| p.get("ProjectionType")))
                    .unwrap_or_else(|| "KEYS_ONLY".to_string()),
                non_key_attributes: projection
                    .and_then(|p| p.get("NonKeyAttributes"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(scalar_text).collect())
                    .unwrap_or_default(),
            });
        }
    }
    let ttl = p.get("TimeToLiveSpecification").and_then(|t| {
        if t.get("Enabled").and_then(boolean).unwrap_or(false) {
            text(t.get("AttributeName"))
        } else {
            None
        }
    });
    Ok(TableSpec {
        logical_id: res.logical_id.clone(),
        table_name: res.physical_name.clone(),
        key_schema: key_schema(p.get("KeySchema"), &join(&at, "KeySchema"))?,
        attribute_definitions,
        gsis,
        ttl_attribute: ttl,
        billing_mode: text(p.get("BillingMode")).unwrap_or_else(|| "PROVISIONED".to_string()),
        stream_view_type: text(
            p.get("StreamSpecification")
                .and_then(|s| s.get("StreamViewType")),
        ),
    })
}

pub(crate) fn stream(res: &Resource) -> Result<StreamSpec, TemplateError> {
    let at = format!("Resources.{}.Properties", res.logical_id);
    let p = &res.properties;
    let mode = match p
        .get("StreamModeDetails")
        .and_then(|m| m.get("StreamMode"))
        .and_then(Value::as_str)
    {
        Some("ON_DEMAND") => StreamMode::OnDemand,
        Some("PROVISIONED") | None => StreamMode::Provisioned,
        Some(other) => {
            return Err(TemplateError::invalid(
                format!("{at}.StreamModeDetails.StreamMode"),
                format!("{other:?} is not ON_DEMAND or PROVISIONED"),
            ));
        }
    };
    let shard_count = match p.get("ShardCount") {
        None if mode == StreamMode::Provisioned => Some(1),
        None => None,
        Some(_) => Some(u32_or(p, "ShardCount", 1, &at)?),
    };
    Ok(StreamSpec {
        logical_id: res.logical_id.clone(),
        stream_name: res.physical_name.clone(),
        mode,
        shard_count,
        retention_hours: u32_or(p, "RetentionPeriodHours", 24, &at)?,
        encrypted: p.get("StreamEncryption").is_some(),
    })
}

pub(crate) fn queue(res: &Resource) -> Result<QueueSpec, TemplateError> {
    let at = format!("Resources.{}.Properties", res.logical_id);
    let p = &res.properties;
    Ok(QueueSpec {
        logical_id: res.logical_id.clone(),
        queue_name: res.physical_name.clone(),
        fifo: p.get("FifoQueue").and_then(boolean).unwrap_or(false),
        retention_s: u32_or(p, "MessageRetentionPeriod", 345_600, &at)?,
        visibility_timeout_s: u32_or(p, "VisibilityTimeout", 30, &at)?,
    })
}

pub(crate) fn bucket(res: &Resource) -> BucketSpec {
    BucketSpec {
        logical_id: res.logical_id.clone(),
        bucket_name: res.physical_name.clone(),
    }
}
