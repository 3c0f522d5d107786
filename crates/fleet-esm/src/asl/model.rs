//! A state machine definition, parsed into the subset the runner executes. Anything outside the
//! subset (a state type, a field, a Task resource, a comparison, JSONata) is refused when the
//! definition is loaded, naming it, so a machine is never half-run.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::AslError;
use super::path::{RefPath, check_template};

/// `arn:aws:states:::lambda:invoke`: invoke a function, the result in `Payload`.
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// `arn:aws:states:::states:startExecution`: start an execution (fire and forget).
pub const START_EXECUTION: &str = "arn:aws:states:::states:startExecution";
/// `arn:aws:states:::s3:getObject`: a Distributed Map's ItemReader.
pub const S3_GET_OBJECT: &str = "arn:aws:states:::s3:getObject";
/// `arn:aws:states:::s3:putObject`: a Distributed Map's ResultWriter.
pub const S3_PUT_OBJECT: &str = "arn:aws:states:::s3:putObject";

/// States, fields and resources of the subset (docs/jobs.md lists them).
pub const SUBSET: &str = "Task (lambda:invoke, states:startExecution), Choice, Pass, Wait (Seconds, SecondsPath), Succeed, Fail, and a Distributed Map (ItemReader s3:getObject with CSV or JSONL, ItemSelector, ItemBatcher, MaxConcurrency, ToleratedFailurePercentage/Count, ResultWriter s3:putObject); InputPath, Parameters, ResultSelector, ResultPath, OutputPath, Retry and Catch; JSONPath reference paths without intrinsic functions";

/// A parsed machine: its states and where it starts.
#[derive(Debug, Clone)]
pub struct Machine {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
}

/// One state, with what every state may carry.
#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    pub input_path: Option<Option<RefPath>>,
    pub output_path: Option<Option<RefPath>>,
    /// `None`: `$`; `Some(None)`: `null` (discard the result).
    pub result_path: Option<Option<RefPath>>,
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// `None`: `End: true` (or a terminal state).
    pub next: Option<String>,
}

/// What a state does.
#[derive(Debug, Clone)]
pub enum Kind {
    Task {
        resource: TaskResource,
        timeout_seconds: Option<u64>,
    },
    Choice {
        choices: Vec<(Rule, String)>,
        default: Option<String>,
    },
    Pass {
        result: Option<Value>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: String,
        cause: String,
    },
    Map(Box<DistributedMap>),
}

/// A Task's integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskResource {
    LambdaInvoke,
    StartExecution,
}

/// How long a Wait state waits.
#[derive(Debug, Clone)]
pub enum WaitFor {
    Seconds(u64),
    SecondsPath(RefPath),
}

/// A Retry rule.
#[derive(Debug, Clone)]
pub struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
}

/// A Catch rule.
#[derive(Debug, Clone)]
pub struct Catcher {
    pub errors: Vec<String>,
    pub next: String,
    pub result_path: Option<Option<RefPath>>,
}

/// A Choice rule.
#[derive(Debug, Clone)]
pub enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare { variable: RefPath, op: Compare },
}

/// The comparisons of the subset.
#[derive(Debug, Clone)]
pub enum Compare {
    BooleanEquals(bool),
    StringEquals(String),
    NumericEquals(f64),
    NumericGreaterThan(f64),
    NumericGreaterThanEquals(f64),
    NumericLessThan(f64),
    NumericLessThanEquals(f64),
    IsPresent(bool),
    IsNull(bool),
}

/// The input format of a Distributed Map's ItemReader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderFormat {
    /// One JSON value per line.
    Jsonl,
    /// A CSV file whose first row names the columns: each item is an object of strings.
    Csv,
}

/// A Distributed Map.
#[derive(Debug, Clone)]
pub struct DistributedMap {
    pub reader_format: ReaderFormat,
    /// `Parameters` of the ItemReader (`Bucket`, `Key`), a template over the state's input.
    pub reader_parameters: Value,
    pub max_items: Option<u64>,
    pub item_selector: Option<Value>,
    pub max_items_per_batch: Option<u64>,
    pub batch_input: Option<Value>,
    /// 0: no limit of its own.
    pub max_concurrency: u64,
    pub tolerated_failure_percentage: Option<f64>,
    pub tolerated_failure_count: Option<u64>,
    /// `Parameters` of the ResultWriter (`Bucket`, `Prefix`).
    pub result_writer: Option<Value>,
    pub processor: Machine,
}

