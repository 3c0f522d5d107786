//! The planner on the documented example fleet (5 million robots, docs/capacity.md), checked
//! against arithmetic done by hand here.

use std::sync::OnceLock;

use fleet_capacity::plan::{DAYS_PER_MONTH, DayKind, FleetSpec, Plan, PlanInput, plan};
use fleet_capacity::prices::Prices;
use fleet_capacity::replay::Sim;

fn example() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        plan(&PlanInput::default(), &Prices::bundled(), &Sim::default()).expect("plan")
    })
}

fn close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-6 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: planner says {actual}, by hand {expected}"
    );
}

#[test]
fn the_example_fleet_is_the_documented_one() {
    let f = FleetSpec::default();
    assert_eq!(
        (
            f.robots,
            f.missions_per_week,
            f.weekend_factor,
            f.mission_minutes
        ),
        (5e6, 4.0, 1.3, 75)
    );
    assert_eq!(
        (
            f.shadow_updates_per_mission,
            f.idle_updates_per_day,
            f.mission_report_bytes
        ),
        (24.0, 4.0, 1800.0)
    );
    let zones: Vec<f64> = f.schedule.time_zones.iter().map(|z| z.1).collect();
    assert_eq!(zones, vec![0.47, 0.29, 0.07, 0.17]);
    assert_eq!(
        (
            f.schedule.peak_hour,
            f.schedule.peak_share,
            f.schedule.on_the_hour,
            f.schedule.cluster_minutes
        ),
        (10, 0.30, 0.6, 2)
    );
}

#[test]
fn weekday_volume_by_hand() {
    let p = example();
    let wd = p
        .days
        .iter()
        .find(|d| d.kind == DayKind::Weekday)
        .expect("weekday");
    // 4 missions a week over 5 weekdays and 2 weekend days weighing 1.3: 4 / 7.6 a weekday.
    let missions = 5e6 * 4.0 / (5.0 + 2.0 * 1.3); // 2,631,578.9
    close(
        wd.missions.records,
        missions,
        "mission reports on a weekday",
    );
    // Robot publishes: 24 shadow updates + 1 report per mission, plus 4 idle updates per robot.
    close(
        wd.robot_messages,
        missions * 25.0 + 5e6 * 4.0,
        "robot messages on a weekday",
    ); // 85.8 M
    // Shadows stream records: the updates, plus two presence events per reconnection (1 a day).
    close(
        wd.shadows.records,
        missions * 24.0 + 5e6 * 4.0 + 2.0 * 5e6,
        "shadows stream records",
    );
}

#[test]
fn the_weekday_peak_by_hand() {
    let p = example();
    let wd = p
        .days
        .iter()
        .find(|d| d.kind == DayKind::Weekday)
        .expect("weekday");
    let missions = 5e6 * 4.0 / 7.6;
    // Reports peak at 11:15 New York: the missions that started in the first minute of 10:00
    // New York (peak hour, 30 %), and of 09:00 Chicago, 08:00 Denver, 07:00 Los Angeles (each
    // an off-peak hour: 70 % / 14 = 5 %), all 75 minutes earlier. In the first minute of an hour
    // start 60 % / 2 minutes of its missions plus 40 % / 60.
    let first_minute = |zone_share: f64, hour_share: f64| {
        missions * zone_share * hour_share * (0.6 / 2.0 + 0.4 / 60.0)
    };
    let per_minute = first_minute(0.47, 0.30)
        + first_minute(0.29, 0.05)
        + first_minute(0.07, 0.05)
        + first_minute(0.17, 0.05);
    close(
        wd.missions.peak_records_per_sec,
        per_minute / 60.0,
        "missions stream peak, records/s",
    ); // 2,252.9
    assert_eq!(wd.missions.peak_at, "11:15");
    close(
        wd.missions.peak_mibps,
        per_minute / 60.0 * (1800.0 + 36.0) / 1_048_576.0,
        "missions stream peak, MiB/s",
    ); // 3.94
    close(
        wd.peak_reports_per_sec,
        per_minute / 60.0,
        "DynamoDB writes/s",
    );
    // The table: a 1,800-byte item is 2 write units; the weekend is 1.3 times the weekday.
    close(p.dynamodb.write_units_per_item, 2.0, "WCU per item");
    close(
        p.dynamodb.peak_wcu_normal,
        2.0 * 1.3 * per_minute / 60.0,
        "peak WCU on a normal (weekend) day",
    ); // 5,857.6
}

