//! The evaluator: pseudo-parameters, parameters, Conditions, `Ref`, `Fn::GetAtt`, `Fn::Sub`,
//! `Fn::If`, `Fn::Join`, `Fn::Select`, `Fn::Split`, and the condition functions. Anything else
//! is refused by name. A value that only the cloud can know (a resolver said `None`) becomes a
//! deferred marker, `{"Fn::Deferred": "<expression>"}`, never a guess.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::TemplateError;
use crate::params::{ParamValue, scalar_text};
use crate::resolver::{PhysicalResolver, ResourceRef};
use crate::yaml::join;

/// Key of the deferred marker object.
pub const DEFERRED_KEY: &str = "Fn::Deferred";

/// The expression text of a deferred marker, if `v` is one.
pub fn deferred(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(DEFERRED_KEY).and_then(Value::as_str),
        _ => None,
    }
}

fn deferred_value(text: impl Into<String>) -> Value {
    let mut m = Map::new();
    m.insert(DEFERRED_KEY.to_string(), Value::String(text.into()));
    Value::Object(m)
}

/// A resource as declared (SAM functions already have their Globals merged in).
#[derive(Debug, Clone)]
pub(crate) struct RawResource {
    pub type_: String,
    pub properties: Value,
    pub condition: Option<String>,
    pub metadata: Value,
}

#[derive(Debug, Clone, Copy)]
enum State<T> {
    InProgress,
    Done(T),
}

pub(crate) struct Evaluator<'a> {
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    pub partition: String,
    pub params: BTreeMap<String, ParamValue>,
    pub condition_defs: Map<String, Value>,
    pub resources: BTreeMap<String, RawResource>,
    pub resolver: &'a dyn PhysicalResolver,
    conditions: RefCell<BTreeMap<String, State<bool>>>,
    names: RefCell<BTreeMap<String, State<()>>>,
    name_cache: RefCell<BTreeMap<String, String>>,
}