fn def(at: &str, problem: impl Into<String>) -> AslError {
    AslError::Definition {
        at: at.to_string(),
        problem: problem.into(),
    }
}

fn unsupported(at: &str, what: impl Into<String>) -> AslError {
    AslError::Unsupported {
        at: at.to_string(),
        what: what.into(),
    }
}

/// The fields every state of a type may have, beyond `Type` and `Comment`.
fn allowed_fields(type_: &str) -> &'static [&'static str] {
    match type_ {
        "Task" => &[
            "Resource",
            "Parameters",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "Next",
            "End",
            "TimeoutSeconds",
        ],
        "Choice" => &["Choices", "Default", "InputPath", "OutputPath"],
        "Pass" => &[
            "Result",
            "Parameters",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Next",
            "End",
        ],
        "Wait" => &[
            "Seconds",
            "SecondsPath",
            "InputPath",
            "OutputPath",
            "Next",
            "End",
        ],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "Cause"],
        "Map" => &[
            "ItemProcessor",
            "ItemReader",
            "ItemSelector",
            "ItemBatcher",
            "MaxConcurrency",
            "ToleratedFailurePercentage",
            "ToleratedFailureCount",
            "ResultWriter",
            "Label",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "Next",
            "End",
        ],
        _ => &[],
    }
}

/// Parses a definition (the object under `Definition`, with its substitutions made).
pub fn parse(definition: &Value) -> Result<Machine, AslError> {
    parse_machine(definition, "definition", true)
}

fn parse_machine(v: &Value, at: &str, top: bool) -> Result<Machine, AslError> {
    let obj = v
        .as_object()
        .ok_or_else(|| def(at, "a machine must be an object"))?;
    for k in obj.keys() {
        match k.as_str() {
            "StartAt" | "States" | "Comment" => {}
            "Version" if top => {}
            "QueryLanguage" => {
                if obj[k].as_str() != Some("JSONPath") {
                    return Err(unsupported(at, format!("QueryLanguage {}", obj[k])));
                }
            }
            "ProcessorConfig" if !top => {}
            other => return Err(unsupported(at, format!("field {other}"))),
        }
    }
    let start_at = obj
        .get("StartAt")
        .and_then(Value::as_str)
        .ok_or_else(|| def(at, "StartAt is required"))?
        .to_string();
    let raw = obj
        .get("States")
        .and_then(Value::as_object)
        .ok_or_else(|| def(at, "States is required"))?;
    let mut states = BTreeMap::new();
    for (name, s) in raw {
        states.insert(name.clone(), parse_state(name, s)?);
    }
    let machine = Machine { start_at, states };
    check_transitions(&machine, at)?;
    Ok(machine)
}

fn check_transitions(m: &Machine, at: &str) -> Result<(), AslError> {
    let names: BTreeSet<&str> = m.states.keys().map(String::as_str).collect();
    let known = |n: &str, from: &str| {
        if names.contains(n) {
            Ok(())
        } else {
            Err(def(
                from,
                format!("transition to {n}, which is not a state of this machine"),
            ))
        }
    };
    known(&m.start_at, at)?;
    for s in m.states.values() {
        if let Some(n) = &s.next {
            known(n, &s.name)?;
        }
        for c in &s.catch {
            known(&c.next, &s.name)?;
        }
        if let Kind::Choice { choices, default } = &s.kind {
            for (_, n) in choices {
                known(n, &s.name)?;
            }
            if let Some(d) = default {
                known(d, &s.name)?;
            }
        }
    }
    Ok(())
}

fn opt_path(
    obj: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<Option<RefPath>>, AslError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(p)) => Ok(Some(Some(RefPath::parse(p, at)?))),
        Some(other) => Err(def(
            at,
            format!("{key} must be a path or null, not {other}"),
        )),
    }
}

