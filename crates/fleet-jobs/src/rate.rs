//! How fast a job sends: the rollout rate, the adaptive factor, and the pacer.
//!
//! **The plan** ([`RatePlan`]), as AWS IoT Jobs' `jobExecutionsRolloutConfig`: a constant
//! `maximumPerMinute`, or an `exponentialRate` that starts at `baseRatePerMinute` and is
//! multiplied by `incrementFactor` each time another `numberOfSucceededThings` robots have
//! succeeded, never above `maximumPerMinute`. The rate is a function of the succeeded count, so
//! it survives a new invocation with nothing but the counters.
//!
//! **The adaptive factor** ([`Adaptive`], beyond IoT Jobs): the plan's rate is multiplied by a
//! factor in `[min_factor, 1]`, decided once per window of `window_secs` that saw at least
//! `min_attempts` sends:
//! - trouble (throttling plus errors) at or above `high_percent` of the window's sends: the
//!   factor is multiplied by `decrease` (halved by default): back off fast, as TCP does;
//! - trouble at or below `low_percent`: the factor grows by `increase` (0.1 by default), up to 1:
//!   recover slowly;
//! - in between: unchanged.
//!
//! The factor is kept in the jobs table between invocations.
//!
//! **The pacer** ([`Pacer`]) is a token bucket holding at most one second of sends, so a job
//! never sends more than its rate over any minute, plus that one-second burst.

use serde::{Deserialize, Serialize};

/// IoT Jobs' exponential rollout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExponentialRate {
    pub base_rate_per_minute: u32,
    pub increment_factor: f64,
    /// The rate grows each time this many more robots have succeeded.
    pub number_of_succeeded_things: u64,
}

/// The rollout rate: a cap, optionally ramped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePlan {
    pub maximum_per_minute: u32,
    pub exponential: Option<ExponentialRate>,
}

impl RatePlan {
    /// Sends per minute once `succeeded` robots have succeeded.
    pub fn per_minute(&self, succeeded: u64) -> f64 {
        let max = f64::from(self.maximum_per_minute);
        match self.exponential {
            None => max,
            Some(e) => {
                let steps = succeeded / e.number_of_succeeded_things.max(1);
                let rate = f64::from(e.base_rate_per_minute)
                    * e.increment_factor.powi(steps.min(1_000) as i32);
                rate.min(max)
            }
        }
    }
}

/// The adaptive rule's knobs (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Adaptive {
    pub window_secs: f64,
    pub min_attempts: u32,
    pub high_percent: f64,
    pub low_percent: f64,
    pub decrease: f64,
    pub increase: f64,
    pub min_factor: f64,
}

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive {
            window_secs: 30.0,
            min_attempts: 20,
            high_percent: 5.0,
            low_percent: 1.0,
            decrease: 0.5,
            increase: 0.1,
            min_factor: 0.05,
        }
    }
}

impl Adaptive {
    /// Checks the knobs; the error names the knob.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
        check(
            self.window_secs >= 1.0,
            "adaptive.windowSecs must be at least 1",
        )?;
        check(
            self.min_attempts >= 1,
            "adaptive.minAttempts must be at least 1",
        )?;
        check(
            (0.0..=100.0).contains(&self.low_percent)
                && (0.0..=100.0).contains(&self.high_percent)
                && self.low_percent < self.high_percent,
            "adaptive.lowPercent must be below adaptive.highPercent, both within 0-100",
        )?;
        check(
            self.decrease > 0.0 && self.decrease < 1.0,
            "adaptive.decrease must be between 0 and 1 (exclusive)",
        )?;
        check(
            self.increase > 0.0 && self.increase <= 1.0,
            "adaptive.increase must be within (0, 1]",
        )?;
        check(
            self.min_factor > 0.0 && self.min_factor <= 1.0,
            "adaptive.minFactor must be within (0, 1]",
        )
    }
}

/// The adaptive factor and the window being counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveState {
    pub factor: f64,
    window_start: f64,
    attempts: u32,
    trouble: u32,
}

impl AdaptiveState {
    /// Starts counting at `now` (seconds, any origin) with the factor kept from before.
    pub fn new(factor: f64, now: f64) -> AdaptiveState {
        AdaptiveState {
            factor: factor.clamp(f64::MIN_POSITIVE, 1.0),
            window_start: now,
            attempts: 0,
            trouble: 0,
        }
    }

