//! The replay over the planner's curves for the example fleet: with the planner's pre-warm rules
//! a normal day and Christmas morning stay under capacity; without them Christmas throttles.

use std::sync::OnceLock;

use fleet_capacity::plan::{DayKind, Plan, PlanInput, plan};
use fleet_capacity::prices::Prices;
use fleet_capacity::replay::{Sim, replay};
use fleet_capacity::rules::Rules;

/// The factor within which the policy's capacity-hours stay of the perfect oracle's (which has
/// exactly the shards each minute needs). Measured on the example fleet: 1.9 to 3.3.
const ORACLE_FACTOR: f64 = 4.0;

fn example() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        plan(&PlanInput::default(), &Prices::bundled(), &Sim::default())
            .expect("the example fleet plans")
    })
}

#[test]
fn with_prewarm_a_normal_day_and_christmas_never_run_over_capacity() {
    let p = example();
    for day in &p.days {
        for (stream, s) in [("missions", &day.missions), ("shadows", &day.shadows)] {
            let r = &s.replay;
            assert_eq!(
                r.policy.minutes_over, 0,
                "{:?} {stream}: {} minutes over with pre-warm",
                day.kind, r.policy.minutes_over
            );
            let ratio = r.policy_over_oracle();
            assert!(
                (1.0..=ORACLE_FACTOR).contains(&ratio),
                "{:?} {stream}: {:.2} x the oracle's capacity-hours",
                day.kind,
                ratio
            );
            assert!(
                r.policy.capacity_hours < r.fixed_peak.capacity_hours,
                "{:?} {stream}: the policy costs more than fixed at peak",
                day.kind
            );
            assert!(
                r.policy.calls_24h <= 10,
                "{:?} {stream}: {} calls in 24 h",
                day.kind,
                r.policy.calls_24h
            );
        }
    }
}

#[test]
fn without_prewarm_christmas_morning_throttles() {
    let p = example();
    let input = PlanInput::default();
    let day = p
        .days
        .iter()
        .find(|d| d.kind == DayKind::Christmas)
        .expect("christmas");
    // The same shadows curve (two days before, then Christmas), the same policy, no rules.
    let date: jiff::civil::Date = day.date.parse().expect("date");
    let prior: Vec<_> = [2, 1]
        .iter()
        .map(|n| {
            let d = date.checked_sub(jiff::Span::new().days(*n)).expect("date");
            input
                .fleet
                .day(d, fleet_capacity::plan::kind_of(&input.fleet, d))
        })
        .collect();
    let curve: Vec<_> = prior
        .iter()
        .chain(std::iter::once(&day.curve))
        .flat_map(|d| d.shadows.iter().copied())
        .collect();
    let bare = replay(
        &input.policy,
        &Rules::default(),
        &Sim::default(),
        prior[0].start,
        &curve,
        day.curve.shadows.len(),
    );
    assert!(
        bare.policy.minutes_over >= 10,
        "without pre-warm Christmas should throttle: {} minutes over",
        bare.policy.minutes_over
    );
    assert!(
        bare.policy.throttled_records > 1e6,
        "{} records throttled",
        bare.policy.throttled_records
    );
    let with = &day.shadows.replay;
    assert_eq!(with.policy.minutes_over, 0);
    eprintln!(
        "christmas shadows: without pre-warm {} minutes over ({:.1} M records throttled), with pre-warm {}",
        bare.policy.minutes_over,
        bare.policy.throttled_records / 1e6,
        with.policy.minutes_over
    );
}

#[test]
fn the_prewarm_schedule_is_what_the_scaler_parses() {
    let p = example();
    for rules in [
        &p.prewarm.missions_stream,
        &p.prewarm.shadows_stream,
        &p.prewarm.missions_table,
    ] {
        let parsed: Rules = rules
            .parse()
            .expect("the planner's rules parse as the scaler's");
        assert_eq!(parsed.to_string(), *rules);
    }
    assert!(
        p.prewarm.shadows_stream.contains("12-25 "),
        "{}",
        p.prewarm.shadows_stream
    );
    assert!(
        p.prewarm.missions_table.ends_with("wcu"),
        "{}",
        p.prewarm.missions_table
    );
}
