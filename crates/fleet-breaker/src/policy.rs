//! The knobs of a breaker, named after Envoy's outlier detection, and how long an opening lasts.

use std::time::Duration;

/// When to trip, how long to stay open, and how to close.
///
/// | knob | Envoy outlier detection | Powertools `CircuitBreakerConfig` |
/// | --- | --- | --- |
/// | `consecutive_failures` | `consecutive_5xx` | `failure_threshold` |
/// | `interval` | `interval` | (none: counts are per execution environment, no window) |
/// | `failure_percentage` | `failure_percentage_threshold` | (none) |
/// | `request_volume` | `failure_percentage_request_volume` | (none) |
/// | `base_ejection` | `base_ejection_time` | `recovery_timeout` |
/// | `max_ejection` | `max_ejection_time` | (none: fixed recovery timeout) |
/// | `jitter` | `max_ejection_time_jitter` | (none) |
/// | `probes_to_close` | (none: Envoy un-ejects after the time) | `success_threshold` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Trip after this many failures in a row (0 turns the rule off).
    pub consecutive_failures: u32,
    /// The sliding window of the percentage rule.
    pub interval: Duration,
    /// Trip when at least this share (percent) of the calls in the window failed...
    pub failure_percentage: u32,
    /// ...and the window holds at least this many calls (0 turns the percentage rule off).
    pub request_volume: u32,
    /// An opening lasts `base_ejection × openings in a row`...
    pub base_ejection: Duration,
    /// ...at most this long...
    pub max_ejection: Duration,
    /// ...plus a random extra of up to this much, so breakers opened together probe apart.
    pub jitter: Duration,
    /// Successful probes in a row that close the breaker.
    pub probes_to_close: u32,
    /// How long a prober holds the half-open lease before another may take over.
    pub probe_lease: Duration,
    /// The longest pause: an open breaker older than this closes and the mappings resume, so
    /// that records nearing the stream's retention go to the on-failure destination instead of
    /// being trimmed unseen (a disabled mapping never applies `MaximumRecordAgeInSeconds`).
    pub max_pause: Duration,
    /// How long a function trusts its cached copy of the shared state.
    pub cache_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            consecutive_failures: 5,
            interval: Duration::from_secs(30),
            failure_percentage: 50,
            request_volume: 20,
            base_ejection: Duration::from_secs(60),
            max_ejection: Duration::from_secs(900),
            jitter: Duration::from_secs(10),
            probes_to_close: 3,
            probe_lease: Duration::from_secs(50),
            max_pause: Duration::from_secs(48 * 3600),
            cache_ttl: Duration::from_secs(5),
        }
    }
}

/// A knob's environment variable and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {detail}")]
pub struct PolicyError {
    /// The variable.
    pub var: &'static str,
    /// What is wrong.
    pub detail: String,
}

