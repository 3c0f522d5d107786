//! The stand-in processes: moto server (AWS) and osmem-server (OpenSearch), started from the
//! project venv on free loopback ports, or attached to when their URLs are given.
//!
//! A started process lives in a [`ManagedProcess`]: its output goes to a log file, and it is
//! killed when the handle is stopped or dropped (also on Ctrl-C, because `robofleet dev` drops
//! its stack on the way out). An attached endpoint is only probed, never stopped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::error::StandinError;

/// Environment variable naming the project venv.
pub const VENV_VAR: &str = "ROBOFLEET_VENV";

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, StandinError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| StandinError::Io {
            context: "finding a free loopback port".into(),
            source,
        })
}

/// The venv to use: the flag, else `$ROBOFLEET_VENV`, else `.venv`.
pub fn resolve_venv(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(VENV_VAR) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(".venv"),
    }
}

/// `moto_server` inside the venv.
pub fn moto_binary(venv: &Path) -> Result<PathBuf, StandinError> {
    let p = venv.join("bin").join("moto_server");
    if p.is_file() {
        Ok(p)
    } else {
        Err(StandinError::Missing {
            program: "moto_server",
            path: p,
        })
    }
}

/// `osmem-server` inside the venv (`lib/python3.*/site-packages/osmem_server/bin/osmem-server`).
pub fn osmem_binary(venv: &Path) -> Result<PathBuf, StandinError> {
    let lib = venv.join("lib");
    let missing = || StandinError::Missing {
        program: "osmem-server",
        path: lib.join("python3.*/site-packages/osmem_server/bin/osmem-server"),
    };
    let entries = std::fs::read_dir(&lib).map_err(|_| missing())?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/osmem_server/bin/osmem-server"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(missing)
}

/// `cargo-lambda` inside the venv.
pub fn cargo_lambda_binary(venv: &Path) -> Result<PathBuf, StandinError> {
    let p = venv.join("bin").join("cargo-lambda");
    if p.is_file() {
        Ok(p)
    } else {
        Err(StandinError::Missing {
            program: "cargo-lambda",
            path: p,
        })
    }
}

/// A child process this stack started; killed on [`ManagedProcess::stop`] or drop.
#[derive(Debug)]
pub struct ManagedProcess {
    program: &'static str,
    child: Child,
    /// Where its output goes.
    pub log: PathBuf,
}

impl ManagedProcess {
    /// Starts `cmd` with its output in `log`.
    pub fn spawn(
        program: &'static str,
        mut cmd: Command,
        log: PathBuf,
    ) -> Result<Self, StandinError> {
        let io = |context: String| move |source| StandinError::Io { context, source };
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let out = std::fs::File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|source| StandinError::Spawn { program, source })?;
        tracing::info!(program, pid = child.id(), log = %log.display(), "started");
        // Beside the log, so that a stand-in orphaned by a `kill -9` can be found and stopped.
        if let Some(pid) = child.id()
            && let Err(e) = std::fs::write(log.with_extension("pid"), pid.to_string())
        {
            tracing::debug!(error = %e, "writing the pid file");
        }
        Ok(Self {
            program,
            child,
            log,
        })
    }

    /// Waits until `url` answers any HTTP status, or fails if the process exits first.
    pub async fn wait_http(&mut self, url: &str, timeout: Duration) -> Result<(), StandinError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| StandinError::Unreachable {
                what: self.program,
                url: url.to_string(),
                detail: e.to_string(),
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StandinError::Exited {
                    program: self.program,
                    status: status.to_string(),
                    log: self.log.clone(),
                });
            }
            if client.get(url).send().await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StandinError::Timeout {
                    program: self.program,
                    url: url.to_string(),
                    secs: timeout.as_secs(),
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Process id, if still running.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process and waits for it.
    pub async fn stop(mut self) {
        if let Err(e) = self.child.kill().await {
            tracing::debug!(program = self.program, error = %e, "stopping");
        }
        let _ = std::fs::remove_file(self.log.with_extension("pid"));
        tracing::info!(program = self.program, "stopped");
    }
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
    /// Whether this stack started it.
    pub fn started_here(&self) -> bool {
        self.process.is_some()
    }

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
        .map_err(|source| StandinError::Io {
            context: format!("writing {}", launcher.display()),
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
        .map_err(|e| StandinError::Unreachable {
            what,
            url: url.clone(),
            detail: e.to_string(),
        })?;
    client
        .get(&url)
        .send()
        .await
        .map_err(|e| StandinError::Unreachable {
            what,
            url: url.clone(),
            detail: e.to_string(),
        })?;
    Ok(Standin { url, process: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_flag_wins_over_the_environment_default() {
        assert_eq!(
            resolve_venv(Some(Path::new("/x/venv"))),
            PathBuf::from("/x/venv")
        );
    }

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

    #[test]
    fn free_port_is_nonzero() {
        assert!(free_port().map(|p| p > 0).unwrap_or(false));
    }
}
