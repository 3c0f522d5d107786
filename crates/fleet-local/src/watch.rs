//! `--invoke watch`: the functions run under `cargo lambda watch` (from the venv), which
//! compiles them on first use and serves the Lambda Invoke API; the event source mapping pollers
//! and the scheduler then invoke through [`crate::esm::HttpInvoker`].
//!
//! `cargo lambda watch` takes one env file for all functions, so the functions' evaluated
//! environments are merged; a variable two functions set to different values is an error
//! (the local stack could not give each its own value).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::error::{DevError, StandinError};
use crate::names;
use crate::standins::{self, ManagedProcess};

/// Merges per-function environments into one; `Err` names a conflicting variable.
pub fn merge_environments(
    envs: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for (function, env) in envs {
        for (k, v) in env {
            match out.get(k) {
                Some(existing) if existing != v => {
                    return Err(format!(
                        "{k} is `{existing}` for {} but `{v}` for {function}; cargo lambda watch has one environment for all functions",
                        owner.get(k).map(String::as_str).unwrap_or("?")
                    ));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                    owner.insert(k.clone(), function.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Starts `cargo lambda watch -A 127.0.0.1 -P <free port> --env-file <generated>` in
/// `workspace`, and waits until it listens. Returns the process and its base URL.
pub async fn start(
    venv: &Path,
    workspace: &Path,
    log_dir: &Path,
    environments: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(ManagedProcess, String), DevError> {
    let bin = standins::cargo_lambda_binary(venv)?;
    let env = merge_environments(environments).map_err(DevError::Usage)?;
    std::fs::create_dir_all(log_dir).map_err(|source| StandinError::Io {
        context: format!("creating {}", log_dir.display()),
        source,
    })?;
    let env_file = log_dir.join("lambda.env");
    std::fs::write(&env_file, names::env_file(&env)).map_err(|source| StandinError::Io {
        context: format!("writing {}", env_file.display()),
        source,
    })?;
    let port = standins::free_port()?;
    let mut cmd = Command::new(&bin);
    // cargo-lambda is a cargo subcommand: its first argument is `lambda`.
    cmd.args([
        "lambda",
        "watch",
        "-A",
        "127.0.0.1",
        "-P",
        &port.to_string(),
        "--env-file",
    ])
    .arg(&env_file)
    .current_dir(workspace);
    // cargo-lambda finds zig through `python3 -m ziglang`: the venv's python first on PATH.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![venv.join("bin")];
    paths.extend(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(paths) {
        cmd.env("PATH", joined);
    }
    let process = ManagedProcess::spawn(
        "cargo-lambda watch",
        cmd,
        log_dir.join("cargo-lambda-watch.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            let log = process.log.clone();
            process.stop().await;
            return Err(StandinError::Timeout {
                program: "cargo-lambda watch",
                url: format!("127.0.0.1:{port}"),
                secs: 120,
                log,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((process, format!("http://127.0.0.1:{port}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shared_variables_with_equal_values_merge() {
        let mut envs = BTreeMap::new();
        envs.insert(
            "A".to_string(),
            env(&[("REJECTS_QUEUE_URL", "q"), ("MISSIONS_TABLE", "t")]),
        );
        envs.insert(
            "B".to_string(),
            env(&[("REJECTS_QUEUE_URL", "q"), ("ROBOTS_ALIAS", "r")]),
        );
        let merged = merge_environments(&envs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merged.len(), 3);
    }

    #[test]
    fn conflicting_values_are_refused_by_name() {
        let mut envs = BTreeMap::new();
        envs.insert("A".to_string(), env(&[("X", "1")]));
        envs.insert("B".to_string(), env(&[("X", "2")]));
        let e = merge_environments(&envs).err().unwrap_or_default();
        assert!(e.contains("X is `1` for A but `2` for B"), "{e}");
    }
}
