//! stream-scaler against the AWS front (moto behind it): metrics injected through the front's
//! test-only endpoint lead to the expected calls, the budget persists across invocations (and
//! cold starts), a call that breaks AWS's rules is refused and not recorded.

#![allow(clippy::unwrap_used)]

use aws_sdk_kinesis::types::{ScalingType, StreamMode as KinesisMode, StreamModeDetails};
use fleet_capacity::budget::{Call, CallKind};
use fleet_capacity::policy::Policy;
use fleet_capacity::rules::Rules;
use fleet_testkit::{aws_endpoint, sdk_config, unique_name};
use serde_json::{Value, json};
use stream_scaler::{Config, Handler, Mode, StateStore, StreamConfig, TableConfig, build, now};

struct Fixture {
    stream: String,
    state_table: String,
    missions_table: String,
    kinesis: aws_sdk_kinesis::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn fixture(shards: Option<i32>) -> Fixture {
    let sdk = sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let stream = unique_name("scaled");
    let create = kinesis.create_stream().stream_name(&stream);
    let create = match shards {
        Some(n) => create.shard_count(n).stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(KinesisMode::Provisioned)
                .build()
                .unwrap(),
        ),
        None => create.stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(KinesisMode::OnDemand)
                .build()
                .unwrap(),
        ),
    };
    create.send().await.unwrap();
    let state_table = unique_name("scaler-state");
    fleet_testkit::tables::create_table(&dynamodb, &state_table, "pk", None).await;
    let missions_table = unique_name("missions");
    fleet_testkit::tables::create_missions_table(&dynamodb, &missions_table).await;
    Fixture {
        stream,
        state_table,
        missions_table,
        kinesis,
        dynamodb,
    }
}

impl Fixture {
    fn config(&self, mode: Mode, rules: &str, table_rules: &str) -> Config {
        Config {
            mode,
            state_table: self.state_table.clone(),
            streams: vec![StreamConfig {
                role: "missions",
                name: self.stream.clone(),
                rules: rules.parse().unwrap(),
                policy: Policy {
                    min_shards: 1,
                    max_shards: 64,
                    ..Policy::default()
                },
            }],
            table: TableConfig {
                name: self.missions_table.clone(),
                indexes: vec!["byDay".into()],
                rules: table_rules.parse::<Rules>().unwrap(),
                lookahead_secs: 48 * 3600,
            },
        }
    }

    async fn handler(&self, mode: Mode, rules: &str) -> Handler {
        build(self.config(mode, rules, ""), &sdk_config().await)
    }

    async fn shards(&self) -> i32 {
        let d = self
            .kinesis
            .describe_stream_summary()
            .stream_name(&self.stream)
            .send()
            .await
            .unwrap();
        d.stream_description_summary().unwrap().open_shard_count()
    }

