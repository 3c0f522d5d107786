//! Command-line arguments (`robofleet sim …`) and the targets a run talks to.
//!
//! [`SimArgs`] is what a person types; [`Targets`] is where the traffic goes and where the
//! verifier looks. The CLI builds both from the flags; `robofleet dev` builds [`Targets`] from the
//! local stack it started and reuses the same [`SimArgs`].

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use fleet_console::parse_duration;

use crate::error::SimError;
use crate::faults::MalformedKind;

/// The traffic shape of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A compressed day: schedules on the hour and half hour, the daily peak at 10:00 US Eastern.
    Day,
    /// Christmas morning: a wave of brand-new robots over about four hours, ~20× normal traffic.
    Christmas,
    /// A constant message rate, for throughput tests.
    Steady,
}

/// `robofleet sim`: connect virtual robots over real MQTT sessions, drive a traffic shape, inject
/// faults, and verify that everything arrived exactly once.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Robots in the whole fleet (all shards together).
    #[arg(long, default_value_t = 20)]
    pub robots: u64,
    /// Thing-name prefix; robot k is `<prefix>-<k, 6 digits>`.
    #[arg(long, default_value = "rb-sim")]
    pub prefix: String,
    /// This process's share of the fleet, `i/n` (0-based): robots whose index is i mod n.
    #[arg(long, default_value = "0/1", value_parser = Shard::from_str)]
    pub shard: Shard,
    /// Traffic shape.
    #[arg(long, value_enum, default_value_t = Mode::Day)]
    pub mode: Mode,
    /// Simulated date (YYYY-MM-DD) for `day` (weekends are busier); `christmas` uses Dec 25.
    #[arg(long)]
    pub date: Option<String>,
    /// How long one simulated day lasts in real time (`day` and `christmas`), e.g. `5m`.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub day_length: Duration,
    /// First simulated hour (US Eastern) of a `day` run.
    #[arg(long, default_value_t = 0.0)]
    pub from_hour: f64,
    /// Simulated hours to run in `day` mode (from --from-hour).
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Run length for `steady` mode.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Messages per second (whole fleet, all shards) for `steady` mode.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Share of steady-mode messages that are mission reports (the rest are shadow updates).
    #[arg(long, default_value_t = 0.2)]
    pub mission_share: f64,
    /// Christmas morning traffic relative to a normal morning.
    #[arg(long, default_value_t = 20.0)]
    pub christmas_factor: f64,
    /// CONNECTs per second for the whole fleet (each shard takes its share); default: against
    /// IoT Core the account's CONNECT quota of the endpoint's region (500/s in us-east-1,
    /// us-west-2 and eu-west-1, 100/s elsewhere), else 100/s. Above the quota is refused.
    #[arg(long)]
    pub connect_rate: Option<f64>,
    /// The account's raised CONNECT quota per second (Service Quotas), when it is not the
    /// region's default.
    #[arg(long)]
    pub connect_quota: Option<f64>,
    /// Percentage of publishes sent twice (a QoS 0 resend).
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Percentage of rev-2 mission reports followed by a late resend of rev 1.
    #[arg(long, default_value_t = 0.0)]
    pub reorders: f64,
    /// Percentage of mission reports followed by a malformed report (one of --malformed-kinds).
    #[arg(long, default_value_t = 0.0)]
    pub malformed: f64,
    /// Kinds of malformed payloads to inject, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bad_json,missing_field,schema_violation,robot_mismatch"
    )]
    pub malformed_kinds: Vec<MalformedKind>,
    /// Percentage of robots that drop their connection abruptly once and reconnect.
    #[arg(long, default_value_t = 0.0)]
    pub disconnects: f64,
    /// Percentage of robots that get an app command (start, dock, new schedule) through the
    /// desired state of their shadow.
    #[arg(long, default_value_t = 10.0)]
    pub commands: f64,
    /// Seed of every random choice, so a run can be repeated.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// After the run, read the stores and check that everything arrived exactly once.
    #[arg(long)]
    pub verify: bool,
    /// How long the verifier waits for the pipeline's backlog to drain.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Measure publish-to-visible latency on every n-th mission report and shadow update.
    #[arg(long, default_value_t = 50)]
    pub latency_every: u64,
    /// Delete the rejects of this run's robots from the queue after counting them.
    #[arg(long)]
    pub drain_rejects: bool,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the plan (connect rate, volume, cost) and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a run against an AWS IoT endpoint (it costs money).
    #[arg(long)]
    pub allow_aws: bool,
    /// After the run, delete the things and certificates named `<prefix>-*` from AWS IoT.
    #[arg(long)]
    pub cleanup: bool,
    /// Where the traffic goes and where the verifier looks.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Target flags; [`TargetArgs::to_targets`] turns them into [`Targets`].
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// MQTT broker URL: `mqtt://host:port` (plain) or `mqtts://host:port` (TLS).
    #[arg(
        long,
        env = "ROBOFLEET_MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub broker: String,
    /// AWS IoT Core ATS endpoint (`xxxx-ats.iot.<region>.amazonaws.com`); implies mutual TLS.
    #[arg(long)]
    pub iot_endpoint: Option<String>,
    /// Port for --iot-endpoint: 8883, or 443 (then ALPN `x-amzn-mqtt-ca` is sent).
    #[arg(long, default_value_t = 8883)]
    pub iot_port: u16,
    /// Directory with one certificate and key per robot: `<thing>.cert.pem`, `<thing>.private.key`.
    #[arg(long)]
    pub certs_dir: Option<PathBuf>,
    /// CA bundle that signs the broker's certificate (AmazonRootCA1.pem for IoT Core).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Endpoint URL for DynamoDB, SQS and IoT control plane calls (moto locally); unset = AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// OpenSearch URL of the robots index.
    #[arg(long, env = "OPENSEARCH_ENDPOINT")]
    pub opensearch_url: Option<String>,
    /// Missions table name.
    #[arg(long, env = "MISSIONS_TABLE")]
    pub missions_table: Option<String>,
    /// Robots index alias.
    #[arg(long, env = "ROBOTS_ALIAS", default_value = "robots")]
    pub robots_alias: String,
    /// Rejects queue URL.
    #[arg(long, env = "REJECTS_QUEUE_URL")]
    pub rejects_queue_url: Option<String>,
    /// Credentials and region for the AWS calls (verification against AWS).
    #[command(flatten)]
    pub aws: fleet_aws::config::AwsAccess,
}