impl<'a> Evaluator<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        stack_name: String,
        region: String,
        account_id: String,
        params: BTreeMap<String, ParamValue>,
        condition_defs: Map<String, Value>,
        resources: BTreeMap<String, RawResource>,
        resolver: &'a dyn PhysicalResolver,
    ) -> Self {
        let partition = partition_of(&region).to_string();
        Self {
            stack_name,
            region,
            account_id,
            partition,
            params,
            condition_defs,
            resources,
            resolver,
            conditions: RefCell::new(BTreeMap::new()),
            names: RefCell::new(BTreeMap::new()),
            name_cache: RefCell::new(BTreeMap::new()),
        }
    }

    fn url_suffix(&self) -> &'static str {
        if self.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        }
    }

    // ---------------------------------------------------------------------------------------
    // Conditions
    // ---------------------------------------------------------------------------------------

    /// The value of a named condition.
    pub(crate) fn condition(&self, name: &str, at: &str) -> Result<bool, TemplateError> {
        match self.conditions.borrow().get(name) {
            Some(State::Done(b)) => return Ok(*b),
            Some(State::InProgress) => {
                return Err(TemplateError::Cycle {
                    at: format!("Conditions.{name}"),
                });
            }
            None => {}
        }
        let def = self.condition_defs.get(name).cloned().ok_or_else(|| {
            TemplateError::invalid(
                at,
                format!("condition {name} is not declared in Conditions"),
            )
        })?;
        self.conditions
            .borrow_mut()
            .insert(name.to_string(), State::InProgress);
        let value = self.condition_expr(&def, &format!("Conditions.{name}"));
        match value {
            Ok(b) => {
                self.conditions
                    .borrow_mut()
                    .insert(name.to_string(), State::Done(b));
                Ok(b)
            }
            Err(e) => {
                self.conditions.borrow_mut().remove(name);
                Err(e)
            }
        }
    }

    fn condition_expr(&self, v: &Value, at: &str) -> Result<bool, TemplateError> {
        let (key, arg) = single(v).ok_or_else(|| {
            TemplateError::invalid(
                at,
                "a condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition",
            )
        })?;
        let at_k = join(at, key);
        match key {
            "Condition" => {
                let name = arg
                    .as_str()
                    .ok_or_else(|| TemplateError::invalid(&at_k, "needs a condition name"))?;
                self.condition(name, &at_k)
            }
            "Fn::Equals" => {
                let items = list_of(arg, 2, &at_k)?;
                let a = self.eval(&items[0], &format!("{at_k}[0]"))?;
                let b = self.eval(&items[1], &format!("{at_k}[1]"))?;
                for (side, x) in [(0, &a), (1, &b)] {
                    if let Some(x) = x
                        && let Some(d) = deferred(x)
                    {
                        return Err(TemplateError::invalid(
                            format!("{at_k}[{side}]"),
                            format!(
                                "a condition cannot depend on {d}, which is only known in the cloud"
                            ),
                        ));
                    }
                }
                Ok(normalize(a.as_ref()) == normalize(b.as_ref()))
            }
            "Fn::Not" => {
                let items = list_of(arg, 1, &at_k)?;
                Ok(!self.condition_expr(&items[0], &format!("{at_k}[0]"))?)
            }
            "Fn::And" | "Fn::Or" => {
                let items = arg
                    .as_array()
                    .filter(|a| (2..=10).contains(&a.len()))
                    .ok_or_else(|| {
                        TemplateError::invalid(&at_k, "needs a list of 2 to 10 conditions")
                    })?;
                let mut results = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    results.push(self.condition_expr(item, &format!("{at_k}[{i}]"))?);
                }
                Ok(if key == "Fn::And" {
                    results.iter().all(|b| *b)
                } else {
                    results.iter().any(|b| *b)
                })
            }
            other if other.starts_with("Fn::") => Err(TemplateError::unsupported(
                format!("intrinsic function {other} in a condition"),
                at,
            )),
            _ => Err(TemplateError::invalid(
                at,
                "a condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition",
            )),
        }
    }

    /// Whether a resource exists after Conditions.
    pub(crate) fn is_active(&self, logical_id: &str) -> Result<bool, TemplateError> {
        match self
            .resources
            .get(logical_id)
            .and_then(|r| r.condition.as_ref())
        {
            Some(c) => self.condition(c, &format!("Resources.{logical_id}.Condition")),
            None => Ok(true),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Physical names
    // ---------------------------------------------------------------------------------------

    /// The name a resource has in the account: its name property, evaluated, or the name
    /// CloudFormation would generate (`<stack>-<LogicalId>`, shaped by the type's rules).
    pub(crate) fn physical_name(&self, logical_id: &str) -> Result<String, TemplateError> {
        if let Some(n) = self.name_cache.borrow().get(logical_id) {
            return Ok(n.clone());
        }
        if let Some(State::InProgress) = self.names.borrow().get(logical_id) {
            return Err(TemplateError::Cycle {
                at: format!("Resources.{logical_id}"),
            });
        }
        let res = self.resources.get(logical_id).ok_or_else(|| {
            TemplateError::invalid("Resources", format!("no resource {logical_id}"))
        })?;
        self.names
            .borrow_mut()
            .insert(logical_id.to_string(), State::InProgress);
        let result = self.compute_name(logical_id, res);
        self.names.borrow_mut().remove(logical_id);
        let name = result?;
        self.name_cache
            .borrow_mut()
            .insert(logical_id.to_string(), name.clone());
        Ok(name)
    }

    fn compute_name(&self, logical_id: &str, res: &RawResource) -> Result<String, TemplateError> {
        if let Some(prop) = name_property(&res.type_)
            && let Some(raw) = res.properties.get(prop)
        {
            let at = format!("Resources.{logical_id}.Properties.{prop}");
            let v = self.eval(raw, &at)?;
            match v {
                None => {}
                Some(Value::String(s)) => return Ok(s),
                Some(other) => {
                    if let Some(d) = deferred(&other) {
                        return Err(TemplateError::invalid(
                            at,
                            format!("the name depends on {d}, which is only known in the cloud"),
                        ));
                    }
                    return scalar_text(&other).ok_or_else(|| {
                        TemplateError::invalid(at, "a name must evaluate to a string")
                    });
                }
            }
        }
        Ok(generated_name(&self.stack_name, logical_id, res))
    }

    fn resource_ref<'s>(
        &'s self,
        logical_id: &'s str,
        type_: &'s str,
        physical: &'s str,
    ) -> ResourceRef<'s> {
        ResourceRef {
            logical_id,
            type_,
            physical_name: physical,
            stack_name: &self.stack_name,
            region: &self.region,
            account_id: &self.account_id,
            partition: &self.partition,
        }
    }

    fn checked_resource(&self, id: &str, at: &str) -> Result<&RawResource, TemplateError> {
        let res = self.resources.get(id).ok_or_else(|| {
            TemplateError::invalid(at, format!("{id} is neither a parameter nor a resource"))
        })?;
        if !self.is_active(id)? {
            return Err(TemplateError::invalid(
                at,
                format!("{id} is not created (its Condition is false) but is referenced here"),
            ));
        }
        Ok(res)
    }

    // ---------------------------------------------------------------------------------------
    // Values
    // ---------------------------------------------------------------------------------------

    /// Evaluates a value. `None` is `AWS::NoValue`: the caller drops the key or list item.
    pub(crate) fn eval(&self, v: &Value, at: &str) -> Result<Option<Value>, TemplateError> {
        match v {
            Value::Object(m) => {
                if let Some((key, arg)) = single(v)
                    && (key == "Ref" || key.starts_with("Fn::"))
                {
                    return self.intrinsic(key, arg, &join(at, key));
                }
                let mut out = Map::new();
                for (k, child) in m {
                    if let Some(x) = self.eval(child, &join(at, k))? {
                        out.insert(k.clone(), x);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(x) = self.eval(item, &format!("{at}[{i}]"))? {
                        out.push(x);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    /// Like [`eval`](Self::eval), but `AWS::NoValue` is an error (the place needs a value).
    fn eval_required(&self, v: &Value, at: &str) -> Result<Value, TemplateError> {
        self.eval(v, at)?
            .ok_or_else(|| TemplateError::invalid(at, "AWS::NoValue is not allowed here"))
    }

    fn intrinsic(&self, key: &str, arg: &Value, at: &str) -> Result<Option<Value>, TemplateError> {
        match key {
            "Ref" => {
                let name = arg
                    .as_str()
                    .ok_or_else(|| TemplateError::invalid(at, "Ref needs a name"))?;
                self.reference(name, at)
            }
            "Fn::GetAtt" => self.get_att(arg, at).map(Some),
            "Fn::Sub" => self.sub(arg, at).map(Some),
            "Fn::If" => {
                let items = list_of(arg, 3, at)?;
                let cond = items[0].as_str().ok_or_else(|| {
                    TemplateError::invalid(at, "Fn::If needs a condition name first")
                })?;
                if self.condition(cond, at)? {
                    self.eval(&items[1], &format!("{at}[1]"))
                } else {
                    self.eval(&items[2], &format!("{at}[2]"))
                }
            }
            "Fn::Join" => self.join_fn(arg, at).map(Some),
            "Fn::Select" => {
                let items = list_of(arg, 2, at)?;
                let index = self.eval_required(&items[0], &format!("{at}[0]"))?;
                let index: usize = scalar_text(&index)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        TemplateError::invalid(at, "Fn::Select needs a numeric index")
                    })?;
                let list = self.eval_required(&items[1], &format!("{at}[1]"))?;
                if let Some(d) = deferred(&list) {
                    return Ok(Some(deferred_value(format!("Fn::Select {index} of {d}"))));
                }
                let list = list
                    .as_array()
                    .ok_or_else(|| TemplateError::invalid(at, "Fn::Select needs a list"))?;
                list.get(index).cloned().map(Some).ok_or_else(|| {
                    TemplateError::invalid(
                        at,
                        format!("index {index} is out of range ({} items)", list.len()),
                    )
                })
            }
            "Fn::Split" => {
                let items = list_of(arg, 2, at)?;
                let delim = items[0].as_str().ok_or_else(|| {
                    TemplateError::invalid(at, "Fn::Split needs a delimiter string")
                })?;
                let source = self.eval_required(&items[1], &format!("{at}[1]"))?;
                if let Some(d) = deferred(&source) {
                    return Ok(Some(deferred_value(format!("Fn::Split of {d}"))));
                }
                let text = source
                    .as_str()
                    .ok_or_else(|| TemplateError::invalid(at, "Fn::Split needs a string"))?;
                Ok(Some(Value::Array(
                    text.split(delim)
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                )))
            }
            "Fn::Equals" | "Fn::And" | "Fn::Or" | "Fn::Not" => Err(TemplateError::invalid(
                at,
                format!(
                    "{key} belongs in the Conditions section; use Fn::If with a named condition here"
                ),
            )),
            other => Err(TemplateError::unsupported(
                format!("intrinsic function {other}"),
                at,
            )),
        }
    }

    fn reference(&self, name: &str, at: &str) -> Result<Option<Value>, TemplateError> {
        let pseudo = match name {
            "AWS::NoValue" => return Ok(None),
            "AWS::StackName" => Some(self.stack_name.clone()),
            "AWS::Region" => Some(self.region.clone()),
            "AWS::AccountId" => Some(self.account_id.clone()),
            "AWS::Partition" => Some(self.partition.clone()),
            "AWS::URLSuffix" => Some(self.url_suffix().to_string()),
            "AWS::StackId" => Some(format!(
                "arn:{}:cloudformation:{}:{}:stack/{}/00000000-0000-0000-0000-000000000000",
                self.partition, self.region, self.account_id, self.stack_name
            )),
            "AWS::NotificationARNs" => return Ok(Some(Value::Array(Vec::new()))),
            other if other.starts_with("AWS::") => {
                return Err(TemplateError::unsupported(
                    format!("pseudo parameter {other}"),
                    at,
                ));
            }
            _ => None,
        };
        if let Some(p) = pseudo {
            return Ok(Some(Value::String(p)));
        }
        if let Some(p) = self.params.get(name) {
            return Ok(Some(match p {
                ParamValue::Str(s) => Value::String(s.clone()),
                ParamValue::List(items) => {
                    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
                }
            }));
        }
        // `Function.Version` (SAM AutoPublishAlias): the version ARN exists only once the cloud
        // has published the version, so it is deferred.
        if let Some((fn_id, "Version")) = name.split_once('.') {
            let res = self.checked_resource(fn_id, at)?;
            if res.properties.get("AutoPublishAlias").is_none() {
                return Err(TemplateError::invalid(
                    at,
                    format!("{fn_id} has no AutoPublishAlias, so {name} does not exist"),
                ));
            }
            return Ok(Some(deferred_value(format!("Ref {name}"))));
        }
        // `Function.Alias` (SAM AutoPublishAlias).
        if let Some((fn_id, "Alias")) = name.split_once('.') {
            let res = self.checked_resource(fn_id, at)?;
            let alias = res
                .properties
                .get("AutoPublishAlias")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TemplateError::invalid(
                        at,
                        format!("{fn_id} has no AutoPublishAlias, so {name} does not exist"),
                    )
                })?;
            let physical = self.physical_name(fn_id)?;
            let r = self.resource_ref(fn_id, &res.type_, &physical);
            return Ok(Some(match self.resolver.alias_reference(&r, alias) {
                Some(s) => Value::String(s),
                None => deferred_value(format!("Ref {name}")),
            }));
        }
        let res = self.checked_resource(name, at)?;
        let physical = self.physical_name(name)?;
        let r = self.resource_ref(name, &res.type_, &physical);
        Ok(Some(match self.resolver.reference(&r) {
            Some(s) => Value::String(s),
            None => deferred_value(format!("Ref {name}")),
        }))
    }

    fn get_att(&self, arg: &Value, at: &str) -> Result<Value, TemplateError> {
        let items = list_of(arg, 2, at)?;
        let id = items[0]
            .as_str()
            .ok_or_else(|| TemplateError::invalid(at, "Fn::GetAtt needs a resource name"))?;
        let attr = match &items[1] {
            Value::String(s) => s.clone(),
            other => {
                let v = self.eval_required(other, &format!("{at}[1]"))?;
                v.as_str().map(str::to_string).ok_or_else(|| {
                    TemplateError::invalid(at, "the attribute must evaluate to a string")
                })?
            }
        };
        self.attribute(id, &attr, at)
    }

    fn attribute(&self, id: &str, attr: &str, at: &str) -> Result<Value, TemplateError> {
        let res = self.checked_resource(id, at)?;
        let physical = self.physical_name(id)?;
        let r = self.resource_ref(id, &res.type_, &physical);
        Ok(match self.resolver.attribute(&r, attr) {
            Some(s) => Value::String(s),
            None => deferred_value(format!("{id}.{attr}")),
        })
    }

    fn sub(&self, arg: &Value, at: &str) -> Result<Value, TemplateError> {
        let (template, vars) = match arg {
            Value::String(s) => (s.as_str(), Map::new()),
            Value::Array(items) if items.len() == 2 => {
                let t = items[0]
                    .as_str()
                    .ok_or_else(|| TemplateError::invalid(at, "Fn::Sub needs a template string"))?;
                let raw = items[1].as_object().ok_or_else(|| {
                    TemplateError::invalid(at, "Fn::Sub variables must be a mapping")
                })?;
                let mut vars = Map::new();
                for (k, v) in raw {
                    vars.insert(k.clone(), self.eval_required(v, &format!("{at}[1].{k}"))?);
                }
                (t, vars)
            }
            _ => {
                return Err(TemplateError::invalid(
                    at,
                    "Fn::Sub needs a string or [string, {variables}]",
                ));
            }
        };
        let mut out = String::with_capacity(template.len());
        let mut is_deferred = false;
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                // `${!Literal}` is the escape for a literal `${Literal}`.
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after.find('}').ok_or_else(|| {
                TemplateError::invalid(at, format!("unclosed ${{ in Fn::Sub template {template:?}"))
            })?;
            let name = after[..end].trim();
            let value = match vars.get(name) {
                Some(v) => v.clone(),
                None => match name.split_once('.') {
                    Some((id, attr)) if !self.params.contains_key(name) => {
                        self.attribute(id, attr, at)?
                    }
                    _ => self.reference(name, at)?.ok_or_else(|| {
                        TemplateError::invalid(at, "AWS::NoValue cannot be substituted")
                    })?,
                },
            };
            if let Some(d) = deferred(&value) {
                is_deferred = true;
                out.push_str("${");
                out.push_str(d);
                out.push('}');
            } else {
                let text = scalar_text(&value).ok_or_else(|| {
                    TemplateError::invalid(
                        at,
                        format!("${{{name}}} is a list or map; Fn::Sub needs a string"),
                    )
                })?;
                out.push_str(&text);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(if is_deferred {
            deferred_value(out)
        } else {
            Value::String(out)
        })
    }

    fn join_fn(&self, arg: &Value, at: &str) -> Result<Value, TemplateError> {
        let items = list_of(arg, 2, at)?;
        let delim = items[0]
            .as_str()
            .ok_or_else(|| TemplateError::invalid(at, "Fn::Join needs a delimiter string"))?;
        let list = self.eval_required(&items[1], &format!("{at}[1]"))?;
        if let Some(d) = deferred(&list) {
            return Ok(deferred_value(format!("Fn::Join of {d}")));
        }
        let list = list
            .as_array()
            .ok_or_else(|| TemplateError::invalid(at, "Fn::Join needs a list"))?;
        let mut parts = Vec::with_capacity(list.len());
        let mut is_deferred = false;
        for item in list {
            if let Some(d) = deferred(item) {
                is_deferred = true;
                parts.push(format!("${{{d}}}"));
            } else {
                parts.push(
                    scalar_text(item).ok_or_else(|| {
                        TemplateError::invalid(at, "Fn::Join items must be strings")
                    })?,
                );
            }
        }
        let joined = parts.join(delim);
        Ok(if is_deferred {
            deferred_value(joined)
        } else {
            Value::String(joined)
        })
    }
}

/// The single key and value of a one-key mapping.
pub(crate) fn single(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

fn list_of<'v>(arg: &'v Value, n: usize, at: &str) -> Result<&'v [Value], TemplateError> {
    match arg {
        Value::Array(items) if items.len() == n => Ok(items),
        _ => Err(TemplateError::invalid(
            at,
            format!("needs a list of {n} items"),
        )),
    }
}

fn normalize(v: Option<&Value>) -> Option<String> {
    v.map(|v| scalar_text(v).unwrap_or_else(|| v.to_string()))
}

/// The partition a region belongs to.
pub(crate) fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The property that names a resource of this type, if the type has one.
pub(crate) fn name_property(type_: &str) -> Option<&'static str> {
    Some(match type_ {
        "AWS::Kinesis::Stream" => "Name",
        "AWS::DynamoDB::Table" => "TableName",
        "AWS::SQS::Queue" => "QueueName",
        "AWS::S3::Bucket" => "BucketName",
        "AWS::Serverless::Function" | "AWS::Lambda::Function" => "FunctionName",
        "AWS::IAM::Role" => "RoleName",
        "AWS::IAM::ManagedPolicy" => "ManagedPolicyName",
        "AWS::Logs::LogGroup" => "LogGroupName",
        "AWS::IoT::TopicRule" => "RuleName",
        "AWS::IoT::Policy" => "PolicyName",
        "AWS::IoT::Thing" => "ThingName",
        "AWS::OpenSearchService::Domain" => "DomainName",
        "AWS::KMS::Alias" => "AliasName",
        "AWS::CloudWatch::Alarm" => "AlarmName",
        "AWS::CloudWatch::Dashboard" => "DashboardName",
        "AWS::SNS::Topic" => "TopicName",
        "AWS::Events::Rule" | "AWS::Scheduler::Schedule" | "AWS::Serverless::StateMachine" => {
            "Name"
        }
        "AWS::StepFunctions::StateMachine" => "StateMachineName",
        _ => return None,
    })
}

