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

/// The shadows curve of `date` for `input`'s fleet after the two days before it (the replay's
/// warm-up): (unix second of its first minute, the curve, minutes of `date` itself).
fn shadows_with_warmup(
    input: &PlanInput,
    date: jiff::civil::Date,
) -> (i64, Vec<fleet_capacity::plan::Load>, usize) {
    let days: Vec<_> = [2, 1, 0]
        .iter()
        .map(|n| {
            let d = date.checked_sub(jiff::Span::new().days(*n)).expect("date");
            input
                .fleet
                .day(d, fleet_capacity::plan::kind_of(&input.fleet, d))
        })
        .collect();
    let curve = days
        .iter()
        .flat_map(|d| d.shadows.iter().copied())
        .collect();
    (days[0].start, curve, days[2].shadows.len())
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
    let (start, curve, minutes) = shadows_with_warmup(&input, date);
    assert_eq!(&curve[curve.len() - minutes..], &day.curve.shadows[..]);
    let bare = replay(
        &input.policy,
        &Rules::default(),
        &Sim::default(),
        start,
        &curve,
        minutes,
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

/// The rules are derived from the same curves the first test replays, so that test checks the
/// planner, not a forecast. Here the example fleet's rules meet days they were not derived
/// from: a fleet 10 % larger with a 10 % larger Christmas wave, and the wave an hour early. The
/// policy's target use and its reactive scale-up must cover the difference.
#[test]
fn the_rules_hold_for_a_larger_fleet_and_an_earlier_wave_they_were_not_derived_from() {
    let p = example();
    let christmas = p
        .days
        .iter()
        .find(|d| d.kind == DayKind::Christmas)
        .expect("christmas");
    let date: jiff::civil::Date = christmas.date.parse().expect("date");
    let rules: Rules = p.prewarm.shadows_stream.parse().expect("rules");
    let mut larger = PlanInput::default();
    larger.fleet.robots *= 1.1;
    if let Some(w) = larger.fleet.christmas.as_mut() {
        w.new_robots *= 1.1;
    }
    let mut earlier = PlanInput::default();
    if let Some(w) = earlier.fleet.christmas.as_mut() {
        w.wave_start = "05:00".into();
    }
    for (what, input) in [("10 % larger", &larger), ("an hour earlier", &earlier)] {
        let (start, curve, minutes) = shadows_with_warmup(input, date);
        let r = replay(
            &input.policy,
            &rules,
            &Sim::default(),
            start,
            &curve,
            minutes,
        );
        eprintln!(
            "christmas shadows, {what}: {} minutes over, {:.0} capacity-hours, {} calls",
            r.policy.minutes_over, r.policy.capacity_hours, r.policy.calls_24h
        );
        assert_eq!(r.policy.minutes_over, 0, "{what}: {:?}", r.policy);
    }
}

/// "Shards over time" is in the JSON as the steps of the policy's capacity, and the steps give
/// back the capacity of every minute.
#[test]
fn the_capacity_over_the_day_is_reported_as_steps() {
    let p = example();
    for day in &p.days {
        let run = &day.shadows.replay.policy;
        let steps = run.steps();
        assert_eq!(steps[0].0, 0);
        let mut rebuilt = Vec::new();
        for (k, (minute, cap)) in steps.iter().enumerate() {
            let until = steps.get(k + 1).map_or(run.capacity.len(), |s| s.0);
            rebuilt.extend(std::iter::repeat_n(*cap, until - minute));
        }
        assert_eq!(rebuilt, run.capacity, "{:?}", day.kind);
        let json = serde_json::to_value(run).expect("json");
        assert_eq!(
            json["capacitySteps"].as_array().map(Vec::len),
            Some(steps.len())
        );
    }
}
