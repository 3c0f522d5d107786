//! `--invoke watch`: the functions run as their own processes behind the Lambda Runtime API of
//! `cargo lambda watch`, and the event source mapping pollers and the scheduler invoke them
//! through its Invoke API ([`crate::HttpInvoker`]).
//!
//! `cargo lambda watch --only-lambda-apis` serves the two APIs and compiles nothing: each
//! function is the binary the workspace build already made (`target/debug/<binary>`), started
//! here with its own evaluated environment and pointed at the runtime API under its own name
//! (`AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:<port>/.rt/<binary>`), as `cargo lambda watch`
//! itself starts the functions it compiles. So the path is the real one (the binary's
//! `main`, the runtime client, HTTP both ways), and a test run builds the workspace once.
//! Each function reaches the Runtime API through a [`crate::runtime_proxy`] that gives every
//! invocation the deadline Lambda would (cargo lambda watch sends one that has always passed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet_process::{ManagedProcess, free_port, venv_program};
use tokio::process::Command;

use crate::error::WatchError;

/// One function to run behind the runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedFunction {
    /// Binary name (`BuildProperties.Binary`): the file in the functions directory, and the
    /// name it is invoked by.
    pub binary: String,
    /// Its evaluated environment.
    pub environment: BTreeMap<String, String>,
    /// Its `Timeout`: each invocation's deadline is the invoke time plus this.
    pub timeout: Duration,
}

/// `cargo lambda watch` and the function processes behind it; all are stopped together.
#[derive(Debug)]
pub struct LambdaWatch {
    /// Base URL of the Invoke API (`http://127.0.0.1:<port>`).
    pub url: String,
    emulator: ManagedProcess,
    functions: Vec<ManagedProcess>,
    proxies: Vec<crate::runtime_proxy::RuntimeProxy>,
}

impl LambdaWatch {
    /// Stops the functions, then the emulator.
    pub async fn stop(self) {
        for f in self.functions {
            f.stop().await;
        }
        drop(self.proxies);
        self.emulator.stop().await;
    }
}

/// The directory of the binaries the current build made: `target/<profile>` above the running
/// executable (a test binary lives in `target/<profile>/deps`, a tool in `target/<profile>`).
pub fn build_dir_of_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

/// Starts `cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P <free port>` in `workspace`,
/// then every function of `functions` from `functions_dir`, and waits until the emulator
/// listens. Logs go to `log_dir` (`cargo-lambda-watch.log`, `<binary>.log`).
pub async fn start(
    venv: &Path,
    workspace: &Path,
    log_dir: &Path,
    functions_dir: &Path,
    functions: &[WatchedFunction],
) -> Result<LambdaWatch, WatchError> {
    let bin = venv_program(venv, "cargo-lambda")?;
    let binaries: Vec<PathBuf> = functions
        .iter()
        .map(|f| {
            let path = functions_dir.join(&f.binary);
            if path.is_file() {
                Ok(path)
            } else {
                Err(WatchError::NotBuilt {
                    binary: f.binary.clone(),
                    path,
                })
            }
        })
        .collect::<Result<_, _>>()?;
    let port = free_port()?;
    let mut cmd = Command::new(&bin);
    // cargo-lambda is a cargo subcommand: its first argument is `lambda`.
    cmd.args([
        "lambda",
        "watch",
        "--only-lambda-apis",
        "-A",
        "127.0.0.1",
        "-P",
        &port.to_string(),
    ])
    .current_dir(workspace);
    let mut emulator = ManagedProcess::spawn(
        "cargo-lambda watch",
        cmd,
        log_dir.join("cargo-lambda-watch.log"),
    )?;
    if let Err(e) = emulator.wait_tcp(port, Duration::from_secs(120)).await {
        emulator.stop().await;
        return Err(e.into());
    }
    let url = format!("http://127.0.0.1:{port}");
    let mut watch = LambdaWatch {
        url: url.clone(),
        emulator,
        functions: Vec::new(),
        proxies: Vec::new(),
    };
    for (f, path) in functions.iter().zip(binaries) {
        let proxy = match crate::runtime_proxy::start(&format!("{url}/.rt/{}", f.binary), f.timeout)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                watch.stop().await;
                return Err(WatchError::Proxy {
                    binary: f.binary.clone(),
                    source: e,
                });
            }
        };
        let runtime_api = proxy.addr.to_string();
        watch.proxies.push(proxy);
        let mut cmd = Command::new(&path);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&f.environment)
            .env("AWS_LAMBDA_FUNCTION_NAME", &f.binary)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .current_dir(workspace);
        match ManagedProcess::spawn(
            f.binary.clone(),
            cmd,
            log_dir.join(format!("{}.log", f.binary)),
        ) {
            Ok(p) => watch.functions.push(p),
            Err(e) => {
                watch.stop().await;
                return Err(e.into());
            }
        }
    }
    Ok(watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_dir_is_above_deps() {
        let dir = build_dir_of_current_exe().unwrap();
        // This test binary is target/<profile>/deps/fleet_esm-<hash>.
        assert!(dir.join("deps").is_dir(), "{}", dir.display());
    }

    #[tokio::test]
    async fn a_function_that_was_not_built_is_named_with_the_way_out() {
        let dir = std::env::temp_dir().join(format!("fleet-esm-watch-{}", std::process::id()));
        let venv = dir.join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/cargo-lambda"), "").unwrap();
        let e = start(
            &venv,
            &dir,
            &dir,
            &dir,
            &[WatchedFunction {
                binary: "no-such-function".into(),
                environment: BTreeMap::new(),
                timeout: Duration::from_secs(3),
            }],
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("function no-such-function is not built"), "{e}");
        assert!(e.contains("cargo build -p no-such-function"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
