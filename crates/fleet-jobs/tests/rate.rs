//! The rollout rate under a paused clock: the pacer never exceeds its rate over any minute, the
//! ramp only grows and never passes its cap, the adaptive factor stays within its bounds.

use std::time::Duration;

use fleet_jobs::rate::{Adaptive, AdaptiveState, ExponentialRate, Pacer, RatePlan};
use proptest::prelude::*;

/// Sends `n` times through a pacer at `per_minute`, on a clock that only moves by the waits the
/// pacer asks for; returns the send times.
fn pace(per_minute: f64, n: usize, start: f64) -> Vec<f64> {
    let mut pacer = Pacer::new(start);
    let mut now = start;
    let mut sent = Vec::with_capacity(n);
    while sent.len() < n {
        match pacer.take(now, per_minute) {
            None => sent.push(now),
            Some(wait) => {
                assert!(wait > 0.0 && wait.is_finite(), "wait {wait}");
                now += wait;
            }
        }
    }
    sent
}

/// The most sends in any window of `secs` seconds.
fn max_in_window(times: &[f64], secs: f64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= secs {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_pacer_never_exceeds_its_rate_over_any_minute(per_minute in 1u32..240_000, start in 0.0f64..1e6) {
        let per_minute = f64::from(per_minute);
        let n = ((per_minute * 2.5) as usize).clamp(3, 20_000);
        let times = pace(per_minute, n, start);
        let burst = (per_minute / 60.0).max(1.0);
        let most = max_in_window(&times, 60.0) as f64;
        prop_assert!(most <= per_minute + burst + 1.0, "{most} sends in a minute at {per_minute}/min");
        // And it does not run slow: n sends take about n / rate minutes.
        let took = times[times.len() - 1] - start;
        let ideal = n as f64 / (per_minute / 60.0);
        prop_assert!(took <= ideal * 1.01 + 1e-6, "took {took} s, ideal {ideal} s");
    }

    #[test]
    fn the_ramp_only_grows_and_stays_within_base_and_cap(
        base in 1u32..1_000, factor in 1.1f64..5.0, every in 1u64..10_000, cap in 1u32..240_000,
        a in 0u64..10_000_000, b in 0u64..10_000_000,
    ) {
        let plan = RatePlan {
            maximum_per_minute: cap,
            exponential: Some(ExponentialRate { base_rate_per_minute: base, increment_factor: factor, number_of_succeeded_things: every }),
        };
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(plan.per_minute(lo) <= plan.per_minute(hi));
        prop_assert!(plan.per_minute(hi) <= f64::from(cap));
        prop_assert!(plan.per_minute(lo) >= f64::from(base.min(cap)));
    }

    #[test]
    fn the_adaptive_factor_stays_within_its_floor_and_one(outcomes in prop::collection::vec((any::<bool>(), 0.0f64..5.0), 1..2_000)) {
        let rule = Adaptive::default();
        let mut s = AdaptiveState::new(1.0, 0.0);
        let mut now = 0.0;
        for (trouble, step) in outcomes {
            now += step;
            s.observe(&rule, now, trouble);
            prop_assert!(s.factor >= rule.min_factor && s.factor <= 1.0, "{}", s.factor);
        }
    }
}

/// With tokio's paused clock: a loop that sleeps as the pacer asks sends its rate in a minute of
/// virtual time, and a throttling storm halves the effective rate at the end of its window.
#[tokio::test(start_paused = true)]
async fn a_paced_loop_sends_its_rate_and_backs_off_under_throttling() {
    let origin = tokio::time::Instant::now();
    let secs = || origin.elapsed().as_secs_f64();
    let plan = RatePlan {
        maximum_per_minute: 600,
        exponential: None,
    };
    let rule = Adaptive::default();
    let mut adaptive = AdaptiveState::new(1.0, 0.0);
    let mut pacer = Pacer::new(0.0);
    let mut sent_first_minute = 0;
    let mut sent_second_minute = 0;
    while secs() < 120.0 {
        let rate = plan.per_minute(0) * adaptive.factor;
        match pacer.take(secs(), rate) {
            Some(wait) => tokio::time::sleep(Duration::from_secs_f64(wait)).await,
            None => {
                let t = secs();
                if t < 60.0 {
                    sent_first_minute += 1;
                } else {
                    sent_second_minute += 1;
                }
                // Everything is throttled in the second minute.
                adaptive.observe(&rule, t, t >= 60.0);
            }
        }
    }
    assert!(
        (598..=601).contains(&sent_first_minute),
        "{sent_first_minute}"
    );
    // Windows close every 30 s. The one that closes at 90 s saw only throttling: the factor
    // halves, so 60-90 s sends 300 and 90-120 s sends 150.
    assert!(
        (448..=452).contains(&sent_second_minute),
        "{sent_second_minute}"
    );
    assert_eq!(adaptive.factor, 0.5);
}
