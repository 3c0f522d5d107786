//! From the template reader's [`TopicRuleSpec`] to the engine's [`RuleDef`] and [`Sinks`].

use fleet_template::{RuleAction, TopicRuleSpec};

use super::RuleError;
use super::engine::{ActionDef, RuleDef, Sinks};

fn action(rule: &str, a: &RuleAction) -> Result<ActionDef, RuleError> {
    match a {
        RuleAction::Kinesis {
            stream_name,
            partition_key_template,
            ..
        } => Ok(ActionDef::Kinesis {
            stream_name: stream_name.clone(),
            partition_key: partition_key_template.clone(),
        }),
        RuleAction::Sqs {
            queue_name,
            use_base64,
            ..
        } => Ok(ActionDef::Sqs {
            queue_name: queue_name.clone(),
            use_base64: *use_base64,
        }),
        other => Err(RuleError::Unsupported {
            rule: rule.to_owned(),
            feature: format!("the rule action {other:?}"),
        }),
    }
}

impl RuleDef {
    /// The engine's view of one template rule. Actions other than Kinesis and SQS are refused.
    pub fn from_spec(spec: &TopicRuleSpec) -> Result<Self, RuleError> {
        let name = spec.rule_name.clone();
        Ok(Self {
            actions: spec
                .actions
                .iter()
                .map(|a| action(&name, a))
                .collect::<Result<_, _>>()?,
            error_action: spec
                .error_action
                .as_ref()
                .map(|a| action(&name, a))
                .transpose()?,
            sql: spec.sql.clone(),
            sql_version: Some(spec.sql_version.clone()),
            enabled: spec.enabled,
            name,
        })
    }
}

impl Sinks {
    /// Sinks as the evaluated template names them: each Kinesis stream by its (physical) name,
    /// each SQS queue by the URL the template resolved. Use this when the template was evaluated
    /// with a resolver that already knows the local names and URLs; otherwise fill
    /// [`Sinks`] from what provisioning created.
    pub fn from_specs<'a>(specs: impl IntoIterator<Item = &'a TopicRuleSpec>) -> Self {
        let mut sinks = Sinks::default();
        for spec in specs {
            for a in spec.actions.iter().chain(spec.error_action.iter()) {
                match a {
                    RuleAction::Kinesis { stream_name, .. } => {
                        sinks
                            .streams
                            .insert(stream_name.clone(), stream_name.clone());
                    }
                    RuleAction::Sqs {
                        queue_name,
                        queue_url,
                        ..
                    } => {
                        sinks.queues.insert(queue_name.clone(), queue_url.clone());
                    }
                    _ => {}
                }
            }
        }
        sinks
    }
}

/// Load every rule of the template: `RulesEngine::new` over [`RuleDef::from_spec`] of each.
pub fn engine_from_specs<'a>(
    specs: impl IntoIterator<Item = &'a TopicRuleSpec>,
    sinks: &Sinks,
) -> Result<super::RulesEngine, RuleError> {
    let defs = specs
        .into_iter()
        .map(RuleDef::from_spec)
        .collect::<Result<Vec<_>, _>>()?;
    super::RulesEngine::new(defs, sinks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stack() -> fleet_template::Stack {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        fleet_template::load(
            &path,
            &fleet_template::LoadOptions::default().with_parameter(
                "OpenSearchMasterUserArn",
                "arn:aws:iam::123456789012:role/Admin",
            ),
        )
        .expect("the repository's template.yaml loads")
    }

    #[test]
    fn the_repository_template_rules_load_and_route() {
        let stack = stack();
        let rules = stack.topic_rules();
        assert!(!rules.is_empty(), "template.yaml declares topic rules");
        let sinks = Sinks::from_specs(rules.iter().copied());
        let engine = engine_from_specs(rules.iter().copied(), &sinks)
            .expect("every template rule is within the supported subset");
        let mission = engine
            .rule_names()
            .into_iter()
            .find(|n| n.starts_with("mission_reports"))
            .expect("mission rule")
            .to_owned();
        let payload = Bytes::from_static(br#"{"robotId":"rb-1"}"#);
        let routed = engine.route(
            &format!("$aws/rules/{mission}/robots/rb-1/missions"),
            &payload,
            "rb-1",
        );
        assert_eq!(routed.len(), 1);
        assert!(matches!(
            &routed[0].deliveries[0],
            crate::rules::Delivery::Kinesis { partition_key, .. } if partition_key == "rb-1"
        ));
        let shadow = engine.route(
            "$aws/things/rb-2/shadow/name/schedule/update/documents",
            &Bytes::from_static(br#"{"current":{}}"#),
            "rb-2",
        );
        assert_eq!(shadow.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&shadow[0].payload).expect("json");
        assert_eq!(v["thingName"], "rb-2");
        assert_eq!(v["shadowName"], "schedule");
        let presence = engine.route(
            "$aws/events/presence/connected/rb-3",
            &Bytes::from_static(br#"{"clientId":"rb-3"}"#),
            "rb-3",
        );
        assert_eq!(presence.len(), 1);
        assert!(matches!(
            &presence[0].deliveries[0],
            crate::rules::Delivery::Kinesis { partition_key, .. } if partition_key == "rb-3"
        ));
        // Defect 12: the AWS IoT console's MQTT test client is not a robot; its presence events
        // never reach the shadows stream.
        let console = engine.route(
            "$aws/events/presence/connected/iotconsole-8a9b",
            &Bytes::from_static(br#"{"clientId":"iotconsole-8a9b","eventType":"connected"}"#),
            "iotconsole-8a9b",
        );
        assert_eq!(console.len(), 0, "a console client's presence was routed");
    }
}
