//! job-worker against the AWS front (moto for S3 and DynamoDB) and the real shadow service of
//! fleet-iot behind the front's IoT Data Plane endpoint: many invocations with short deadlines,
//! retried chunks, CRLF and a missing final newline, bad lines, the abort rule, map batches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fleet_iot::shadow::{ShadowKey, ShadowService};
use fleet_iot::{BrokerOptions, EmbeddedBroker};
use fleet_jobs::{JobAction, JobSpec, JobState};
use fleet_lambda::Deadline;
use fleet_testkit::{aws_endpoint, sdk_config, unique_name};
use job_worker::{BatchItem, Config, Handler, StepOutput, build_with_shadows};
use serde_json::{Value, json};
use tokio::sync::watch;

struct Fixture {
    handler: Handler,
    s3: aws_sdk_s3::Client,
    bucket: String,
    shadows: fleet_iot::shadow::ShadowHandle,
    _broker: EmbeddedBroker,
    _stop: watch::Sender<bool>,
}

const MARGIN_MS: u64 = 200;

async fn fixture() -> Fixture {
    let sdk = sdk_config().await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let bucket = fleet_testkit::tables::create_bucket(&s3, &unique_name("jobs")).await;
    let table = unique_name("jobs");
    fleet_testkit::tables::create_table(&dynamodb, &table, "pk", Some("sk")).await;
    let broker = EmbeddedBroker::start(BrokerOptions::default())
        .await
        .unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let shadows = ShadowService::start(&broker.addr, "127.0.0.1:0".parse().unwrap(), stop_rx)
        .await
        .unwrap();
    // The shadow service behind the front's IoT Data Plane endpoint: signed, authorized.
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/_front/iot", aws_endpoint()))
        .json(&json!({ "name": unique_name("jobs-iot"), "backend": shadows.http_url }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let iot_url = reply["url"]
        .as_str()
        .expect("the front's IoT url")
        .to_string();
    let iot = aws_sdk_iotdataplane::Client::from_conf(
        aws_sdk_iotdataplane::config::Builder::from(&sdk)
            .endpoint_url(iot_url)
            .build(),
    );
    let config = Config {
        jobs_table: table,
        reports_bucket: bucket.clone(),
        margin: Duration::from_millis(MARGIN_MS),
        chunk_bytes: 4_096,
        iterations_per_execution: 500,
    };
    Fixture {
        handler: build_with_shadows(config, &sdk, iot),
        s3,
        bucket,
        shadows,
        _broker: broker,
        _stop: stop,
    }
}

impl Fixture {
    async fn upload(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    async fn job(&self, key: &str, format: &str, extra: Value) -> String {
        let mut doc = json!({
            "command": { "action": "firmware-channel", "params": { "channel": "beta" } },
            "input": { "bucket": self.bucket, "key": key, "format": format },
            "rollout": { "maximumPerMinute": 240000 },
            "concurrency": 32,
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        let spec = JobSpec::from_json(&doc.to_string()).unwrap();
        let id = unique_name("job");
        self.handler.jobs.create(&id, &spec).await.unwrap();
        id
    }

    /// Steps until the job is done, each invocation given `budget` beyond the margin.
    async fn run(&self, job: &str, budget: Duration) -> Vec<StepOutput> {
        let mut outs = Vec::new();
        let mut iteration = 0;
        loop {
            let deadline = Deadline::after(Duration::from_millis(MARGIN_MS) + budget);
            let out = self.handler.step(job, iteration, deadline).await.unwrap();
            iteration = out.iteration;
            let done = out.done;
            outs.push(out);
            if done {
                return outs;
            }
            assert!(outs.len() < 500, "the job does not finish");
        }
    }

    /// The robot's classic shadow: (version, desired.command).
    fn shadow(&self, robot: &str) -> Option<(u64, Value)> {
        let doc = self
            .shadows
            .store
            .lock()
            .unwrap()
            .get(&ShadowKey::classic(robot), b"{}", 0)
            .ok()?;
        Some((
            doc["version"].as_u64().unwrap(),
            doc["state"]["desired"]["command"].clone(),
        ))
    }

    async fn report(&self, job: &str) -> Vec<Value> {
        let list = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("reports/{job}/"))
            .send()
            .await
            .unwrap();
        let mut out = Vec::new();
        for o in list.contents() {
            let body = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(o.key().unwrap())
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                out.push(serde_json::from_slice(line).unwrap());
            }
        }
        out
    }
}

fn jsonl(robots: impl Iterator<Item = String>) -> Vec<u8> {
    let mut out = String::new();
    for r in robots {
        out.push_str(&format!("{{\"robotId\":\"{r}\"}}\n"));
    }
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_robots_across_invocations_and_a_retried_chunk_each_get_the_command_once() {
    let f = fixture().await;
    let robots: Vec<String> = (0..10_000).map(|i| format!("rb-{i:05}")).collect();
    f.upload("in/fleet.jsonl", jsonl(robots.iter().cloned()))
        .await;
    let job = f.job("in/fleet.jsonl", "jsonl", json!({})).await;

    // An invocation that dies mid-chunk (Lambda timed out, the result was lost): lines were
    // claimed and some sent, nothing was recorded. Step Functions retries the step.
    // It is cut off once some robots have the command (not after a fixed time: on a busy
    // machine a fixed time may end it before it sent anything).
    let lost = f
        .handler
        .step(&job, 0, Deadline::after(Duration::from_secs(60)));
    tokio::pin!(lost);
    let cut_off = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            _ = &mut lost => panic!("the invocation ended before it was cut off"),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        let sent = robots[..200]
            .iter()
            .filter(|r| f.shadow(r).is_some())
            .count();
        if sent >= 20 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < cut_off,
            "nothing was sent in 30 s"
        );
    }
    let before = f.handler.jobs.require(&job).await.unwrap();
    // It recorded nothing, or (on a slow machine, past 5 s) a checkpoint on a line boundary.
    assert_eq!(
        before.cursor.offset,
        before.cursor.line * 23,
        "the lost invocation's record is on a line boundary"
    );

    let outs = f.run(&job, Duration::from_millis(700)).await;
    let last = outs.last().unwrap();
    assert!(outs.len() >= 3, "{} invocations", outs.len());
    assert_eq!(last.state, JobState::Succeeded, "{last:?}");
    let c = last.counters;
    // The lost invocation's lines were claimed: the retry sends none of them again. Those it
    // had sent are found on the robots' shadows and counted as sent (and skipped); those it had
    // only claimed are sent now. Every robot has the command, exactly once.
    assert!(
        c.skipped > 0,
        "the retry found the lost invocation's lines: {c:?}"
    );
    assert_eq!((c.succeeded, c.in_doubt), (10_000, 0), "{c:?}");
    assert_eq!((c.failed, c.bad_lines), (0, 0), "{c:?}");
    for r in &robots {
        let (version, command) = f
            .shadow(r)
            .unwrap_or_else(|| panic!("{r} never got the command"));
        assert_eq!(version, 1, "{r} was sent the command more than once");
        assert_eq!(command["id"], format!("job-{job}"));
        assert_eq!(command["params"]["channel"], "beta");
    }
    assert_eq!(last.cursor.offset, 10_000 * 23);
    // A step after the end changes nothing.
    let again = f
        .handler
        .step(
            &job,
            last.iteration,
            Deadline::after(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(again.done);
    assert_eq!(again.counters, c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cursor_stays_on_line_boundaries_with_crlf_and_no_final_newline() {
    let f = fixture().await;
    let mut csv = String::from("robotId,channel\r\n");
    for i in 0..600 {
        csv.push_str(&format!(
            "rb-c{i:04},{}\r\n",
            if i % 2 == 0 { "beta" } else { "stable" }
        ));
    }
    csv.push_str("rb-c0600,canary"); // no final newline
    let bytes = csv.into_bytes();
    let size = bytes.len() as u64;
    f.upload("in/crlf.csv", bytes.clone()).await;
    let job = f
        .job("in/crlf.csv", "csv", json!({ "concurrency": 4 }))
        .await;
    let outs = f.run(&job, Duration::from_millis(150)).await;
    assert!(outs.len() >= 3, "{} invocations", outs.len());
    for o in &outs {
        let at = o.cursor.offset as usize;
        assert!(
            at as u64 == size || bytes[at - 1] == b'\n',
            "cursor {at} is not after a line's end"
        );
    }
    let last = outs.last().unwrap();
    assert_eq!(last.state, JobState::Succeeded);
    assert_eq!(last.counters.succeeded, 601);
    assert_eq!(
        last.cursor,
        fleet_jobs::Cursor {
            offset: size,
            line: 601
        }
    );
    assert_eq!(
        f.shadow("rb-c0600").unwrap().1["params"]["channel"],
        "canary"
    );
    assert_eq!(
        f.shadow("rb-c0001").unwrap().1["params"]["channel"],
        "stable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_lines_are_reported_with_their_reason_and_the_job_goes_on() {
    let f = fixture().await;
    let body = [
        r#"{"robotId":"rb-good-1"}"#,
        r#"{"robotId":"rb-good-2","params":{"channel":"stable"}}"#,
        r#"not json"#,
        r#"{"robotId":"has space"}"#,
        r#""#,
        r#"{"robotId":"rb-bad-channel","params":{"channel":"nightly"}}"#,
        r#"{"robotId":"rb-good-3"}"#,
    ]
    .join("\n");
    f.upload("in/bad.jsonl", body.into_bytes()).await;
    let job = f.job("in/bad.jsonl", "jsonl", json!({})).await;
    let last = f.run(&job, Duration::from_secs(5)).await.pop().unwrap();
    assert_eq!(last.state, JobState::Succeeded);
    assert_eq!((last.counters.succeeded, last.counters.bad_lines), (3, 3));
    let mut report = f.report(&job).await;
    report.sort_by_key(|r| r["line"].as_u64());
    let lines: Vec<u64> = report.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![2, 3, 5]);
    assert!(report[0]["reason"].as_str().unwrap().contains("not JSON"));
    assert!(report[1]["reason"].as_str().unwrap().contains("robotId"));
    assert!(
        report[2]["reason"]
            .as_str()
            .unwrap()
            .contains("params.channel"),
        "{}",
        report[2]
    );
    assert_eq!(report[2]["robotId"], "rb-bad-channel");
    assert!(
        f.shadow("rb-bad-channel").is_none(),
        "a bad command is never sent"
    );
}

/// A JSONL file from a pattern: `b` a line whose command fails the schema, `g` a good line.
fn pattern(name: &str, lines: &str) -> Vec<u8> {
    let mut s = String::new();
    for (i, c) in lines.chars().enumerate() {
        s.push_str(&match c {
            'b' => {
                format!("{{\"robotId\":\"rb-{name}-{i}\",\"params\":{{\"channel\":\"nope\"}}}}\n")
            }
            _ => format!("{{\"robotId\":\"rb-{name}-{i}\"}}\n"),
        });
    }
    s.into_bytes()
}

/// The abort rule is checked as each line finishes (one line in flight, so the count is
/// exact): it fires when the failures reach the threshold once the minimum is executed, and
/// never before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_abort_rule_fires_at_its_threshold_and_not_before() {
    let f = fixture().await;
    let rule = json!({
        "abort": { "thresholdPercentage": 50, "minNumberOfExecutedThings": 10 },
        "concurrency": 1,
    });
    let run = |name: &'static str, lines: String| {
        let (f, rule) = (&f, rule.clone());
        async move {
            f.upload(&format!("in/{name}.jsonl"), pattern(name, &lines))
                .await;
            let job = f.job(&format!("in/{name}.jsonl"), "jsonl", rule).await;
            f.run(&job, Duration::from_secs(5)).await.pop().unwrap()
        }
    };
    // Two good lines first, then bad and good in turn: always below 50% (49 of 100 at the end).
    let below = run("below", format!("gg{}", "bg".repeat(49))).await;
    assert_eq!(below.state, JobState::Succeeded, "{below:?}");
    assert_eq!(below.counters.bad_lines, 49);
    // Bad and good in turn: 50% exactly once 10 lines are executed; it stops right there.
    let at = run("at", "bg".repeat(50)).await;
    assert_eq!(at.state, JobState::Aborted, "{at:?}");
    assert!(at.reason.as_deref().unwrap_or("").contains("abort rule"));
    assert_eq!(at.counters.executed(), 10, "{:?}", at.counters);
    // Nine failures in a row are not an abort before the minimum count: the tenth line decides.
    let early = run("early", format!("{}{}", "b".repeat(9), "g".repeat(20))).await;
    assert_eq!(early.state, JobState::Aborted, "9 of 10 failed");
    assert_eq!(early.counters.executed(), 10, "{:?}", early.counters);
    assert!(f.shadow("rb-early-9").is_some(), "the tenth line was sent");
    assert!(f.shadow("rb-early-10").is_none(), "nothing after the abort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_map_batch_is_counted_once_and_the_abort_rule_fails_the_batch() {
    let f = fixture().await;
    let job = f
        .job(
            "unused.jsonl",
            "jsonl",
            json!({ "abort": { "thresholdPercentage": 20, "minNumberOfExecutedThings": 5 } }),
        )
        .await;
    let items = |from: u64, robots: &[&str]| -> Vec<BatchItem> {
        robots
            .iter()
            .enumerate()
            .map(|(i, r)| BatchItem {
                index: from + i as u64,
                item: json!({ "robotId": r }),
            })
            .collect()
    };
    let deadline = || Deadline::after(Duration::from_secs(10));
    let first = items(0, &["rb-m0", "rb-m1", "rb-m2", "rb-m3", "rb-m4"]);
    f.handler
        .batch(&job, first.clone(), deadline())
        .await
        .unwrap();
    // Step Functions retries the same batch: nothing is sent twice or counted twice.
    f.handler.batch(&job, first, deadline()).await.unwrap();
    let rec = f.handler.jobs.require(&job).await.unwrap();
    assert_eq!(rec.counters.succeeded, 5);
    assert_eq!(f.shadow("rb-m0").unwrap().0, 1);
    // Two bad items of the next batch: 2 of 7 = 28% >= 20%: the batch fails, the job aborts.
    let bad = vec![
        BatchItem {
            index: 5,
            item: json!({ "robotId": "no good" }),
        },
        BatchItem {
            index: 6,
            item: json!({ "robot": "rb-m6" }),
        },
    ];
    let err = f
        .handler
        .batch(&job, bad, deadline())
        .await
        .expect_err("aborted");
    assert!(err.to_string().starts_with("JobAborted"), "{err}");
    assert_eq!(
        f.handler.jobs.require(&job).await.unwrap().state,
        JobState::Aborted
    );
    // Later batches fail at once, without sending.
    let late = f
        .handler
        .batch(&job, items(7, &["rb-m7"]), deadline())
        .await;
    assert!(late.is_err());
    assert!(f.shadow("rb-m7").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_chunk_records_its_place_while_it_runs_and_counts_every_line_once() {
    let f = fixture().await;
    let robots: Vec<String> = (0..2_500).map(|i| format!("ck-{i:05}")).collect();
    f.upload("in/long.jsonl", jsonl(robots.iter().cloned()))
        .await;
    // 30,000 a minute: 500 a second, so one invocation runs for about 5 s.
    let job = f
        .job(
            "in/long.jsonl",
            "jsonl",
            json!({"rollout": {"maximumPerMinute": 30000}}),
        )
        .await;
    let step = f
        .handler
        .step(&job, 0, Deadline::after(Duration::from_secs(120)));
    tokio::pin!(step);
    let mut seen_mid_chunk = Vec::new();
    let out = loop {
        tokio::select! {
            out = &mut step => break out.unwrap(),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let j = f.handler.jobs.require(&job).await.unwrap();
                if j.counters.succeeded > 0 {
                    seen_mid_chunk.push((j.cursor.line, j.counters.succeeded));
                }
            }
        }
    };
    assert_eq!(out.lines, 2_500, "one invocation did the whole file");
    assert!(
        seen_mid_chunk
            .iter()
            .any(|(line, n)| *n < 2_500 && line == n),
        "the jobs table showed the chunk's progress before it ended: {seen_mid_chunk:?}"
    );
    let done = f.handler.jobs.require(&job).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(
        done.counters.succeeded, 2_500,
        "checkpoints and the end counted each line once"
    );
    assert_eq!(done.cursor.line, 2_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_resume_and_cancel_take_effect_in_the_middle_of_a_chunk() {
    let f = fixture().await;
    let robots: Vec<String> = (0..3_000).map(|i| format!("pr-{i:05}")).collect();
    f.upload("in/pause.jsonl", jsonl(robots.iter().cloned()))
        .await;
    // 60,000 a minute: 1,000 a second, so a chunk of 3,000 lines runs about 3 s.
    let job = f
        .job(
            "in/pause.jsonl",
            "jsonl",
            json!({"rollout": {"maximumPerMinute": 60000}}),
        )
        .await;
    let step = f
        .handler
        .step(&job, 0, Deadline::after(Duration::from_secs(120)));
    tokio::pin!(step);
    let out = loop {
        tokio::select! {
            out = &mut step => break out.unwrap(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                let j = f.handler.jobs.require(&job).await.unwrap();
                if j.state == JobState::Running && j.counters.succeeded > 0 {
                    f.handler.jobs.transition(&job, JobAction::Pause, None).await.unwrap();
                }
            }
        }
    };
    // The worker saw the pause at its next look (every 500 lines) and stopped there.
    assert!(out.lines < 3_000, "the chunk stopped early: {out:?}");
    let paused = f
        .handler
        .step(&job, out.iteration, Deadline::after(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(paused.state, JobState::Paused);
    assert_eq!(
        (paused.lines, paused.wait_seconds),
        (0, job_worker::PAUSED_POLL_SECS)
    );
    // Resumed, it goes on from its cursor; cancelled, it ends and sends nothing more.
    f.handler
        .jobs
        .transition(&job, JobAction::Resume, None)
        .await
        .unwrap();
    let step = f.handler.step(
        &job,
        paused.iteration,
        Deadline::after(Duration::from_secs(120)),
    );
    tokio::pin!(step);
    let resumed = loop {
        tokio::select! {
            out = &mut step => break out.unwrap(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                let j = f.handler.jobs.require(&job).await.unwrap();
                if j.state == JobState::Running && j.counters.succeeded > out.counters.succeeded + 100 {
                    let _ = f.handler.jobs.transition(&job, JobAction::Cancel, Some("test")).await;
                }
            }
        }
    };
    assert!(resumed.done, "{resumed:?}");
    assert_eq!(
        resumed.state,
        JobState::Aborted,
        "a cancelled job ends aborted: {resumed:?}"
    );
    let sent = robots.iter().filter(|r| f.shadow(r).is_some()).count() as u64;
    assert_eq!(
        sent, resumed.counters.succeeded,
        "no robot was sent the command without being counted"
    );
    assert!(sent < 3_000, "cancel stopped the sending: {sent}");
    for r in &robots {
        if let Some((version, _)) = f.shadow(r) {
            assert_eq!(version, 1, "{r} got the command more than once");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_gave_up_fails_the_job_unless_it_already_ended() {
    let f = fixture().await;
    f.upload("in/few.jsonl", jsonl((0..3).map(|i| format!("gu-{i}"))))
        .await;
    let running = f.job("in/few.jsonl", "jsonl", json!({})).await;
    f.handler
        .jobs
        .transition(&running, JobAction::Start, None)
        .await
        .unwrap();
    let out = f
        .handler
        .fail_from_machine(
            &running,
            Some("States.ExceedToleratedFailureThreshold: 1 of 3"),
        )
        .await
        .unwrap();
    assert_eq!(out.state, JobState::Failed);
    assert!(out.done);
    assert!(
        out.reason
            .unwrap()
            .contains("ExceedToleratedFailureThreshold")
    );
    // An abort (the rule fired, the batch failed with JobAborted) stays an abort.
    let aborted = f.job("in/few.jsonl", "jsonl", json!({})).await;
    f.handler
        .jobs
        .transition(&aborted, JobAction::Abort, Some("the abort rule fired"))
        .await
        .unwrap();
    let out = f
        .handler
        .fail_from_machine(&aborted, Some("x"))
        .await
        .unwrap();
    assert_eq!(out.state, JobState::Aborted);
}
