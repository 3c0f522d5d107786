//! The end of a run: a summary a person can read and a JSON report a script can read.

use std::collections::BTreeMap;

use crate::cleanup::CleanupReport;
use crate::cost::Estimate;
use crate::verify::{Latency, MissionCounts, RejectCounts, RobotCounts};

/// What the robots handed to the broker.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Published {
    /// Distinct missions with a report flushed.
    pub missions: u64,
    /// Mission report publishes (every rev, duplicates and reorders included).
    pub mission_reports: u64,
    /// Shadow update publishes by the robots.
    pub shadow_updates: u64,
    /// Shadow get requests by the robots (one after each connect).
    pub shadow_gets: u64,
    /// Injected duplicates.
    pub duplicates: u64,
    /// Injected late resends of an older rev.
    pub reorders: u64,
    /// Injected malformed reports.
    pub malformed: u64,
    /// Malformed reports by kind.
    pub malformed_by_kind: BTreeMap<String, u64>,
    /// App commands sent through desired state.
    pub commands: u64,
    /// Commands the robots acted on.
    pub commands_handled: u64,
    /// Injected abrupt disconnects.
    pub disconnects: u64,
    /// Connections that broke by themselves.
    pub unexpected_disconnects: u64,
    /// Publishes that never reached the socket.
    pub unflushed: u64,
    /// The most publishes one connection flushed in one second (IoT Core allows 100).
    pub peak_publishes_per_connection_per_s: u64,
    /// Every publish flushed to the broker: the live progress line's counter, read at the end
    /// (mission reports, shadow updates, malformed reports and shadow gets add up to it).
    pub total: u64,
}

/// What the stores hold (with `--verify`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stored {
    /// Missions of this run stored.
    pub missions: Option<u64>,
    /// Robots with a document in the robots index.
    pub robots_indexed: Option<u64>,
}

/// Which stores `--verify` read. A store it could not read (no target for it) is reported as
/// not checked, and the verdict covers only the stores it checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    /// The missions table (needs `--missions-table`).
    pub missions: bool,
    /// The robots index (needs `--opensearch-url`).
    pub robots_index: bool,
    /// The rejects queue (needs `--rejects-queue-url`).
    pub rejects: bool,
}

impl Checked {
    /// `(store, flag that enables it, checked)` for each store.
    fn stores(&self) -> [(&'static str, &'static str, bool); 3] {
        [
            ("missions", "--missions-table", self.missions),
            ("robots index", "--opensearch-url", self.robots_index),
            ("rejects", "--rejects-queue-url", self.rejects),
        ]
    }
}

/// Throughput.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Rate {
    /// Publishes per second over the traffic window.
    pub published_per_s: f64,
    /// Messages made visible per second, from the first publish until the stores had everything.
    pub processed_per_s: Option<f64>,
}

/// Connection figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Connections {
    /// Robots that connected at least once.
    pub robots_connected: u64,
    /// Successful CONNECTs (reconnects included).
    pub connects: u64,
    /// Failed CONNECT attempts.
    pub connect_errors: u64,
    /// The last connection error seen.
    pub last_error: Option<String>,
    /// The most CONNECTs in one second of the run.
    pub peak_connects_per_s: u64,
    /// The CONNECT rate the run kept to (this shard's share of the fleet's).
    pub connect_limit_per_s: f64,
}