fn template(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<Value>, AslError> {
    match obj.get(key) {
        None => Ok(None),
        Some(t) => {
            check_template(t, &format!("{at}.{key}"))?;
            Ok(Some(t.clone()))
        }
    }
}

fn num(v: Option<&Value>, key: &str, at: &str) -> Result<Option<f64>, AslError> {
    match v {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| def(at, format!("{key} must be a number"))),
    }
}

fn uint(v: Option<&Value>, key: &str, at: &str) -> Result<Option<u64>, AslError> {
    match v {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| def(at, format!("{key} must be a non-negative integer"))),
    }
}

fn errors_of(v: &Value, at: &str) -> Result<Vec<String>, AslError> {
    let list = v
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .ok_or_else(|| def(at, "ErrorEquals is required"))?;
    list.iter()
        .map(|e| {
            e.as_str()
                .map(str::to_string)
                .ok_or_else(|| def(at, "ErrorEquals holds strings"))
        })
        .collect()
}

fn parse_state(name: &str, v: &Value) -> Result<State, AslError> {
    let obj = v
        .as_object()
        .ok_or_else(|| def(name, "a state must be an object"))?;
    let type_ = obj
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| def(name, "Type is required"))?;
    let allowed = allowed_fields(type_);
    if allowed.is_empty() {
        return Err(unsupported(name, format!("state type {type_}")));
    }
    for k in obj.keys() {
        if !(k == "Type" || k == "Comment" || allowed.contains(&k.as_str())) {
            return Err(unsupported(name, format!("field {k} of a {type_} state")));
        }
    }
    let end = obj.get("End").and_then(Value::as_bool).unwrap_or(false);
    let next = obj.get("Next").and_then(Value::as_str).map(str::to_string);
    let terminal = matches!(type_, "Succeed" | "Fail" | "Choice");
    if !terminal && next.is_some() == end {
        return Err(def(name, "exactly one of Next and End: true is required"));
    }
    let mut retry = Vec::new();
    for r in obj
        .get("Retry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(j) = r.get("JitterStrategy").and_then(Value::as_str)
            && j != "NONE"
        {
            return Err(unsupported(name, format!("Retry JitterStrategy {j}")));
        }
        retry.push(Retrier {
            errors: errors_of(r, name)?,
            interval_seconds: num(r.get("IntervalSeconds"), "IntervalSeconds", name)?
                .unwrap_or(1.0),
            max_attempts: uint(r.get("MaxAttempts"), "MaxAttempts", name)?.unwrap_or(3) as u32,
            backoff_rate: num(r.get("BackoffRate"), "BackoffRate", name)?.unwrap_or(2.0),
            max_delay_seconds: num(r.get("MaxDelaySeconds"), "MaxDelaySeconds", name)?,
        });
    }
    let mut catch = Vec::new();
    for c in obj
        .get("Catch")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cobj = c
            .as_object()
            .ok_or_else(|| def(name, "a Catch rule is an object"))?;
        catch.push(Catcher {
            errors: errors_of(c, name)?,
            next: cobj
                .get("Next")
                .and_then(Value::as_str)
                .ok_or_else(|| def(name, "a Catch rule needs Next"))?
                .to_string(),
            result_path: opt_path(cobj, "ResultPath", name)?,
        });
    }
    let kind = match type_ {
        "Task" => {
            let resource = match obj.get("Resource").and_then(Value::as_str) {
                Some(LAMBDA_INVOKE) => TaskResource::LambdaInvoke,
                Some(START_EXECUTION) => TaskResource::StartExecution,
                Some(other) => return Err(unsupported(name, format!("Task resource {other}"))),
                None => return Err(def(name, "Resource is required")),
            };
            Kind::Task {
                resource,
                timeout_seconds: uint(obj.get("TimeoutSeconds"), "TimeoutSeconds", name)?,
            }
        }
        "Choice" => {
            let mut choices = Vec::new();
            for c in obj
                .get("Choices")
                .and_then(Value::as_array)
                .ok_or_else(|| def(name, "Choices is required"))?
            {
                let next = c
                    .get("Next")
                    .and_then(Value::as_str)
                    .ok_or_else(|| def(name, "a choice rule needs Next"))?;
                choices.push((parse_rule(c, name, true)?, next.to_string()));
            }
            Kind::Choice {
                choices,
                default: obj
                    .get("Default")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }
        }
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Wait" => match (obj.get("Seconds"), obj.get("SecondsPath")) {
            (Some(s), None) => {
                Kind::Wait(WaitFor::Seconds(s.as_u64().ok_or_else(|| {
                    def(name, "Seconds must be a non-negative integer")
                })?))
            }
            (None, Some(p)) => Kind::Wait(WaitFor::SecondsPath(RefPath::parse(
                p.as_str()
                    .ok_or_else(|| def(name, "SecondsPath must be a path"))?,
                name,
            )?)),
            _ => return Err(def(name, "exactly one of Seconds and SecondsPath")),
        },
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail {
            error: obj
                .get("Error")
                .and_then(Value::as_str)
                .unwrap_or("States.Fail")
                .to_string(),
            cause: obj
                .get("Cause")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        },
        "Map" => Kind::Map(Box::new(parse_map(name, obj)?)),
        _ => unreachable!("allowed_fields lists only these types"),
    };
    Ok(State {
        name: name.to_string(),
        input_path: opt_path(obj, "InputPath", name)?,
        output_path: opt_path(obj, "OutputPath", name)?,
        result_path: opt_path(obj, "ResultPath", name)?,
        parameters: template(obj, "Parameters", name)?,
        result_selector: template(obj, "ResultSelector", name)?,
        retry,
        catch,
        next,
        kind,
    })
}