    /// Counts one send's outcome (`trouble`: throttled or failed for a service reason, not a
    /// robot-level refusal); closes the window when it is due and returns the new factor when
    /// it changed.
    pub fn observe(&mut self, rule: &Adaptive, now: f64, trouble: bool) -> Option<f64> {
        self.attempts += 1;
        self.trouble += u32::from(trouble);
        if now - self.window_start < rule.window_secs || self.attempts < rule.min_attempts {
            return None;
        }
        let percent = f64::from(self.trouble) * 100.0 / f64::from(self.attempts);
        let before = self.factor;
        if percent >= rule.high_percent {
            self.factor = (self.factor * rule.decrease).max(rule.min_factor);
        } else if percent <= rule.low_percent {
            // Rounded to 1e-6 so that repeated steps land on 1 exactly.
            self.factor = (((self.factor + rule.increase) * 1e6).round() / 1e6).min(1.0);
        }
        self.window_start = now;
        self.attempts = 0;
        self.trouble = 0;
        (self.factor != before).then_some(self.factor)
    }
}

/// A token bucket: at most one second's worth of sends at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    tokens: f64,
    last: f64,
}

impl Pacer {
    /// An empty bucket at `now` (seconds): the first send waits for its token, so a job that
    /// stops and starts again every few seconds cannot exceed its rate by bursting each time.
    pub fn new(now: f64) -> Pacer {
        Pacer {
            tokens: 0.0,
            last: now,
        }
    }

    /// Takes a token for one send at `now` at `per_minute`: `None` to send now, or the seconds to
    /// wait before asking again.
    pub fn take(&mut self, now: f64, per_minute: f64) -> Option<f64> {
        let per_sec = (per_minute / 60.0).max(1e-9);
        let burst = per_sec.max(1.0);
        if now > self.last {
            self.tokens = (self.tokens + (now - self.last) * per_sec).min(burst);
            self.last = now;
        }
        // A hair below one token counts as one: the wait that was asked for has passed, and
        // rounding must not turn it into a wait too short to move the clock.
        if self.tokens >= 1.0 - 1e-6 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            None
        } else {
            Some(((1.0 - self.tokens) / per_sec).max(1e-6))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_multiplies_per_step_of_succeeded_robots_up_to_the_cap() {
        let plan = RatePlan {
            maximum_per_minute: 1000,
            exponential: Some(ExponentialRate {
                base_rate_per_minute: 50,
                increment_factor: 2.0,
                number_of_succeeded_things: 100,
            }),
        };
        assert_eq!(plan.per_minute(0), 50.0);
        assert_eq!(plan.per_minute(99), 50.0);
        assert_eq!(plan.per_minute(100), 100.0);
        assert_eq!(plan.per_minute(350), 400.0);
        assert_eq!(plan.per_minute(500), 1000.0, "1,600 capped at 1,000");
        assert_eq!(plan.per_minute(u64::MAX), 1000.0);
    }

    #[test]
    fn the_adaptive_factor_halves_on_trouble_and_recovers_slowly() {
        let rule = Adaptive::default();
        let mut s = AdaptiveState::new(1.0, 0.0);
        // A window of 40 sends with 4 throttled (10%): halve.
        let mut changed = None;
        for i in 0..40 {
            changed = s.observe(&rule, f64::from(i), i % 10 == 0).or(changed);
        }
        assert_eq!(changed, Some(0.5));
        // Clean windows (one every 30 s at one send a second): +0.1 each, up to 1, then no change.
        let mut t = 40.0;
        let mut changes = Vec::new();
        for _ in 0..200 {
            t += 1.0;
            changes.extend(s.observe(&rule, t, false));
        }
        let rounded: Vec<f64> = changes.iter().map(|f| (f * 10.0).round() / 10.0).collect();
        assert_eq!(rounded, vec![0.6, 0.7, 0.8, 0.9, 1.0]);
        // In between (3%): unchanged; too few sends in a window: no decision yet.
        let mut got = None;
        for i in 0..100 {
            t += 0.5;
            got = s.observe(&rule, t, i % 33 == 0).or(got);
        }
        assert_eq!(got, None);
        assert_eq!(s.factor, 1.0);
    }

    #[test]
    fn the_factor_never_goes_below_its_floor() {
        let rule = Adaptive::default();
        let mut s = AdaptiveState::new(0.06, 0.0);
        for i in 0..100 {
            s.observe(&rule, f64::from(i), true);
        }
        assert_eq!(s.factor, rule.min_factor);
    }
}
