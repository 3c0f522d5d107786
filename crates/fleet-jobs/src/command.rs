//! The command contract: what a job (or the fleet API) writes into `desired.command`.
//!
//! `{"id": "job-<jobId>", "action": "schedule", "params": {...}}`, as
//! `schemas/job-command.schema.json` defines it. That schema is compiled into this crate and is
//! the check: a command that does not pass it is never sent. A job's document carries the
//! action and the parameters shared by every robot; a line of the input file may add or
//! override parameters for its robot, and the merged command is validated again, so a bad
//! per-robot value is that line's failure, not the job's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The schema every command must pass (`schemas/job-command.schema.json`).
pub const SCHEMA: &str = include_str!("../../../schemas/job-command.schema.json");

/// The action and shared parameters of a job's command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandTemplate {
    pub action: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
}

/// A command that does not pass the schema: every violation, with its JSON path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the command does not match schemas/job-command.schema.json: {}", .problems.join("; "))]
pub struct CommandError {
    pub problems: Vec<String>,
}

/// The compiled command schema.
pub struct Commands {
    schema: jsonschema::Validator,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Commands(schemas/job-command.schema.json)")
    }
}

impl Default for Commands {
    fn default() -> Self {
        Self::new()
    }
}

impl Commands {
    /// Compiles the embedded schema (a test proves it compiles).
    #[allow(clippy::expect_used)]
    pub fn new() -> Commands {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the command schema is JSON");
        let schema = jsonschema::draft202012::new(&schema).expect("the command schema compiles");
        Commands { schema }
    }

    /// The command id of a job: one id for every robot of the job (a robot acts on an id once).
    pub fn job_command_id(job_id: &str) -> String {
        format!("job-{job_id}")
    }

    /// The command for one robot: the template's parameters with the line's on top, validated.
    pub fn build(
        &self,
        id: &str,
        template: &CommandTemplate,
        line_params: &Map<String, Value>,
    ) -> Result<Value, CommandError> {
        let mut params = template.params.clone();
        for (k, v) in line_params {
            params.insert(k.clone(), v.clone());
        }
        let mut command = json!({ "id": id, "action": template.action });
        if !params.is_empty() {
            command["params"] = Value::Object(params);
        }
        self.check(&command)?;
        Ok(command)
    }

    /// Checks a whole command document against the schema.
    pub fn check(&self, command: &Value) -> Result<(), CommandError> {
        let problems: Vec<String> = self
            .schema
            .iter_errors(command)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{}: {e}", path.trim_start_matches('/').replace('/', "."))
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CommandError { problems })
        }
    }
}

/// The shadow update that sets `command` as desired state.
pub fn desired_update(command: &Value, client_token: &str) -> Value {
    json!({ "state": { "desired": { "command": command } }, "clientToken": client_token })
}

/// A robot's answer: report the command (schemas/command-ack.schema.json) and clear the desired
/// command, in one update.
pub fn ack_update(command: &Value, status: &str) -> Value {
    json!({
        "state": {
            "reported": { "command": {
                "id": command.get("id").cloned().unwrap_or(Value::Null),
                "action": command.get("action").cloned().unwrap_or(Value::Null),
                "status": status,
            } },
            "desired": { "command": null },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(action: &str, params: Value) -> CommandTemplate {
        serde_json::from_value(json!({ "action": action, "params": params })).expect("template")
    }

    #[test]
    fn a_schedule_is_built_and_line_params_override_the_job_params() {
        let c = Commands::new();
        let t = template("schedule", json!({ "days": ["mon"], "at": "09:00" }));
        let mut line = Map::new();
        line.insert("at".into(), json!("10:30"));
        let cmd = c.build("job-1", &t, &line).expect("valid");
        assert_eq!(
            cmd,
            json!({ "id": "job-1", "action": "schedule", "params": { "days": ["mon"], "at": "10:30" } })
        );
    }

    #[test]
    fn a_bad_command_names_the_field_and_the_rule() {
        let c = Commands::new();
        let err = c
            .build(
                "job-1",
                &template("schedule", json!({ "days": ["mon"], "at": "25:00" })),
                &Map::new(),
            )
            .expect_err("hour 25");
        assert!(err.to_string().contains("params.at"), "{err}");
        let err = c
            .build("job-1", &template("explode", json!({})), &Map::new())
            .expect_err("unknown action");
        assert!(err.to_string().contains("action"), "{err}");
        let err = c
            .build("job 1", &template("dock", json!({})), &Map::new())
            .expect_err("id with a space");
        assert!(err.to_string().contains("id"), "{err}");
        let mut extra = Map::new();
        extra.insert("speed".into(), json!(3));
        assert!(
            c.build("job-1", &template("dock", json!({})), &extra)
                .is_err()
        );
    }

    #[test]
    fn the_ack_reports_the_command_and_clears_it() {
        let cmd = json!({ "id": "job-1", "action": "dock" });
        let ack = ack_update(&cmd, "applied");
        assert_eq!(ack["state"]["desired"]["command"], Value::Null);
        assert_eq!(ack["state"]["reported"]["command"]["id"], "job-1");
    }
}