/// The report of one run (one shard).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimReport {
    /// Robots simulated by this process.
    pub robots: u64,
    /// Robots in the whole fleet.
    pub fleet_robots: u64,
    /// `i/n`.
    pub shard: String,
    /// Traffic shape.
    pub mode: String,
    /// Broker URL.
    pub broker: String,
    /// The plan printed before the run.
    pub plan: Option<Estimate>,
    /// Connections.
    pub connections: Connections,
    /// What was handed to the broker.
    pub published: Published,
    /// Whether `--verify` ran.
    pub verified: bool,
    /// Which stores `--verify` read.
    pub checked: Checked,
    /// What the stores hold.
    pub stored: Stored,
    /// Missions expected but not stored.
    pub lost: u64,
    /// Missions stored below the last revision sent.
    pub lost_revs: u64,
    /// Items that should not exist (duplicates stored twice, malformed reports stored).
    pub extra: u64,
    /// Robots whose indexed shadow version is behind their last one.
    pub stale_robots: u64,
    /// Mission accounting in detail.
    pub missions: Option<MissionCounts>,
    /// Robots-index accounting in detail.
    pub robots_index: Option<RobotCounts>,
    /// Rejects expected vs found.
    pub rejects: Option<RejectCounts>,
    /// Publish-to-visible latency, sampled.
    pub latency_ms: Latency,
    /// Throughput.
    pub rate: Rate,
    /// Seconds after the end of traffic until the stores had everything (`None`: not drained
    /// within the grace period, or not verified).
    pub drained_after_s: Option<f64>,
    /// Real seconds of the traffic window.
    pub duration_s: f64,
    /// Things and certificates removed by `--cleanup`.
    pub cleanup: Option<CleanupReport>,
    /// Everything that makes the run fail, in words.
    pub problems: Vec<String>,
}

impl SimReport {
    /// True when the run verified and everything arrived exactly once.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// Fills `problems` from the counts.
    pub fn judge(&mut self) {
        let mut p = Vec::new();
        if self.connections.robots_connected < self.robots {
            p.push(format!(
                "{} of {} robots never connected (last error: {})",
                self.robots - self.connections.robots_connected,
                self.robots,
                self.connections.last_error.as_deref().unwrap_or("none")
            ));
        }
        if self.verified {
            if self.lost > 0 {
                p.push(format!("{} missions lost", self.lost));
            }
            if self.lost_revs > 0 {
                p.push(format!(
                    "{} missions stored below their last revision",
                    self.lost_revs
                ));
            }
            if self.extra > 0 {
                p.push(format!("{} extra mission items", self.extra));
            }
            if self.stale_robots > 0 {
                p.push(format!(
                    "{} robots stale in the robots index",
                    self.stale_robots
                ));
            }
            if let Some(r) = &self.rejects
                && r.found != r.expected
            {
                p.push(format!(
                    "rejects: {} expected, {} found",
                    r.expected, r.found
                ));
            }
        }
        self.problems = p;
    }

