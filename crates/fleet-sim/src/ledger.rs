//! What each robot handed to the broker, recorded at the moment the publish was flushed.
//!
//! A QoS 0 publish is "handed over" when rumqttc reports it written and flushed to the socket
//! (`Event::Outgoing(Publish)`). Publishes that were still queued when a connection broke are
//! "uncertain": the verifier neither expects them nor counts them as extra.

use std::collections::BTreeMap;

use crate::faults::MalformedKind;

/// One mission as the stores should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedMission {
    /// `startedAt` as sent (part of the sort key).
    pub started_at: String,
    /// Highest revision flushed to the broker (0 if only uncertain publishes).
    pub max_rev: u32,
    /// Highest revision whose publish was lost in a broken connection.
    pub uncertain_rev: u32,
}

/// Everything one robot did, for the report and the verifier.
#[derive(Debug, Clone, Default)]
pub struct RobotLedger {
    /// Thing name.
    pub robot: String,
    /// Successful CONNECTs (first connect and reconnects).
    pub connects: u32,
    /// CONNECT attempts that failed.
    pub connect_errors: u32,
    /// The last connection error text.
    pub last_error: Option<String>,
    /// Missions by mission id.
    pub missions: BTreeMap<String, ExpectedMission>,
    /// Valid mission report publishes flushed (every rev, duplicates and reorders included).
    pub mission_reports: u64,
    /// Shadow update publishes flushed (duplicates and command acknowledgements included).
    pub shadow_updates: u64,
    /// Shadow get requests flushed (one after each connect).
    pub shadow_gets: u64,
    /// This robot's publishes by second of the run (its busiest second).
    pub publishes: crate::quota::PeakRate,
    /// Injected duplicate publishes (mission reports and shadow updates).
    pub duplicates: u64,
    /// Injected late resends of an older rev.
    pub reorders: u64,
    /// Injected malformed mission reports, by kind.
    pub malformed: BTreeMap<MalformedKind, u64>,
    /// Injected abrupt disconnects.
    pub disconnects: u64,
    /// Connections that broke without being asked to.
    pub unexpected_disconnects: u64,
    /// App commands received through the shadow delta and acted on.
    pub commands_handled: u64,
    /// Publishes that never reached the socket (queue full or connection broken).
    pub unflushed: u64,
    /// Highest shadow version seen in `update/accepted`.
    pub last_accepted_version: Option<u64>,
    /// Shadow version read with `get` at the end of the run.
    pub final_version: Option<u64>,
    /// Shadow updates the shadow service rejected.
    pub shadow_rejected: u64,
    /// Planned actions that could not run (e.g. a mission start while a commanded one ran).
    pub skipped: u64,
}

impl RobotLedger {
    /// A fresh ledger for `robot`.
    pub fn new(robot: impl Into<String>) -> Self {
        RobotLedger {
            robot: robot.into(),
            ..Default::default()
        }
    }

    /// The shadow version the robots index must reach.
    pub fn expected_version(&self) -> Option<u64> {
        match (self.final_version, self.last_accepted_version) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records a flushed mission report of `rev`.
    pub fn report_flushed(&mut self, mission_id: &str, started_at: &str, rev: u32) {
        let m = self
            .missions
            .entry(mission_id.to_string())
            .or_insert_with(|| ExpectedMission {
                started_at: started_at.to_string(),
                max_rev: 0,
                uncertain_rev: 0,
            });
        m.max_rev = m.max_rev.max(rev);
        self.mission_reports += 1;
    }

    /// Records a mission report lost with a broken connection.
    pub fn report_uncertain(&mut self, mission_id: &str, started_at: &str, rev: u32) {
        let m = self
            .missions
            .entry(mission_id.to_string())
            .or_insert_with(|| ExpectedMission {
                started_at: started_at.to_string(),
                max_rev: 0,
                uncertain_rev: 0,
            });
        m.uncertain_rev = m.uncertain_rev.max(rev);
    }

    /// Missions with at least one flushed report: the stores must hold each exactly once.
    pub fn expected_missions(&self) -> usize {
        self.missions.values().filter(|m| m.max_rev > 0).count()
    }

    /// Malformed reports injected, all kinds.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }
}