    /// Puts per-minute AWS/Kinesis metrics for the stream through the front's test-only endpoint
    /// (PutMetricData refuses AWS/ namespaces, as AWS does): `(minute start, MiB, records, throttled)`.
    async fn inject(&self, minutes: &[(i64, f64, f64, f64)]) {
        let mut data = Vec::new();
        for (start, mib, records, throttled) in minutes {
            let dims = json!({"StreamName": self.stream});
            data.push(json!({"metricName": "IncomingBytes", "dimensions": dims, "timestamp": start, "value": mib * 1_048_576.0, "unit": "Bytes"}));
            data.push(json!({"metricName": "IncomingRecords", "dimensions": dims, "timestamp": start, "value": records, "unit": "Count"}));
            if *throttled > 0.0 {
                data.push(json!({"metricName": "WriteProvisionedThroughputExceeded", "dimensions": dims, "timestamp": start, "value": throttled, "unit": "Count"}));
            }
        }
        let r = reqwest::Client::new()
            .post(format!("{}/_front/metrics", aws_endpoint()))
            .json(&json!({"namespace": "AWS/Kinesis", "metricData": data}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    async fn aws_history(&self) -> Vec<i64> {
        let arn = format!(
            "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
            self.stream
        );
        let r: Value = reqwest::Client::new()
            .get(format!(
                "{}/_front/kinesis/scaling?stream={arn}",
                aws_endpoint()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as i64)
            .collect()
    }

    async fn seed_aws_history(&self, calls: &[i64]) {
        let arn = format!(
            "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
            self.stream
        );
        let r = reqwest::Client::new()
            .post(format!("{}/_front/kinesis/scaling", aws_endpoint()))
            .json(&json!({"streamArn": arn, "calls": calls}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    fn state(&self) -> StateStore {
        StateStore::new(self.dynamodb.clone(), self.state_table.clone())
    }
}

fn minute_now() -> i64 {
    let t = now();
    t - t.rem_euclid(60)
}

/// The last `n` minutes before `at`, each at `mib` MiB/s with throttling in the last two.
fn throttled_minutes(at: i64, n: i64, mib: f64) -> Vec<(i64, f64, f64, f64)> {
    (1..=n)
        .map(|i| {
            (
                at - i * 60,
                mib * 60.0,
                mib * 60.0 * 500.0,
                if i <= 2 { 3_000.0 } else { 0.0 },
            )
        })
        .collect()
}

#[tokio::test]
async fn throttling_doubles_the_shards_and_the_call_is_recorded_where_aws_counts_it() {
    let f = fixture(Some(2)).await;
    let t = minute_now();
    f.inject(&throttled_minutes(t, 5, 1.9)).await;
    let report = f.handler(Mode::Act, "").await.handle(t + 30).await.unwrap();
    let s = &report["streams"][0];
    assert_eq!(
        s["done"],
        json!({"call": "UpdateShardCount", "from": 2, "to": 4}),
        "{report}"
    );
    assert_eq!(s["decision"]["kind"], "emergency");
    assert!(
        s["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("6000 records throttled"),
        "{report}"
    );
    assert_eq!(f.shards().await, 4);
    assert_eq!(f.aws_history().await.len(), 1, "the front counted the call");
    let stored = f.state().load(&f.stream).await.unwrap();
    assert_eq!(stored.calls.len(), 1);
    assert_eq!(
        (
            stored.calls[0].from,
            stored.calls[0].to,
            stored.calls[0].kind
        ),
        (2, 4, CallKind::Emergency)
    );
    assert_eq!(stored.expected_shards, Some(4));
}

#[tokio::test]
async fn the_budget_persists_across_invocations_and_cold_starts() {
    let f = fixture(Some(2)).await;
    let t = minute_now();
    f.inject(&throttled_minutes(t, 5, 1.9)).await;
    f.handler(Mode::Act, "").await.handle(t + 30).await.unwrap();
    // Nine more calls in the last hours, in the scaler's state and in AWS's count alike.
    let mut state = f.state().load(&f.stream).await.unwrap();
    let earlier: Vec<i64> = (1..=9).map(|i| t - 3600 * i).collect();
    for at in &earlier {
        state.calls.push(Call {
            at: *at,
            from: 4,
            to: 4,
            kind: CallKind::ScaleUp,
        });
    }
    f.state().save(&state).await.unwrap();
    let mut aws = f.aws_history().await;
    aws.extend(&earlier);
    aws.sort();
    f.seed_aws_history(&aws).await;
    // A cold start (a new handler) three minutes later: throttling again, but no call is left.
    let later = t + 180;
    f.inject(&throttled_minutes(later, 2, 3.9)).await;
    let report = f
        .handler(Mode::Act, "")
        .await
        .handle(later + 30)
        .await
        .unwrap();
    let s = &report["streams"][0];
    assert_eq!(s["decision"]["budgetUsed"], 10, "{report}");
    assert!(s["done"].is_null(), "{report}");
    assert!(
        s["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("10 of 10 calls in 24 h are used"),
        "{report}"
    );
    assert_eq!(f.shards().await, 4);
    assert_eq!(f.aws_history().await.len(), 10);
}

#[tokio::test]
async fn a_call_that_breaks_awss_rules_is_refused_in_awss_words_and_not_recorded() {
    let f = fixture(Some(2)).await;
    // Directly: 2 -> 8 is more than double.
    let err = f
        .kinesis
        .update_shard_count()
        .stream_name(&f.stream)
        .target_shard_count(8)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_err();
    let service = err.as_service_error().unwrap();
    assert!(service.is_limit_exceeded_exception(), "{service:?}");
    assert!(
        service.to_string().contains("cannot scale up over double"),
        "{service}"
    );
    // Through the scaler: its state was lost, AWS still counts ten calls in the last 24 h.
    let t = minute_now();
    f.seed_aws_history(&(1..=10).map(|i| t - 1800 * i).collect::<Vec<_>>())
        .await;
    f.inject(&throttled_minutes(t, 5, 1.9)).await;
    let report = f
        .handler(Mode::Act, "")
        .await
        .handle(t + 30)
        .await
        .unwrap_err();
    let s = &report["streams"][0];
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("AWS refused UpdateShardCount 2 -> 4: LimitExceededException"),
        "{report}"
    );
    assert_eq!(f.shards().await, 2);
    assert!(
        f.state().load(&f.stream).await.unwrap().calls.is_empty(),
        "a refused call is not counted"
    );
}

#[tokio::test]
async fn observe_mode_decides_and_reports_but_calls_nothing() {
    let f = fixture(Some(2)).await;
    let t = minute_now();
    f.inject(&throttled_minutes(t, 5, 1.9)).await;
    let report = f
        .handler(Mode::Observe, "")
        .await
        .handle(t + 30)
        .await
        .unwrap();
    let s = &report["streams"][0];
    assert_eq!(s["decision"]["action"], "set-shards", "{report}");
    assert!(s["done"].is_null());
    assert_eq!(f.shards().await, 2);
    assert!(f.aws_history().await.is_empty());
}

#[tokio::test]
async fn a_prewarm_window_scales_up_ahead_of_time_and_a_quiet_hour_scales_down() {
    let f = fixture(Some(2)).await;
    let t = minute_now();
    // A window opening in 20 minutes asks for 8 MiB/s: two doublings at 10 minutes each plus
    // 10 minutes of margin is a 30-minute lead, so the first call is due now.
    let start = jiff::Timestamp::from_second(t + 20 * 60).unwrap();
    let end = jiff::Timestamp::from_second(t + 80 * 60).unwrap();
    let rule = format!(
        "daily {}-{} UTC 8MiB",
        start.strftime("%H:%M"),
        end.strftime("%H:%M")
    );
    f.inject(
        &(1..=10)
            .map(|i| (t - i * 60, 6.0, 6_000.0, 0.0))
            .collect::<Vec<_>>(),
    )
    .await;
    let report = f
        .handler(Mode::Act, &rule)
        .await
        .handle(t + 30)
        .await
        .unwrap();
    let s = &report["streams"][0];
    assert_eq!(
        s["done"],
        json!({"call": "UpdateShardCount", "from": 2, "to": 4}),
        "{report}"
    );
    assert_eq!(s["decision"]["kind"], "prewarm");

    // Another stream, 8 shards, an hour of 1 MiB a minute: halved.
    let g = quiet_hour(t).await;
    let report = g.handler(Mode::Act, "").await.handle(t + 30).await.unwrap();
    let s = &report["streams"][0];
    assert_eq!(
        s["done"],
        json!({"call": "UpdateShardCount", "from": 8, "to": 4}),
        "{report}"
    );
    assert_eq!(s["decision"]["kind"], "scale-down");
    assert_eq!(g.shards().await, 4);
}

/// A stream of 8 shards after an hour (65 minutes before `t`) of 1 MiB and 1,000 records a
/// minute: far below what 8 shards take.
async fn quiet_hour(t: i64) -> Fixture {
    let g = fixture(Some(8)).await;
    g.inject(
        &(1..=65)
            .map(|i| (t - i * 60, 1.0, 1_000.0, 0.0))
            .collect::<Vec<_>>(),
    )
    .await;
    g
}

/// The same quiet hour as above, but the consumers are 20 minutes behind (iterator age through
/// the front's metrics): the stream is not scaled down while they catch up.
#[tokio::test]
async fn a_quiet_stream_whose_consumers_are_behind_is_not_scaled_down() {
    let t = minute_now();
    let g = quiet_hour(t).await;
    let age: Vec<Value> = (1..=65)
        .map(|i| {
            json!({"metricName": "GetRecords.IteratorAgeMilliseconds",
            "dimensions": {"StreamName": g.stream}, "timestamp": t - i * 60,
            "value": 20.0 * 60_000.0, "unit": "Milliseconds"})
        })
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{}/_front/metrics", aws_endpoint()))
        .json(&json!({"namespace": "AWS/Kinesis", "metricData": age}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let report = g.handler(Mode::Act, "").await.handle(t + 30).await.unwrap();
    let s = &report["streams"][0];
    assert_eq!(s["done"], Value::Null, "{report}");
    assert!(
        s["decision"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("consumers are 1200 s behind"),
        "{report}"
    );
    assert_eq!(g.shards().await, 8);
}

#[tokio::test]
async fn a_change_made_outside_the_scaler_is_counted_in_the_budget() {
    let f = fixture(Some(2)).await;
    let t = minute_now();
    // The first run sees a stream without traffic: it may halve it (2 -> 1); either way it
    // records what it saw.
    f.handler(Mode::Act, "").await.handle(t).await.unwrap();
    let before = f.shards().await;
    let counted = f.state().load(&f.stream).await.unwrap().calls.len();
    f.kinesis
        .update_shard_count()
        .stream_name(&f.stream)
        .target_shard_count(before * 2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    let report = f.handler(Mode::Act, "").await.handle(t + 60).await.unwrap();
    let s = &report["streams"][0];
    assert_eq!(s["external"]["from"], before, "{report}");
    assert_eq!(s["external"]["to"], before * 2);
    assert_eq!(s["callsIn24h"], counted + 1);
    assert!(
        s["done"].is_null(),
        "a minute after its own call the scaler waits: {report}"
    );
}

#[tokio::test]
async fn two_runs_at_once_make_one_call() {
    let f = fixture(Some(2)).await;
    let t = minute_now();
    f.inject(&throttled_minutes(t, 5, 1.9)).await;
    let (a, b) = (
        f.handler(Mode::Act, "").await,
        f.handler(Mode::Act, "").await,
    );
    let (ra, rb) = tokio::join!(a.handle(t + 30), b.handle(t + 30));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let calls = [&ra, &rb]
        .iter()
        .filter(|r| !r["streams"][0]["done"].is_null())
        .count();
    assert_eq!(
        calls, 1,
        "one run calls, the other stands down or sees the call: {ra} {rb}"
    );
    assert_eq!(f.shards().await, 4);
    assert_eq!(f.aws_history().await.len(), 1);
    assert_eq!(f.state().load(&f.stream).await.unwrap().calls.len(), 1);
}

#[tokio::test]
async fn the_missions_table_is_prewarmed_once_ahead_of_its_window_never_lowered() {
    let f = fixture(Some(1)).await;
    let tomorrow = jiff::Timestamp::from_second(now() + 86_400)
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    let rules = format!("{tomorrow} 00:00-23:59 UTC 9000wcu");
    let handler = build(f.config(Mode::Act, "", &rules), &sdk_config().await);
    let report = handler.handle(now()).await.unwrap();
    let done = report["table"]["done"].as_array().unwrap();
    assert_eq!(done.len(), 2, "the table and byDay: {report}");
    assert!(
        (done[0]["costUsd"].as_f64().unwrap() - 5_000.0 * 0.00065).abs() < 1e-9,
        "{report}"
    );
    let d = f
        .dynamodb
        .describe_table()
        .table_name(&f.missions_table)
        .send()
        .await
        .unwrap();
    let table = d.table().unwrap();
    assert_eq!(
        table.warm_throughput().unwrap().write_units_per_second(),
        Some(9000)
    );
    assert_eq!(
        table.global_secondary_indexes()[0]
            .warm_throughput()
            .unwrap()
            .write_units_per_second(),
        Some(9000)
    );
    assert_eq!(
        table.warm_throughput().unwrap().read_units_per_second(),
        Some(12000),
        "reads untouched"
    );
    let again = handler.handle(now()).await.unwrap();
    assert!(
        again["table"]["raises"].as_array().unwrap().is_empty(),
        "{again}"
    );
}

#[tokio::test]
async fn an_on_demand_stream_in_an_advantage_account_gets_warm_throughput() {
    let f = fixture(None).await;
    // The account's commitment (On-demand Advantage). It is account-wide in the front for its
    // lifetime, as in AWS for 24 h: no test relies on an account in Standard mode.
    f.kinesis
        .update_account_settings()
        .minimum_throughput_billing_commitment(
            aws_sdk_kinesis::types::MinimumThroughputBillingCommitmentInput::builder()
                .status(
                    aws_sdk_kinesis::types::MinimumThroughputBillingCommitmentInputStatus::Enabled,
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let t = minute_now();
    let start = jiff::Timestamp::from_second(t + 5 * 60).unwrap();
    let end = jiff::Timestamp::from_second(t + 65 * 60).unwrap();
    let rule = format!(
        "daily {}-{} UTC 120MiB",
        start.strftime("%H:%M"),
        end.strftime("%H:%M")
    );
    let report = f.handler(Mode::Act, &rule).await.handle(t).await.unwrap();
    let s = &report["streams"][0];
    assert_eq!(s["mode"], "on-demand-advantage", "{report}");
    assert_eq!(
        s["done"],
        json!({"call": "UpdateStreamWarmThroughput", "from": 0, "to": 120}),
        "{report}"
    );
    let d = f
        .kinesis
        .describe_stream_summary()
        .stream_name(&f.stream)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.stream_description_summary()
            .unwrap()
            .warm_throughput()
            .unwrap()
            .target_mibps(),
        Some(120)
    );
}
