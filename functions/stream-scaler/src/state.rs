//! What the scaler keeps between runs, one DynamoDB item per stream: the calls of the last 24 h
//! (the budget AWS counts), and the capacity it last saw or set, so that a change it did not
//! make (an operator's UpdateShardCount, a deploy) is noticed and counted too.
//!
//! Item: `pk` = `stream#<name>`, `version` (every write is conditional on the version read),
//! `calls` (a list of `{at, from, to, kind}`), `expectedShards`, `expectedWarm`, `lastDecision`
//! (the last decision as JSON, for operators).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use fleet_capacity::budget::{Call, CallKind};

/// One stream's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamState {
    pub stream: String,
    pub version: u64,
    pub calls: Vec<Call>,
    pub expected_shards: Option<u32>,
    pub expected_warm: Option<u32>,
    pub last_decision: Option<String>,
}

/// Reading or writing the state failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading the scaler state of {stream} from {table}: {message}")]
    Read {
        table: String,
        stream: String,
        message: String,
    },
    #[error("writing the scaler state of {stream} to {table}: {message}")]
    Write {
        table: String,
        stream: String,
        message: String,
    },
    #[error(
        "the scaler state of {stream} changed since it was read (another run?); this run's call is not recorded"
    )]
    Conflict { stream: String },
    #[error("the scaler state of {stream} is malformed: {message}")]
    Malformed { stream: String, message: String },
}

/// The state table.
#[derive(Debug, Clone)]
pub struct StateStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn kind_name(k: CallKind) -> &'static str {
    match k {
        CallKind::Emergency => "emergency",
        CallKind::Prewarm => "prewarm",
        CallKind::ScaleUp => "scale-up",
        CallKind::ScaleDown => "scale-down",
        CallKind::External => "external",
    }
}

fn kind_of(s: &str) -> Option<CallKind> {
    Some(match s {
        "emergency" => CallKind::Emergency,
        "prewarm" => CallKind::Prewarm,
        "scale-up" => CallKind::ScaleUp,
        "scale-down" => CallKind::ScaleDown,
        "external" => CallKind::External,
        _ => return None,
    })
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_n<T: std::str::FromStr>(m: &HashMap<String, AttributeValue>, k: &str) -> Option<T> {
    m.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|s| s.parse().ok())
}

impl StateStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        StateStore {
            client,
            table: table.into(),
        }
    }

    fn key(stream: &str) -> AttributeValue {
        AttributeValue::S(format!("stream#{stream}"))
    }

    /// The stream's state, or a fresh one.
    pub async fn load(&self, stream: &str) -> Result<StreamState, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", Self::key(stream))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StateError::Read {
                table: self.table.clone(),
                stream: stream.into(),
                message: fleet_aws::error::chain(&e),
            })?;
        let Some(item) = out.item else {
            return Ok(StreamState {
                stream: stream.into(),
                ..Default::default()
            });
        };
        let malformed = |message: String| StateError::Malformed {
            stream: stream.into(),
            message,
        };
        let mut calls = Vec::new();
        for v in item
            .get("calls")
            .and_then(|v| v.as_l().ok())
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let m = v
                .as_m()
                .map_err(|_| malformed("a call is not a map".into()))?;
            let kind = m
                .get("kind")
                .and_then(|k| k.as_s().ok())
                .and_then(|k| kind_of(k));
            match (get_n(m, "at"), get_n(m, "from"), get_n(m, "to"), kind) {
                (Some(at), Some(from), Some(to), Some(kind)) => {
                    calls.push(Call { at, from, to, kind })
                }
                _ => return Err(malformed(format!("call {m:?} lacks at, from, to or kind"))),
            }
        }
        Ok(StreamState {
            stream: stream.into(),
            version: get_n(&item, "version").unwrap_or(0),
            calls,
            expected_shards: get_n(&item, "expectedShards"),
            expected_warm: get_n(&item, "expectedWarm"),
            last_decision: item
                .get("lastDecision")
                .and_then(|v| v.as_s().ok())
                .cloned(),
        })
    }

    /// Writes `state` if the stored version is still `state.version`; the stored version becomes
    /// `state.version + 1`.
    pub async fn save(&self, state: &StreamState) -> Result<(), StateError> {
        let calls = state
            .calls
            .iter()
            .map(|c| {
                AttributeValue::M(HashMap::from([
                    ("at".to_string(), n(c.at)),
                    ("from".to_string(), n(c.from)),
                    ("to".to_string(), n(c.to)),
                    (
                        "kind".to_string(),
                        AttributeValue::S(kind_name(c.kind).into()),
                    ),
                ]))
            })
            .collect();
        let mut item = HashMap::from([
            ("pk".to_string(), Self::key(&state.stream)),
            ("version".to_string(), n(state.version + 1)),
            ("calls".to_string(), AttributeValue::L(calls)),
        ]);
        if let Some(s) = state.expected_shards {
            item.insert("expectedShards".into(), n(s));
        }
        if let Some(w) = state.expected_warm {
            item.insert("expectedWarm".into(), n(w));
        }
        if let Some(d) = &state.last_decision {
            item.insert("lastDecision".into(), AttributeValue::S(d.clone()));
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = if state.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(state.version))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StateError::Conflict {
                    stream: state.stream.clone(),
                })
            }
            Err(e) => Err(StateError::Write {
                table: self.table.clone(),
                stream: state.stream.clone(),
                message: fleet_aws::error::chain(&e),
            }),
        }
    }
}
