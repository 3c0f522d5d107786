//! [`RulesEngine`]: the rules, validated once, and the pure routing of one message.

use std::cell::OnceCell;
use std::collections::HashMap;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;

use super::RuleError;
use super::sql::{EvalContext, ParseError, Statement, condition_holds, parse_statement, project};
use super::template::Template;
use super::topic_matches;

/// The Basic Ingest prefix.
pub const BASIC_INGEST_PREFIX: &str = "$aws/rules/";

/// One topic rule, as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    /// `RuleName` (also the Basic Ingest name).
    pub name: String,
    /// The IoT SQL statement.
    pub sql: String,
    /// `AwsIotSqlVersion`; only `2016-03-23` is accepted (absent is treated as that version).
    pub sql_version: Option<String>,
    /// The actions.
    pub actions: Vec<ActionDef>,
    /// The error action.
    pub error_action: Option<ActionDef>,
    /// `RuleDisabled` negated.
    pub enabled: bool,
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionDef {
    /// Kinesis `PutRecord` (sent batched with PutRecords locally).
    Kinesis {
        /// Stream name, as found in [`Sinks::streams`].
        stream_name: String,
        /// Partition-key substitution template; absent means `${newuuid()}` as in IoT Core.
        partition_key: Option<String>,
    },
    /// SQS `SendMessage`.
    Sqs {
        /// Queue name, as found in [`Sinks::queues`].
        queue_name: String,
        /// Base64-encode the message body.
        use_base64: bool,
    },
}

/// Where the actions' names resolve: stream name → stream name or ARN (what the Kinesis API
/// should be given), queue name → queue URL.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    /// Kinesis streams.
    pub streams: HashMap<String, String>,
    /// SQS queues.
    pub queues: HashMap<String, String>,
}

/// One send the runner must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A Kinesis record.
    Kinesis {
        /// Stream name or ARN (from [`Sinks`]).
        stream: String,
        /// Rendered partition key.
        partition_key: String,
        /// Record data.
        data: Bytes,
    },
    /// An SQS message.
    Sqs {
        /// Queue URL (from [`Sinks`]).
        queue_url: String,
        /// Message body (base64 when the action says so).
        body: String,
    },
}

impl Delivery {
    /// IoT Core's name of the action kind, for error messages.
    pub fn action_name(&self) -> &'static str {
        match self {
            Delivery::Kinesis { .. } => "KinesisAction",
            Delivery::Sqs { .. } => "SqsAction",
        }
    }

    /// The stream or queue.
    pub fn resource(&self) -> &str {
        match self {
            Delivery::Kinesis { stream, .. } => stream,
            Delivery::Sqs { queue_url, .. } => queue_url,
        }
    }
}

/// The result of one rule matching one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Index of the rule in [`RulesEngine::rule_names`].
    pub rule: usize,
    /// The rule's name.
    pub rule_name: String,
    /// The SELECT result (the original bytes for `SELECT *`).
    pub payload: Bytes,
    /// One delivery per action.
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone)]
enum Action {
    Kinesis { stream: String, key: Template },
    Sqs { queue_url: String, use_base64: bool },
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    statement: Statement,
    needs_doc: bool,
    actions: Vec<Action>,
    error_action: Option<Action>,
    enabled: bool,
}

