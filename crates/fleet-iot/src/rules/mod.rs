//! The local rules engine: runs the template's IoT topic rules against an MQTT broker.
//!
//! Layout:
//! - [`sql`]: the IoT SQL subset (tokenizer, parser, evaluator); what is refused and why.
//! - [`template`]: substitution templates such as `${topic(2)}` for partition keys.
//! - [`engine`]: [`RulesEngine`], validation at start-up and the pure [`RulesEngine::route`].
//! - [`spec`]: conversion from the template reader's `TopicRuleSpec`.
//! - [`runner`]: [`run`], the MQTT subscriber and the batching Kinesis / SQS senders, with
//!   [`RulesStats`] counters.
//!
//! IoT Core behaviour kept locally:
//! - Basic Ingest: a message on `$aws/rules/<rule>/...` goes to that rule alone, its FROM is
//!   ignored, its WHERE applies, and `topic(n)` counts from after the `$aws/rules/<rule>/` prefix.
//!   Other rules never see such messages; one for an unknown rule is dropped and counted.
//! - A payload that is not JSON is binary: `SELECT *` forwards its bytes unchanged.
//! - A failed action (after retries) sends IoT Core's error message to the rule's error action.
//!
//! `clientid()`: a plain MQTT subscriber cannot see who published a message. The engine uses
//! the client id IoT would know in this project's topic layout, where the client id is the thing
//! name: `$aws/things/<thing>/...`, `$aws/events/presence/<event>/<clientId>`, and a
//! `robots/<thing>/...` or `things/<thing>/...` topic (after the Basic Ingest prefix); otherwise
//! `n/a`, which is what IoT Core itself reports for publishes without an MQTT client.

pub mod engine;
pub mod runner;
pub mod spec;
pub mod sql;
pub mod template;

pub use engine::{ActionDef, Delivery, Routed, RuleDef, RulesEngine, Sinks};
pub use runner::{RulesRunner, RulesStats, RunnerConfig, run};
pub use spec::engine_from_specs;

/// Why the rules could not be loaded. Every variant names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The rule uses IoT SQL (or a template feature) that the local engine does not implement.
    #[error(
        "topic rule `{rule}` uses {feature}, which the local rules engine does not support; rewrite the rule with the supported subset (see docs/local-stack.md, section The rules engine) or run it in the cloud"
    )]
    Unsupported {
        /// Rule name.
        rule: String,
        /// The feature.
        feature: String,
    },
    /// The SQL does not parse.
    #[error("topic rule `{rule}` has invalid sql: {detail}; fix the rule's Sql in template.yaml")]
    Syntax {
        /// Rule name.
        rule: String,
        /// What is wrong.
        detail: String,
    },
    /// An action names a stream or queue that the stack did not create.
    #[error(
        "topic rule `{rule}` sends to {kind} `{name}`, which the local stack does not know; declare it in template.yaml"
    )]
    UnknownSink {
        /// Rule name.
        rule: String,
        /// `kinesis stream` or `sqs queue`.
        kind: &'static str,
        /// The stream or queue name.
        name: String,
    },
    /// Two rules share a name (Basic Ingest could not tell them apart).
    #[error("two topic rules are named `{rule}`; rule names must be unique")]
    Duplicate {
        /// Rule name.
        rule: String,
    },
}

/// MQTT topic-filter matching, including MQTT's rule that a filter starting with a wildcard does
/// not match a topic starting with `$`.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match t.next() {
            Some(level) if f == "+" || f == level => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

fn wildcard(level: &str) -> bool {
    level == "+" || level == "#"
}

/// Can some topic match both filters?
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => {
                if i == 0
                    && ((wildcard(x) && y.starts_with('$')) || (wildcard(y) && x.starts_with('$')))
                {
                    return false;
                }
                if *x == "#" || *y == "#" {
                    return true;
                }
                if *x != "+" && *y != "+" && x != y {
                    return false;
                }
            }
            (None, Some(y)) | (Some(y), None) => return *y == "#",
            (None, None) => return true,
        }
    }
    true
}

/// Does every topic that matches `inner` also match `outer`?
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    let (o, n): (Vec<&str>, Vec<&str>) = (outer.split('/').collect(), inner.split('/').collect());
    for i in 0..o.len().max(n.len()) {
        match (o.get(i), n.get(i)) {
            (Some(x), Some(y)) => {
                if i == 0 && wildcard(x) && !wildcard(y) && y.starts_with('$') {
                    return false;
                }
                if *x == "#" {
                    return true;
                }
                if *y == "#" || (*x != "+" && x != y) {
                    return false;
                }
            }
            (Some(x), None) => return *x == "#",
            (None, Some(_)) => return false,
            (None, None) => return true,
        }
    }
    true
}

/// The narrowest filter that covers both (levels that differ become `+`, a length difference
/// or a `#` becomes `#`).
fn filter_join(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) if *x == "#" || *y == "#" => {
                out.push("#");
                break;
            }
            (Some(x), Some(y)) if x == y => out.push(x),
            (Some(_), Some(_)) => out.push("+"),
            _ => {
                out.push("#");
                break;
            }
        }
    }
    out.join("/")
}

