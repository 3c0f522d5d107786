//! The shared state of one downstream's breaker and its transitions, as pure functions.
//!
//! The state lives in one item per downstream and changes only by conditional writes on
//! `version`: a transition is computed from the state read, and written only if nobody wrote
//! in between. So exactly one tripping invocation opens the breaker, and exactly one prober
//! holds the half-open lease; a prober whose lease expired and was taken over cannot write.

use std::time::Duration;

use crate::policy::Policy;

/// Closed, open or half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Calls go through.
    Closed,
    /// The mappings are paused; nothing is invoked until a probe succeeds.
    Open,
    /// A prober holds the lease and is testing the downstream; the mappings stay paused.
    HalfOpen,
}

impl Status {
    /// Lowercase name (the item's `status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Closed => "closed",
            Status::Open => "open",
            Status::HalfOpen => "half_open",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "closed" => Some(Status::Closed),
            "open" => Some(Status::Open),
            "half_open" => Some(Status::HalfOpen),
            _ => None,
        }
    }
}

/// The half-open lease: who probes, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The prober (its request id).
    pub holder: String,
    /// When the lease lapses, ms since the epoch.
    pub until_ms: u64,
}

/// One downstream's breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The downstream (`robots-index`, `missions-table`).
    pub downstream: String,
    /// Closed, open or half-open.
    pub status: Status,
    /// Bumped by every write; writes are conditional on it.
    pub version: u64,
    /// Openings in a row (the ejection grows with it); decays once closed for `max_ejection`.
    pub openings: u32,
    /// When the current opening began (ms since the epoch).
    pub opened_at_ms: u64,
    /// When the breaker may be probed (ms since the epoch).
    pub open_until_ms: u64,
    /// When it last closed (ms since the epoch).
    pub closed_at_ms: u64,
    /// The prober, while half-open.
    pub lease: Option<Lease>,
    /// Successful probes in a row, while half-open.
    pub successes: u32,
    /// Set when an operator forced the state (`robofleet breaker open|close`): who.
    pub forced_by: Option<String>,
    /// Why it is in this state.
    pub cause: String,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl State {
    /// A closed breaker that was never written (version 0).
    pub fn new(downstream: impl Into<String>) -> Self {
        State {
            downstream: downstream.into(),
            status: Status::Closed,
            version: 0,
            openings: 0,
            opened_at_ms: 0,
            open_until_ms: 0,
            closed_at_ms: 0,
            lease: None,
            successes: 0,
            forced_by: None,
            cause: String::new(),
        }
    }

    /// Whether calls go through.
    pub fn admits(&self) -> bool {
        self.status == Status::Closed
    }

    fn next(&self) -> State {
        State {
            version: self.version + 1,
            ..self.clone()
        }
    }

    fn opened(&self, now_ms: u64, cause: String, policy: &Policy, jitter: f64) -> State {
        // Openings decay: after `max_ejection` of health, the next opening is a first one.
        let decayed = self.status == Status::Closed
            && now_ms.saturating_sub(self.closed_at_ms) >= ms(policy.max_ejection);
        let openings = if decayed { 1 } else { self.openings + 1 };
        State {
            status: Status::Open,
            openings,
            opened_at_ms: if self.status == Status::Closed {
                now_ms
            } else {
                self.opened_at_ms
            },
            open_until_ms: now_ms + ms(policy.ejection(openings, jitter)),
            lease: None,
            successes: 0,
            forced_by: None,
            cause,
            ..self.next()
        }
    }

    /// A function's trip rule fired: closed → open. `None` when it is not closed (someone else
    /// opened it already).
    pub fn trip(&self, now_ms: u64, cause: &str, policy: &Policy, jitter: f64) -> Option<State> {
        (self.status == Status::Closed)
            .then(|| self.opened(now_ms, cause.to_string(), policy, jitter))
    }

    /// Whether `holder` may take the half-open lease now: open and its ejection over, or
    /// half-open with a lapsed lease (its prober died).
    pub fn probe_due(&self, now_ms: u64) -> bool {
        match self.status {
            Status::Open => self.forced_by.is_none() && now_ms >= self.open_until_ms,
            Status::HalfOpen => self.lease.as_ref().is_none_or(|l| now_ms >= l.until_ms),
            Status::Closed => false,
        }
    }

    /// Takes the half-open lease for `holder`.
    pub fn acquire(&self, holder: &str, now_ms: u64, policy: &Policy) -> Option<State> {
        self.probe_due(now_ms).then(|| State {
            status: Status::HalfOpen,
            lease: Some(Lease {
                holder: holder.to_string(),
                until_ms: now_ms + ms(policy.probe_lease),
            }),
            successes: if self.status == Status::HalfOpen {
                self.successes
            } else {
                0
            },
            cause: format!("probing (lease {holder})"),
            ..self.next()
        })
    }

    /// Whether `holder`'s lease is the current, live one.
    pub fn holds(&self, holder: &str, now_ms: u64) -> bool {
        self.status == Status::HalfOpen
            && self
                .lease
                .as_ref()
                .is_some_and(|l| l.holder == holder && now_ms < l.until_ms)
    }

    /// A probe of `holder` succeeded: one more success, and closed after `probes_to_close`.
    pub fn probe_succeeded(&self, holder: &str, now_ms: u64, policy: &Policy) -> Option<State> {
        if !self.holds(holder, now_ms) {
            return None;
        }
        let successes = self.successes + 1;
        Some(if successes >= policy.probes_to_close {
            State {
                status: Status::Closed,
                lease: None,
                successes: 0,
                closed_at_ms: now_ms,
                cause: format!("{successes} probes in a row succeeded"),
                ..self.next()
            }
        } else {
            State {
                successes,
                cause: format!("{successes} of {} probes succeeded", policy.probes_to_close),
                ..self.next()
            }
        })
    }

    /// A probe of `holder` failed: open again, for longer.
    pub fn probe_failed(
        &self,
        holder: &str,
        now_ms: u64,
        cause: &str,
        policy: &Policy,
        jitter: f64,
    ) -> Option<State> {
        self.holds(holder, now_ms)
            .then(|| self.opened(now_ms, format!("probe failed: {cause}"), policy, jitter))
    }

    /// The guard on the pause: open (or half-open) for `max_pause`, it closes, so the mappings
    /// resume and records nearing retention reach the on-failure destination.
    pub fn pause_expired(&self, now_ms: u64, policy: &Policy) -> Option<State> {
        let paused = self.status != Status::Closed
            && now_ms.saturating_sub(self.opened_at_ms) >= ms(policy.max_pause);
        paused.then(|| State {
            status: Status::Closed,
            lease: None,
            successes: 0,
            forced_by: None,
            closed_at_ms: now_ms,
            cause: format!(
                "paused for the longest allowed ({} h): resumed so that aged records go to the on-failure destination",
                policy.max_pause.as_secs() / 3600
            ),
            ..self.next()
        })
    }

    /// An operator forces it open (until closed by an operator: no probe reopens it).
    pub fn force_open(&self, by: &str, now_ms: u64) -> State {
        State {
            status: Status::Open,
            opened_at_ms: if self.status == Status::Closed {
                now_ms
            } else {
                self.opened_at_ms
            },
            open_until_ms: u64::MAX,
            lease: None,
            successes: 0,
            forced_by: Some(by.to_string()),
            cause: format!("forced open by {by}"),
            ..self.next()
        }
    }

    /// An operator forces it closed.
    pub fn force_close(&self, by: &str, now_ms: u64) -> State {
        State {
            status: Status::Closed,
            lease: None,
            successes: 0,
            forced_by: None,
            closed_at_ms: now_ms,
            cause: format!("forced closed by {by}"),
            ..self.next()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Policy {
        Policy {
            base_ejection: Duration::from_secs(60),
            max_ejection: Duration::from_secs(300),
            jitter: Duration::ZERO,
            probes_to_close: 2,
            probe_lease: Duration::from_secs(30),
            max_pause: Duration::from_secs(3600),
            ..Policy::default()
        }
    }

    #[test]
    fn a_full_cycle_closed_open_half_open_closed() {
        let p = p();
        let s = State::new("robots-index");
        let open = s.trip(1_000, "5 consecutive failures", &p, 0.0).unwrap();
        assert_eq!(
            (open.status, open.version, open.openings),
            (Status::Open, 1, 1)
        );
        assert_eq!(open.open_until_ms, 61_000);
        assert!(
            open.trip(2_000, "again", &p, 0.0).is_none(),
            "only from closed"
        );
        assert!(
            open.acquire("probe-1", 60_999, &p).is_none(),
            "not before the ejection"
        );
        let half = open.acquire("probe-1", 61_000, &p).unwrap();
        assert_eq!(half.status, Status::HalfOpen);
        assert!(half.acquire("probe-2", 61_001, &p).is_none(), "one prober");
        let one = half.probe_succeeded("probe-1", 62_000, &p).unwrap();
        assert_eq!((one.status, one.successes), (Status::HalfOpen, 1));
        assert!(
            one.probe_succeeded("probe-2", 62_000, &p).is_none(),
            "not the holder"
        );
        let closed = one.probe_succeeded("probe-1", 63_000, &p).unwrap();
        assert_eq!(
            (closed.status, closed.version, closed.closed_at_ms),
            (Status::Closed, 4, 63_000)
        );
    }

    #[test]
    fn each_failed_probe_opens_for_longer_up_to_the_cap() {
        let p = p();
        let mut s = State::new("d").trip(0, "x", &p, 0.0).unwrap();
        let mut lengths = Vec::new();
        for i in 0..7 {
            let now = s.open_until_ms;
            let half = s.acquire(&format!("p{i}"), now, &p).unwrap();
            s = half
                .probe_failed(&format!("p{i}"), now, "503", &p, 0.0)
                .unwrap();
            lengths.push((s.open_until_ms - now) / 1000);
        }
        assert_eq!(lengths, [120, 180, 240, 300, 300, 300, 300]);
        assert_eq!(s.opened_at_ms, 0, "the pause began at the first opening");
        assert!(s.cause.starts_with("probe failed: 503"));
    }

    #[test]
    fn a_lapsed_lease_passes_to_another_prober_and_the_old_one_cannot_write() {
        let p = p();
        let open = State::new("d").trip(0, "x", &p, 0.0).unwrap();
        let half = open.acquire("slow", 60_000, &p).unwrap();
        assert!(half.acquire("next", 89_999, &p).is_none());
        let taken = half.acquire("next", 90_000, &p).unwrap();
        assert!(taken.probe_succeeded("slow", 90_001, &p).is_none());
        assert!(
            taken
                .probe_failed("slow", 90_001, "late", &p, 0.0)
                .is_none()
        );
        assert!(taken.probe_succeeded("next", 90_001, &p).is_some());
        // Even before the takeover, a lapsed holder cannot write.
        assert!(half.probe_succeeded("slow", 90_000, &p).is_none());
    }

    #[test]
    fn openings_decay_after_a_healthy_stretch() {
        let p = p();
        let s = State::new("d").trip(0, "x", &p, 0.0).unwrap();
        let s = s.acquire("a", s.open_until_ms, &p).unwrap();
        let s = s.probe_failed("a", 60_000, "x", &p, 0.0).unwrap();
        assert_eq!(s.openings, 2);
        let now = s.open_until_ms;
        let s = s.acquire("b", now, &p).unwrap();
        let s = s.probe_succeeded("b", now, &p).unwrap();
        let s = s.probe_succeeded("b", now + 1, &p).unwrap();
        assert_eq!(s.status, Status::Closed);
        // Soon after: the next opening counts on.
        assert_eq!(s.trip(now + 1000, "x", &p, 0.0).unwrap().openings, 3);
        // After max_ejection of health: a first opening again.
        assert_eq!(s.trip(now + 1 + 300_000, "x", &p, 0.0).unwrap().openings, 1);
    }

    #[test]
    fn a_pause_is_capped_and_an_operator_overrides() {
        let p = p();
        let s = State::new("d").trip(0, "x", &p, 0.0).unwrap();
        assert!(s.pause_expired(3_599_999, &p).is_none());
        let resumed = s.pause_expired(3_600_000, &p).unwrap();
        assert_eq!(resumed.status, Status::Closed);
        assert!(resumed.cause.contains("on-failure destination"));
        let forced = State::new("d").force_open("ops@example", 5);
        assert_eq!(forced.status, Status::Open);
        assert!(
            !forced.probe_due(u64::MAX - 1),
            "no probe reopens a forced breaker"
        );
        let closed = forced.force_close("ops@example", 10);
        assert_eq!(
            (closed.status, closed.forced_by.as_deref()),
            (Status::Closed, None)
        );
    }
}
