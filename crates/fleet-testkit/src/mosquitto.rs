//! mosquitto, the real external MQTT broker of the tests (`make test` installs it with apt).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A mosquitto broker on a free loopback port, with its config and log in a temporary
/// directory; killed on drop.
pub struct Mosquitto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Where mosquitto is: on `PATH`, or in Debian's `/usr/sbin` (not on a user's `PATH`).
pub fn mosquitto_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

impl Mosquitto {
    /// Starts mosquitto with an anonymous listener on a free port, plus `extra` config lines
    /// (another listener with TLS, say).
    pub fn start(extra: &str) -> Mosquitto {
        Self::start_in(tempfile::tempdir().expect("a temporary directory"), extra)
    }

    /// The same, with its files in `dir` (which the caller may have filled with certificates).
    pub fn start_in(dir: tempfile::TempDir, extra: &str) -> Mosquitto {
        let bin = mosquitto_binary().expect(
            "mosquitto is not installed: `make test` installs it (apt-get install -y mosquitto)",
        );
        let port = crate::free_port();
        let conf = dir.path().join("mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n\
                 persistence false\nlog_dest file {}\n{extra}\n",
                log.display()
            ),
        )
        .expect("writing mosquitto.conf");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut broker = Mosquitto { child, port, dir };
        broker.wait_listening(Duration::from_secs(10));
        broker
    }

    fn wait_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("mosquitto.log"))
                    .unwrap_or_default();
                panic!(
                    "mosquitto did not listen on 127.0.0.1:{} ({exited:?}); its log:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Its directory (config, log, and whatever the caller put there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
