//! Parameters: a value per parameter from the override, else the default, checked against the
//! parameter's constraints the way CloudFormation checks them.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use crate::error::TemplateError;

/// A resolved parameter value: lists come from `CommaDelimitedList` and `List<...>` types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ParamValue {
    Str(String),
    List(Vec<String>),
}

impl ParamValue {
    pub(crate) fn as_text(&self) -> String {
        match self {
            Self::Str(s) => s.clone(),
            Self::List(items) => items.join(","),
        }
    }
}

/// Scalar JSON to the text CloudFormation would see.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Resolves every declared parameter. Overrides for undeclared parameters are refused.
pub(crate) fn resolve(
    declared: Option<&Value>,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, ParamValue>, TemplateError> {
    let empty = serde_json::Map::new();
    let declared = match declared {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(TemplateError::invalid("Parameters", "must be a mapping")),
    };
    if let Some(name) = overrides.keys().find(|k| !declared.contains_key(*k)) {
        return Err(TemplateError::UnknownOverride { name: name.clone() });
    }
    let mut out = BTreeMap::new();
    for (name, decl) in declared {
        let value = resolve_one(name, decl, overrides.get(name))?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn perr(name: &str, detail: impl Into<String>) -> TemplateError {
    TemplateError::Parameter {
        name: name.to_string(),
        detail: detail.into(),
    }
}

fn resolve_one(
    name: &str,
    decl: &Value,
    override_: Option<&String>,
) -> Result<ParamValue, TemplateError> {
    let type_ = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
    if type_.starts_with("AWS::SSM::Parameter") {
        return Err(TemplateError::unsupported(
            format!("parameter type {type_}"),
            format!("Parameters.{name}"),
        ));
    }
    let text = match override_ {
        Some(v) => v.clone(),
        None => match decl.get("Default") {
            Some(d) => match d {
                Value::Array(items) => items
                    .iter()
                    .map(|i| scalar_text(i).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(","),
                other => scalar_text(other)
                    .ok_or_else(|| perr(name, "the Default must be a scalar or a list"))?,
            },
            None => {
                return Err(perr(
                    name,
                    "has no Default and no override was given; pass it as a parameter override",
                ));
            }
        },
    };
    let is_list = type_ == "CommaDelimitedList" || type_.starts_with("List<");
    let items: Vec<String> = if is_list {
        if text.is_empty() {
            Vec::new()
        } else {
            text.split(',').map(|s| s.trim().to_string()).collect()
        }
    } else {
        vec![text.clone()]
    };
    for item in &items {
        check(name, decl, type_, item)?;
    }
    Ok(if is_list {
        ParamValue::List(items)
    } else {
        ParamValue::Str(text)
    })
}

fn check(name: &str, decl: &Value, type_: &str, value: &str) -> Result<(), TemplateError> {
    let numeric = type_ == "Number" || type_ == "List<Number>";
    if numeric && value.parse::<f64>().is_err() {
        return Err(perr(name, format!("{value:?} is not a number")));
    }
    if let Some(Value::Array(allowed)) = decl.get("AllowedValues") {
        let ok = allowed.iter().filter_map(scalar_text).any(|a| {
            a == value
                || (numeric
                    && a.parse::<f64>().ok() == value.parse::<f64>().ok()
                    && a.parse::<f64>().is_ok())
        });
        if !ok {
            let list: Vec<String> = allowed.iter().filter_map(scalar_text).collect();
            return Err(perr(
                name,
                format!("{value:?} is not one of the allowed values {list:?}"),
            ));
        }
    }
    if let Some(pattern) = decl.get("AllowedPattern").and_then(Value::as_str) {
        let re = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| perr(name, format!("AllowedPattern does not compile: {e}")))?;
        if !re.is_match(value) {
            return Err(perr(
                name,
                format!("{value:?} does not match the pattern {pattern}"),
            ));
        }
    }
    let len = value.chars().count() as f64;
    if let Some(min) = decl.get("MinLength").and_then(num)
        && len < min
    {
        return Err(perr(name, format!("{value:?} is shorter than {min}")));
    }
    if let Some(max) = decl.get("MaxLength").and_then(num)
        && len > max
    {
        return Err(perr(name, format!("{value:?} is longer than {max}")));
    }
    if numeric {
        let n: f64 = value.parse().unwrap_or(f64::NAN);
        if let Some(min) = decl.get("MinValue").and_then(num)
            && n < min
        {
            return Err(perr(name, format!("{value} is below the minimum {min}")));
        }
        if let Some(max) = decl.get("MaxValue").and_then(num)
            && n > max
        {
            return Err(perr(name, format!("{value} is above the maximum {max}")));
        }
    }
    Ok(())
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_is_used_and_override_wins() {
        let decl =
            json!({"A": {"Type": "String", "Default": "x"}, "B": {"Type": "Number", "Default": 3}});
        let p = resolve(Some(&decl), &overrides(&[("A", "y")])).unwrap();
        assert_eq!(p["A"], ParamValue::Str("y".into()));
        assert_eq!(p["B"], ParamValue::Str("3".into()));
    }

    #[test]
    fn missing_value_is_an_error() {
        let decl = json!({"A": {"Type": "String"}});
        let err = resolve(Some(&decl), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("no Default"), "{err}");
    }

    #[test]
    fn unknown_override_is_refused() {
        let decl = json!({"A": {"Type": "String", "Default": "x"}});
        let err = resolve(Some(&decl), &overrides(&[("Typo", "1")])).unwrap_err();
        assert!(matches!(err, TemplateError::UnknownOverride { name } if name == "Typo"));
    }

    #[test]
    fn allowed_values_are_enforced() {
        let decl = json!({"M": {"Type": "String", "Default": "ON_DEMAND", "AllowedValues": ["ON_DEMAND", "PROVISIONED"]}});
        assert!(resolve(Some(&decl), &overrides(&[("M", "PROVISIONED")])).is_ok());
        let err = resolve(Some(&decl), &overrides(&[("M", "FAST")])).unwrap_err();
        assert!(err.to_string().contains("allowed values"), "{err}");
    }

    #[test]
    fn numeric_allowed_values_compare_as_numbers() {
        let decl = json!({"Z": {"Type": "Number", "Default": 3, "AllowedValues": [1, 2, 3]}});
        assert!(resolve(Some(&decl), &overrides(&[("Z", "2")])).is_ok());
        assert!(resolve(Some(&decl), &overrides(&[("Z", "4")])).is_err());
    }

    #[test]
    fn min_and_max_value_are_enforced() {
        let decl = json!({"N": {"Type": "Number", "Default": 5, "MinValue": 1, "MaxValue": 10}});
        assert!(resolve(Some(&decl), &overrides(&[("N", "0")])).is_err());
        assert!(resolve(Some(&decl), &overrides(&[("N", "11")])).is_err());
        assert!(resolve(Some(&decl), &overrides(&[("N", "abc")])).is_err());
        assert!(resolve(Some(&decl), &overrides(&[("N", "10")])).is_ok());
    }

    #[test]
    fn pattern_and_length_are_enforced() {
        let decl = json!({"S": {"Type": "String", "Default": "", "AllowedPattern": "[a-z_]*", "MaxLength": 4}});
        assert!(resolve(Some(&decl), &BTreeMap::new()).is_ok());
        assert!(resolve(Some(&decl), &overrides(&[("S", "a-b")])).is_err());
        assert!(resolve(Some(&decl), &overrides(&[("S", "abcde")])).is_err());
    }

    #[test]
    fn comma_delimited_list_splits() {
        let decl = json!({"L": {"Type": "CommaDelimitedList", "Default": "a, b,c"}});
        let p = resolve(Some(&decl), &BTreeMap::new()).unwrap();
        assert_eq!(
            p["L"],
            ParamValue::List(vec!["a".into(), "b".into(), "c".into()])
        );
    }

    #[test]
    fn ssm_parameter_types_are_refused() {
        let decl = json!({"P": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/x"}});
        let err = resolve(Some(&decl), &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, TemplateError::Unsupported { .. }), "{err}");
    }
}
