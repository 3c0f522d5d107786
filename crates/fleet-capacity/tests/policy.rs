//! The scaling policy, rule by rule, and properties over random metric streams.

use fleet_capacity::budget::{Budget, Call, CallKind};
use fleet_capacity::limits::{self, MIB};
use fleet_capacity::observe::{Minute, StreamCapacity, StreamMode};
use fleet_capacity::policy::{Action, Decision, Policy};
use fleet_capacity::rules::Rules;
use proptest::prelude::*;

/// 2026-12-10 00:00 UTC, a Thursday.
const T0: i64 = 1_796_860_800;

fn at(hh: i64, mm: i64) -> i64 {
    T0 + hh * 3600 + mm * 60
}

fn minute(start: i64, mibps: f64) -> Minute {
    Minute {
        start,
        bytes: mibps * MIB * 60.0,
        records: mibps * 1000.0 * 60.0 / 10.0,
        throttled: 0.0,
        iterator_age_ms: 0.0,
    }
}

/// `n` minutes of `mibps` up to `now`.
fn flat(now: i64, n: i64, mibps: f64) -> Vec<Minute> {
    (1..=n).map(|i| minute(now - i * 60, mibps)).collect()
}

fn shards(n: u32) -> StreamCapacity {
    StreamCapacity {
        mode: StreamMode::Provisioned,
        open_shards: n,
        warm_mibps: 0,
        active: true,
    }
}

fn call(at: i64, kind: CallKind) -> Call {
    Call {
        at,
        from: 2,
        to: 4,
        kind,
    }
}

fn none() -> Rules {
    Rules::default()
}

fn decide(
    p: &Policy,
    rules: &Rules,
    now: i64,
    m: &[Minute],
    cap: StreamCapacity,
    h: &[Call],
) -> Decision {
    p.decide(rules, now, m, &cap, h)
}

#[test]
fn traffic_over_the_target_use_scales_up_at_most_doubling() {
    let p = Policy::default();
    let now = at(10, 0);
    let d = decide(&p, &none(), now, &flat(now, 10, 7.0), shards(4), &[]);
    assert_eq!(
        d.action,
        Action::SetShards { from: 4, to: 8 },
        "{}",
        d.reason
    );
    assert_eq!(d.kind, Some(CallKind::ScaleUp));
    // 7 MiB/s at 70 % needs 10 shards: from 8 the next call goes to 10, not 16.
    let d = decide(&p, &none(), now, &flat(now, 10, 7.0), shards(8), &[]);
    assert_eq!(
        d.action,
        Action::SetShards { from: 8, to: 10 },
        "{}",
        d.reason
    );
    // 5.5 MiB/s on 8 shards is 69 %: nothing to do.
    let d = decide(&p, &none(), now, &flat(now, 10, 5.5), shards(8), &[]);
    assert_eq!(d.action, Action::None, "{}", d.reason);
}

#[test]
fn throttling_doubles_at_once_even_in_the_cooldown_and_may_use_the_reserve() {
    let p = Policy::default();
    let now = at(10, 0);
    let mut m = flat(now, 10, 3.9);
    m[0].throttled = 500.0;
    // Last call 2 minutes ago, 8 of 10 calls used: a planned scale-up would wait, an emergency does not.
    let history: Vec<Call> = (0..7)
        .map(|i| call(at(1, i * 5), CallKind::ScaleUp))
        .chain([call(now - 120 - 60, CallKind::ScaleUp)])
        .collect();
    let d = decide(&p, &none(), now, &m, shards(4), &history);
    assert_eq!(
        (d.action, d.kind),
        (
            Action::SetShards { from: 4, to: 8 },
            Some(CallKind::Emergency)
        ),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("500 records throttled"), "{}", d.reason);
    // Without throttling the same traffic (3.9 on 4 shards = 97 %) is a planned scale-up: held by the budget.
    m[0].throttled = 0.0;
    let old: Vec<Call> = (0..8)
        .map(|i| call(at(1, i * 5), CallKind::ScaleUp))
        .collect();
    let d = decide(&p, &none(), now, &m, shards(4), &old);
    assert_eq!(d.action, Action::None);
    assert!(
        d.reason
            .contains("8 of 10 calls in 24 h are used (the rest is the emergency reserve)"),
        "{}",
        d.reason
    );
    // With all 10 used, not even an emergency: AWS would refuse it.
    m[0].throttled = 500.0;
    let full: Vec<Call> = (0..10)
        .map(|i| call(at(1, i * 5), CallKind::Emergency))
        .collect();
    let d = decide(&p, &none(), now, &m, shards(4), &full);
    assert_eq!(d.action, Action::None);
    assert!(
        d.reason.contains("a call frees at 2026-12-11 01:00 UTC"),
        "{}",
        d.reason
    );
}