#[test]
fn monthly_costs_by_hand() {
    let p = example();
    let cost = |name: &str| {
        p.monthly
            .iter()
            .find(|c| c.component.starts_with(name))
            .map(|c| c.usd)
            .expect(name)
    };
    let line = |name: &str, what: &str| -> String {
        p.monthly
            .iter()
            .find(|c| c.component.starts_with(name))
            .and_then(|c| c.arithmetic.iter().find(|l| l.starts_with(what)).cloned())
            .expect(what)
    };
    // Connectivity: 5 M robots always connected, 365.25 / 12 days of 1,440 minutes, $0.08 per million minutes.
    let connectivity = 5e6 * DAYS_PER_MONTH * 1440.0 / 1e6 * 0.08; // $17,532.00
    assert!(
        line("IoT Core", "connectivity").ends_with(&format!("${connectivity:.2}")),
        "{}",
        line("IoT Core", "connectivity")
    );
    // Robot messages a month: weekdays (5/7 of the month) and weekend days (2/7, 1.3 times the missions).
    let missions = 5e6 * 4.0 / 7.6;
    let weekday = missions * 25.0 + 5e6 * 4.0;
    let weekend = missions * 1.3 * 25.0 + 5e6 * 4.0;
    let month = weekday * DAYS_PER_MONTH * 5.0 / 7.0 + weekend * DAYS_PER_MONTH * 2.0 / 7.0; // 2,783 M
    close(p.robot_messages_per_month, month, "robot messages a month");
    // On-demand Standard stream-hours: 2 streams x 730.5 h x $0.04 = $58.44.
    let standard = p
        .stream_modes
        .iter()
        .find(|m| m.component == "on-demand Standard")
        .expect("standard");
    assert!(
        standard
            .arithmetic
            .iter()
            .any(|l| l == "2 streams x 730.5 h x $0.04 = $58.44"),
        "{:?}",
        standard.arithmetic
    );
    // DynamoDB writes: every report is 2 WRU on the table and 2 on the byDay index, $0.625 per million.
    let reports =
        missions * DAYS_PER_MONTH * 5.0 / 7.0 + missions * 1.3 * DAYS_PER_MONTH * 2.0 / 7.0;
    assert!(
        line("DynamoDB", "writes").ends_with(&format!("${:.2}", reports * 4.0 / 1e6 * 0.625)),
        "{}",
        line("DynamoDB", "writes")
    );
    // The total is the sum of the components, and the cost per million messages follows.
    let total: f64 = p.monthly.iter().map(|c| c.usd).sum();
    close(p.monthly_total_usd, total, "monthly total");
    close(
        p.usd_per_million_messages,
        total / (month / 1e6),
        "USD per million robot messages",
    );
    assert!(
        cost("IoT Core") > cost("Kinesis"),
        "IoT Core dominates a fleet's bill"
    );
}

#[test]
fn concurrency_and_quotas_by_hand() {
    let p = example();
    for l in &p.lambda {
        close(
            l.peak_concurrency,
            l.peak_shards * f64::from(l.parallelization_factor),
            "peak concurrency = shards x factor",
        );
    }
    let pf: Vec<u32> = p.lambda.iter().map(|l| l.parallelization_factor).collect();
    assert_eq!(
        pf,
        vec![4, 2],
        "the template's factors: mission-ingest 4, shadow-indexer 2"
    );
    // Christmas: 1.5 M new robots over 4 h in a triangle peaking at 80 minutes, 2 connections each:
    // the New York wave alone peaks near 1.5e6 x 0.47 x 2 / 120 per minute = 195 connections/s
    // (a triangle's peak is twice its mean), on top of 58 reconnections/s (5 M a day).
    let connects = p
        .quotas
        .iter()
        .find(|q| q.quota.starts_with("IoT connect"))
        .expect("connects");
    assert!(
        connects.peak > 195.0 + 50.0 && connects.peak < 500.0,
        "{}",
        connects.peak
    );
    // Shadow updates at the Christmas peak exceed the 4,000/s default: the plan flags it.
    let shadow = p
        .quotas
        .iter()
        .find(|q| q.quota.contains("Shadow"))
        .expect("shadow");
    assert!(!shadow.ok && shadow.peak > 4_000.0, "{shadow:?}");
}
