//! A model test of the breaker's transitions under every interleaving of its writers.
//!
//! moto's conditional writes take no lock, so racing real writers against moto proves little.
//! Here the writers are step machines over the real transition functions (`fleet_breaker::State`)
//! and a store with DynamoDB's compare-and-set on `version`; each step (one read, one
//! conditional write, one call that pauses or resumes the mappings) is atomic, and proptest
//! chooses the interleaving, the clock and the probes' results. The actors:
//!
//! - consumer invocations: read; if open, pause; if closed, trip (conditional write), then pause;
//! - two probers: read; apply the pause cap or keep the mappings in line; take the lease
//!   (conditional write); probe; record the result (conditional write); resume when closed;
//! - an operator forcing open or closed.
//!
//! Checked after every step and at the end:
//! - **one prober**: every probe result that is written comes from the prober whose lease
//!   acquisition was the last one written;
//! - versions only grow, one per write;
//! - **no open breaker left running**: once the writers are done, an open breaker with its
//!   mapping enabled is paused by the next invocation (an enabled mapping invokes), and a closed
//!   breaker with its mapping paused is resumed by the next probe run; after both, the mapping is
//!   enabled exactly when the breaker is closed.

use std::time::Duration;

use fleet_breaker::{Policy, State, Status};
use proptest::prelude::*;

const D: &str = "robots-index";

#[derive(Debug)]
struct World {
    state: State,
    enabled: bool,
    now: u64,
    policy: Policy,
    /// The holder of the last lease acquisition that was written.
    last_acquired_by: Option<String>,
    writes: u64,
}

impl World {
    fn cas(&mut self, new: State) -> bool {
        if new.version != self.state.version + 1 {
            return false;
        }
        assert_eq!(new.downstream, D);
        self.state = new;
        self.writes += 1;
        assert_eq!(self.state.version, self.writes, "one version per write");
        true
    }
}

#[derive(Debug, Clone)]
enum Consumer {
    Read,
    Trip(State),
    Pause,
    Done,
}

impl Consumer {
    fn step(&mut self, w: &mut World) {
        *self = match std::mem::replace(self, Consumer::Done) {
            Consumer::Read => {
                if w.state.admits() {
                    Consumer::Trip(w.state.clone())
                } else {
                    Consumer::Pause
                }
            }
            Consumer::Trip(read) => match read.trip(w.now, "failures", &w.policy, 0.5) {
                Some(next) if w.cas(next.clone()) => Consumer::Pause,
                // Lost the race: read again.
                Some(_) => Consumer::Read,
                None => Consumer::Pause,
            },
            Consumer::Pause => {
                w.enabled = false;
                Consumer::Done
            }
            Consumer::Done => Consumer::Done,
        }
    }
}

#[derive(Debug, Clone)]
enum Prober {
    Read,
    Acquire(State),
    Probe(State),
    Record(State, bool),
    Resume,
    Pause,
    Done,
}

impl Prober {
    fn step(&mut self, w: &mut World, holder: &str, healthy: bool) {
        *self = match std::mem::replace(self, Prober::Done) {
            Prober::Read => {
                let s = w.state.clone();
                if let Some(next) = s.pause_expired(w.now, &w.policy) {
                    if w.cas(next) {
                        Prober::Resume
                    } else {
                        Prober::Done
                    }
                } else if s.status == Status::Closed {
                    Prober::Resume
                } else {
                    w.enabled = false; // keep it paused while open
                    Prober::Acquire(s)
                }
            }
            Prober::Acquire(read) => match read.acquire(holder, w.now, &w.policy) {
                Some(next) if w.cas(next.clone()) => {
                    w.last_acquired_by = Some(holder.to_string());
                    Prober::Probe(next)
                }
                _ => Prober::Done,
            },
            Prober::Probe(mine) => Prober::Record(mine, healthy),
            Prober::Record(mine, ok) => {
                let next = if ok {
                    mine.probe_succeeded(holder, w.now, &w.policy)
                } else {
                    mine.probe_failed(holder, w.now, "down", &w.policy, 0.5)
                };
                match next {
                    Some(next) if w.cas(next.clone()) => {
                        assert_eq!(
                            w.last_acquired_by.as_deref(),
                            Some(holder),
                            "a probe result was written by {holder}, not the last lease holder"
                        );
                        match next.status {
                            Status::Closed => Prober::Resume,
                            Status::HalfOpen => Prober::Probe(next),
                            Status::Open => Prober::Pause,
                        }
                    }
                    _ => Prober::Done,
                }
            }
            Prober::Resume => {
                w.enabled = true;
                Prober::Done
            }
            Prober::Pause => {
                w.enabled = false;
                Prober::Done
            }
            Prober::Done => Prober::Done,
        }
    }

    fn done(&self) -> bool {
        matches!(self, Prober::Done)
    }
}

#[derive(Debug, Clone)]
enum Operator {
    Force(bool),
    Switch(bool),
    Done,
}

