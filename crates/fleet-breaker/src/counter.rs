//! The trip rules, counted in memory per execution environment while the breaker is closed:
//! consecutive failures, and the failure percentage over a sliding window with a minimum
//! request volume.

use std::collections::VecDeque;
use std::time::Duration;

use crate::policy::Policy;

/// What one call to the downstream said about its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// It answered (a success, or a refusal of the record itself).
    Success,
    /// The downstream is sick: 5xx, a timeout, no connection, refused authentication.
    Failure(String),
    /// Says nothing about the downstream's health (throttling: a capacity problem; a
    /// deployment mistake such as AccessDenied, which pausing would not fix).
    Ignored,
}

/// Why the counter tripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// Which rule, with its numbers, and the last failure.
    pub cause: String,
}

/// One second of calls.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    second: u64,
    calls: u32,
    failures: u32,
}

/// The counts of a closed breaker.
#[derive(Debug, Clone)]
pub struct Counter {
    consecutive: u32,
    buckets: VecDeque<Bucket>,
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

impl Counter {
    /// Empty counts.
    pub fn new() -> Self {
        Counter {
            consecutive: 0,
            buckets: VecDeque::new(),
        }
    }

    /// Forgets everything (after the breaker closed again).
    pub fn reset(&mut self) {
        self.consecutive = 0;
        self.buckets.clear();
    }

    /// Calls and failures in the window ending at `now` (time since any fixed origin).
    pub fn window(&mut self, now: Duration, policy: &Policy) -> (u32, u32) {
        self.expire(now, policy);
        self.buckets
            .iter()
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failures))
    }

    fn expire(&mut self, now: Duration, policy: &Policy) {
        let oldest = now
            .as_secs()
            .saturating_sub(policy.interval.as_secs().max(1) - 1);
        while self.buckets.front().is_some_and(|b| b.second < oldest) {
            self.buckets.pop_front();
        }
    }

    /// Counts one call at `now`; `Some` when a trip rule fires.
    pub fn record(
        &mut self,
        outcome: &CallOutcome,
        now: Duration,
        policy: &Policy,
    ) -> Option<Trip> {
        let failure = match outcome {
            CallOutcome::Success => false,
            CallOutcome::Failure(_) => true,
            CallOutcome::Ignored => return None,
        };
        self.expire(now, policy);
        let second = now.as_secs();
        match self.buckets.back_mut() {
            Some(b) if b.second == second => {
                b.calls += 1;
                b.failures += u32::from(failure);
            }
            _ => self.buckets.push_back(Bucket {
                second,
                calls: 1,
                failures: u32::from(failure),
            }),
        }
        let CallOutcome::Failure(last) = outcome else {
            self.consecutive = 0;
            return None;
        };
        self.consecutive += 1;
        if policy.consecutive_failures > 0 && self.consecutive >= policy.consecutive_failures {
            return Some(Trip {
                cause: format!("{} consecutive failures; last: {last}", self.consecutive),
            });
        }
        let (calls, failures) = self.window(now, policy);
        if policy.request_volume > 0
            && calls >= policy.request_volume
            && failures * 100 >= policy.failure_percentage * calls
        {
            return Some(Trip {
                cause: format!(
                    "{failures} of {calls} calls failed in {} s ({} % ≥ {} %); last: {last}",
                    policy.interval.as_secs(),
                    failures * 100 / calls,
                    policy.failure_percentage
                ),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            consecutive_failures: 5,
            interval: Duration::from_secs(10),
            failure_percentage: 50,
            request_volume: 10,
            ..Policy::default()
        }
    }

    fn fail() -> CallOutcome {
        CallOutcome::Failure("503".into())
    }

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn consecutive_failures_trip_and_a_success_resets_them() {
        let p = policy();
        let mut c = Counter::new();
        for _ in 0..4 {
            assert_eq!(c.record(&fail(), at(0), &p), None);
        }
        assert_eq!(c.record(&CallOutcome::Success, at(0), &p), None);
        for _ in 0..4 {
            assert_eq!(c.record(&fail(), at(0), &p), None);
        }
        let trip = c.record(&fail(), at(0), &p).unwrap();
        assert!(
            trip.cause.starts_with("5 consecutive failures"),
            "{}",
            trip.cause
        );
        assert!(trip.cause.ends_with("503"));
    }

    #[test]
    fn throttling_and_deployment_mistakes_count_for_nothing() {
        let p = policy();
        let mut c = Counter::new();
        for _ in 0..4 {
            c.record(&fail(), at(0), &p);
        }
        for _ in 0..100 {
            assert_eq!(c.record(&CallOutcome::Ignored, at(0), &p), None);
        }
        assert_eq!(c.window(at(0), &p), (4, 4), "ignored calls are not counted");
        assert!(
            c.record(&fail(), at(0), &p).is_some(),
            "nor do they reset the run"
        );
    }

    #[test]
    fn the_percentage_rule_needs_its_minimum_volume() {
        let p = Policy {
            consecutive_failures: 0, // only the percentage rule
            ..policy()
        };
        let mut c = Counter::new();
        // Alternating: 50 % failures, but below the volume of 10 until the 10th call.
        for i in 0..9 {
            let o = if i % 2 == 0 {
                fail()
            } else {
                CallOutcome::Success
            };
            assert_eq!(c.record(&o, at(i), &p), None, "call {i}");
        }
        c.record(&CallOutcome::Success, at(9), &p);
        // 10 calls, 5 failures: 50 % reached at the next failure's check.
        let trip = c.record(&fail(), at(9), &p).unwrap();
        assert!(
            trip.cause.starts_with("6 of 11 calls failed in 10 s"),
            "{}",
            trip.cause
        );
    }

    #[test]
    fn the_window_slides() {
        let p = Policy {
            consecutive_failures: 0,
            ..policy()
        };
        let mut c = Counter::new();
        for _ in 0..9 {
            c.record(&fail(), at(0), &p);
        }
        // 10 s later those nine are out of the window: one failure of one call, below volume.
        assert_eq!(c.record(&fail(), at(10), &p), None);
        assert_eq!(c.window(at(10), &p), (1, 1));
        // Within the window they count.
        let mut c = Counter::new();
        for _ in 0..9 {
            c.record(&fail(), at(0), &p);
        }
        assert!(c.record(&fail(), at(9), &p).is_some());
    }

    #[test]
    fn below_the_threshold_nothing_trips() {
        let p = Policy {
            consecutive_failures: 0,
            ..policy()
        };
        let mut c = Counter::new();
        for i in 0..100u64 {
            // 1 failure in 3 calls: 33 % < 50 %.
            let o = if i % 3 == 0 {
                fail()
            } else {
                CallOutcome::Success
            };
            assert_eq!(c.record(&o, at(i / 10), &p), None);
        }
    }
}
