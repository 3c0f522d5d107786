//! YAML to JSON, with CloudFormation's short tags turned into their long form:
//! `!Ref X` becomes `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`,
//! `!Sub s` becomes `{"Fn::Sub": s}`, and so on. Unknown tags are refused by name.

use serde_json::{Map, Number, Value};
use serde_yaml_ng::Value as Yaml;

use crate::error::TemplateError;

/// Short tags the reader understands, mapped to their long form key.
const TAGS: &[(&str, &str)] = &[
    ("Ref", "Ref"),
    ("Condition", "Condition"),
    ("GetAtt", "Fn::GetAtt"),
    ("Sub", "Fn::Sub"),
    ("If", "Fn::If"),
    ("Join", "Fn::Join"),
    ("Select", "Fn::Select"),
    ("Split", "Fn::Split"),
    ("Equals", "Fn::Equals"),
    ("And", "Fn::And"),
    ("Or", "Fn::Or"),
    ("Not", "Fn::Not"),
    ("Contains", "Fn::Contains"),
    // Parsed so that the refusal names them; the evaluator refuses them.
    ("FindInMap", "Fn::FindInMap"),
    ("Base64", "Fn::Base64"),
    ("Cidr", "Fn::Cidr"),
    ("GetAZs", "Fn::GetAZs"),
    ("ImportValue", "Fn::ImportValue"),
    ("Transform", "Fn::Transform"),
    ("ToJsonString", "Fn::ToJsonString"),
    ("Length", "Fn::Length"),
    ("EachMemberEquals", "Fn::EachMemberEquals"),
    ("EachMemberIn", "Fn::EachMemberIn"),
    ("RefAll", "Fn::RefAll"),
    ("ValueOf", "Fn::ValueOf"),
    ("ValueOfAll", "Fn::ValueOfAll"),
];

/// Parses template text into JSON with long-form intrinsics.
pub fn parse(text: &str) -> Result<Value, TemplateError> {
    let yaml: Yaml = serde_yaml_ng::from_str(text)?;
    convert(&yaml, "")
}

fn convert(v: &Yaml, at: &str) -> Result<Value, TemplateError> {
    Ok(match v {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => number(n, at)?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = scalar_key(k, at)?;
                let child = join(at, &key);
                let value = convert(v, &child)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let raw = tagged.tag.to_string();
            let name = raw.trim_start_matches('!');
            let Some((_, long)) = TAGS.iter().find(|(short, _)| *short == name) else {
                return Err(TemplateError::unsupported(format!("YAML tag !{name}"), at));
            };
            let inner = convert(&tagged.value, at)?;
            let inner = if *long == "Fn::GetAtt" {
                get_att_short(inner, at)?
            } else {
                inner
            };
            let mut out = Map::new();
            out.insert((*long).to_string(), inner);
            Value::Object(out)
        }
    })
}

/// `!GetAtt A.B.C` is `["A", "B.C"]`; the list form is kept as it is.
fn get_att_short(inner: Value, at: &str) -> Result<Value, TemplateError> {
    match inner {
        Value::String(s) => match s.split_once('.') {
            Some((res, attr)) => Ok(Value::Array(vec![res.into(), attr.into()])),
            None => Err(TemplateError::invalid(
                at,
                format!("!GetAtt {s} needs the form Resource.Attribute"),
            )),
        },
        other => Ok(other),
    }
}

fn number(n: &serde_yaml_ng::Number, at: &str) -> Result<Value, TemplateError> {
    if let Some(i) = n.as_i64() {
        return Ok(Value::Number(i.into()));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Value::Number(u.into()));
    }
    n.as_f64()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| TemplateError::invalid(at, format!("{n} is not a finite number")))
}

fn scalar_key(k: &Yaml, at: &str) -> Result<String, TemplateError> {
    match k {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Number(n) => Ok(n.to_string()),
        _ => Err(TemplateError::invalid(at, "mapping keys must be scalars")),
    }
}

pub(crate) fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_tags_become_long_form() {
        let v = parse(
            "a: !Ref X\nb: !GetAtt Res.Arn\nc: !Sub 'x-${AWS::Region}'\nd: !If [C, 1, 2]\ne: !Join ['-', [a, b]]\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "a": {"Ref": "X"},
                "b": {"Fn::GetAtt": ["Res", "Arn"]},
                "c": {"Fn::Sub": "x-${AWS::Region}"},
                "d": {"Fn::If": ["C", 1, 2]},
                "e": {"Fn::Join": ["-", ["a", "b"]]},
            })
        );
    }

    #[test]
    fn get_att_keeps_dots_after_the_first() {
        let v = parse("a: !GetAtt Domain.Endpoints.vpc\n").unwrap();
        assert_eq!(v, json!({"a": {"Fn::GetAtt": ["Domain", "Endpoints.vpc"]}}));
    }

    #[test]
    fn get_att_without_attribute_is_invalid() {
        let err = parse("a: !GetAtt Domain\n").unwrap_err();
        assert!(matches!(err, TemplateError::Invalid { .. }), "{err}");
    }

    #[test]
    fn unknown_tag_is_refused_by_name() {
        let err = parse("a:\n  b: !Frobnicate x\n").unwrap_err();
        match err {
            TemplateError::Unsupported { what, at } => {
                assert_eq!(what, "YAML tag !Frobnicate");
                assert_eq!(at, "a.b");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn nested_tags_convert() {
        let v = parse("a: !Sub ['${X}', {X: !Ref Y}]\n").unwrap();
        assert_eq!(v, json!({"a": {"Fn::Sub": ["${X}", {"X": {"Ref": "Y"}}]}}));
    }
}