/// A readable, deterministic stand-in for the name CloudFormation generates
/// (`<stack>-<LogicalId>-<random>` in the cloud).
fn generated_name(stack: &str, logical_id: &str, res: &RawResource) -> String {
    let base = format!("{stack}-{logical_id}");
    match res.type_.as_str() {
        "AWS::S3::Bucket" => {
            let mut s: String = base
                .to_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            s.truncate(63);
            s.trim_end_matches('-').to_string()
        }
        "AWS::OpenSearchService::Domain" => {
            let mut s = base.to_lowercase();
            s.truncate(28);
            s
        }
        "AWS::SQS::Queue" => {
            let fifo = matches!(res.properties.get("FifoQueue"), Some(Value::Bool(true)))
                || res.properties.get("FifoQueue").and_then(Value::as_str) == Some("true");
            let mut s = base;
            s.truncate(if fifo { 75 } else { 80 });
            if fifo {
                s.push_str(".fifo");
            }
            s
        }
        "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
            let mut s = base;
            s.truncate(64);
            s
        }
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::DefaultResolver;
    use serde_json::json;

    fn evaluator(resolver: &dyn PhysicalResolver, doc: Value) -> Evaluator<'_> {
        let params = crate::params::resolve(doc.get("Parameters"), &BTreeMap::new()).unwrap();
        let conds = doc
            .get("Conditions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut resources = BTreeMap::new();
        if let Some(Value::Object(m)) = doc.get("Resources") {
            for (k, v) in m {
                resources.insert(
                    k.clone(),
                    RawResource {
                        type_: v["Type"].as_str().unwrap_or("").to_string(),
                        properties: v.get("Properties").cloned().unwrap_or(json!({})),
                        condition: v
                            .get("Condition")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        metadata: json!({}),
                    },
                );
            }
        }
        Evaluator::new(
            "st".into(),
            "eu-west-1".into(),
            "111122223333".into(),
            params,
            conds,
            resources,
            resolver,
        )
    }

    fn doc() -> Value {
        json!({
            "Parameters": {
                "Suffix": {"Type": "String", "Default": "_x"},
                "Mode": {"Type": "String", "Default": "ON_DEMAND"},
                "Zones": {"Type": "CommaDelimitedList", "Default": "a,b"}
            },
            "Conditions": {
                "IsProv": {"Fn::Equals": [{"Ref": "Mode"}, "PROVISIONED"]},
                "NotProv": {"Fn::Not": [{"Condition": "IsProv"}]},
                "Both": {"Fn::And": [{"Condition": "NotProv"}, {"Fn::Equals": ["a", "a"]}]},
                "Either": {"Fn::Or": [{"Condition": "IsProv"}, {"Fn::Equals": ["a", "b"]}]},
                "Loop": {"Fn::Not": [{"Condition": "Loop"}]}
            },
            "Resources": {
                "Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-q"}}},
                "S": {"Type": "AWS::Kinesis::Stream", "Properties": {}},
                "Gone": {"Type": "AWS::SQS::Queue", "Condition": "IsProv", "Properties": {}},
                "F": {"Type": "AWS::Serverless::Function", "Properties": {"AutoPublishAlias": "live", "FunctionName": "st-f"}},
                "Odd": {"Type": "Custom::Thing", "Properties": {}}
            }
        })
    }

    fn ev(e: &Evaluator<'_>, v: Value) -> Result<Option<Value>, TemplateError> {
        e.eval(&v, "Test")
    }

    #[test]
    fn pseudo_parameters_evaluate() {
        let e = evaluator(&DefaultResolver, doc());
        let v = ev(&e, json!({"Fn::Sub": "${AWS::StackName}|${AWS::Region}|${AWS::AccountId}|${AWS::Partition}|${AWS::URLSuffix}"})).unwrap();
        assert_eq!(
            v,
            Some(json!("st|eu-west-1|111122223333|aws|amazonaws.com"))
        );
        assert_eq!(ev(&e, json!({"Ref": "AWS::NoValue"})).unwrap(), None);
    }

    #[test]
    fn no_value_drops_keys_and_list_items() {
        let e = evaluator(&DefaultResolver, doc());
        let v = ev(
            &e,
            json!({"a": {"Ref": "AWS::NoValue"}, "b": [1, {"Ref": "AWS::NoValue"}, 2]}),
        )
        .unwrap();
        assert_eq!(v, Some(json!({"b": [1, 2]})));
    }

    #[test]
    fn conditions_evaluate_with_and_or_not_and_references() {
        let e = evaluator(&DefaultResolver, doc());
        assert!(!e.condition("IsProv", "t").unwrap());
        assert!(e.condition("NotProv", "t").unwrap());
        assert!(e.condition("Both", "t").unwrap());
        assert!(!e.condition("Either", "t").unwrap());
    }

    #[test]
    fn condition_cycle_is_reported() {
        let e = evaluator(&DefaultResolver, doc());
        assert!(matches!(
            e.condition("Loop", "t"),
            Err(TemplateError::Cycle { .. })
        ));
    }

    #[test]
    fn if_picks_the_branch() {
        let e = evaluator(&DefaultResolver, doc());
        let v = ev(
            &e,
            json!({"Fn::If": ["IsProv", 4, {"Ref": "AWS::NoValue"}]}),
        )
        .unwrap();
        assert_eq!(v, None);
        let v = ev(&e, json!({"Fn::If": ["NotProv", "yes", "no"]})).unwrap();
        assert_eq!(v, Some(json!("yes")));
    }

    #[test]
    fn ref_of_resources_uses_physical_names() {
        let e = evaluator(&DefaultResolver, doc());
        assert_eq!(
            ev(&e, json!({"Ref": "Q"})).unwrap(),
            Some(json!(
                "https://sqs.eu-west-1.amazonaws.com/111122223333/st-q"
            ))
        );
        // No name property: a generated, deterministic name.
        assert_eq!(ev(&e, json!({"Ref": "S"})).unwrap(), Some(json!("st-S")));
        assert_eq!(
            ev(&e, json!({"Ref": "F.Alias"})).unwrap(),
            Some(json!(
                "arn:aws:lambda:eu-west-1:111122223333:function:st-f:live"
            ))
        );
    }

    #[test]
    fn get_att_and_sub_of_attributes() {
        let e = evaluator(&DefaultResolver, doc());
        assert_eq!(
            ev(&e, json!({"Fn::GetAtt": ["S", "Arn"]})).unwrap(),
            Some(json!("arn:aws:kinesis:eu-west-1:111122223333:stream/st-S"))
        );
        assert_eq!(
            ev(&e, json!({"Fn::Sub": "${Q.Arn}/x"})).unwrap(),
            Some(json!("arn:aws:sqs:eu-west-1:111122223333:st-q/x"))
        );
    }

    #[test]
    fn sub_escape_and_variables() {
        let e = evaluator(&DefaultResolver, doc());
        assert_eq!(
            ev(
                &e,
                json!({"Fn::Sub": "client/${!iot:Connection.Thing.ThingName}${Suffix}"})
            )
            .unwrap(),
            Some(json!("client/${iot:Connection.Thing.ThingName}_x"))
        );
        assert_eq!(
            ev(
                &e,
                json!({"Fn::Sub": ["${A}-${Suffix}", {"A": {"Ref": "Mode"}}]})
            )
            .unwrap(),
            Some(json!("ON_DEMAND-_x"))
        );
    }

    #[test]
    fn unknown_attribute_becomes_deferred() {
        let e = evaluator(&DefaultResolver, doc());
        let v = ev(&e, json!({"Fn::GetAtt": ["S", "Mystery"]}))
            .unwrap()
            .unwrap();
        assert_eq!(deferred(&v), Some("S.Mystery"));
        let v = ev(&e, json!({"Fn::Sub": "https://${S.Mystery}/x"}))
            .unwrap()
            .unwrap();
        assert_eq!(deferred(&v), Some("https://${S.Mystery}/x"));
        let v = ev(&e, json!({"Ref": "Odd"})).unwrap().unwrap();
        assert_eq!(deferred(&v), Some("Ref Odd"));
    }

    #[test]
    fn join_select_split() {
        let e = evaluator(&DefaultResolver, doc());
        assert_eq!(
            ev(&e, json!({"Fn::Join": ["-", ["a", {"Ref": "Suffix"}, 3]]})).unwrap(),
            Some(json!("a-_x-3"))
        );
        assert_eq!(
            ev(&e, json!({"Fn::Join": [",", {"Ref": "Zones"}]})).unwrap(),
            Some(json!("a,b"))
        );
        assert_eq!(
            ev(&e, json!({"Fn::Select": [1, {"Ref": "Zones"}]})).unwrap(),
            Some(json!("b"))
        );
        assert_eq!(
            ev(
                &e,
                json!({"Fn::Select": ["0", {"Fn::Split": ["/", "x/y"]}]})
            )
            .unwrap(),
            Some(json!("x"))
        );
        assert!(ev(&e, json!({"Fn::Select": [5, ["a"]]})).is_err());
    }

    #[test]
    fn unsupported_functions_are_refused_by_name() {
        let e = evaluator(&DefaultResolver, doc());
        for f in [
            "Fn::ImportValue",
            "Fn::FindInMap",
            "Fn::GetAZs",
            "Fn::Base64",
            "Fn::Transform",
        ] {
            match ev(&e, json!({"Props": {f: "x"}})) {
                Err(TemplateError::Unsupported { what, at }) => {
                    assert_eq!(what, format!("intrinsic function {f}"));
                    assert_eq!(at, format!("Test.Props.{f}"));
                }
                other => panic!("{f}: {other:?}"),
            }
        }
    }

    #[test]
    fn reference_to_unknown_or_inactive_resource_is_invalid() {
        let e = evaluator(&DefaultResolver, doc());
        assert!(matches!(
            ev(&e, json!({"Ref": "Nope"})),
            Err(TemplateError::Invalid { .. })
        ));
        let err = ev(&e, json!({"Ref": "Gone"})).unwrap_err();
        assert!(err.to_string().contains("Condition is false"), "{err}");
        assert!(matches!(
            ev(&e, json!({"Ref": "AWS::Weird"})),
            Err(TemplateError::Unsupported { .. })
        ));
    }

    #[test]
    fn condition_functions_outside_conditions_are_invalid() {
        let e = evaluator(&DefaultResolver, doc());
        assert!(matches!(
            ev(&e, json!({"Fn::Equals": ["a", "a"]})),
            Err(TemplateError::Invalid { .. })
        ));
    }

    #[test]
    fn malformed_sub_and_if_are_invalid() {
        let e = evaluator(&DefaultResolver, doc());
        let invalid = |v: Value| matches!(ev(&e, v), Err(TemplateError::Invalid { .. }));
        assert!(
            invalid(json!({"Fn::Sub": "x-${AWS::Region"})),
            "unclosed ${{"
        );
        assert!(
            invalid(json!({"Fn::Sub": "${Zones}"})),
            "a list cannot be substituted"
        );
        assert!(invalid(json!({"Fn::Sub": ["${A}", ["not", "a", "map"]]})));
        assert!(invalid(json!({"Fn::If": ["NoSuchCondition", 1, 2]})));
        assert!(invalid(json!({"Fn::If": ["IsProv", 1]})));
        assert!(invalid(json!({"Fn::Join": ["-", [{"k": "v"}]]})));
    }

    #[test]
    fn resource_names_cannot_depend_on_themselves() {
        let mut d = doc();
        d["Resources"]["Loop"] = json!({"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::GetAtt": ["Loop", "QueueName"]}}});
        let e = evaluator(&DefaultResolver, d);
        assert!(matches!(
            ev(&e, json!({"Ref": "Loop"})),
            Err(TemplateError::Cycle { .. })
        ));
    }

    struct LocalResolver;
    impl PhysicalResolver for LocalResolver {
        fn reference(&self, r: &ResourceRef<'_>) -> Option<String> {
            if r.type_ == "AWS::SQS::Queue" {
                return Some(format!(
                    "http://127.0.0.1:5000/{}/{}",
                    r.account_id, r.physical_name
                ));
            }
            crate::resolver::default_reference(r)
        }
    }

    #[test]
    fn a_resolver_can_override_references() {
        let e = evaluator(&LocalResolver, doc());
        assert_eq!(
            ev(&e, json!({"Ref": "Q"})).unwrap(),
            Some(json!("http://127.0.0.1:5000/111122223333/st-q"))
        );
    }

    #[test]
    fn s3_generated_names_are_lowercase() {
        let res = RawResource {
            type_: "AWS::S3::Bucket".into(),
            properties: json!({}),
            condition: None,
            metadata: json!({}),
        };
        assert_eq!(
            generated_name("Robo-Dev", "FailedBatches", &res),
            "robo-dev-failedbatches"
        );
    }
}