#[test]
fn throttling_from_before_the_last_change_took_effect_does_not_double_again() {
    let p = Policy::default();
    let now = at(10, 0);
    let mut m = flat(now, 10, 3.9);
    m[3].throttled = 800.0; // the minute starting at 09:56
    let history = [Call {
        at: now - 3 * 60 - 30,
        from: 4,
        to: 8,
        kind: CallKind::Emergency,
    }];
    let d = decide(&p, &none(), now, &m, shards(8), &history);
    assert_eq!(d.action, Action::None, "{}", d.reason);
    assert_eq!(d.throttled, 0.0);
}

#[test]
fn a_planned_scale_up_waits_for_the_cooldown_and_for_the_stream_to_be_active() {
    let p = Policy::default();
    let now = at(10, 0);
    let m = flat(now, 10, 7.0);
    let d = decide(
        &p,
        &none(),
        now,
        &m,
        shards(4),
        &[call(now - 180, CallKind::ScaleUp)],
    );
    assert_eq!(d.action, Action::None);
    assert!(d.reason.contains("cooling down"), "{}", d.reason);
    let updating = StreamCapacity {
        active: false,
        ..shards(4)
    };
    let d = decide(&p, &none(), now, &m, updating, &[]);
    assert_eq!(d.action, Action::None);
    assert!(d.reason.contains("UPDATING"), "{}", d.reason);
}

#[test]
fn the_shard_limit_caps_every_call_and_says_so() {
    let p = Policy {
        max_shards: 6,
        ..Policy::default()
    };
    let now = at(10, 0);
    let d = decide(&p, &none(), now, &flat(now, 10, 7.0), shards(4), &[]);
    assert_eq!(d.action, Action::SetShards { from: 4, to: 6 });
    let d = decide(&p, &none(), now, &flat(now, 10, 7.0), shards(6), &[]);
    assert_eq!(d.action, Action::None);
    assert!(
        d.reason.contains("maxShards (6): raise the limit"),
        "{}",
        d.reason
    );
}

#[test]
fn scale_down_needs_a_sustained_low_an_idle_consumer_and_a_quiet_hour() {
    let p = Policy::default();
    let now = at(4, 0);
    // 60 minutes at 1 MiB/s on 8 shards (12 %): halve.
    let low = flat(now, 60, 1.0);
    let d = decide(&p, &none(), now, &low, shards(8), &[]);
    assert_eq!(
        (d.action, d.kind),
        (
            Action::SetShards { from: 8, to: 4 },
            Some(CallKind::ScaleDown)
        ),
        "{}",
        d.reason
    );
    // Never more than half, rounding up: 5 -> 3.
    let d = decide(&p, &none(), now, &flat(now, 60, 0.1), shards(5), &[]);
    assert_eq!(d.action, Action::SetShards { from: 5, to: 3 });
    // Never below min_shards.
    let p2 = Policy {
        min_shards: 6,
        ..Policy::default()
    };
    let d = decide(&p2, &none(), now, &low, shards(8), &[]);
    assert_eq!(d.action, Action::SetShards { from: 8, to: 6 });
    // One busy minute in the window (3 MiB/s = 37 %) blocks it.
    let mut spiky = low.clone();
    spiky[40] = minute(spiky[40].start, 3.0);
    assert_eq!(
        decide(&p, &none(), now, &spiky, shards(8), &[]).action,
        Action::None
    );
    // Consumers 2 minutes behind block it.
    let mut behind = low.clone();
    behind[5].iterator_age_ms = 120_000.0;
    let d = decide(&p, &none(), now, &behind, shards(8), &[]);
    assert_eq!(d.action, Action::None);
    assert!(d.reason.contains("120 s behind"), "{}", d.reason);
    // A call 30 minutes ago blocks it.
    let d = decide(
        &p,
        &none(),
        now,
        &low,
        shards(8),
        &[call(now - 1800, CallKind::Prewarm)],
    );
    assert_eq!(d.action, Action::None);
    assert!(d.reason.contains("waiting 60 minutes"), "{}", d.reason);
}

#[test]
fn scale_down_keeps_what_the_same_hours_needed_yesterday() {
    let p = Policy::default();
    let now = at(4, 0) + 86_400;
    let mut m = flat(now, 60, 1.0);
    // Yesterday 05:00 to 06:00 ran at 4.5 MiB/s: 7 shards at 70 %.
    m.extend((0..60).map(|i| minute(at(5, 0) + i * 60, 4.5)));
    let d = decide(&p, &none(), now, &m, shards(8), &[]);
    assert_eq!(
        d.action,
        Action::SetShards { from: 8, to: 7 },
        "{}",
        d.reason
    );
    let d = decide(&p, &none(), now, &m, shards(7), &[]);
    assert_eq!(d.action, Action::None);
    assert!(
        d.reason.contains("the same hours yesterday"),
        "{}",
        d.reason
    );
    let off = Policy {
        seasonal_minutes: 0,
        ..Policy::default()
    };
    assert_eq!(
        decide(&off, &none(), now, &m, shards(8), &[]).action,
        Action::SetShards { from: 8, to: 4 }
    );
}