impl TargetArgs {
    /// Resolves the flags into targets.
    pub fn to_targets(&self) -> Result<Targets, SimError> {
        let mqtt = match &self.iot_endpoint {
            Some(host) => {
                let certs_dir = self.certs_dir.clone().ok_or_else(|| {
                    SimError::arg(
                        "--certs-dir",
                        "an IoT Core endpoint needs one certificate and key per robot",
                    )
                })?;
                MqttTarget {
                    host: host.clone(),
                    port: self.iot_port,
                    tls: Some(TlsTarget {
                        ca_file: self.ca_file.clone(),
                        certs_dir: Some(certs_dir),
                        alpn: self.iot_port == 443,
                    }),
                }
            }
            None => {
                let mut t = MqttTarget::parse_url(&self.broker)?;
                if let Some(tls) = &mut t.tls {
                    tls.ca_file = self.ca_file.clone();
                    tls.certs_dir = self.certs_dir.clone();
                }
                t
            }
        };
        Ok(Targets {
            mqtt,
            aws_endpoint: self.aws_endpoint_url.clone(),
            opensearch_url: self.opensearch_url.clone(),
            missions_table: self.missions_table.clone(),
            robots_alias: self.robots_alias.clone(),
            rejects_queue_url: self.rejects_queue_url.clone(),
            aws: self.aws.clone(),
        })
    }
}

/// Where a run sends its traffic and where `--verify` looks.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The MQTT broker.
    pub mqtt: MqttTarget,
    /// Endpoint URL for DynamoDB / SQS / IoT (moto); `None` means the real AWS endpoints.
    pub aws_endpoint: Option<String>,
    /// OpenSearch URL holding the robots alias.
    pub opensearch_url: Option<String>,
    /// Missions table name.
    pub missions_table: Option<String>,
    /// Robots index alias (`robots`).
    pub robots_alias: String,
    /// Rejects queue URL.
    pub rejects_queue_url: Option<String>,
    /// The profile and region of the AWS calls.
    pub aws: fleet_aws::config::AwsAccess,
}

/// An MQTT broker address, plain or TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<TlsTarget>,
}

/// TLS settings of a broker connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// CA bundle; `None` uses the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// One certificate and key per robot (mutual TLS); `None` for server-only TLS.
    pub certs_dir: Option<PathBuf>,
    /// Send ALPN `x-amzn-mqtt-ca` (IoT Core on port 443).
    pub alpn: bool,
}

