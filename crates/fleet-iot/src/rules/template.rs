//! Substitution templates: `literal ${expr} literal`, as IoT Core uses them in action parameters
//! (for example a Kinesis partition key `${topic(2)}`). The expression inside `${}` is parsed with
//! the same SQL subset as the statements.

use serde_json::Value;

use super::sql::{EvalContext, Expr, ParseError, eval, parse_expression};

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(Expr),
}

/// A parsed substitution template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse `text`; `${` without a closing `}` is an error.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                ParseError::Syntax(format!("unclosed `${{` in substitution template `{text}`"))
            })?;
            parts.push(Part::Expr(parse_expression(&after[..end])?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Does rendering read payload fields?
    pub fn uses_payload(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Expr(e) if e.uses_payload()))
    }

    /// Render: strings as they are, other values as JSON, Undefined as nothing.
    pub fn render(&self, cx: &EvalContext<'_>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => match eval(e, cx) {
                    Some(Value::String(s)) => out.push_str(&s),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {}
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cx<'a>(doc: Option<&'a Value>) -> EvalContext<'a> {
        EvalContext {
            topic: "robots/rb-7/missions",
            client_id: "rb-7",
            timestamp_ms: 99,
            doc,
        }
    }

    #[test]
    fn renders_topic_clientid_and_fields() {
        let d = json!({"robotId": "rb-7", "n": 3, "o": {"k": "v"}});
        let t = Template::parse("${topic(2)}").expect("parses");
        assert_eq!(t.render(&cx(Some(&d))), "rb-7");
        let t = Template::parse("pk-${clientid()}-${n}-${o.k}").expect("parses");
        assert_eq!(t.render(&cx(Some(&d))), "pk-rb-7-3-v");
        assert!(t.uses_payload());
        let t = Template::parse("${newuuid()}").expect("parses");
        assert_eq!(t.render(&cx(None)).len(), 36);
        let t = Template::parse("static").expect("parses");
        assert_eq!(t.render(&cx(None)), "static");
        let t = Template::parse("${missing}x").expect("parses");
        assert_eq!(t.render(&cx(Some(&d))), "x");
    }

    #[test]
    fn refuses_bad_templates() {
        assert!(matches!(
            Template::parse("${topic(2)"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            Template::parse("${upper(a)}"),
            Err(ParseError::Unsupported(_))
        ));
    }
}