#[test]
fn a_prewarm_window_starts_the_doublings_early_enough() {
    let p = Policy::default();
    // 09:00-11:00 New York (14:00 UTC in December) needs 32 MiB/s: from 4 shards, 3 doublings
    // at 10 minutes each plus 10 minutes of margin: the first call is due at 13:20 UTC.
    let rules: Rules = "daily 09:00-11:00 America/New_York 32MiB"
        .parse()
        .expect("rules");
    let quiet = |now: i64| flat(now, 10, 0.5);
    let d = decide(&p, &rules, at(13, 19), &quiet(at(13, 19)), shards(4), &[]);
    assert_eq!(d.action, Action::None, "{}", d.reason);
    let d = decide(&p, &rules, at(13, 20), &quiet(at(13, 20)), shards(4), &[]);
    assert_eq!(
        (d.action, d.kind),
        (
            Action::SetShards { from: 4, to: 8 },
            Some(CallKind::Prewarm)
        ),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("2026-12-10 14:00 UTC"), "{}", d.reason);
    // Inside the window low traffic does not scale down.
    let d = decide(
        &p,
        &rules,
        at(15, 0),
        &flat(at(15, 0), 60, 0.5),
        shards(32),
        &[],
    );
    assert_eq!(d.action, Action::None, "{}", d.reason);
}

#[test]
fn a_scale_down_is_skipped_when_the_next_prewarm_would_lack_calls() {
    let p = Policy::default();
    let now = at(6, 0);
    let rules: Rules = "daily 09:00-11:00 America/New_York 32MiB"
        .parse()
        .expect("rules");
    // 6 calls in the last 24 h, all still counted at 13:xx; a scale-down to 16 then needs 1 call
    // back to 32: 6 + 1 + 1 = 8 is fine; from 32 down to 16 with 7 used: 7 + 1 + 1 = 9 > 8.
    let used = |n: i64| -> Vec<Call> {
        (0..n)
            .map(|i| call(at(0, 0) + i * 600, CallKind::ScaleUp))
            .collect()
    };
    let low = flat(now, 60, 1.0);
    let d = decide(&p, &rules, now, &low, shards(32), &used(6));
    assert_eq!(
        d.action,
        Action::SetShards { from: 32, to: 16 },
        "{}",
        d.reason
    );
    let d = decide(&p, &rules, now, &low, shards(32), &used(7));
    assert_eq!(d.action, Action::None);
    assert!(
        d.reason
            .contains("the 1 calls of the pre-warm at 2026-12-10 14:00 UTC would not be left"),
        "{}",
        d.reason
    );
}

#[test]
fn on_demand_advantage_follows_the_rules_with_warm_throughput() {
    let p = Policy::default();
    let rules: Rules = "daily 09:00-11:00 America/New_York 200MiB"
        .parse()
        .expect("rules");
    let adv = |warm| StreamCapacity {
        mode: StreamMode::OnDemandAdvantage,
        open_shards: 4,
        warm_mibps: warm,
        active: true,
    };
    let m = |now| flat(now, 10, 5.0);
    let d = decide(&p, &rules, at(13, 44), &m(at(13, 44)), adv(0), &[]);
    assert_eq!(d.action, Action::None, "{}", d.reason);
    let d = decide(&p, &rules, at(13, 46), &m(at(13, 46)), adv(0), &[]);
    assert_eq!(
        (d.action, d.kind),
        (
            Action::SetWarmThroughput { from: 0, to: 200 },
            Some(CallKind::Prewarm)
        ),
        "{}",
        d.reason
    );
    // After the window, lowered once the cooldown has passed.
    let after = at(16, 30);
    let raised = [Call {
        at: at(13, 46),
        from: 0,
        to: 200,
        kind: CallKind::Prewarm,
    }];
    let d = decide(&p, &rules, after, &m(after), adv(200), &raised);
    assert_eq!(
        (d.action, d.kind),
        (
            Action::SetWarmThroughput { from: 200, to: 0 },
            Some(CallKind::ScaleDown)
        ),
        "{}",
        d.reason
    );
    // Throttling raises it to twice the offered traffic.
    let mut hot = flat(after, 10, 30.0);
    hot[0].throttled = 60_000.0;
    let d = decide(&p, &none(), after, &hot, adv(0), &[]);
    assert_eq!(d.kind, Some(CallKind::Emergency));
    assert!(
        matches!(d.action, Action::SetWarmThroughput { from: 0, to } if to >= 60),
        "{:?}",
        d.action
    );
}

