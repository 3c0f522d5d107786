//! The JSONPath of Amazon States Language, as far as the runner needs it: reference paths
//! (`$`, `$.a.b`, `$.a[0]`, `$['a']`), the context object (`$$.Map.Item.Index`), and payload
//! templates (`"key.$": path`). Intrinsic functions (`States.Format(...)`) and filters are
//! outside the subset and refused by name when the definition is loaded.

use serde_json::{Map, Value};

use super::AslError;

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
}

/// A parsed reference path: from the input (`$`) or the context object (`$$`).
#[derive(Debug, Clone, PartialEq)]
pub struct RefPath {
    context: bool,
    steps: Vec<Step>,
    text: String,
}

impl RefPath {
    /// Parses `text`, or says what is outside the subset.
    pub fn parse(text: &str, at: &str) -> Result<RefPath, AslError> {
        let bad = |why: &str| AslError::Definition {
            at: at.to_string(),
            problem: format!("path {text:?}: {why}"),
        };
        if text.starts_with("States.") {
            return Err(AslError::Unsupported {
                at: at.to_string(),
                what: format!(
                    "intrinsic function {}",
                    text.split('(').next().unwrap_or(text)
                ),
            });
        }
        let (context, mut rest) = if let Some(r) = text.strip_prefix("$$") {
            (true, r)
        } else if let Some(r) = text.strip_prefix('$') {
            (false, r)
        } else {
            return Err(bad("must start with $ or $$"));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty() || name == "*" || name.starts_with('.') {
                    return Err(bad(
                        "wildcards and deep scans are outside the runner's subset",
                    ));
                }
                steps.push(Step::Field(name.to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix("['") {
                let end = r.find("']").ok_or_else(|| bad("unclosed ['"))?;
                steps.push(Step::Field(r[..end].to_string()));
                rest = &r[end + 2..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| bad("unclosed ["))?;
                let index: usize = r[..end].parse().map_err(|_| {
                    bad("only [N] array indexes; filters and slices are outside the subset")
                })?;
                steps.push(Step::Index(index));
                rest = &r[end + 1..];
            } else {
                return Err(bad("expected . or ["));
            }
        }
        Ok(RefPath {
            context,
            steps,
            text: text.to_string(),
        })
    }

    /// The path as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value at this path, or `None` when it does not exist.
    pub fn get<'a>(&self, input: &'a Value, context: &'a Value) -> Option<&'a Value> {
        let mut v = if self.context { context } else { input };
        for s in &self.steps {
            v = match s {
                Step::Field(f) => v.get(f)?,
                Step::Index(i) => v.get(*i)?,
            };
        }
        Some(v)
    }

    /// Like [`RefPath::get`], failing with `States.Runtime` as Step Functions does when the path
    /// matches nothing.
    pub fn require(&self, input: &Value, context: &Value, at: &str) -> Result<Value, AslError> {
        self.get(input, context).cloned().ok_or_else(|| {
            AslError::runtime(format!(
                "state {at}: the JSONPath {} could not be found in the input {}",
                self.text,
                super::clip(input)
            ))
        })
    }

    /// Writes `value` at this path inside `input` (ResultPath), creating objects on the way.
    pub fn set(&self, input: Value, value: Value, at: &str) -> Result<Value, AslError> {
        if self.context {
            return Err(AslError::runtime(format!(
                "state {at}: ResultPath cannot write the context object"
            )));
        }
        let mut root = input;
        let mut slot = &mut root;
        for s in &self.steps {
            match s {
                Step::Field(f) => {
                    if !slot.is_object() {
                        if slot.is_null() {
                            *slot = Value::Object(Map::new());
                        } else {
                            return Err(AslError::runtime(format!(
                                "state {at}: ResultPath {} cannot be applied: {} is not an object",
                                self.text,
                                super::clip(slot)
                            )));
                        }
                    }
                    let Value::Object(m) = slot else {
                        unreachable!("made an object above")
                    };
                    slot = m.entry(f.clone()).or_insert(Value::Null);
                }
                Step::Index(i) => {
                    slot = slot.get_mut(*i).ok_or_else(|| {
                        AslError::runtime(format!(
                            "state {at}: ResultPath {}: no element {i}",
                            self.text
                        ))
                    })?;
                }
            }
        }
        *slot = value;
        Ok(root)
    }
}

/// A payload template (`Parameters`, `ItemSelector`, `ResultSelector`, `BatchInput`), checked
/// at load time: every `"key.$"` value is a reference path of the subset.
pub fn check_template(t: &Value, at: &str) -> Result<(), AslError> {
    match t {
        Value::Object(m) => {
            for (k, v) in m {
                if k.ends_with(".$") {
                    let path = v.as_str().ok_or_else(|| AslError::Definition {
                        at: at.to_string(),
                        problem: format!("{k} must be a string path"),
                    })?;
                    RefPath::parse(path, &format!("{at}.{k}"))?;
                } else {
                    check_template(v, at)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|i| check_template(i, at)),
        _ => Ok(()),
    }
}

/// Fills a payload template from `input` and `context`.
pub fn apply_template(
    t: &Value,
    input: &Value,
    context: &Value,
    at: &str,
) -> Result<Value, AslError> {
    Ok(match t {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                if let Some(name) = k.strip_suffix(".$") {
                    let path = RefPath::parse(v.as_str().unwrap_or_default(), at)?;
                    out.insert(name.to_string(), path.require(input, context, at)?);
                } else {
                    out.insert(k.clone(), apply_template(v, input, context, at)?);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| apply_template(i, input, context, at))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_read_the_input_and_the_context() {
        let input = json!({"a": {"b": [10, {"c": "x"}]}, "odd key": 1});
        let ctx = json!({"Map": {"Item": {"Index": 7}}});
        let get = |p: &str| RefPath::parse(p, "S").unwrap().get(&input, &ctx).cloned();
        assert_eq!(get("$"), Some(input.clone()));
        assert_eq!(get("$.a.b[1].c"), Some(json!("x")));
        assert_eq!(get("$['odd key']"), Some(json!(1)));
        assert_eq!(get("$$.Map.Item.Index"), Some(json!(7)));
        assert_eq!(get("$.missing"), None);
    }

    #[test]
    fn result_paths_write_into_the_input() {
        let p = RefPath::parse("$.out.result", "S").unwrap();
        let v = p.set(json!({"keep": 1}), json!(2), "S").unwrap();
        assert_eq!(v, json!({"keep": 1, "out": {"result": 2}}));
        let root = RefPath::parse("$", "S").unwrap();
        assert_eq!(root.set(json!({"a": 1}), json!(3), "S").unwrap(), json!(3));
        let err = p.set(json!({"out": 5}), json!(1), "S").unwrap_err();
        assert!(err.to_string().contains("not an object"), "{err}");
    }

    #[test]
    fn what_is_outside_the_subset_is_named() {
        let e = RefPath::parse("States.Format('{}', $.a)", "S").unwrap_err();
        assert!(
            e.to_string().contains("intrinsic function States.Format"),
            "{e}"
        );
        let e = RefPath::parse("$.items[?(@.a)]", "S").unwrap_err();
        assert!(e.to_string().contains("filters"), "{e}");
        let e = RefPath::parse("$..a", "S").unwrap_err();
        assert!(e.to_string().contains("deep scans"), "{e}");
    }

    #[test]
    fn templates_fill_from_the_input_and_fail_on_a_missing_path() {
        let t = json!({"jobId.$": "$.job", "fixed": [1, {"i.$": "$$.Map.Item.Index"}]});
        check_template(&t, "S").unwrap();
        let v = apply_template(
            &t,
            &json!({"job": "j1"}),
            &json!({"Map": {"Item": {"Index": 3}}}),
            "S",
        )
        .unwrap();
        assert_eq!(v, json!({"jobId": "j1", "fixed": [1, {"i": 3}]}));
        let ctx = json!({"Map": {"Item": {"Index": 0}}});
        let e = apply_template(&t, &json!({}), &ctx, "S").unwrap_err();
        assert!(e.to_string().contains("States.Runtime"), "{e}");
        assert!(e.to_string().contains("$.job"), "{e}");
    }
}