impl Operator {
    fn step(&mut self, w: &mut World) {
        *self = match std::mem::replace(self, Operator::Done) {
            Operator::Force(open) => {
                let next = if open {
                    w.state.force_open("ops", w.now)
                } else {
                    w.state.force_close("ops", w.now)
                };
                if w.cas(next) {
                    Operator::Switch(!open)
                } else {
                    Operator::Force(open)
                }
            }
            Operator::Switch(enabled) => {
                w.enabled = enabled;
                Operator::Done
            }
            Operator::Done => Operator::Done,
        }
    }
}

fn policy() -> Policy {
    Policy {
        base_ejection: Duration::from_millis(100),
        max_ejection: Duration::from_millis(400),
        jitter: Duration::from_millis(10),
        probes_to_close: 2,
        probe_lease: Duration::from_millis(150),
        max_pause: Duration::from_millis(5_000),
        ..Policy::default()
    }
}

/// One scenario: `schedule` picks who steps next (or a clock tick); `health` the probes' results.
fn run(schedule: &[u8], health: &[bool], with_operator: bool) {
    let mut w = World {
        state: State::new(D),
        enabled: true,
        now: 1_000_000,
        policy: policy(),
        last_acquired_by: None,
        writes: 0,
    };
    let mut consumers = vec![Consumer::Read, Consumer::Read, Consumer::Read];
    let mut probers = [(Prober::Done, "p1", 0usize), (Prober::Done, "p2", 0usize)];
    let mut operator = if with_operator {
        Operator::Force(schedule.first().is_some_and(|b| b % 2 == 0))
    } else {
        Operator::Done
    };
    let mut h = 0usize;
    for &choice in schedule {
        match choice % 8 {
            0..=2 => consumers[(choice % 3) as usize].step(&mut w),
            3 | 4 => {
                let (prober, holder, _) = &mut probers[(choice % 2) as usize];
                if prober.done() {
                    // A new run of the schedule.
                    *prober = Prober::Read;
                }
                let healthy = health.get(h % health.len().max(1)).copied().unwrap_or(true);
                h += 1;
                prober.step(&mut w, holder, healthy);
            }
            5 => operator.step(&mut w),
            6 => w.now += 60,
            _ => {
                // A consumer invocation starts again while its mapping runs.
                if w.enabled
                    && let Some(c) = consumers.iter_mut().find(|c| matches!(c, Consumer::Done))
                {
                    *c = Consumer::Read;
                }
            }
        }
    }
    // Let the writers in progress finish (no new ones start).
    for _ in 0..64 {
        for c in &mut consumers {
            c.step(&mut w);
        }
        for (prober, holder, _) in &mut probers {
            prober.step(&mut w, holder, true);
        }
        operator.step(&mut w);
    }
    // The next invocation, if the mapping runs: it pauses an open breaker's mapping.
    if w.enabled {
        let mut c = Consumer::Read;
        for _ in 0..4 {
            c.step(&mut w);
        }
    }
    assert!(
        w.state.admits() || !w.enabled,
        "an invocation left the mapping running with the breaker {:?}",
        w.state.status
    );
    // The next probe run, stepped as the scheduled probe runs: it leaves the mapping in line
    // with the breaker (closed: running; open or half-open: paused).
    let mut prober = Prober::Read;
    for _ in 0..16 {
        prober.step(&mut w, "p-final", true);
    }
    assert_eq!(
        w.enabled,
        w.state.status == Status::Closed,
        "mapping enabled={} with the breaker {:?}",
        w.enabled,
        w.state.status
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn no_interleaving_leaves_two_probers_or_an_open_breaker_running(
        schedule in proptest::collection::vec(any::<u8>(), 0..200),
        health in proptest::collection::vec(any::<bool>(), 1..8),
        with_operator in any::<bool>(),
    ) {
        run(&schedule, &health, with_operator);
    }
}

#[test]
fn a_lapsed_prober_cannot_write_after_a_takeover() {
    // p1 takes the lease, stalls past it; p2 takes over and closes; p1's result is refused.
    let mut w = World {
        state: State::new(D).trip(1_000_000, "x", &policy(), 0.0).unwrap(),
        enabled: false,
        now: 1_000_000,
        policy: policy(),
        last_acquired_by: None,
        writes: 1,
    };
    let mut p1 = Prober::Read;
    w.now += 200; // ejection over
    p1.step(&mut w, "p1", true); // read
    p1.step(&mut w, "p1", true); // acquire
    assert_eq!(w.last_acquired_by.as_deref(), Some("p1"));
    w.now += 1_000; // p1 stalls past its lease
    let mut p2 = Prober::Read;
    for _ in 0..10 {
        p2.step(&mut w, "p2", true);
    }
    assert_eq!(w.state.status, Status::Closed);
    assert!(w.enabled);
    for _ in 0..4 {
        p1.step(&mut w, "p1", false);
    }
    assert_eq!(
        w.state.status,
        Status::Closed,
        "the stale prober wrote nothing"
    );
}