#[test]
fn on_demand_standard_is_never_touched() {
    let p = Policy::default();
    let rules: Rules = "daily 09:00-11:00 America/New_York 200MiB"
        .parse()
        .expect("rules");
    let std = StreamCapacity {
        mode: StreamMode::OnDemandStandard,
        open_shards: 4,
        warm_mibps: 0,
        active: true,
    };
    let mut m = flat(at(14, 0), 10, 30.0);
    m[0].throttled = 1e6;
    let d = decide(&p, &rules, at(14, 0), &m, std, &[]);
    assert_eq!(d.action, Action::None);
    assert!(
        d.reason.contains("on-demand Standard has no capacity API"),
        "{}",
        d.reason
    );
}

#[test]
fn bad_knobs_are_named() {
    let bad = |p: Policy| p.validate().expect_err("invalid");
    assert!(
        bad(Policy {
            target_use: 1.5,
            ..Policy::default()
        })
        .contains("targetUse")
    );
    assert!(
        bad(Policy {
            down_use: 0.8,
            ..Policy::default()
        })
        .contains("downUse")
    );
    assert!(
        bad(Policy {
            min_shards: 9,
            max_shards: 8,
            ..Policy::default()
        })
        .contains("minShards")
    );
    assert!(
        bad(Policy {
            budget: Budget {
                limit: 11,
                reserve: 2
            },
            ..Policy::default()
        })
        .contains("<= 10")
    );
    assert!(Policy::default().validate().is_ok());
}

/// A random day: segments of (minutes, MiB/s, throttled records per minute, iterator age).
fn traffic() -> impl Strategy<Value = Vec<(u16, f64, f64, f64)>> {
    prop::collection::vec(
        (
            1u16..240,
            0.0f64..80.0,
            prop_oneof![3 => Just(0.0), 1 => 1.0f64..50_000.0],
            prop_oneof![3 => Just(0.0), 1 => 0.0f64..600_000.0],
        ),
        6..40,
    )
}

fn rules_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (0u8..23, 1u16..300, 1u32..400).prop_map(|(h, mins, mib)| format!(
            "daily {h:02}:00-{:02}:{:02} America/New_York {mib}MiB",
            (h as u16 * 60 + mins) / 60 % 24,
            (h as u16 * 60 + mins) % 60
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the metrics, every call AWS would accept, inside the limits, within the budget.
    #[test]
    fn never_more_calls_than_the_budget_never_a_target_out_of_bounds(
        segments in traffic(),
        rules in rules_strategy(),
        min_shards in 1u32..4,
        max_shards in 4u32..200,
        start_shards in 1u32..300,
        reserve in 0u32..4,
        call_minutes in 1i64..20,
    ) {
        let rules: Rules = rules.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let p = Policy { min_shards, max_shards, budget: Budget { limit: 10, reserve }, ..Policy::default() };
        let mut shards = start_shards;
        let mut pending: Option<(i64, u32)> = None;
        let mut minutes: Vec<Minute> = Vec::new();
        let mut history: Vec<Call> = Vec::new();
        let mut t = T0;
        for (len, mibps, throttled, age) in segments {
            for _ in 0..len {
                if let Some((due, to)) = pending && due <= t { shards = to; pending = None; }
                minutes.push(Minute { start: t, bytes: mibps * MIB * 60.0, records: mibps * 600.0, throttled, iterator_age_ms: age });
                let now = t + 60;
                let cap = StreamCapacity { mode: StreamMode::Provisioned, open_shards: shards, warm_mibps: 0, active: pending.is_none() };
                let lo = minutes.len().saturating_sub(26 * 60);
                let d = p.decide(&rules, now, &minutes[lo..], &cap, &history);
                if let Action::SetShards { from, to } = d.action {
                    let kind = d.kind.ok_or_else(|| TestCaseError::fail("a call without a kind"))?;
                    prop_assert_eq!(from, shards);
                    prop_assert!(limits::call_allowed(from, to), "{} -> {} breaks the per-call rules", from, to);
                    prop_assert!(to <= max_shards.max(from), "{} -> {} above maxShards {}", from, to, max_shards);
                    prop_assert!(to >= min_shards.min(from), "{} -> {} below minShards {}", from, to, min_shards);
                    prop_assert!(cap.active, "a call while UPDATING");
                    let cap_for_kind = if kind == CallKind::Emergency { 10 } else { 10 - reserve };
                    prop_assert!(Budget::used(&history, now) < cap_for_kind, "{:?} call over its budget: {}", kind, d.reason);
                    history.push(Call { at: now, from, to, kind });
                    pending = Some((now + call_minutes * 60, to));
                }
                prop_assert!(!matches!(d.action, Action::SetWarmThroughput { .. }), "a provisioned stream got a warm throughput");
                t += 60;
            }
        }
        prop_assert!(Budget::max_in_any_window(&history) <= 10);
    }
}