/// The loaded rules. Build with [`RulesEngine::new`], which refuses anything it cannot run.
#[derive(Debug, Clone)]
pub struct RulesEngine {
    rules: Vec<Rule>,
    by_name: HashMap<String, usize>,
    select_failures: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn rule_err(rule: &str, e: ParseError) -> RuleError {
    match e {
        ParseError::Unsupported(feature) => RuleError::Unsupported {
            rule: rule.to_owned(),
            feature,
        },
        ParseError::Syntax(detail) => RuleError::Syntax {
            rule: rule.to_owned(),
            detail,
        },
    }
}

fn compile_action(rule: &str, a: &ActionDef, sinks: &Sinks) -> Result<Action, RuleError> {
    match a {
        ActionDef::Kinesis {
            stream_name,
            partition_key,
        } => {
            let stream = sinks
                .streams
                .get(stream_name)
                .ok_or_else(|| RuleError::UnknownSink {
                    rule: rule.to_owned(),
                    kind: "kinesis stream",
                    name: stream_name.clone(),
                })?
                .clone();
            let key = Template::parse(partition_key.as_deref().unwrap_or("${newuuid()}"))
                .map_err(|e| rule_err(rule, e))?;
            Ok(Action::Kinesis { stream, key })
        }
        ActionDef::Sqs {
            queue_name,
            use_base64,
        } => {
            let queue_url = sinks
                .queues
                .get(queue_name)
                .ok_or_else(|| RuleError::UnknownSink {
                    rule: rule.to_owned(),
                    kind: "sqs queue",
                    name: queue_name.clone(),
                })?
                .clone();
            Ok(Action::Sqs {
                queue_url,
                use_base64: *use_base64,
            })
        }
    }
}

fn deliver(action: &Action, payload: &Bytes, cx: &EvalContext<'_>) -> Delivery {
    match action {
        Action::Kinesis { stream, key } => Delivery::Kinesis {
            stream: stream.clone(),
            partition_key: key.render(cx),
            data: payload.clone(),
        },
        Action::Sqs {
            queue_url,
            use_base64,
        } => Delivery::Sqs {
            queue_url: queue_url.clone(),
            body: if *use_base64 {
                base64::engine::general_purpose::STANDARD.encode(payload)
            } else {
                String::from_utf8_lossy(payload).into_owned()
            },
        },
    }
}

/// Split a Basic Ingest topic into (rule name, topic the rule sees).
pub fn basic_ingest(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(BASIC_INGEST_PREFIX)?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

impl RulesEngine {
    /// Validate and load the rules: every statement parses within the subset, every action's
    /// stream or queue is in `sinks`, every name is unique. Disabled rules are validated too.
    pub fn new(rules: Vec<RuleDef>, sinks: &Sinks) -> Result<Self, RuleError> {
        let mut out = Vec::with_capacity(rules.len());
        let mut by_name = HashMap::new();
        for def in rules {
            if let Some(v) = &def.sql_version
                && v != "2016-03-23"
            {
                return Err(RuleError::Unsupported {
                    rule: def.name.clone(),
                    feature: format!("AwsIotSqlVersion `{v}` (only 2016-03-23 is supported)"),
                });
            }
            let statement = parse_statement(&def.sql).map_err(|e| rule_err(&def.name, e))?;
            let actions = def
                .actions
                .iter()
                .map(|a| compile_action(&def.name, a, sinks))
                .collect::<Result<Vec<_>, _>>()?;
            let error_action = def
                .error_action
                .as_ref()
                .map(|a| compile_action(&def.name, a, sinks))
                .transpose()?;
            let needs_doc = statement.needs_document()
                || actions
                    .iter()
                    .any(|a| matches!(a, Action::Kinesis { key, .. } if key.uses_payload()));
            if by_name.insert(def.name.clone(), out.len()).is_some() {
                return Err(RuleError::Duplicate { rule: def.name });
            }
            out.push(Rule {
                name: def.name,
                statement,
                needs_doc,
                actions,
                error_action,
                enabled: def.enabled,
            });
        }
        Ok(Self {
            rules: out,
            by_name,
            select_failures: Default::default(),
        })
    }

    /// Rule names, in load order (the index is [`Routed::rule`]).
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// Messages a rule matched but whose SELECT could not be built (fields next to `*` over a
    /// payload that is not a JSON object); IoT Core fails the rule for those, and so does the
    /// engine: nothing is sent.
    pub fn select_failures(&self) -> u64 {
        self.select_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Is `name` a loaded, enabled rule?
    pub fn has_enabled_rule(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&i| self.rules[i].enabled)
    }

    /// The MQTT filters a subscriber needs: every enabled rule's FROM, plus `$aws/rules/#` for
    /// Basic Ingest (which also catches unknown rule names, to count them), made disjoint with
    /// [`super::disjoint_filters`] so that no message is delivered twice.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![format!("{BASIC_INGEST_PREFIX}#")];
        for r in self.rules.iter().filter(|r| r.enabled) {
            out.push(r.statement.from.clone());
        }
        super::disjoint_filters(&out)
    }

    /// Route one message: the rules that take it and what each must send. Pure apart from
    /// `newuuid()`; `timestamp()` is the current time.
    pub fn route(&self, topic: &str, payload: &Bytes, client_id: &str) -> Vec<Routed> {
        self.route_at(topic, payload, client_id, crate::presence::now_ms())
    }

    /// [`RulesEngine::route`] with an explicit arrival time.
    pub fn route_at(
        &self,
        topic: &str,
        payload: &Bytes,
        client_id: &str,
        timestamp_ms: u64,
    ) -> Vec<Routed> {
        let doc: OnceCell<Option<Value>> = OnceCell::new();
        let parse = || serde_json::from_slice::<Value>(payload).ok();
        let mut out = Vec::new();
        if let Some((name, rest)) = basic_ingest(topic) {
            if let Some(&i) = self.by_name.get(name)
                && self.rules[i].enabled
                && let Some(r) = self.apply(i, rest, payload, client_id, timestamp_ms, &doc, &parse)
            {
                out.push(r);
            }
            return out;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.enabled
                && topic_matches(&rule.statement.from, topic)
                && let Some(r) =
                    self.apply(i, topic, payload, client_id, timestamp_ms, &doc, &parse)
            {
                out.push(r);
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        i: usize,
        topic: &str,
        payload: &Bytes,
        client_id: &str,
        timestamp_ms: u64,
        doc: &OnceCell<Option<Value>>,
        parse: &dyn Fn() -> Option<Value>,
    ) -> Option<Routed> {
        let rule = &self.rules[i];
        let doc = if rule.needs_doc {
            doc.get_or_init(parse).as_ref()
        } else {
            None
        };
        let cx = EvalContext {
            topic,
            client_id,
            timestamp_ms,
            doc,
        };
        if !condition_holds(&rule.statement, &cx) {
            return None;
        }
        let out = if rule.statement.is_star_only() {
            payload.clone()
        } else {
            // A `*` next to other fields over a binary payload cannot be built: IoT Core
            // fails the rule for that message; so do we (the message is not sent).
            let Some(v) = project(&rule.statement, &cx) else {
                self.select_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(rule = %rule.name, topic, "SELECT cannot be built over a binary payload; message not sent");
                return None;
            };
            Bytes::from(serde_json::to_vec(&v).ok()?)
        };
        let deliveries = rule.actions.iter().map(|a| deliver(a, &out, &cx)).collect();
        Some(Routed {
            rule: i,
            rule_name: rule.name.clone(),
            payload: out,
            deliveries,
        })
    }

    /// The delivery of IoT Core's error message for a failed action of rule `rule`, or `None`
    /// when the rule has no error action.
    pub fn error_delivery(
        &self,
        rule: usize,
        topic: &str,
        client_id: &str,
        original: &[u8],
        failures: &[(Delivery, String)],
    ) -> Option<Delivery> {
        let r = self.rules.get(rule)?;
        let action = r.error_action.as_ref()?;
        let message = error_message(&r.name, topic, client_id, original, failures);
        let body = Bytes::from(message.to_string());
        let cx = EvalContext {
            topic: basic_ingest(topic).map_or(topic, |(_, rest)| rest),
            client_id,
            timestamp_ms: crate::presence::now_ms(),
            doc: Some(&message),
        };
        Some(deliver(action, &body, &cx))
    }
}

/// IoT Core's rule error message.
pub fn error_message(
    rule: &str,
    topic: &str,
    client_id: &str,
    original: &[u8],
    failures: &[(Delivery, String)],
) -> Value {
    serde_json::json!({
        "ruleName": rule,
        "topic": topic,
        "cloudwatchTraceId": uuid::Uuid::new_v4().to_string(),
        "clientId": client_id,
        "base64OriginalPayload": base64::engine::general_purpose::STANDARD.encode(original),
        "failures": failures.iter().map(|(d, msg)| serde_json::json!({
            "failedAction": d.action_name(),
            "failedResource": d.resource(),
            "errorMessage": msg,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sinks() -> Sinks {
        Sinks {
            streams: [("missions", "missions-s"), ("shadows", "shadows-s")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            queues: [("rejects", "http://q/rejects")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
        }
    }

    fn kin(stream: &str, key: &str) -> ActionDef {
        ActionDef::Kinesis {
            stream_name: stream.into(),
            partition_key: Some(key.into()),
        }
    }

    fn rule(name: &str, sql: &str, actions: Vec<ActionDef>) -> RuleDef {
        RuleDef {
            name: name.into(),
            sql: sql.into(),
            sql_version: Some("2016-03-23".into()),
            actions,
            error_action: Some(ActionDef::Sqs {
                queue_name: "rejects".into(),
                use_base64: false,
            }),
            enabled: true,
        }
    }

    fn engine() -> RulesEngine {
        RulesEngine::new(
            vec![
                rule(
                    "mission_reports",
                    "SELECT * FROM 'robots/+/missions'",
                    vec![kin("missions", "${topic(2)}")],
                ),
                rule(
                    "shadows",
                    "SELECT *, topic(3) AS thingName FROM '$aws/things/+/shadow/update/documents'",
                    vec![kin("shadows", "${topic(3)}")],
                ),
                rule(
                    "hot",
                    "SELECT robotId, battery.end AS batteryEnd FROM '#' WHERE battery.end < 20",
                    vec![ActionDef::Sqs {
                        queue_name: "rejects".into(),
                        use_base64: true,
                    }],
                ),
            ],
            &sinks(),
        )
        .expect("rules load")
    }

    fn b(v: &Value) -> Bytes {
        Bytes::from(v.to_string())
    }

    #[test]
    fn basic_ingest_goes_to_the_named_rule_only_and_counts_topic_after_prefix() {
        let e = engine();
        let payload = b(&json!({"robotId": "rb-1", "battery": {"end": 5}}));
        let out = e.route(
            "$aws/rules/mission_reports/robots/rb-1/missions",
            &payload,
            "rb-1",
        );
        assert_eq!(
            out.len(),
            1,
            "the '#' rule must not see basic ingest: {out:?}"
        );
        assert_eq!(out[0].rule_name, "mission_reports");
        assert_eq!(out[0].payload, payload);
        match &out[0].deliveries[0] {
            Delivery::Kinesis {
                stream,
                partition_key,
                ..
            } => {
                assert_eq!(stream, "missions-s");
                assert_eq!(partition_key, "rb-1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn basic_ingest_ignores_from_but_applies_where() {
        let e = RulesEngine::new(
            vec![rule(
                "r",
                "SELECT * FROM 'never/matches' WHERE ok = true",
                vec![kin("missions", "${topic(1)}")],
            )],
            &sinks(),
        )
        .expect("loads");
        let yes = e.route("$aws/rules/r/a/b", &b(&json!({"ok": true})), "c");
        assert_eq!(yes.len(), 1);
        assert!(
            matches!(&yes[0].deliveries[0], Delivery::Kinesis { partition_key, .. } if partition_key == "a")
        );
        assert!(
            e.route("$aws/rules/r/a/b", &b(&json!({"ok": false})), "c")
                .is_empty()
        );
        assert!(
            e.route("$aws/rules/unknown/a/b", &b(&json!({"ok": true})), "c")
                .is_empty()
        );
        assert!(
            e.route("never/matches", &b(&json!({"ok": true})), "c")
                .len()
                == 1
        );
    }

    #[test]
    fn shadow_documents_get_the_thing_name() {
        let e = engine();
        let doc = json!({"current": {"version": 2}, "timestamp": 1});
        let out = e.route("$aws/things/rb-2/shadow/update/documents", &b(&doc), "rb-2");
        assert_eq!(out.len(), 1);
        let v: Value = serde_json::from_slice(&out[0].payload).expect("json");
        assert_eq!(v["thingName"], "rb-2");
        assert_eq!(v["current"]["version"], 2);
    }

    #[test]
    fn where_filters_and_projection_with_base64_sqs() {
        let e = engine();
        let out = e.route(
            "robots/rb-3/telemetry",
            &b(&json!({"robotId": "rb-3", "battery": {"end": 10}})),
            "rb-3",
        );
        assert_eq!(out.len(), 1);
        match &out[0].deliveries[0] {
            Delivery::Sqs { queue_url, body } => {
                assert_eq!(queue_url, "http://q/rejects");
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .expect("b64");
                let v: Value = serde_json::from_slice(&raw).expect("json");
                assert_eq!(v, json!({"robotId": "rb-3", "batteryEnd": 10}));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            e.route(
                "robots/rb-3/telemetry",
                &b(&json!({"battery": {"end": 50}})),
                "rb-3"
            )
            .is_empty()
        );
    }

    #[test]
    fn binary_payload_passes_through_select_star() {
        let e = engine();
        let raw = Bytes::from_static(b"\x00\x01not json{");
        let out = e.route(
            "$aws/rules/mission_reports/robots/rb-1/missions",
            &raw,
            "rb-1",
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, raw);
        // `*, x AS y` over binary cannot be built
        assert!(
            e.route("$aws/things/rb-2/shadow/update/documents", &raw, "rb-2")
                .is_empty()
        );
    }

    fn load_err(sql: &str) -> RuleError {
        RulesEngine::new(vec![rule("my_rule", sql, vec![])], &sinks()).expect_err("must refuse")
    }

    #[test]
    fn refusals_name_the_rule_and_the_feature() {
        for (sql, feature) in [
            ("SELECT upper(robotId) AS r FROM 'a'", "upper"),
            ("SELECT CASE a WHEN 1 THEN 2 END AS x FROM 'a'", "CASE"),
            ("SELECT * FROM 'a' WHERE a IN (1)", "IN"),
            ("SELECT a[1] AS x FROM 'a'", "array index"),
        ] {
            let e = load_err(sql);
            let text = e.to_string();
            assert!(
                matches!(&e, RuleError::Unsupported { rule, .. } if rule == "my_rule"),
                "{e:?}"
            );
            assert!(text.contains("my_rule") && text.contains(feature), "{text}");
        }
        assert!(matches!(load_err("SELECT FROM"), RuleError::Syntax { .. }));
        let mut r = rule("v", "SELECT * FROM 'a'", vec![]);
        r.sql_version = Some("2015-10-08".into());
        let e = RulesEngine::new(vec![r], &sinks()).expect_err("refused");
        assert!(e.to_string().contains("2015-10-08"));
    }

    #[test]
    fn unknown_sinks_and_duplicates_are_refused() {
        let e = RulesEngine::new(
            vec![rule("r", "SELECT * FROM 'a'", vec![kin("nope", "x")])],
            &sinks(),
        )
        .expect_err("refused");
        assert!(matches!(e, RuleError::UnknownSink { ref name, .. } if name == "nope"));
        let e = RulesEngine::new(
            vec![
                rule("r", "SELECT * FROM 'a'", vec![]),
                rule("r", "SELECT * FROM 'b'", vec![]),
            ],
            &sinks(),
        )
        .expect_err("refused");
        assert!(matches!(e, RuleError::Duplicate { .. }));
    }

    #[test]
    fn disabled_rules_route_nothing() {
        let mut r = rule("off", "SELECT * FROM 'a'", vec![]);
        r.enabled = false;
        let e = RulesEngine::new(vec![r], &sinks()).expect("loads");
        assert!(e.route("a", &Bytes::from_static(b"{}"), "c").is_empty());
        assert!(
            e.route("$aws/rules/off/a", &Bytes::from_static(b"{}"), "c")
                .is_empty()
        );
        assert!(!e.has_enabled_rule("off"));
    }

    #[test]
    fn error_message_has_iot_core_shape() {
        let e = engine();
        let failed = Delivery::Kinesis {
            stream: "missions-s".into(),
            partition_key: "rb-1".into(),
            data: Bytes::from_static(b"x"),
        };
        let d = e
            .error_delivery(
                0,
                "$aws/rules/mission_reports/robots/rb-1/missions",
                "rb-1",
                b"x",
                &[(failed, "boom".into())],
            )
            .expect("has error action");
        let Delivery::Sqs { body, queue_url } = d else {
            panic!("sqs expected")
        };
        assert_eq!(queue_url, "http://q/rejects");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["ruleName"], "mission_reports");
        assert_eq!(v["clientId"], "rb-1");
        assert_eq!(v["base64OriginalPayload"], "eA==");
        assert_eq!(v["failures"][0]["failedAction"], "KinesisAction");
        assert_eq!(v["failures"][0]["failedResource"], "missions-s");
        assert_eq!(v["failures"][0]["errorMessage"], "boom");
    }

    #[test]
    fn subscriptions_cover_basic_ingest_and_from_filters() {
        let s = engine().subscriptions();
        // 'robots/+/missions' is inside '#': subscribing to both would deliver twice
        assert_eq!(
            s,
            ["$aws/rules/#", "#", "$aws/things/+/shadow/update/documents"]
        );
    }
}