fn parse_rule(v: &Value, at: &str, top: bool) -> Result<Rule, AslError> {
    let obj = v
        .as_object()
        .ok_or_else(|| def(at, "a choice rule is an object"))?;
    if let Some(list) = obj.get("And").or_else(|| obj.get("Or")) {
        let rules = list
            .as_array()
            .ok_or_else(|| def(at, "And/Or hold a list of rules"))?
            .iter()
            .map(|r| parse_rule(r, at, false))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if obj.contains_key("And") {
            Rule::And(rules)
        } else {
            Rule::Or(rules)
        });
    }
    if let Some(inner) = obj.get("Not") {
        return Ok(Rule::Not(Box::new(parse_rule(inner, at, false)?)));
    }
    let variable = RefPath::parse(
        obj.get("Variable")
            .and_then(Value::as_str)
            .ok_or_else(|| def(at, "a comparison needs Variable"))?,
        at,
    )?;
    let mut op = None;
    for (k, val) in obj {
        if k == "Variable" || k == "Comment" || (top && k == "Next") {
            continue;
        }
        let f = || {
            val.as_f64()
                .ok_or_else(|| def(at, format!("{k} takes a number")))
        };
        let b = || {
            val.as_bool()
                .ok_or_else(|| def(at, format!("{k} takes true or false")))
        };
        op = Some(match k.as_str() {
            "BooleanEquals" => Compare::BooleanEquals(b()?),
            "StringEquals" => Compare::StringEquals(
                val.as_str()
                    .ok_or_else(|| def(at, "StringEquals takes a string"))?
                    .to_string(),
            ),
            "NumericEquals" => Compare::NumericEquals(f()?),
            "NumericGreaterThan" => Compare::NumericGreaterThan(f()?),
            "NumericGreaterThanEquals" => Compare::NumericGreaterThanEquals(f()?),
            "NumericLessThan" => Compare::NumericLessThan(f()?),
            "NumericLessThanEquals" => Compare::NumericLessThanEquals(f()?),
            "IsPresent" => Compare::IsPresent(b()?),
            "IsNull" => Compare::IsNull(b()?),
            other => return Err(unsupported(at, format!("Choice comparison {other}"))),
        });
    }
    let op = op.ok_or_else(|| def(at, "a comparison needs an operator"))?;
    Ok(Rule::Compare { variable, op })
}

