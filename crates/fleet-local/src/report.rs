//! The dev report file: written at start-up with the endpoints and resource names (so that
//! `robofleet rejects`, scripts and standard clients can find the running stack), rewritten on
//! exit with the summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DevError, ReportError};

/// Default location of the report file, relative to the working directory.
pub const DEFAULT_REPORT: &str = ".run/robofleet-dev.json";

/// Where the stack's faces listen.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoints {
    /// MQTT broker, `mqtt://host:port`.
    pub mqtt: String,
    /// AWS stand-in (moto), for `AWS_ENDPOINT_URL`.
    pub aws: String,
    /// OpenSearch stand-in (osmem).
    pub opensearch: String,
    /// IoT Data Plane face of the shadow service, for `AWS_ENDPOINT_URL_IOT_DATA_PLANE`.
    pub iot_data: String,
    /// `cargo lambda watch`, when functions run through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<String>,
    /// The template's HTTP APIs, served by the front (SigV4 for `execute-api`), by logical id.
    #[serde(default)]
    pub apis: BTreeMap<String, String>,
}

/// Physical names of what was provisioned, by template logical id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resources {
    /// DynamoDB tables.
    pub tables: BTreeMap<String, String>,
    /// Kinesis streams: name and shard count.
    pub streams: BTreeMap<String, StreamInfo>,
    /// SQS queue URLs.
    pub queues: BTreeMap<String, String>,
    /// S3 buckets.
    pub buckets: BTreeMap<String, String>,
    /// Lambda functions (physical names in moto).
    pub functions: BTreeMap<String, String>,
    /// Event source mapping UUIDs, by `<function>/<event>`.
    pub event_source_mappings: BTreeMap<String, String>,
    /// OpenSearch alias and index.
    pub opensearch: OpenSearchInfo,
    /// The queue functions dead-letter malformed records into (`REJECTS_QUEUE_URL`).
    pub rejects_queue_url: Option<String>,
    /// Step Functions state machine ARNs, run by the stack's local runner.
    #[serde(default)]
    pub state_machines: BTreeMap<String, String>,
}

/// A provisioned Kinesis stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamInfo {
    /// Stream name.
    pub name: String,
    /// Stream ARN.
    pub arn: String,
    /// Shards created locally.
    pub shards: u32,
    /// `ON_DEMAND` or `PROVISIONED` in the template.
    pub mode: String,
}

/// The OpenSearch objects the stack installed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenSearchInfo {
    /// The alias writes go through.
    pub alias: String,
    /// The index behind it.
    pub index: String,
    /// Index template name.
    pub template: String,
}

/// Per-stream counts at the end of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamSummary {
    /// Records the rules engine put.
    pub records_in: u64,
    /// Records the event source mapping delivered and saw succeed.
    pub records_processed: u64,
    /// Records sent to the on-failure destination (retries exhausted or too old).
    pub records_to_on_failure: u64,
    /// Records not yet delivered when the run ended.
    pub backlog: u64,
}

/// What happened during a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DevSummary {
    /// Wall-clock run time.
    pub duration_s: f64,
    /// MQTT messages the rules engine saw.
    pub messages_in: u64,
    /// Kinesis records the rules engine put.
    pub records_put: u64,
    /// Records put and not completed when the run ended (still in the streams).
    pub backlog: u64,
    /// Rule actions that failed and went to the rule's error action.
    pub rule_errors: u64,
    /// Function invocations (pollers and schedules).
    pub invocations: u64,
    /// Invocations that failed as a whole.
    pub invocation_errors: u64,
    /// Batch item failures reported by the functions.
    pub item_failures: u64,
    /// Messages waiting in the rejects queue at the end.
    pub rejects_queued: u64,
    /// Messages waiting in every queue at the end, by logical id (rejects, rule errors, ...).
    #[serde(default)]
    pub queues: BTreeMap<String, u64>,
    /// Objects in every bucket at the end, by logical id (failed batches of the mappings).
    #[serde(default)]
    pub bucket_objects: BTreeMap<String, u64>,
    /// Items in the missions table at the end.
    pub missions_stored: u64,
    /// Documents behind the robots alias at the end.
    pub robots_indexed: u64,
    /// Per stream, by logical id.
    pub streams: BTreeMap<String, StreamSummary>,
    /// Schedules and their fires.
    pub schedules: Vec<fleet_esm::scheduler::ScheduleStatus>,
    /// Records put but neither processed, dead-lettered nor still waiting. Must be 0.
    pub records_lost: u64,
    /// Problems worth a look (a component that failed, a stand-in that died).
    pub warnings: Vec<String>,
}

/// The report file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DevReport {
    /// `running` while the stack is up, `stopped` after.
    pub state: String,
    /// The stack name used as resource prefix.
    pub stack_name: String,
    /// Region of the stand-ins.
    pub region: String,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// The endpoints in use.
    pub endpoints: Endpoints,
    /// What was provisioned.
    pub resources: Resources,
    /// How functions were invoked: `in-process` or `watch`.
    pub invoke: String,
    /// The summary, once the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<DevSummary>,
}

impl DevReport {
    /// Writes the report atomically (temp file, then rename), creating the directory.
    pub fn write(&self, path: &Path) -> Result<(), DevError> {
        let err = |source| DevError::Report {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let body = serde_json::to_vec_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        let tmp = tmp_path(path);
        std::fs::write(&tmp, body).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Reads a report file.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let body = std::fs::read(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&body).map_err(|source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_through_the_file() {
        let dir = std::env::temp_dir().join(format!("rf-report-{}", uuid::Uuid::new_v4()));
        let path = dir.join("nested/report.json");
        let mut report = DevReport {
            state: "running".into(),
            stack_name: "s".into(),
            endpoints: Endpoints {
                mqtt: "mqtt://127.0.0.1:1883".into(),
                ..Endpoints::default()
            },
            ..DevReport::default()
        };
        report.write(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(DevReport::read(&path).ok(), Some(report.clone()));
        report.summary = Some(DevSummary {
            messages_in: 3,
            ..DevSummary::default()
        });
        report.write(&path).unwrap_or_else(|e| panic!("{e}"));
        let back = DevReport::read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.summary.map(|s| s.messages_in), Some(3));
        let _ = std::fs::remove_dir_all(dir);
    }
}