impl MqttTarget {
    /// A plain-TCP broker at `host:port`.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        MqttTarget {
            host: host.into(),
            port,
            tls: None,
        }
    }

    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (also `tcp://`, `ssl://`, `tls://`,
    /// or a bare `host[:port]`). An IPv6 host is written in brackets: `mqtt://[::1]:1883`. The
    /// port defaults to 1883, or 8883 with TLS. This is the one MQTT URL parser of the workspace:
    /// the local stack parses its `--mqtt-url` with it too.
    pub fn parse_url(url: &str) -> Result<Self, SimError> {
        let bad = |problem: String| {
            SimError::arg(
                "--broker",
                format!("`{url}`: {problem}; use mqtt://host:port or mqtts://host:port"),
            )
        };
        let (scheme, rest) = url.split_once("://").unwrap_or(("mqtt", url));
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" | "tls" => true,
            other => return Err(bad(format!("unknown scheme `{other}`"))),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err(bad("expected only host and port after the scheme".into()));
        }
        let (host, port) = match rest.strip_prefix('[') {
            // [v6] or [v6]:port
            Some(v6) => match v6.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) => match p.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None => return Err(bad("a port follows `]:`".into())),
                },
                None => return Err(bad("the `[` of an IPv6 host is not closed".into())),
            },
            None => match rest.rsplit_once(':') {
                // A bare IPv6 address without brackets: no port.
                Some((h, _)) if h.contains(':') => (rest, None),
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad(format!("`{p}` is not a port number")))?,
            None if tls => 8883,
            None => 1883,
        };
        if host.is_empty() {
            return Err(bad("the url has no host".into()));
        }
        Ok(MqttTarget {
            host: host.to_string(),
            port,
            tls: tls.then_some(TlsTarget {
                ca_file: None,
                certs_dir: None,
                alpn: port == 443,
            }),
        })
    }

    /// True when this is AWS IoT Core: the guard rails apply.
    pub fn is_aws(&self) -> bool {
        self.host.ends_with(".amazonaws.com") || self.host.ends_with(".amazonaws.com.cn")
    }

    /// `scheme://host:port` for messages (an IPv6 host in brackets).
    pub fn display(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `--shard i/n`: this process simulates the robots whose index is `i` modulo `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard's number, 0-based.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl Shard {
    /// True when global robot index `k` belongs to this shard.
    pub fn owns(&self, k: u64) -> bool {
        k % self.count == self.index
    }

    /// The global robot indices of this shard in a fleet of `robots`.
    pub fn indices(&self, robots: u64) -> impl Iterator<Item = u64> + '_ {
        (self.index..robots).step_by(self.count as usize)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not i/n, e.g. 0/4"))?;
        let index: u64 = i
            .trim()
            .parse()
            .map_err(|_| format!("`{i}` is not a number"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= i < n"));
        }
        if usize::try_from(count).is_err() {
            return Err(format!("shard count {count} is too large"));
        }
        Ok(Shard { index, count })
    }
}

impl SimArgs {
    /// Parses flags as `robofleet sim` would (`["--robots", "10", "--verify"]`), for library
    /// callers such as `robofleet dev` and tests. Flags left out take their defaults (and the
    /// environment variables named in `--help`).
    pub fn from_flags<I, T>(flags: I) -> Result<SimArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            sim: SimArgs,
        }
        let all = std::iter::once(std::ffi::OsString::from("sim"))
            .chain(flags.into_iter().map(Into::into));
        Flags::try_parse_from(all).map(|f| f.sim)
    }

    /// Checks values that clap cannot check alone.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.robots == 0 {
            return Err(SimError::arg("--robots", "must be at least 1"));
        }
        for (name, v) in [
            ("--duplicates", self.duplicates),
            ("--reorders", self.reorders),
            ("--malformed", self.malformed),
            ("--disconnects", self.disconnects),
            ("--commands", self.commands),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(SimError::arg(name, "is a percentage between 0 and 100"));
            }
        }
        if !(0.0..=1.0).contains(&self.mission_share) {
            return Err(SimError::arg(
                "--mission-share",
                "is a fraction between 0 and 1",
            ));
        }
        if self.connect_rate.is_some_and(|r| r <= 0.0) {
            return Err(SimError::arg("--connect-rate", "must be above 0"));
        }
        if self.connect_quota.is_some_and(|r| r <= 0.0) {
            return Err(SimError::arg("--connect-quota", "must be above 0"));
        }
        if self.mode == Mode::Steady && self.rate <= 0.0 {
            return Err(SimError::arg("--rate", "must be above 0 in steady mode"));
        }
        if self.day_length.is_zero() {
            return Err(SimError::arg("--day-length", "must be above 0"));
        }
        if !(0.0..24.0).contains(&self.from_hour) || self.hours <= 0.0 || self.hours > 48.0 {
            return Err(SimError::arg(
                "--from-hour/--hours",
                "from-hour is 0..24 and hours is 0..48",
            ));
        }
        if self.christmas_factor < 1.0 {
            return Err(SimError::arg("--christmas-factor", "must be at least 1"));
        }
        if self.malformed > 0.0 && self.malformed_kinds.is_empty() {
            return Err(SimError::arg("--malformed-kinds", "name at least one kind"));
        }
        if self.prefix.is_empty()
            || !self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
        {
            return Err(SimError::arg(
                "--prefix",
                "a thing-name prefix uses only letters, digits, ':', '_' and '-'",
            ));
        }
        Ok(())
    }

    /// The thing name of global robot index `k`.
    pub fn robot_id(&self, k: u64) -> String {
        robot_id(&self.prefix, k)
    }
}

/// The thing name of global robot index `k`: `<prefix>-<k, 6 digits>`.
pub fn robot_id(prefix: &str, k: u64) -> String {
    format!("{prefix}-{k:06}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn shard_parses_and_splits_the_id_space() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s.indices(10).collect::<Vec<_>>(), vec![1, 4, 7]);
        assert!(s.owns(4) && !s.owns(5));
        assert!("3/3".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        // All shards together cover every robot exactly once.
        let mut all: Vec<u64> = (0..4)
            .flat_map(|i| Shard { index: i, count: 4 }.indices(23).collect::<Vec<_>>())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
    }

    #[test]
    fn broker_urls_parse() {
        let t = MqttTarget::parse_url("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!(t, MqttTarget::plain("127.0.0.1", 1884));
        let t = MqttTarget::parse_url("mqtts://broker.example:443").unwrap();
        assert!(t.tls.as_ref().unwrap().alpn);
        assert_eq!(MqttTarget::parse_url("localhost").unwrap().port, 1883);
        assert!(MqttTarget::parse_url("http://x:1").is_err());
        assert!(MqttTarget::parse_url("mqtt://x:port").is_err());
        assert!(MqttTarget::parse_url("mqtt://x:1/path").is_err());
        assert!(MqttTarget::parse_url("mqtt://user@x:1").is_err());
        assert_eq!(
            MqttTarget::parse_url("tcp://broker.local").unwrap(),
            MqttTarget::plain("broker.local", 1883)
        );
        let v6 = MqttTarget::parse_url("mqtt://[::1]:2000").unwrap();
        assert_eq!(v6, MqttTarget::plain("::1", 2000));
        assert_eq!(v6.display(), "mqtt://[::1]:2000");
        assert_eq!(
            MqttTarget::parse_url("mqtt://[fe80::1]").unwrap().port,
            1883
        );
        assert_eq!(MqttTarget::parse_url("mqtts://[::1]").unwrap().port, 8883);
        assert!(MqttTarget::parse_url("mqtt://[::1").is_err());
    }

    #[test]
    fn iot_endpoint_needs_certs_and_is_aws() {
        let cli = Cli::try_parse_from([
            "sim",
            "--iot-endpoint",
            "abc-ats.iot.us-east-1.amazonaws.com",
            "--iot-port",
            "443",
        ])
        .unwrap();
        assert!(cli.sim.target.to_targets().is_err());
        let cli = Cli::try_parse_from([
            "sim",
            "--iot-endpoint",
            "abc-ats.iot.us-east-1.amazonaws.com",
            "--iot-port",
            "443",
            "--certs-dir",
            "/tmp/certs",
        ])
        .unwrap();
        let t = cli.sim.target.to_targets().unwrap();
        assert!(t.mqtt.is_aws());
        assert!(t.mqtt.tls.unwrap().alpn);
    }

    #[test]
    fn library_callers_parse_flags() {
        let a = SimArgs::from_flags(["--robots", "7", "--verify"]).unwrap();
        assert_eq!((a.robots, a.verify, a.mode), (7, true, Mode::Day));
        assert!(SimArgs::from_flags(["--robots", "many"]).is_err());
    }

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        let cli = Cli::try_parse_from(["sim"]).unwrap();
        cli.sim.validate().unwrap();
        assert_eq!(cli.sim.robot_id(42), "rb-sim-000042");
        let cli = Cli::try_parse_from(["sim", "--duplicates", "150"]).unwrap();
        assert!(cli.sim.validate().is_err());
        let cli = Cli::try_parse_from(["sim", "--prefix", "a/b"]).unwrap();
        assert!(cli.sim.validate().is_err());
        let cli = Cli::try_parse_from(["sim", "--malformed-kinds", "bad_json,nope"]);
        assert!(cli.is_err());
    }
}