fn parse_map(name: &str, obj: &Map<String, Value>) -> Result<DistributedMap, AslError> {
    let processor = obj
        .get("ItemProcessor")
        .ok_or_else(|| def(name, "ItemProcessor is required"))?;
    let mode = processor
        .pointer("/ProcessorConfig/Mode")
        .and_then(Value::as_str);
    if mode != Some("DISTRIBUTED") {
        return Err(unsupported(
            name,
            format!(
                "Map ProcessorConfig.Mode {} (only DISTRIBUTED)",
                mode.unwrap_or("INLINE")
            ),
        ));
    }
    let reader = obj
        .get("ItemReader")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            unsupported(
                name,
                "a Distributed Map without an ItemReader (items from the input)",
            )
        })?;
    for k in reader.keys() {
        if !matches!(k.as_str(), "Resource" | "ReaderConfig" | "Parameters") {
            return Err(unsupported(name, format!("ItemReader field {k}")));
        }
    }
    if reader.get("Resource").and_then(Value::as_str) != Some(S3_GET_OBJECT) {
        return Err(unsupported(
            name,
            format!(
                "ItemReader resource {}",
                reader.get("Resource").unwrap_or(&Value::Null)
            ),
        ));
    }
    let config = reader.get("ReaderConfig").and_then(Value::as_object);
    let reader_format = match config
        .and_then(|c| c.get("InputType"))
        .and_then(Value::as_str)
    {
        Some("JSONL") => ReaderFormat::Jsonl,
        Some("CSV") => ReaderFormat::Csv,
        other => {
            return Err(unsupported(
                name,
                format!(
                    "ItemReader InputType {}",
                    other.unwrap_or("(none: a JSON array)")
                ),
            ));
        }
    };
    let mut max_items = None;
    for (k, v) in config.into_iter().flatten() {
        match k.as_str() {
            "InputType" => {}
            "CSVHeaderLocation" if v.as_str() == Some("FIRST_ROW") => {}
            "MaxItems" => max_items = uint(Some(v), "MaxItems", name)?,
            other => return Err(unsupported(name, format!("ReaderConfig {other} {v}"))),
        }
    }
    if reader_format == ReaderFormat::Csv
        && config.and_then(|c| c.get("CSVHeaderLocation")).is_none()
    {
        return Err(def(name, "a CSV ItemReader needs CSVHeaderLocation"));
    }
    let reader_parameters = reader
        .get("Parameters")
        .cloned()
        .ok_or_else(|| def(name, "ItemReader Parameters (Bucket, Key) are required"))?;
    check_template(&reader_parameters, name)?;
    let batcher = obj.get("ItemBatcher").and_then(Value::as_object);
    let mut max_items_per_batch = None;
    let mut batch_input = None;
    for (k, v) in batcher.into_iter().flatten() {
        match k.as_str() {
            "MaxItemsPerBatch" => max_items_per_batch = uint(Some(v), k, name)?,
            "BatchInput" => {
                check_template(v, name)?;
                batch_input = Some(v.clone());
            }
            other => return Err(unsupported(name, format!("ItemBatcher {other}"))),
        }
    }
    let result_writer = match obj.get("ResultWriter") {
        None => None,
        Some(w) => {
            if w.get("Resource").and_then(Value::as_str) != Some(S3_PUT_OBJECT) {
                return Err(unsupported(
                    name,
                    format!(
                        "ResultWriter resource {}",
                        w.get("Resource").unwrap_or(&Value::Null)
                    ),
                ));
            }
            if let Some(k) = w
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .find(|k| !matches!(k.as_str(), "Resource" | "Parameters"))
            {
                return Err(unsupported(name, format!("ResultWriter field {k}")));
            }
            let p = w
                .get("Parameters")
                .cloned()
                .ok_or_else(|| def(name, "ResultWriter Parameters are required"))?;
            check_template(&p, name)?;
            Some(p)
        }
    };
    let item_selector = match obj.get("ItemSelector") {
        Some(t) => {
            check_template(t, name)?;
            Some(t.clone())
        }
        None => None,
    };
    Ok(DistributedMap {
        reader_format,
        reader_parameters,
        max_items,
        item_selector,
        max_items_per_batch,
        batch_input,
        max_concurrency: uint(obj.get("MaxConcurrency"), "MaxConcurrency", name)?.unwrap_or(0),
        tolerated_failure_percentage: num(
            obj.get("ToleratedFailurePercentage"),
            "ToleratedFailurePercentage",
            name,
        )?,
        tolerated_failure_count: uint(
            obj.get("ToleratedFailureCount"),
            "ToleratedFailureCount",
            name,
        )?,
        result_writer,
        processor: parse_machine(processor, &format!("{name}.ItemProcessor"), false)?,
    })
}
