//! MQTT plumbing: per-robot session options (plain or mutual TLS), the CONNECT rate limiter, and
//! the open-file check. The session itself is [`crate::session`].
//!
//! IoT Core authenticates a robot by its X.509 certificate: each robot loads
//! `<certs_dir>/<thing>.cert.pem` and `<thing>.private.key`. On port 443 IoT Core needs the ALPN
//! protocol `x-amzn-mqtt-ca`; on 8883 no ALPN is sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub use crate::session::{SESSION_QUEUE, Session, SessionOptions};

use crate::args::MqttTarget;
use crate::error::SimError;

/// ALPN protocol IoT Core expects for MQTT over port 443.
pub const AWS_IOT_ALPN: &[u8] = b"x-amzn-mqtt-ca";
/// Largest MQTT packet either way (IoT Core's payload limit is 128 KiB; leave room for headers).
pub const MAX_PACKET: usize = 256 * 1024;
/// Keep-alive of a robot session.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);

fn read_file(path: &Path) -> Result<Vec<u8>, SimError> {
    std::fs::read(path).map_err(|e| SimError::Tls {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

fn load_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, SimError> {
    let bytes = read_file(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| SimError::Tls {
            path: path.to_path_buf(),
            problem: format!("not a pem certificate ({e})"),
        })?;
    if certs.is_empty() {
        return Err(SimError::Tls {
            path: path.to_path_buf(),
            problem: "holds no certificate".into(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, SimError> {
    let bytes = read_file(path)?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| SimError::Tls {
            path: path.to_path_buf(),
            problem: format!("not a pem private key ({e})"),
        })?
        .ok_or_else(|| SimError::Tls {
            path: path.to_path_buf(),
            problem: "holds no private key".into(),
        })
}

/// The certificate and key files of `thing` in `dir`.
pub fn robot_cert_paths(dir: &Path, thing: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{thing}.cert.pem")),
        dir.join(format!("{thing}.private.key")),
    )
}

/// Builds the rustls client configuration of one robot: trust `roots`, present `identity` (mutual
/// TLS) if given, and send ALPN `x-amzn-mqtt-ca` when `alpn` is set (IoT Core on port 443).
pub fn client_config(
    roots: &rustls::RootCertStore,
    identity: Option<(&Path, &Path)>,
    alpn: bool,
) -> Result<rustls::ClientConfig, SimError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SimError::TlsConfig)?
        .with_root_certificates(roots.clone());
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(SimError::TlsConfig)?,
        None => builder.with_no_client_auth(),
    };
    if alpn {
        config.alpn_protocols = vec![AWS_IOT_ALPN.to_vec()];
    }
    Ok(config)
}

/// Loads a CA bundle into a root store.
pub fn root_store(ca_file: &Path) -> Result<rustls::RootCertStore, SimError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca_file)? {
        roots.add(cert).map_err(SimError::TlsConfig)?;
    }
    Ok(roots)
}

/// Builds [`SessionOptions`] for each robot of a target.
#[derive(Debug)]
pub struct SessionFactory {
    target: MqttTarget,
    roots: Option<rustls::RootCertStore>,
}

impl SessionFactory {
    /// Prepares the target; reads the CA bundle once.
    pub fn new(target: MqttTarget) -> Result<Self, SimError> {
        let roots = match &target.tls {
            None => None,
            Some(tls) => {
                let ca = match (&tls.ca_file, &tls.certs_dir) {
                    (Some(ca), _) => ca.clone(),
                    (None, Some(dir)) if dir.join("AmazonRootCA1.pem").exists() => {
                        dir.join("AmazonRootCA1.pem")
                    }
                    _ => {
                        return Err(SimError::arg(
                            "--ca-file",
                            "a TLS broker needs the CA that signed its certificate \
                             (AmazonRootCA1.pem for IoT Core, or put it in --certs-dir)",
                        ));
                    }
                };
                Some(root_store(&ca)?)
            }
        };
        Ok(SessionFactory { target, roots })
    }

    /// The broker this factory connects to.
    pub fn target(&self) -> &MqttTarget {
        &self.target
    }

    /// Session options of `thing` (client id = thing name, clean session, QoS 0).
    pub fn options(&self, thing: &str) -> Result<SessionOptions, SimError> {
        let tls = match (&self.target.tls, &self.roots) {
            (Some(tls), Some(roots)) => {
                let paths = tls
                    .certs_dir
                    .as_ref()
                    .map(|dir| robot_cert_paths(dir, thing));
                let config = client_config(
                    roots,
                    paths.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                    tls.alpn,
                )?;
                Some(Arc::new(config))
            }
            _ => None,
        };
        Ok(SessionOptions {
            client_id: thing.to_string(),
            host: self.target.host.clone(),
            port: self.target.port,
            tls,
            keep_alive: KEEP_ALIVE,
            max_packet: MAX_PACKET,
        })
    }
}

/// Spaces CONNECTs evenly at `rate` per second across every robot of this process, and a
/// client id's CONNECTs at least a second apart (IoT Core's per-client-id quota).
#[derive(Debug)]
pub struct ConnectLimiter {
    interval: Duration,
    next: Mutex<Instant>,
    start: Instant,
    /// CONNECTs admitted, by second of the run.
    pub admitted: crate::quota::PeakRate,
}

impl ConnectLimiter {
    /// A limiter admitting `rate` CONNECTs per second.
    pub fn new(rate: f64) -> Self {
        let now = Instant::now();
        ConnectLimiter {
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            next: Mutex::new(now),
            start: now,
            admitted: crate::quota::PeakRate::default(),
        }
    }

    /// Waits for a CONNECT slot of a client whose last CONNECT was at `last` (none yet: `None`),
    /// then records this one there.
    pub async fn acquire_for(&self, last: &mut Option<Instant>) {
        if let Some(t) = *last {
            tokio::time::sleep_until(
                t + Duration::from_secs_f64(1.0 / crate::quota::CONNECTS_PER_CLIENT_PER_S),
            )
            .await;
        }
        self.acquire().await;
        *last = Some(Instant::now());
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        self.admitted
            .count(slot.saturating_duration_since(self.start).as_secs_f64());
    }
}

/// File descriptors the process keeps for itself beyond one socket per robot: the runtime,
/// the verifier's and the app side's connections, logs.
pub const FD_RESERVE: u64 = 128;

/// How many robots fit under an open-file limit: one socket each, beyond [`FD_RESERVE`].
pub fn robots_that_fit(open_files: u64) -> u64 {
    open_files.saturating_sub(FD_RESERVE)
}

/// Checks, before any robot connects, that `robots` sessions fit in the process's open-file
/// limit, raising the soft limit toward the hard one first when needed (as `ulimit -n` would).
/// Returns the limit in force.
pub fn check_open_files(robots: u64) -> Result<u64, SimError> {
    let need = robots + FD_RESERVE;
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map_err(|e| SimError::arg("--robots", format!("reading the open-file limit: {e}")))?;
    let soft = if soft < need {
        rlimit::increase_nofile_limit(need).unwrap_or(soft)
    } else {
        soft
    };
    open_files_fit(robots, soft, hard)?;
    Ok(soft)
}

/// [`check_open_files`]'s rule: `robots` fit under the soft limit `soft` (hard limit `hard`).
pub fn open_files_fit(robots: u64, soft: u64, hard: u64) -> Result<(), SimError> {
    let fit = robots_that_fit(soft);
    if robots > fit {
        return Err(SimError::arg(
            "--robots",
            format!(
                "{robots} robots need about {} open files (one socket each, {FD_RESERVE} for the process), but the limit is {soft} (hard limit {hard}): {fit} robots fit. Raise it (`ulimit -n {}`; above the hard limit, as root or in /etc/security/limits.conf), run fewer robots, or split the fleet with --shard",
                robots + FD_RESERVE,
                robots + FD_RESERVE
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["rb-1".into()]).unwrap();
        let (c, k) = robot_cert_paths(dir, "rb-1");
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        (ca_path, c, k)
    }

    #[test]
    fn alpn_is_sent_only_when_asked_for_port_443() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, c, k) = self_signed(dir.path());
        let roots = root_store(&ca).unwrap();
        let with = client_config(&roots, Some((&c, &k)), true).unwrap();
        assert_eq!(with.alpn_protocols, vec![b"x-amzn-mqtt-ca".to_vec()]);
        assert!(with.client_auth_cert_resolver.has_certs());
        let without = client_config(&roots, Some((&c, &k)), false).unwrap();
        assert!(without.alpn_protocols.is_empty());
        let anonymous = client_config(&roots, None, false).unwrap();
        assert!(!anonymous.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn iot_target_on_443_gets_alpn_from_the_factory() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _, _) = self_signed(dir.path());
        let target = MqttTarget {
            host: "abc-ats.iot.us-east-1.amazonaws.com".into(),
            port: 443,
            tls: Some(crate::args::TlsTarget {
                ca_file: Some(ca),
                certs_dir: Some(dir.path().to_path_buf()),
                alpn: true,
            }),
        };
        let factory = SessionFactory::new(target).unwrap();
        let opts = factory.options("rb-1").unwrap();
        let cfg = opts.tls.expect("a TLS session");
        assert_eq!(cfg.alpn_protocols, vec![AWS_IOT_ALPN.to_vec()]);
        assert_eq!(opts.client_id, "rb-1");
        // A robot without a certificate in the directory is a clear error, not a plain connect.
        let err = factory.options("rb-2").unwrap_err();
        assert!(err.to_string().contains("rb-2.cert.pem"), "{err}");
    }

    #[test]
    fn missing_or_garbage_material_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        assert!(
            root_store(&junk)
                .unwrap_err()
                .to_string()
                .contains("no certificate")
        );
        assert!(root_store(&dir.path().join("absent.pem")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_limiter_keeps_the_account_rate_and_a_second_between_a_clients_connects() {
        let limiter = std::sync::Arc::new(ConnectLimiter::new(100.0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let l = limiter.clone();
            tasks.push(tokio::spawn(async move {
                // Each client connects three times (two reconnects).
                let mut last = None;
                let mut at = Vec::new();
                for _ in 0..3 {
                    l.acquire_for(&mut last).await;
                    at.push(Instant::now());
                }
                at
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            let at = t.await.unwrap();
            for w in at.windows(2) {
                assert!(
                    w[1] - w[0] >= Duration::from_secs(1),
                    "a client id reconnected within a second"
                );
            }
            all.extend(at);
        }
        all.sort();
        // No 1 s window holds more than the account's 100.
        for (i, t) in all.iter().enumerate() {
            let within = all[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(within <= 100, "{within} connects within a second");
        }
        assert!(limiter.admitted.peak() <= 100);
        assert_eq!(all.len(), 150);
        assert!(
            start.elapsed() >= Duration::from_millis(1_490),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn the_limiter_spaces_connects() {
        let limiter = ConnectLimiter::new(50.0);
        let start = Instant::now();
        for _ in 0..11 {
            limiter.acquire().await;
        }
        // 11 slots at 20 ms apart: the last one is 200 ms after the first.
        assert!(
            start.elapsed() >= Duration::from_millis(195),
            "{:?}",
            start.elapsed()
        );
    }
}
