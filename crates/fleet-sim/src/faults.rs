//! Fault injection, as real fleets produce it: QoS 0 resends, late resends of older revs,
//! malformed payloads, abrupt disconnects.
//!
//! Every injected fault is decided by a seeded random source and recorded in the robot's ledger
//! only once the publish was flushed to the broker, so the verifier can account for each one.

use clap::ValueEnum;
use rand::Rng;

/// The kinds of malformed mission report the consumers reject (`RejectKind` in fleet-core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum MalformedKind {
    /// Not JSON (a truncated buffer).
    BadJson,
    /// JSON without `missionId`.
    MissingField,
    /// JSON with a status outside the contract.
    SchemaViolation,
    /// The payload's robot id differs from the thing in the topic.
    RobotMismatch,
    /// Over the 128 KiB limit. Off by default: IoT Core itself refuses such a message and may
    /// close the connection.
    TooLarge,
}

impl MalformedKind {
    /// Every kind.
    pub const ALL: [MalformedKind; 5] = [
        MalformedKind::BadJson,
        MalformedKind::MissingField,
        MalformedKind::SchemaViolation,
        MalformedKind::RobotMismatch,
        MalformedKind::TooLarge,
    ];

    /// The reject kind the consumers record (`reason.kind` of the reject envelope).
    pub fn as_str(self) -> &'static str {
        match self {
            MalformedKind::BadJson => "bad_json",
            MalformedKind::MissingField => "missing_field",
            MalformedKind::SchemaViolation => "schema_violation",
            MalformedKind::RobotMismatch => "robot_mismatch",
            MalformedKind::TooLarge => "too_large",
        }
    }
}

/// Fault rates of a run, as fractions (0..=1).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Share of publishes sent twice.
    pub duplicate: f64,
    /// Share of rev-2 reports followed by a resend of rev 1.
    pub reorder: f64,
    /// Share of mission reports followed by a malformed one.
    pub malformed: f64,
    /// Which malformed kinds to draw from (round robin, so every kind shows up).
    pub malformed_kinds: Vec<MalformedKind>,
    /// Share of robots that drop their connection once.
    pub disconnect: f64,
}

impl FaultConfig {
    /// No faults at all.
    pub fn none() -> Self {
        FaultConfig {
            duplicate: 0.0,
            reorder: 0.0,
            malformed: 0.0,
            malformed_kinds: Vec::new(),
            disconnect: 0.0,
        }
    }

    /// Draws whether this publish is duplicated.
    pub fn roll_duplicate(&self, rng: &mut impl Rng) -> bool {
        self.duplicate > 0.0 && rng.random::<f64>() < self.duplicate
    }

    /// Draws whether this rev 2 is followed by a stale rev 1.
    pub fn roll_reorder(&self, rng: &mut impl Rng) -> bool {
        self.reorder > 0.0 && rng.random::<f64>() < self.reorder
    }

    /// Draws whether a malformed report follows, and of which kind; `counter` rotates the kinds.
    pub fn roll_malformed(&self, rng: &mut impl Rng, counter: &mut usize) -> Option<MalformedKind> {
        if self.malformed <= 0.0 || self.malformed_kinds.is_empty() {
            return None;
        }
        if rng.random::<f64>() >= self.malformed {
            return None;
        }
        let kind = self.malformed_kinds[*counter % self.malformed_kinds.len()];
        *counter += 1;
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rates_are_respected_and_kinds_rotate() {
        let cfg = FaultConfig {
            duplicate: 0.1,
            reorder: 0.0,
            malformed: 0.5,
            malformed_kinds: vec![MalformedKind::BadJson, MalformedKind::MissingField],
            disconnect: 0.0,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let dups = (0..10_000).filter(|_| cfg.roll_duplicate(&mut rng)).count();
        assert!((800..1200).contains(&dups), "{dups}");
        assert!(!(0..1000).any(|_| cfg.roll_reorder(&mut rng)));
        let mut counter = 0;
        let kinds: Vec<_> = (0..1000)
            .filter_map(|_| cfg.roll_malformed(&mut rng, &mut counter))
            .collect();
        assert!((400..600).contains(&kinds.len()), "{}", kinds.len());
        let bad_json = kinds
            .iter()
            .filter(|k| **k == MalformedKind::BadJson)
            .count();
        assert!(bad_json.abs_diff(kinds.len() - bad_json) <= 1);
    }
}
