//! SAM `Globals`: the `Function` section merged into every `AWS::Serverless::Function`, with
//! SAM's rules (maps merge key by key, lists add the global items first, anything else: the
//! resource wins). Other Globals sections are refused by name.

use serde_json::{Map, Value};

use crate::error::TemplateError;
use crate::eval::single;

/// The `Globals.Function` mapping, after refusing sections the reader does not evaluate.
pub(crate) fn function_globals(doc: &Value) -> Result<Map<String, Value>, TemplateError> {
    let Some(globals) = doc.get("Globals") else {
        return Ok(Map::new());
    };
    let globals = globals
        .as_object()
        .ok_or_else(|| TemplateError::invalid("Globals", "must be a mapping"))?;
    for key in globals.keys() {
        if key != "Function" {
            return Err(TemplateError::unsupported(
                format!("Globals section {key}"),
                format!("Globals.{key}"),
            ));
        }
    }
    match globals.get("Function") {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(TemplateError::invalid(
            "Globals.Function",
            "must be a mapping",
        )),
    }
}

fn is_intrinsic(v: &Value) -> bool {
    single(v).is_some_and(|(k, _)| k == "Ref" || k.starts_with("Fn::"))
}

/// Merges `global` under `local`.
pub(crate) fn merge(global: &Value, local: &Value) -> Value {
    match (global, local) {
        (Value::Object(g), Value::Object(l)) if !is_intrinsic(global) && !is_intrinsic(local) => {
            let mut out = g.clone();
            for (k, lv) in l {
                let merged = match g.get(k) {
                    Some(gv) => merge(gv, lv),
                    None => lv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(g), Value::Array(l)) => {
            let mut out = g.clone();
            out.extend(l.iter().cloned());
            Value::Array(out)
        }
        _ => local.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_lists_add_and_scalars_are_overridden() {
        let g = json!({"Timeout": 60, "Environment": {"Variables": {"A": "1", "B": "2"}}, "Layers": ["x"]});
        let l = json!({"Timeout": 10, "Environment": {"Variables": {"B": "3"}}, "Layers": ["y"]});
        assert_eq!(
            merge(&g, &l),
            json!({"Timeout": 10, "Environment": {"Variables": {"A": "1", "B": "3"}}, "Layers": ["x", "y"]})
        );
    }

    #[test]
    fn an_intrinsic_replaces_instead_of_merging() {
        let g = json!({"Environment": {"Variables": {"A": "1"}}});
        let l =
            json!({"Environment": {"Fn::If": ["C", {"Variables": {}}, {"Ref": "AWS::NoValue"}]}});
        assert_eq!(merge(&g, &l), l);
    }

    #[test]
    fn other_globals_sections_are_refused() {
        let doc = json!({"Globals": {"Api": {"Cors": "*"}}});
        let err = function_globals(&doc).unwrap_err();
        assert!(
            matches!(err, TemplateError::Unsupported { ref what, .. } if what == "Globals section Api"),
            "{err}"
        );
    }
}
