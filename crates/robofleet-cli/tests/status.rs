//! `robofleet status --stack` against the local stack: `robofleet dev` registers the stack's
//! outputs in moto's CloudFormation, and status reads them the way it reads a deployed stack.
//! Healthy, then with a disabled mapping: the table and the exit code.
//!
//! Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use fleet_local::dev::{self, DevOptions};

fn status(stack: &str, endpoint: &str, extra: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_robofleet"))
        .args(["status", "--stack", stack, "--aws-endpoint", endpoint])
        .args([
            "--report",
            "/nonexistent/robofleet-dev.json",
            "--region",
            "us-east-1",
        ])
        .args(extra)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_local_stack_and_exits_non_zero_when_a_mapping_is_disabled() {
    let logs = tempfile::tempdir().unwrap();
    let name = fleet_testkit::unique_name("status");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut opts = DevOptions::new(root.join("template.yaml"), &name);
    opts.aws_endpoint = Some(fleet_testkit::aws_endpoint());
    opts.log_dir = Some(logs.path().to_path_buf());
    opts.drain = Duration::from_secs(5);
    let stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));
    let endpoint = stack.endpoints.aws.clone();

    let (code, text) = status(&name, &endpoint, &[]);
    assert_eq!(code, 0, "{text}");
    for part in [
        format!("{name}-missions"),
        format!("{name}-shadows"),
        "RejectsQueueUrl".into(),
        format!("{name}-mission-ingest"),
        "robots-index".into(),
        "failed batches kept: 0".into(),
        "healthy: nothing needs attention".into(),
    ] {
        assert!(text.contains(&part), "{part} missing from:\n{text}");
    }

    // An operator pauses the missions consumer.
    let lambda = aws_sdk_lambda::Client::new(&stack.sdk);
    let uuid = stack
        .resources
        .event_source_mappings
        .iter()
        .find(|(k, _)| k.starts_with("MissionIngestFunction"))
        .map(|(_, v)| v.clone())
        .expect("the missions mapping");
    lambda
        .update_event_source_mapping()
        .uuid(&uuid)
        .enabled(false)
        .send()
        .await
        .unwrap();
    let (code, text) = status(&name, &endpoint, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("needs attention"), "{text}");
    assert!(
        text.contains(&format!("the mapping of {name}-mission-ingest is Disabled")),
        "{text}"
    );
    let (code, json) = status(&name, &endpoint, &["--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["attention"].as_array().unwrap().len(), 1, "{json}");
    let _ = stack.shutdown().await;

    // The same stack again, on the same stand-ins (`robofleet dev` run twice): everything is
    // reused or updated (the alias, the stack record), nothing refused.
    let mut again = DevOptions::new(root.join("template.yaml"), &name);
    again.aws_endpoint = Some(fleet_testkit::aws_endpoint());
    again.log_dir = Some(logs.path().to_path_buf());
    again.drain = Duration::from_secs(5);
    let stack = dev::start(again).await.unwrap_or_else(|e| panic!("{e}"));
    let (_, text) = status(&name, &stack.endpoints.aws, &[]);
    assert!(text.contains(&format!("{name}-missions")), "{text}");
    let _ = stack.shutdown().await;
}
