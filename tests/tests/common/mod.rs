//! What the end-to-end tests share: a local stack of their own, and the simulator's targets on
//! it.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet_local::dev::{self, DevOptions, RunningStack};
use fleet_sim::{MqttTarget, Targets};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A local stack from template.yaml, named `<prefix>-<unique>`, against the shared stand-ins;
/// its logs go to the returned directory. Returns the stack, its name and the directory.
pub async fn stack(prefix: &str) -> (RunningStack, String, tempfile::TempDir) {
    stack_with(prefix, &[]).await
}

/// [`stack`], with these template parameters.
#[allow(dead_code)] // not every test binary overrides parameters
pub async fn stack_with(
    prefix: &str,
    parameters: &[(&str, &str)],
) -> (RunningStack, String, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let name = fleet_testkit::unique_name(prefix);
    let mut opts = DevOptions::new(root().join("template.yaml"), &name);
    opts.parameter_overrides = parameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    opts.aws_endpoint = Some(fleet_testkit::aws_endpoint());
    opts.log_dir = Some(logs.path().to_path_buf());
    opts.drain = Duration::from_secs(30);
    let stack = dev::start(opts).await.unwrap_or_else(|e| panic!("{e}"));
    (stack, name, logs)
}

/// The simulator's targets on `stack`: its broker, front, index, missions table (no rejects
/// queue: faults are not injected).
pub fn targets(stack: &RunningStack) -> Targets {
    Targets {
        mqtt: MqttTarget::parse_url(&stack.endpoints.mqtt).unwrap(),
        aws_endpoint: Some(stack.endpoints.aws.clone()),
        opensearch_url: Some(stack.endpoints.opensearch.clone()),
        missions_table: Some(stack.resources.tables["MissionsTable"].clone()),
        robots_alias: stack.resources.opensearch.alias.clone(),
        rejects_queue_url: None,
        aws: Default::default(),
    }
}
