//! fleet-process: the child processes that Robofleet's local tools start and own.
//!
//! The local stack runs real programs beside itself: moto server and osmem-server (the AWS and
//! OpenSearch stand-ins), `cargo lambda watch` (the functions), mosquitto (an external broker in
//! tests). Each of them is started the same way, and this crate is that way:
//!
//! - [`ManagedProcess`]: a child whose output goes to a log file, with a pid file beside it so an
//!   orphan can be found after a `kill -9`; killed when stopped or dropped, so Ctrl-C never leaves
//!   a stand-in behind. [`ManagedProcess::wait_http`] and [`ManagedProcess::wait_tcp`] wait until
//!   it answers, and fail at once, naming the log, if it exits first.
//! - [`free_port`]: a loopback port for a new listener.
//! - [`resolve_venv`] and [`venv_program`]: the project's Python venv (`make venv`), where the
//!   pinned stand-ins and cargo-lambda live.
//!
//! Every error is a [`ProcessError`] that names the program and the way out.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Environment variable naming the project venv.
pub const VENV_VAR: &str = "ROBOFLEET_VENV";

/// A child process could not be found, started, or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program is not where it was looked for.
    #[error("{program} not found at {path}: run `make venv` (or pass --venv / set ROBOFLEET_VENV)")]
    Missing {
        /// Name of the program.
        program: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Spawning the process failed.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// Name of the program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The process exited before it answered.
    #[error("{program} exited before it answered ({status}); its log is {log}")]
    Exited {
        /// Name of the program.
        program: String,
        /// Exit status as text.
        status: String,
        /// Path of its log file.
        log: PathBuf,
    },
    /// The process did not answer in time.
    #[error("{program} did not answer at {address} within {secs} s; see its log {log}")]
    Timeout {
        /// Name of the program.
        program: String,
        /// Address that was probed.
        address: String,
        /// How long we waited.
        secs: u64,
        /// Path of its log file.
        log: PathBuf,
    },
    /// Local I/O around the process (log file, free port).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, ProcessError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| ProcessError::Io {
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

/// `<venv>/bin/<program>`, or [`ProcessError::Missing`] naming the way out.
pub fn venv_program(venv: &Path, program: &str) -> Result<PathBuf, ProcessError> {
    let p = venv.join("bin").join(program);
    if p.is_file() {
        Ok(p)
    } else {
        Err(ProcessError::Missing {
            program: program.to_string(),
            path: p,
        })
    }
}

/// A child process this tool started; killed on [`ManagedProcess::stop`] or drop.
#[derive(Debug)]
pub struct ManagedProcess {
    program: String,
    child: Child,
    /// Where its output goes.
    pub log: PathBuf,
}

impl ManagedProcess {
    /// Starts `cmd` with its output in `log` (and its pid in `log` with the extension `pid`).
    pub fn spawn(
        program: impl Into<String>,
        mut cmd: Command,
        log: PathBuf,
    ) -> Result<Self, ProcessError> {
        let program = program.into();
        let io = |context: String| move |source| ProcessError::Io { context, source };
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
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            source,
        })?;
        tracing::info!(program, pid = child.id(), log = %log.display(), "started");
        // Beside the log, so that a process orphaned by a `kill -9` can be found and stopped.
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

    /// The program's name, as given to [`ManagedProcess::spawn`].
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Waits until `url` answers any HTTP status, or fails if the process exits first.
    pub async fn wait_http(&mut self, url: &str, timeout: Duration) -> Result<(), ProcessError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| ProcessError::Io {
                context: format!("building an http client to probe {url}"),
                source: std::io::Error::other(e),
            })?;
        self.wait_until(url, timeout, || {
            let request = client.get(url).send();
            async move { request.await.is_ok() }
        })
        .await
    }

    /// Waits until `127.0.0.1:port` accepts a TCP connection, or fails if the process exits
    /// first.
    pub async fn wait_tcp(&mut self, port: u16, timeout: Duration) -> Result<(), ProcessError> {
        let address = format!("127.0.0.1:{port}");
        self.wait_until(&address, timeout, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await
    }

    async fn wait_until<F, Fut>(
        &mut self,
        address: &str,
        timeout: Duration,
        mut probe: F,
    ) -> Result<(), ProcessError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ProcessError::Exited {
                    program: self.program.clone(),
                    status: status.to_string(),
                    log: self.log.clone(),
                });
            }
            if probe().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ProcessError::Timeout {
                    program: self.program.clone(),
                    address: address.to_string(),
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
    fn a_missing_program_names_the_way_out() {
        let dir = std::env::temp_dir().join(format!("no-venv-{}", std::process::id()));
        let e = venv_program(&dir, "moto_server")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("moto_server not found"), "{e}");
        assert!(e.contains("make venv"), "{e}");
    }

    #[test]
    fn a_free_port_can_be_bound_again() {
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }

    #[tokio::test]
    async fn a_process_that_exits_before_answering_is_reported_with_its_log() {
        let dir = std::env::temp_dir().join(format!("fleet-process-{}", std::process::id()));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo bye; exit 3"]);
        let mut p = ManagedProcess::spawn("quitter", cmd, dir.join("quitter.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        let e = p
            .wait_tcp(port, Duration::from_secs(10))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("quitter exited before it answered"), "{e}");
        assert!(e.contains("quitter.log"), "{e}");
        p.stop().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_listening_process_is_ready_and_stops() {
        let dir = std::env::temp_dir().join(format!("fleet-process-l-{}", std::process::id()));
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            &format!(
                "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(60)"
            ),
        ]);
        let mut p = ManagedProcess::spawn("listener", cmd, dir.join("listener.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        p.wait_tcp(port, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(dir.join("listener.pid").is_file());
        p.stop().await;
        assert!(
            !dir.join("listener.pid").exists(),
            "the pid file goes with the process"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
