//! The stream-scaler's configuration, from its environment (template.yaml sets exactly these).

use fleet_capacity::budget::Budget;
use fleet_capacity::policy::Policy;
use fleet_capacity::rules::Rules;
use fleet_lambda::ConfigError;
use fleet_lambda::config::Env;

/// Whether decisions are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decide, call, record.
    Act,
    /// Decide and report only: no call is made (a dry run before switching to `act`).
    Observe,
}

/// One stream the scaler looks after.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// `missions` or `shadows`: the EMF dimension and the prefix of its variables.
    pub role: &'static str,
    pub name: String,
    pub rules: Rules,
    pub policy: Policy,
}

/// The missions table and its indexes (warm throughput).
#[derive(Debug, Clone)]
pub struct TableConfig {
    pub name: String,
    pub indexes: Vec<String>,
    pub rules: Rules,
    pub lookahead_secs: i64,
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// `SCALER_STATE_TABLE`: the call history and what the scaler last saw, one item per stream.
    pub state_table: String,
    pub streams: Vec<StreamConfig>,
    pub table: TableConfig,
}

fn invalid(name: &'static str, value: &str, problem: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        problem: problem.to_string(),
    }
}

fn optional(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> String {
    lookup(name).unwrap_or_default().trim().to_string()
}

fn rules(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Rules, ConfigError> {
    let text = optional(lookup, name);
    text.parse().map_err(|e| invalid(name, &text, e))
}

impl Config {
    /// The environment variables [`Config`] reads; a test checks template.yaml sets exactly these.
    pub const ENV_VARS: &'static [&'static str] = &[
        "SCALER_MODE",
        "SCALER_STATE_TABLE",
        "SCALER_TARGET_USE_PERCENT",
        "SCALER_RESERVE_CALLS",
        "SCALER_MISSIONS_STREAM",
        "SCALER_MISSIONS_RULES",
        "SCALER_MISSIONS_MIN_SHARDS",
        "SCALER_MISSIONS_MAX_SHARDS",
        "SCALER_SHADOWS_STREAM",
        "SCALER_SHADOWS_RULES",
        "SCALER_SHADOWS_MIN_SHARDS",
        "SCALER_SHADOWS_MAX_SHARDS",
        "SCALER_TABLE",
        "SCALER_TABLE_INDEXES",
        "SCALER_TABLE_RULES",
        "SCALER_TABLE_LOOKAHEAD_HOURS",
    ];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mode_text = optional(&lookup, "SCALER_MODE");
        let mode = match mode_text.as_str() {
            "act" => Mode::Act,
            "observe" => Mode::Observe,
            _ => return Err(invalid("SCALER_MODE", &mode_text, "must be act or observe")),
        };
        let env = Env::from_lookup(&lookup);
        let target: f64 = env.parse("SCALER_TARGET_USE_PERCENT")?;
        let reserve: u32 = env.parse("SCALER_RESERVE_CALLS")?;
        let base = Policy {
            target_use: target / 100.0,
            budget: Budget {
                reserve,
                ..Budget::default()
            },
            ..Policy::default()
        };
        let stream = |role: &'static str,
                      name: &'static str,
                      rules_var,
                      min_var,
                      max_var|
         -> Result<StreamConfig, ConfigError> {
            let policy = Policy {
                min_shards: env.parse(min_var)?,
                max_shards: env.parse(max_var)?,
                ..base.clone()
            };
            policy.validate().map_err(|e| {
                let var = if e.contains("reserve") {
                    "SCALER_RESERVE_CALLS"
                } else if e.contains("Use") {
                    "SCALER_TARGET_USE_PERCENT"
                } else {
                    max_var
                };
                invalid(var, &optional(&lookup, var), e)
            })?;
            Ok(StreamConfig {
                role,
                name: env.required(name)?,
                rules: rules(&lookup, rules_var)?.only(true),
                policy,
            })
        };
        let streams = vec![
            stream(
                "missions",
                "SCALER_MISSIONS_STREAM",
                "SCALER_MISSIONS_RULES",
                "SCALER_MISSIONS_MIN_SHARDS",
                "SCALER_MISSIONS_MAX_SHARDS",
            )?,
            stream(
                "shadows",
                "SCALER_SHADOWS_STREAM",
                "SCALER_SHADOWS_RULES",
                "SCALER_SHADOWS_MIN_SHARDS",
                "SCALER_SHADOWS_MAX_SHARDS",
            )?,
        ];
        for (var, s) in [
            ("SCALER_MISSIONS_RULES", &streams[0]),
            ("SCALER_SHADOWS_RULES", &streams[1]),
        ] {
            let all = rules(&lookup, var)?;
            if all.rules().len() != s.rules.rules().len() {
                return Err(invalid(
                    var,
                    &optional(&lookup, var),
                    "a stream rule asks for MiB or rec, not wcu or rcu",
                ));
            }
        }
        let table_rules = rules(&lookup, "SCALER_TABLE_RULES")?;
        if table_rules.rules().iter().any(|r| r.need.has_stream()) {
            return Err(invalid(
                "SCALER_TABLE_RULES",
                &optional(&lookup, "SCALER_TABLE_RULES"),
                "a table rule asks for wcu or rcu, not MiB or rec",
            ));
        }
        let lookahead: f64 = env.parse("SCALER_TABLE_LOOKAHEAD_HOURS")?;
        Ok(Config {
            mode,
            state_table: env.required("SCALER_STATE_TABLE")?,
            streams,
            table: TableConfig {
                name: env.required("SCALER_TABLE")?,
                indexes: env.list("SCALER_TABLE_INDEXES"),
                rules: table_rules,
                lookahead_secs: (lookahead * 3600.0) as i64,
            },
        })
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn env() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("SCALER_MODE", "act"),
            ("SCALER_STATE_TABLE", "state"),
            ("SCALER_TARGET_USE_PERCENT", "70"),
            ("SCALER_RESERVE_CALLS", "2"),
            ("SCALER_MISSIONS_STREAM", "s-missions"),
            (
                "SCALER_MISSIONS_RULES",
                "daily 09:40-11:00 America/New_York 6MiB",
            ),
            ("SCALER_MISSIONS_MIN_SHARDS", "2"),
            ("SCALER_MISSIONS_MAX_SHARDS", "64"),
            ("SCALER_SHADOWS_STREAM", "s-shadows"),
            ("SCALER_SHADOWS_RULES", ""),
            ("SCALER_SHADOWS_MIN_SHARDS", "4"),
            ("SCALER_SHADOWS_MAX_SHARDS", "128"),
            ("SCALER_TABLE", "missions"),
            ("SCALER_TABLE_INDEXES", "byDay"),
            (
                "SCALER_TABLE_RULES",
                "12-25 05:00-14:00 America/New_York 9000wcu",
            ),
            ("SCALER_TABLE_LOOKAHEAD_HOURS", "48"),
        ])
    }

    fn load(changes: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut e = env();
        for (k, v) in changes {
            e.insert(k, v);
        }
        Config::from_lookup(|k| e.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn reads_every_variable() {
        let c = load(&[]).expect("config");
        assert_eq!(c.mode, Mode::Act);
        assert_eq!(c.streams[0].policy.min_shards, 2);
        assert_eq!(c.streams[1].policy.max_shards, 128);
        assert_eq!(c.streams[0].policy.target_use, 0.7);
        assert_eq!(c.streams[0].rules.rules().len(), 1);
        assert!(c.streams[1].rules.is_empty());
        assert_eq!(c.table.indexes, vec!["byDay".to_string()]);
        assert_eq!(c.table.lookahead_secs, 48 * 3600);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = |changes| load(changes).expect_err("invalid").to_string();
        assert!(err(&[("SCALER_MODE", "yolo")]).contains("SCALER_MODE"));
        assert!(
            err(&[(
                "SCALER_MISSIONS_RULES",
                "daily 09:40-11:00 Mars/Olympus 6MiB"
            )])
            .contains("unknown time zone")
        );
        assert!(
            err(&[("SCALER_MISSIONS_RULES", "daily 09:40-11:00 UTC 600wcu")])
                .contains("a stream rule asks for MiB or rec")
        );
        assert!(
            err(&[("SCALER_TABLE_RULES", "daily 09:40-11:00 UTC 6MiB")])
                .contains("a table rule asks for wcu")
        );
        assert!(err(&[("SCALER_MISSIONS_MIN_SHARDS", "100")]).contains("minShards"));
        assert!(err(&[("SCALER_RESERVE_CALLS", "10")]).contains("reserve"));
        assert!(err(&[("SCALER_STATE_TABLE", "")]).contains("SCALER_STATE_TABLE is not set"));
    }
}