    /// The summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let p = &self.published;
        s.push_str(&format!(
            "robofleet sim: {} robots (shard {} of a {}-robot fleet), mode {}, {:.0} s against {}\n",
            self.robots, self.shard, self.fleet_robots, self.mode, self.duration_s, self.broker
        ));
        s.push_str(&format!(
            "  connected   {} robots, {} connects, {} failed attempts\n",
            self.connections.robots_connected,
            self.connections.connects,
            self.connections.connect_errors
        ));
        s.push_str(&format!(
            "  quotas      CONNECT peak {}/s (kept to {:.0}/s; 1/s per client id); publishes peak {}/s per connection (IoT Core: {:.0})\n",
            self.connections.peak_connects_per_s,
            self.connections.connect_limit_per_s,
            p.peak_publishes_per_connection_per_s,
            crate::quota::PUBLISHES_PER_CONNECTION_PER_S
        ));
        s.push_str(&format!(
            "  published   {} messages ({:.1}/s): {} missions in {} reports, {} shadow updates, {} shadow gets, {} malformed\n",
            p.total,
            self.rate.published_per_s,
            p.missions,
            p.mission_reports,
            p.shadow_updates,
            p.shadow_gets,
            p.malformed
        ));
        s.push_str(&format!(
            "  injected    {} duplicates, {} reorders, {} malformed, {} disconnects, {} commands ({} handled)\n",
            p.duplicates, p.reorders, p.malformed, p.disconnects, p.commands, p.commands_handled
        ));
        if p.unflushed > 0 || p.unexpected_disconnects > 0 {
            s.push_str(&format!(
                "  uncertain   {} publishes cut by {} broken connections (neither expected nor extra)\n",
                p.unflushed, p.unexpected_disconnects
            ));
        }
        if self.verified {
            let checked: Vec<String> = self
                .checked
                .stores()
                .iter()
                .map(|(store, flag, yes)| {
                    if *yes {
                        format!("{store} yes")
                    } else {
                        format!("{store} NOT CHECKED (no {flag})")
                    }
                })
                .collect();
            s.push_str(&format!("  checked     {}\n", checked.join(", ")));
            let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            s.push_str(&format!(
                "  stored      {} missions, {} robots indexed\n",
                opt(self.stored.missions),
                opt(self.stored.robots_indexed)
            ));
            s.push_str(&format!(
                "  verdict     lost {}, lost revs {}, extra {}, stale robots {}\n",
                self.lost, self.lost_revs, self.extra, self.stale_robots
            ));
            if let Some(r) = &self.rejects {
                let kinds: Vec<String> =
                    r.by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect();
                s.push_str(&format!(
                    "  rejects     {} expected, {} found [{}]\n",
                    r.expected,
                    r.found,
                    kinds.join(", ")
                ));
            }
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
            s.push_str(&format!(
                "  latency     p50 {}, p99 {}, max {} ({} samples, {} never visible)\n",
                ms(self.latency_ms.p50),
                ms(self.latency_ms.p99),
                ms(self.latency_ms.max),
                self.latency_ms.samples,
                self.latency_ms.timed_out
            ));
            s.push_str(&format!(
                "  processed   {} (drained {} after the last publish)\n",
                self.rate
                    .processed_per_s
                    .map_or("-".to_string(), |r| format!("{r:.1} msg/s")),
                self.drained_after_s
                    .map_or("not".to_string(), |d| format!("{d:.1} s"))
            ));
        } else {
            s.push_str("  not verified (add --verify to check the stores)\n");
        }
        if let Some(c) = &self.cleanup {
            s.push_str(&format!(
                "  cleanup     {} things, {} certificates deleted, {} errors\n",
                c.things_deleted,
                c.certificates_deleted,
                c.errors.len()
            ));
        }
        if self.problems.is_empty() {
            if self.verified {
                let (yes, no): (Vec<_>, Vec<_>) =
                    self.checked.stores().into_iter().partition(|(_, _, c)| *c);
                let names = |v: Vec<(&str, &str, bool)>| {
                    v.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join(", ")
                };
                if no.is_empty() {
                    s.push_str(&format!("  PASS ({})\n", names(yes)));
                } else {
                    s.push_str(&format!(
                        "  PASS for {}; not checked: {}\n",
                        names(yes),
                        names(no)
                    ));
                }
            } else {
                s.push_str("  done\n");
            }
        } else {
            s.push_str(&format!("  FAIL: {}\n", self.problems.join("; ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_report_has_the_documented_fields_and_a_failure_is_judged() {
        let mut r = SimReport {
            robots: 3,
            fleet_robots: 3,
            verified: true,
            lost: 1,
            ..Default::default()
        };
        r.connections.robots_connected = 3;
        r.judge();
        assert!(!r.passed());
        assert!(r.summary().contains("FAIL: 1 missions lost"));
        let v = serde_json::to_value(&r).unwrap();
        for path in [
            "/robots",
            "/published/missions",
            "/published/shadow_updates",
            "/published/duplicates",
            "/published/malformed",
            "/stored/missions",
            "/stored/robots_indexed",
            "/lost",
            "/extra",
            "/stale_robots",
            "/latency_ms/p50",
            "/latency_ms/p99",
            "/latency_ms/max",
            "/rate/published_per_s",
            "/rate/processed_per_s",
        ] {
            assert!(v.pointer(path).is_some(), "missing {path}");
        }
        r.lost = 0;
        r.judge();
        // Nothing was read: the verdict says so instead of a plain PASS.
        assert!(r.passed());
        assert!(
            r.summary()
                .contains("PASS for ; not checked: missions, robots index, rejects"),
            "{}",
            r.summary()
        );
        r.checked = Checked {
            missions: true,
            robots_index: true,
            rejects: false,
        };
        let summary = r.summary();
        assert!(
            summary.contains("PASS for missions, robots index; not checked: rejects"),
            "{summary}"
        );
        assert!(
            summary.contains("rejects NOT CHECKED (no --rejects-queue-url)"),
            "{summary}"
        );
        r.checked.rejects = true;
        assert!(
            r.summary()
                .contains("PASS (missions, robots index, rejects)")
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap()["checked"],
            serde_json::json!({"missions": true, "robots_index": true, "rejects": true})
        );
    }
}
