//! The template's `Rules` section: CloudFormation checks each rule's assertions against the
//! parameter values before it creates or updates anything, and refuses the deploy with the
//! assertion's description when one fails. The local stack does the same, so a value AWS would
//! refuse (for example an empty `OpenSearchMasterUserArn`) is refused here too.
//!
//! Supported rule functions: `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Fn::Contains`, and
//! `Ref` of a parameter (or a literal). The others (`Fn::EachMemberEquals`, `Fn::EachMemberIn`,
//! `Fn::RefAll`, `Fn::ValueOf`, `Fn::ValueOfAll`) look up account state that only the cloud has,
//! so they are refused by name.

use serde_json::Value;

use crate::error::TemplateError;
use crate::eval::{Evaluator, single};
use crate::params::{ParamValue, scalar_text};
use crate::yaml::join;

/// A value inside a rule: a string or a list of strings.
#[derive(Debug, Clone, PartialEq)]
enum RuleValue {
    Text(String),
    List(Vec<String>),
}

/// Checks every rule of `rules` (the `Rules` section, if any). The first failed assertion is
/// [`TemplateError::RuleFailed`].
pub(crate) fn check(ev: &Evaluator<'_>, rules: Option<&Value>) -> Result<(), TemplateError> {
    let Some(rules) = rules else { return Ok(()) };
    let rules = rules
        .as_object()
        .ok_or_else(|| TemplateError::invalid("Rules", "must be a mapping of rule names"))?;
    for (name, rule) in rules {
        let at = format!("Rules.{name}");
        let rule = rule
            .as_object()
            .ok_or_else(|| TemplateError::invalid(&at, "a rule is a mapping"))?;
        for key in rule.keys() {
            if key != "RuleCondition" && key != "Assertions" {
                return Err(TemplateError::invalid(
                    join(&at, key),
                    "a rule has only RuleCondition and Assertions",
                ));
            }
        }
        if let Some(cond) = rule.get("RuleCondition")
            && !truth(ev, cond, &join(&at, "RuleCondition"))?
        {
            continue;
        }
        let assertions = rule
            .get("Assertions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                TemplateError::invalid(&at, "a rule needs a non-empty Assertions list")
            })?;
        for (i, assertion) in assertions.iter().enumerate() {
            let at_i = format!("{at}.Assertions[{i}]");
            let expr = assertion
                .get("Assert")
                .ok_or_else(|| TemplateError::invalid(&at_i, "an assertion needs Assert"))?;
            if !truth(ev, expr, &join(&at_i, "Assert"))? {
                let description = assertion
                    .get("AssertDescription")
                    .and_then(Value::as_str)
                    .unwrap_or("(no AssertDescription)")
                    .trim()
                    .to_string();
                return Err(TemplateError::RuleFailed {
                    rule: name.clone(),
                    description,
                });
            }
        }
    }
    Ok(())
}

fn truth(ev: &Evaluator<'_>, v: &Value, at: &str) -> Result<bool, TemplateError> {
    let (key, arg) = single(v).ok_or_else(|| {
        TemplateError::invalid(
            at,
            "a rule expression is one rule function, such as Fn::Equals",
        )
    })?;
    let at_k = join(at, key);
    let args = |n: usize| -> Result<&Vec<Value>, TemplateError> {
        arg.as_array()
            .filter(|a| a.len() == n)
            .ok_or_else(|| TemplateError::invalid(&at_k, format!("needs a list of {n} items")))
    };
    match key {
        "Fn::Equals" => {
            let items = args(2)?;
            Ok(value(ev, &items[0], &format!("{at_k}[0]"))?
                == value(ev, &items[1], &format!("{at_k}[1]"))?)
        }
        "Fn::Not" => Ok(!truth(ev, &args(1)?[0], &format!("{at_k}[0]"))?),
        "Fn::And" | "Fn::Or" => {
            let items = arg
                .as_array()
                .filter(|a| (2..=10).contains(&a.len()))
                .ok_or_else(|| TemplateError::invalid(&at_k, "needs a list of 2 to 10 rules"))?;
            let mut all = true;
            let mut any = false;
            for (i, item) in items.iter().enumerate() {
                let b = truth(ev, item, &format!("{at_k}[{i}]"))?;
                all &= b;
                any |= b;
            }
            Ok(if key == "Fn::And" { all } else { any })
        }
        "Fn::Contains" => {
            let items = args(2)?;
            let RuleValue::List(list) = value(ev, &items[0], &format!("{at_k}[0]"))? else {
                return Err(TemplateError::invalid(
                    &at_k,
                    "Fn::Contains needs a list of strings first",
                ));
            };
            let RuleValue::Text(needle) = value(ev, &items[1], &format!("{at_k}[1]"))? else {
                return Err(TemplateError::invalid(
                    &at_k,
                    "Fn::Contains needs a string second",
                ));
            };
            Ok(list.contains(&needle))
        }
        "Fn::EachMemberEquals"
        | "Fn::EachMemberIn"
        | "Fn::RefAll"
        | "Fn::ValueOf"
        | "Fn::ValueOfAll" => Err(TemplateError::unsupported(
            format!("rule function {key} (it reads account state only the cloud has)"),
            at,
        )),
        other => Err(TemplateError::invalid(
            at,
            format!("{other} is not a rule function"),
        )),
    }
}

fn value(ev: &Evaluator<'_>, v: &Value, at: &str) -> Result<RuleValue, TemplateError> {
    if let Some(("Ref", name)) = single(v) {
        let name = name
            .as_str()
            .ok_or_else(|| TemplateError::invalid(at, "Ref needs a parameter name"))?;
        return match ev.params.get(name) {
            Some(ParamValue::Str(s)) => Ok(RuleValue::Text(s.clone())),
            Some(ParamValue::List(items)) => Ok(RuleValue::List(items.clone())),
            None => Err(TemplateError::invalid(
                at,
                format!("{name} is not a parameter; rules can only refer to parameters"),
            )),
        };
    }
    if single(v).is_some_and(|(k, _)| k.starts_with("Fn::")) {
        return Err(TemplateError::invalid(
            at,
            "a rule compares parameters and literals; nest rule functions only under Fn::Not, Fn::And and Fn::Or",
        ));
    }
    match v {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                scalar_text(item)
                    .ok_or_else(|| TemplateError::invalid(at, "a list in a rule holds strings"))
            })
            .collect::<Result<_, _>>()
            .map(RuleValue::List),
        other => scalar_text(other)
            .map(RuleValue::Text)
            .ok_or_else(|| TemplateError::invalid(at, "expected a string, a list or a Ref")),
    }
}