impl Policy {
    /// The variables [`Policy::from_lookup`] reads; each is optional (the default applies).
    pub const ENV_VARS: &'static [&'static str] = &[
        "BREAKER_CONSECUTIVE_FAILURES",
        "BREAKER_INTERVAL_SECONDS",
        "BREAKER_FAILURE_PERCENTAGE",
        "BREAKER_REQUEST_VOLUME",
        "BREAKER_BASE_EJECTION_SECONDS",
        "BREAKER_MAX_EJECTION_SECONDS",
        "BREAKER_PROBES_TO_CLOSE",
        "BREAKER_MAX_PAUSE_SECONDS",
    ];

    /// The policy from `BREAKER_*` variables (absent ones keep their default).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Policy, PolicyError> {
        let mut p = Policy::default();
        let num = |var: &'static str, min: u64, max: u64| -> Result<Option<u64>, PolicyError> {
            let Some(text) = lookup(var) else {
                return Ok(None);
            };
            let n: u64 = text.trim().parse().map_err(|_| PolicyError {
                var,
                detail: format!("{text:?} is not a whole number"),
            })?;
            if !(min..=max).contains(&n) {
                return Err(PolicyError {
                    var,
                    detail: format!("{n} is outside {min}..={max}"),
                });
            }
            Ok(Some(n))
        };
        let secs = Duration::from_secs;
        if let Some(n) = num("BREAKER_CONSECUTIVE_FAILURES", 0, 10_000)? {
            p.consecutive_failures = n as u32;
        }
        if let Some(n) = num("BREAKER_INTERVAL_SECONDS", 1, 3600)? {
            p.interval = secs(n);
        }
        if let Some(n) = num("BREAKER_FAILURE_PERCENTAGE", 1, 100)? {
            p.failure_percentage = n as u32;
        }
        if let Some(n) = num("BREAKER_REQUEST_VOLUME", 0, 1_000_000)? {
            p.request_volume = n as u32;
        }
        if let Some(n) = num("BREAKER_BASE_EJECTION_SECONDS", 1, 86_400)? {
            p.base_ejection = secs(n);
        }
        if let Some(n) = num("BREAKER_MAX_EJECTION_SECONDS", 1, 604_800)? {
            p.max_ejection = secs(n);
        }
        if let Some(n) = num("BREAKER_PROBES_TO_CLOSE", 1, 100)? {
            p.probes_to_close = n as u32;
        }
        if let Some(n) = num("BREAKER_MAX_PAUSE_SECONDS", 60, 604_800)? {
            p.max_pause = secs(n);
        }
        if p.max_ejection < p.base_ejection {
            return Err(PolicyError {
                var: "BREAKER_MAX_EJECTION_SECONDS",
                detail: format!(
                    "{} s is below the base ejection time {} s",
                    p.max_ejection.as_secs(),
                    p.base_ejection.as_secs()
                ),
            });
        }
        Ok(p)
    }

    /// How long the `openings`-th opening in a row lasts: `base × openings`, capped at
    /// `max_ejection`, plus `jitter_fraction` (in `0.0..=1.0`) of the jitter.
    pub fn ejection(&self, openings: u32, jitter_fraction: f64) -> Duration {
        let base = self
            .base_ejection
            .saturating_mul(openings.max(1))
            .min(self.max_ejection);
        base + self.jitter.mul_f64(jitter_fraction.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn ejection_grows_with_openings_is_capped_and_jitter_stays_in_bounds() {
        let p = Policy::default();
        assert_eq!(p.ejection(1, 0.0), Duration::from_secs(60));
        assert_eq!(p.ejection(2, 0.0), Duration::from_secs(120));
        assert_eq!(
            p.ejection(0, 0.0),
            Duration::from_secs(60),
            "the first opening"
        );
        assert_eq!(p.ejection(15, 0.0), Duration::from_secs(900));
        assert_eq!(p.ejection(1000, 0.0), Duration::from_secs(900), "capped");
        assert_eq!(p.ejection(1, 1.0), Duration::from_secs(70));
        assert_eq!(p.ejection(1000, 1.0), Duration::from_secs(910));
        assert_eq!(
            p.ejection(1, 7.0),
            Duration::from_secs(70),
            "jitter at most 100 %"
        );
        assert_eq!(p.ejection(1, -1.0), Duration::from_secs(60));
    }

    #[test]
    fn knobs_come_from_the_environment_and_bad_values_are_named() {
        let p = Policy::from_lookup(lookup(&[
            ("BREAKER_CONSECUTIVE_FAILURES", "3"),
            ("BREAKER_BASE_EJECTION_SECONDS", "10"),
            ("BREAKER_MAX_EJECTION_SECONDS", "40"),
        ]))
        .unwrap();
        assert_eq!(p.consecutive_failures, 3);
        assert_eq!(p.base_ejection, Duration::from_secs(10));
        assert_eq!(p.max_ejection, Duration::from_secs(40));
        assert_eq!(p.probes_to_close, 3, "default kept");
        let e = Policy::from_lookup(lookup(&[("BREAKER_FAILURE_PERCENTAGE", "150")])).unwrap_err();
        assert_eq!(e.var, "BREAKER_FAILURE_PERCENTAGE");
        let e = Policy::from_lookup(lookup(&[("BREAKER_INTERVAL_SECONDS", "ten")])).unwrap_err();
        assert!(e.to_string().contains("not a whole number"), "{e}");
        let e = Policy::from_lookup(lookup(&[
            ("BREAKER_BASE_EJECTION_SECONDS", "100"),
            ("BREAKER_MAX_EJECTION_SECONDS", "50"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "BREAKER_MAX_EJECTION_SECONDS");
    }
}
