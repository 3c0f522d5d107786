//! fleet-template: reads `template.yaml`, the one SAM template of Robofleet, and evaluates the
//! part of CloudFormation and SAM that the local stack needs, so that local and cloud run from
//! the same declarations.
//!
//! [`load`] parses the YAML (short tags such as `!Ref`, `!GetAtt`, `!Sub`, `!If`, `!Join` included),
//! resolves parameters (defaults, overrides, `AllowedValues`, `MinValue`/`MaxValue`, patterns),
//! checks the `Rules` assertions as CloudFormation does before a deploy, evaluates Conditions, merges SAM `Globals` into functions, evaluates every active resource's
//! properties, and extracts typed specs: functions, Kinesis event source mappings (from SAM
//! `Events` and from raw `AWS::Lambda::EventSourceMapping`), schedules, IoT topic rules, tables,
//! streams, queues and buckets. Mapping settings are checked against Lambda's limits, because
//! cfn-lint does not look inside SAM `Events`. Whatever the reader cannot evaluate faithfully is
//! refused by name ([`TemplateError::Unsupported`]) rather than guessed.
//!
//! Layout:
//! - [`yaml`]: YAML to JSON with long-form intrinsics;
//! - `params`: parameter resolution and constraints;
//! - `rules`: the `Rules` section's assertions;
//! - `eval`: the intrinsic-function evaluator and physical names;
//! - [`resolver`]: what `Ref`/`GetAtt` of a resource give ([`PhysicalResolver`], overridable);
//! - `sam`: SAM Globals;
//! - `extract`: specs from evaluated resources, with validation;
//! - [`limits`]: Lambda's limits on a Kinesis mapping, shared with the local poller;
//! - [`model`]: the spec types.

mod error;
mod eval;
mod extract;
pub mod limits;
pub mod model;
mod params;
pub mod resolver;
mod rules;
mod sam;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

pub use error::TemplateError;
pub use eval::{DEFERRED_KEY, deferred};
pub use model::{
    AttributeDefinition, BucketSpec, Destination, FunctionSpec, GsiSpec, HttpRouteSpec, KeySchema,
    KinesisMapping, QueueSpec, Resource, RuleAction, ScheduleSpec, StartingPosition, StreamMode,
    StreamSpec, TableSpec, TopicRuleSpec,
};
pub use resolver::{DefaultResolver, PhysicalResolver, ResourceRef};

use eval::{Evaluator, RawResource};

/// The SAM transform the reader implements (only `Globals.Function` and function `Events`).
pub const SAM_TRANSFORM: &str = "AWS::Serverless-2016-10-31";

/// Where and as whom the template is evaluated.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    /// `Name -> value`, as `sam deploy --parameter-overrides` takes them.
    pub parameter_overrides: BTreeMap<String, String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            stack_name: "robofleet-local".to_string(),
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
            parameter_overrides: BTreeMap::new(),
        }
    }
}

impl LoadOptions {
    /// These options with one more parameter override.
    pub fn with_parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameter_overrides.insert(name.into(), value.into());
        self
    }
}

/// The evaluated template.
#[derive(Debug, Clone)]
pub struct Stack {
    stack_name: String,
    region: String,
    account_id: String,
    parameters: BTreeMap<String, String>,
    resources: Vec<Resource>,
    functions: Vec<FunctionSpec>,
    mappings: Vec<KinesisMapping>,
    schedules: Vec<ScheduleSpec>,
    routes: Vec<HttpRouteSpec>,
    topic_rules: Vec<TopicRuleSpec>,
    tables: Vec<TableSpec>,
    streams: Vec<StreamSpec>,
    queues: Vec<QueueSpec>,
    buckets: Vec<BucketSpec>,
    outputs: BTreeMap<String, Value>,
}

