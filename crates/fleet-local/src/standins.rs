//! The stand-in processes: moto server (AWS) and osmem-server (OpenSearch), started from the
//! project venv on free loopback ports, or attached to when their URLs are given.
//!
//! A started process lives in a [`ManagedProcess`]: its output goes to a log file, and it is
//! killed when the handle is stopped or dropped (also on Ctrl-C, because `robofleet dev` drops
//! its stack on the way out). An attached endpoint is only probed, never stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet_process::{ManagedProcess, free_port, venv_program};
use tokio::process::Command;

use crate::error::StandinError;

/// `moto_server` inside the venv.
pub fn moto_binary(venv: &Path) -> Result<PathBuf, StandinError> {
    Ok(venv_program(venv, "moto_server")?)
}

/// `osmem-server` inside the venv (`lib/python3.*/site-packages/osmem_server/bin/osmem-server`).
pub fn osmem_binary(venv: &Path) -> Result<PathBuf, StandinError> {
    let lib = venv.join("lib");
    let missing = || {
        StandinError::from(fleet_process::ProcessError::Missing {
            program: "osmem-server".into(),
            path: lib.join("python3.*/site-packages/osmem_server/bin/osmem-server"),
        })
    };
    let Ok(entries) = std::fs::read_dir(&lib) else {
        return Err(missing());
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/osmem_server/bin/osmem-server"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(missing)
}

/// One stand-in endpoint: either started here (and stopped on exit) or attached to.
#[derive(Debug)]
pub struct Standin {
    /// Its base URL.
    pub url: String,
    /// The process, when this stack started it.
    pub process: Option<ManagedProcess>,
}

impl Standin {
    /// Stops it if this stack started it.
    pub async fn stop(self) {
        if let Some(p) = self.process {
            p.stop().await;
        }
    }
}

/// `tools/moto_server.py`: moto's own server with its Kinesis shard made O(1) per record (moto
/// 5.2.5 scans the whole shard on every put and read, so a long local run slows to a crawl).
const MOTO_LAUNCHER: &str = include_str!("../../../tools/moto_server.py");

/// Starts moto server on a free port, logging into `log_dir/moto.log`.
///
/// It runs through the embedded [`MOTO_LAUNCHER`], written to `log_dir/moto_server.py`, with the
/// venv's Python, so the binary works outside the repository too.
pub async fn start_moto(venv: &Path, log_dir: &Path) -> Result<Standin, StandinError> {
    moto_binary(venv)?;
    let python = venv.join("bin").join("python");
    let launcher = log_dir.join("moto_server.py");
    std::fs::create_dir_all(log_dir)
        .and_then(|()| std::fs::write(&launcher, MOTO_LAUNCHER))
        .map_err(|source| StandinError::Launcher {
            path: launcher.clone(),
            source,
        })?;
    let port = free_port()?;
    let mut cmd = Command::new(python);
    cmd.arg(&launcher)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let mut p = ManagedProcess::spawn("moto_server", cmd, log_dir.join("moto.log"))?;
    let url = format!("http://127.0.0.1:{port}");
    p.wait_http(&format!("{url}/moto-api/"), Duration::from_secs(60))
        .await?;
    Ok(Standin {
        url,
        process: Some(p),
    })
}

/// Starts osmem-server on a free port, logging into `log_dir/osmem.log`.
pub async fn start_osmem(venv: &Path, log_dir: &Path) -> Result<Standin, StandinError> {
    let bin = osmem_binary(venv)?;
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"]);
    let mut p = ManagedProcess::spawn("osmem-server", cmd, log_dir.join("osmem.log"))?;
    let url = format!("http://127.0.0.1:{port}");
    p.wait_http(&format!("{url}/"), Duration::from_secs(60))
        .await?;
    Ok(Standin {
        url,
        process: Some(p),
    })
}

/// Checks that an endpoint given by flag answers HTTP at all.
pub async fn attach(what: &'static str, url: &str) -> Result<Standin, StandinError> {
    let url = url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|source| StandinError::Unreachable {
            what,
            url: url.clone(),
            source,
        })?;
    client
        .get(&url)
        .send()
        .await
        .map_err(|source| StandinError::Unreachable {
            what,
            url: url.clone(),
            source,
        })?;
    Ok(Standin { url, process: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_name_the_way_out() {
        let dir = std::env::temp_dir().join(format!("no-venv-{}", std::process::id()));
        let e = moto_binary(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("make venv"), "{e}");
        let e = osmem_binary(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("osmem-server"), "{e}");
    }
}