/// A set of filters in which no two overlap, covering every topic the given filters match.
/// Brokers (rumqttd, mosquitto by default) deliver a message once per matching subscription,
/// so overlapping subscriptions would feed the rules engine duplicates. Overlapping filters are
/// widened to their join; the engine's own matching keeps the exact semantics.
pub fn disjoint_filters(filters: &[String]) -> Vec<String> {
    let mut set: Vec<String> = Vec::new();
    for f in filters {
        if !set.contains(f) {
            set.push(f.clone());
        }
    }
    loop {
        let mut merged = None;
        'search: for i in 0..set.len() {
            for j in (i + 1)..set.len() {
                if filters_overlap(&set[i], &set[j]) {
                    merged = Some((i, j));
                    break 'search;
                }
            }
        }
        let Some((i, j)) = merged else { break };
        let joined = if filter_covers(&set[i], &set[j]) {
            set[i].clone()
        } else if filter_covers(&set[j], &set[i]) {
            set[j].clone()
        } else {
            filter_join(&set[i], &set[j])
        };
        set.remove(j);
        set[i] = joined;
    }
    set
}

/// The client id IoT Core would report for a message on `topic` in this project's topic layout
/// (see the module docs), or `n/a`.
pub fn client_id_from_topic(topic: &str) -> &str {
    let levels: Vec<&str> = topic.split('/').collect();
    match levels.as_slice() {
        ["$aws", "things", thing, ..] => thing,
        ["$aws", "events", "presence", _, client, ..] => client,
        ["$aws", "rules", _, "robots" | "things", thing, ..] => thing,
        ["$aws", "rules", ..] => "n/a",
        ["robots" | "things", thing, ..] => thing,
        _ => "n/a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_and_hash_wildcards() {
        assert!(topic_matches("robots/+/missions", "robots/rb-1/missions"));
        assert!(!topic_matches(
            "robots/+/missions",
            "robots/rb-1/x/missions"
        ));
        assert!(topic_matches("robots/#", "robots/rb-1/x/missions"));
        assert!(topic_matches("robots/#", "robots"));
        assert!(!topic_matches("robots/+", "robots"));
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(!topic_matches("a/b/c", "a/b"));
    }

    #[test]
    fn wildcard_first_filters_never_match_dollar_topics() {
        assert!(!topic_matches("#", "$aws/things/x/shadow/update"));
        assert!(!topic_matches(
            "+/things/x/shadow/update",
            "$aws/things/x/shadow/update"
        ));
        assert!(topic_matches(
            "$aws/things/+/shadow/update",
            "$aws/things/x/shadow/update"
        ));
        assert!(topic_matches(
            "$aws/events/presence/+/+",
            "$aws/events/presence/connected/rb-1"
        ));
    }

    #[test]
    fn overlap_and_cover() {
        assert!(filters_overlap("a/#", "a/b"));
        assert!(filters_overlap("a/+/c", "a/b/+"));
        assert!(!filters_overlap("a/+/c", "a/b/d"));
        assert!(!filters_overlap("#", "$aws/things/x"));
        assert!(filters_overlap("a/#", "a"));
        assert!(!filters_overlap("a/b", "a/b/c"));
        assert!(filter_covers("a/#", "a/+/c"));
        assert!(filter_covers("a/+/c", "a/b/c"));
        assert!(!filter_covers("a/+/c", "a/#"));
        assert!(!filter_covers("#", "$aws/rules/#"));
        assert!(filter_covers("$aws/#", "$aws/rules/#"));
        assert!(filter_covers("a/#", "a"));
    }

    #[test]
    fn disjoint_filters_remove_overlaps() {
        let f =
            |v: &[&str]| disjoint_filters(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(f(&["a/#", "a/b", "c"]), ["a/#", "c"]);
        assert_eq!(f(&["a/+/c", "a/b/+"]), ["a/+/+"]);
        assert_eq!(
            f(&["$aws/rules/#", "#", "$aws/things/+/shadow/update/documents"]),
            ["$aws/rules/#", "#", "$aws/things/+/shadow/update/documents"]
        );
        assert_eq!(f(&["x", "x"]), ["x"]);
        // the result still covers every original filter
        let orig = ["a/+/c", "a/b/+", "a/b", "d/#", "d/e/f"];
        let out = f(&orig);
        for o in orig {
            assert!(
                out.iter().any(|d| filter_covers(d, o)),
                "{o} not covered by {out:?}"
            );
        }
        for (i, a) in out.iter().enumerate() {
            for b in &out[i + 1..] {
                assert!(!filters_overlap(a, b), "{a} overlaps {b}");
            }
        }
    }

    #[test]
    fn client_ids_follow_the_thing_in_the_topic() {
        assert_eq!(
            client_id_from_topic("$aws/things/rb-1/shadow/update/documents"),
            "rb-1"
        );
        assert_eq!(
            client_id_from_topic("$aws/events/presence/connected/rb-2"),
            "rb-2"
        );
        assert_eq!(
            client_id_from_topic("$aws/rules/mission_reports/robots/rb-3/missions"),
            "rb-3"
        );
        assert_eq!(client_id_from_topic("robots/rb-4/telemetry"), "rb-4");
        assert_eq!(client_id_from_topic("other/topic"), "n/a");
    }
}