impl Stack {
    pub fn stack_name(&self) -> &str {
        &self.stack_name
    }
    pub fn region(&self) -> &str {
        &self.region
    }
    pub fn account_id(&self) -> &str {
        &self.account_id
    }
    /// A resource's ARN, as `Fn::GetAtt [id, Arn]` gives it (`None` for a type without one).
    pub fn arn(&self, r: &Resource) -> Option<String> {
        resolver::default_attribute(&self.resource_ref(r), "Arn")
    }
    fn resource_ref<'a>(&'a self, r: &'a Resource) -> resolver::ResourceRef<'a> {
        resolver::ResourceRef {
            logical_id: &r.logical_id,
            type_: &r.type_,
            physical_name: &r.physical_name,
            stack_name: &self.stack_name,
            region: &self.region,
            account_id: &self.account_id,
            partition: eval::partition_of(&self.region),
        }
    }
    /// Every parameter's resolved value (lists joined with commas).
    pub fn parameters(&self) -> &BTreeMap<String, String> {
        &self.parameters
    }
    /// Resources after Conditions, with evaluated properties.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.resources.iter()
    }
    /// One resource by logical id (if it exists after Conditions).
    pub fn resource(&self, logical_id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.logical_id == logical_id)
    }
    /// SAM functions with Globals merged.
    pub fn functions(&self) -> Vec<&FunctionSpec> {
        self.functions.iter().collect()
    }
    /// One SAM function by logical id.
    pub fn function(&self, logical_id: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }
    /// Kinesis mappings from SAM `Events` and from `AWS::Lambda::EventSourceMapping` resources.
    pub fn event_source_mappings(&self) -> Vec<&KinesisMapping> {
        self.mappings.iter().collect()
    }
    /// Routes of the template's HTTP APIs (SAM `HttpApi` events).
    pub fn http_routes(&self) -> &[HttpRouteSpec] {
        &self.routes
    }
    /// The id `!Ref` gives an HTTP API of the template.
    pub fn api_id(&self, logical_id: &str) -> Option<String> {
        resolver::default_reference(&self.resource_ref(self.resource(logical_id)?))
    }
    /// SAM `Schedule`/`ScheduleV2` events, `AWS::Events::Rule` schedules, `AWS::Scheduler::Schedule`.
    pub fn schedules(&self) -> Vec<&ScheduleSpec> {
        self.schedules.iter().collect()
    }
    pub fn topic_rules(&self) -> Vec<&TopicRuleSpec> {
        self.topic_rules.iter().collect()
    }
    pub fn tables(&self) -> Vec<&TableSpec> {
        self.tables.iter().collect()
    }
    pub fn streams(&self) -> Vec<&StreamSpec> {
        self.streams.iter().collect()
    }
    pub fn queues(&self) -> Vec<&QueueSpec> {
        self.queues.iter().collect()
    }
    pub fn buckets(&self) -> Vec<&BucketSpec> {
        self.buckets.iter().collect()
    }
    /// One stream by logical id.
    pub fn stream(&self, logical_id: &str) -> Option<&StreamSpec> {
        self.streams.iter().find(|s| s.logical_id == logical_id)
    }
    /// One queue by logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }
    /// One table by logical id.
    pub fn table(&self, logical_id: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.logical_id == logical_id)
    }
    /// Outputs whose Condition holds, evaluated (deferred markers where the cloud decides).
    pub fn outputs(&self) -> &BTreeMap<String, Value> {
        &self.outputs
    }
}

/// Reads and evaluates a template file with the [`DefaultResolver`].
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Stack, TemplateError> {
    load_with(path, opts, &DefaultResolver)
}

/// Reads and evaluates a template file; `resolver` decides what resource references give.
pub fn load_with(
    path: &Path,
    opts: &LoadOptions,
    resolver: &dyn PhysicalResolver,
) -> Result<Stack, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_str_with(&text, opts, resolver)
}

/// Evaluates template text with the [`DefaultResolver`].
pub fn load_str(yaml: &str, opts: &LoadOptions) -> Result<Stack, TemplateError> {
    load_str_with(yaml, opts, &DefaultResolver)
}

const TOP_LEVEL: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Transform",
    "Parameters",
    "Mappings",
    "Rules",
    "Conditions",
    "Globals",
    "Resources",
    "Outputs",
];

fn check_transform(doc: &Value) -> Result<(), TemplateError> {
    let list: Vec<&Value> = match doc.get("Transform") {
        None => return Ok(()),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    };
    for t in list {
        if t.as_str() != Some(SAM_TRANSFORM) {
            return Err(TemplateError::unsupported(
                format!("Transform {t}"),
                "Transform",
            ));
        }
    }
    Ok(())
}

