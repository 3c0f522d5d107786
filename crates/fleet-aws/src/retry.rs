//! Exponential backoff with full jitter, bounded by the invocation's deadline: the one backoff
//! of the workspace. The functions' adapters retry with [`Backoff::run`] (or
//! [`Backoff::next_delay`] where a round is partly done), the local stand-ins and tools with
//! [`Backoff::delay`], and the local event source mappings, whose retries Lambda spaces
//! without jitter, with [`Backoff::ceiling`].

use std::future::Future;
use std::time::Duration;

use fleet_lambda::Deadline;
use rand::Rng as _;

/// What one attempt says about itself.
pub enum Attempt<T, E> {
    /// Done (success or a permanent failure the caller handles).
    Done(T),
    /// Worth another try.
    Transient(E),
}

/// How hard to retry inside one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Upper bound of the first sleep.
    pub base: Duration,
    /// Upper bound of any sleep.
    pub cap: Duration,
    /// Time kept in reserve before the deadline to answer Lambda.
    pub reserve: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            max_attempts: 5,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
            reserve: Duration::from_millis(500),
        }
    }
}

impl Backoff {
    /// A backoff from `base` doubling up to `cap`, with unlimited attempts and no reserve (for
    /// loops that are not bounded by an invocation).
    pub fn exponential(base: Duration, cap: Duration) -> Self {
        Backoff {
            max_attempts: u32::MAX,
            base,
            cap,
            reserve: Duration::ZERO,
        }
    }

    /// The upper bound of the sleep before attempt `n + 1`: `min(cap, base·2ⁿ)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        self.base.saturating_mul(1u32 << n.min(16)).min(self.cap)
    }

    /// The sleep before attempt `n + 1` (full jitter: uniform in `[0, min(cap, base·2ⁿ)]`).
    pub fn delay(&self, n: u32) -> Duration {
        let ms = self.ceiling(n).as_millis() as u64;
        Duration::from_millis(if ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=ms)
        })
    }

    /// After `attempts` attempts failed transiently: the sleep before the next one, or `None`
    /// when the attempts are used up or the sleep would leave less than the reserve before the
    /// deadline.
    pub fn next_delay(&self, attempts: u32, deadline: Deadline) -> Option<Duration> {
        let sleep = self.delay(attempts.saturating_sub(1));
        (attempts < self.max_attempts && deadline.remaining() >= sleep + self.reserve)
            .then_some(sleep)
    }

    /// How long one attempt may take: the time left before `deadline`, minus the reserve kept
    /// to answer. Zero when there is no time for an attempt.
    pub fn attempt_budget(&self, deadline: Deadline) -> Duration {
        deadline.remaining().saturating_sub(self.reserve)
    }

    /// Runs `op` until it is done, attempts run out, or the next sleep would pass the deadline.
    /// Returns the last transient error and the number of attempts made when it gives up.
    pub async fn run<T, E, F, Fut>(&self, deadline: Deadline, mut op: F) -> Result<T, (E, u32)>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Attempt<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match op(attempt).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Transient(e) => {
                    attempt += 1;
                    match self.next_delay(attempt, deadline) {
                        Some(sleep) => tokio::time::sleep(sleep).await,
                        None => return Err((e, attempt)),
                    }
                }
            }
        }
    }
}

/// A DynamoDB call's configuration for one attempt bounded by `budget`, with the SDK's own
/// retries off: for `.customize().config_override(..)` where the caller owns the retrying (the
/// missions store, the breaker's store and probe).
pub fn one_bounded_dynamodb_attempt(budget: Duration) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::default()
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(budget.max(Duration::from_millis(1)))
                .build(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let b = Backoff {
            max_attempts: 10,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
            reserve: Duration::ZERO,
        };
        for n in 0..12 {
            let d = b.delay(n);
            assert!(d <= Duration::from_millis(100));
            assert!(d <= Duration::from_millis(10) * (1 << n.min(16)));
        }
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_cap_without_jitter() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(40), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let b = Backoff::default();
        let r: Result<u32, (String, u32)> = b
            .run(Deadline::after(Duration::from_secs(60)), |n| async move {
                if n < 2 {
                    Attempt::Transient(format!("throttled {n}"))
                } else {
                    Attempt::Done(n)
                }
            })
            .await;
        assert_eq!(r.ok(), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts() {
        let b = Backoff {
            max_attempts: 3,
            ..Backoff::default()
        };
        let r: Result<(), (&str, u32)> = b
            .run(Deadline::after(Duration::from_secs(60)), |_| async {
                Attempt::Transient("503")
            })
            .await;
        assert_eq!(r.err(), Some(("503", 3)));
    }

    #[tokio::test]
    async fn gives_up_early_when_the_deadline_is_near() {
        let b = Backoff {
            max_attempts: 50,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(1),
            reserve: Duration::from_secs(5),
        };
        let r: Result<(), (&str, u32)> = b
            .run(Deadline::after(Duration::from_secs(1)), |_| async {
                Attempt::Transient("503")
            })
            .await;
        assert_eq!(
            r.err().map(|e| e.1),
            Some(1),
            "no time for a second attempt"
        );
    }
}
