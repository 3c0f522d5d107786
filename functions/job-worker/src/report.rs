//! The failure report: one JSON line per line that failed, with its reason, in
//! `s3://JOBS_BUCKET/reports/<job>/from-<first line>.jsonl`. The key is the chunk's (or
//! batch's) first line, so a retried chunk replaces its own report instead of adding one.

use serde::Serialize;

/// One failed line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureLine {
    /// The data line's number (0-based; a CSV header is not counted).
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robot_id: Option<String>,
    pub reason: String,
}

/// The key of a chunk's report.
pub fn key(job_id: &str, first_line: u64) -> String {
    format!("reports/{job_id}/from-{first_line:012}.jsonl")
}

/// Writes a chunk's failures.
pub async fn write(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    job_id: &str,
    first_line: u64,
    failures: &[FailureLine],
) -> Result<(), String> {
    let mut body = Vec::new();
    for f in failures {
        serde_json::to_writer(&mut body, f).map_err(|e| e.to_string())?;
        body.push(b'\n');
    }
    s3.put_object()
        .bucket(bucket)
        .key(key(job_id, first_line))
        .content_type("application/x-ndjson")
        .body(body.into())
        .send()
        .await
        .map_err(|e| {
            format!(
                "s3://{bucket}/{}: {}",
                key(job_id, first_line),
                fleet_aws::error::chain(&e)
            )
        })?;
    Ok(())
}