/// Evaluates template text; `resolver` decides what resource references give.
pub fn load_str_with(
    yaml_text: &str,
    opts: &LoadOptions,
    resolver: &dyn PhysicalResolver,
) -> Result<Stack, TemplateError> {
    let doc = yaml::parse(yaml_text)?;
    let top = doc
        .as_object()
        .ok_or_else(|| TemplateError::invalid("", "a template is a mapping"))?;
    for key in top.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            return Err(TemplateError::invalid(key, "is not a template section"));
        }
    }
    check_transform(&doc)?;
    let params = params::resolve(doc.get("Parameters"), &opts.parameter_overrides)?;
    let globals = Value::Object(sam::function_globals(&doc)?);

    let raw_resources = doc
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            TemplateError::invalid("Resources", "a template needs a Resources mapping")
        })?;
    let mut resources = BTreeMap::new();
    for (id, r) in raw_resources {
        let at = format!("Resources.{id}");
        let type_ = r
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| TemplateError::invalid(&at, "Type is required"))?
            .to_string();
        let mut properties = r
            .get("Properties")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        if type_ == "AWS::Serverless::Function" {
            properties = sam::merge(&globals, &properties);
        } else if type_.starts_with("AWS::Serverless::")
            && type_ != "AWS::Serverless::StateMachine"
            && type_ != "AWS::Serverless::HttpApi"
        {
            // A state machine's properties are read as written (the local ASL runner takes its
            // Definition), and so are an HTTP API's (its routes come from the functions'
            // `HttpApi` events); the other SAM types would need SAM's transform.
            return Err(TemplateError::unsupported(
                format!("resource type {type_}"),
                format!("{at}.Type"),
            ));
        }
        let condition = match r.get("Condition") {
            None => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => {
                return Err(TemplateError::invalid(
                    format!("{at}.Condition"),
                    "must be a condition name",
                ));
            }
        };
        resources.insert(
            id.clone(),
            RawResource {
                type_,
                properties,
                condition,
                metadata: r.get("Metadata").cloned().unwrap_or(Value::Null),
            },
        );
    }

    let condition_defs = doc
        .get("Conditions")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let ev = Evaluator::new(
        opts.stack_name.clone(),
        opts.region.clone(),
        opts.account_id.clone(),
        params,
        condition_defs,
        resources,
        resolver,
    );
    // CloudFormation checks Rules before anything else is created.
    rules::check(&ev, doc.get("Rules"))?;
    for name in ev.condition_defs.keys() {
        ev.condition(name, "Conditions")?;
    }

    // Evaluate every active resource.
    let mut evaluated = Vec::new();
    for (id, raw) in &ev.resources {
        if !ev.is_active(id)? {
            continue;
        }
        let at = format!("Resources.{id}.Properties");
        let properties = ev
            .eval(&raw.properties, &at)?
            .unwrap_or(Value::Object(Map::new()));
        evaluated.push(Resource {
            logical_id: id.clone(),
            type_: raw.type_.clone(),
            physical_name: ev.physical_name(id)?,
            properties,
            metadata: raw.metadata.clone(),
        });
    }

    let mut functions = Vec::new();
    for r in evaluated
        .iter()
        .filter(|r| r.type_ == "AWS::Serverless::Function")
    {
        functions.push(extract::function(r)?);
    }
    let mut mappings = Vec::new();
    let mut schedules = Vec::new();
    let mut routes = Vec::new();
    let mut topic_rules = Vec::new();
    let mut tables = Vec::new();
    let mut streams = Vec::new();
    let mut queues = Vec::new();
    let mut buckets = Vec::new();
    for r in &evaluated {
        let raw_props = &ev.resources[&r.logical_id].properties;
        match r.type_.as_str() {
            "AWS::Serverless::Function" => extract::sam_events(
                &ev,
                r,
                raw_props,
                &mut mappings,
                &mut schedules,
                &mut routes,
            )?,
            "AWS::Lambda::EventSourceMapping" => {
                mappings.push(extract::raw_mapping(&ev, r, raw_props, &functions)?)
            }
            "AWS::Events::Rule" | "AWS::Scheduler::Schedule" => {
                extract::raw_schedules(&ev, r, raw_props, &functions, &mut schedules)?
            }
            "AWS::IoT::TopicRule" => topic_rules.push(extract::topic_rule(&ev, r, raw_props)?),
            "AWS::DynamoDB::Table" => tables.push(extract::table(r)?),
            "AWS::Kinesis::Stream" => streams.push(extract::stream(r)?),
            "AWS::SQS::Queue" => queues.push(extract::queue(r)?),
            "AWS::S3::Bucket" => buckets.push(extract::bucket(r)),
            _ => {}
        }
    }

    let mut outputs = BTreeMap::new();
    if let Some(Value::Object(outs)) = doc.get("Outputs") {
        for (name, out) in outs {
            let at = format!("Outputs.{name}");
            if let Some(c) = out.get("Condition").and_then(Value::as_str)
                && !ev.condition(c, &at)?
            {
                continue;
            }
            if let Some(v) = out.get("Value")
                && let Some(value) = ev.eval(v, &format!("{at}.Value"))?
            {
                outputs.insert(name.clone(), value);
            }
        }
    }

    Ok(Stack {
        stack_name: opts.stack_name.clone(),
        region: opts.region.clone(),
        account_id: opts.account_id.clone(),
        parameters: ev
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_text()))
            .collect(),
        resources: evaluated,
        functions,
        mappings,
        schedules,
        routes,
        topic_rules,
        tables,
        streams,
        queues,
        buckets,
        outputs,
    })
}

#[cfg(test)]
mod tests;
