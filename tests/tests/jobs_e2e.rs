//! End to end: fleet jobs on the local stack, started with StartExecution through the AWS front
//! (authorized as the operator), run by the stack's ASL runner as the machines' roles (the front
//! authorizes every invoke, S3 read and the loop's own StartExecution), the job-worker behind
//! the front, and the shadow service.
//!
//! - the cursor loop sends a command to simulated robots over MQTT: each acts on it once,
//!   reports it in `reported.command` and clears `desired.command`;
//! - the Distributed Map reads a CSV input in batches, counts a bad line, and ends succeeded.
//!
//! Run through `make test`, or after `source tools/dev-env.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use fleet_jobs::Machine;
use fleet_local::dev::RunningStack;
use fleet_ops::jobs::{JobRunArgs, JobRunSummary, JobStack};
use fleet_sim::{MqttTarget, Progress, SimArgs, Targets};
use serde_json::Value;

mod common;
use common::{stack, stack_with};

fn run_args(file: &Path, command: &str, id: &str, machine: Machine) -> JobRunArgs {
    JobRunArgs {
        file: file.to_path_buf(),
        command: command.into(),
        id: Some(id.into()),
        machine,
        format: None,
        spec: None,
        rate: None,
        adaptive: false,
        abort_percent: None,
        abort_min: 100,
        concurrency: None,
        json: None,
    }
}

/// `robofleet job run` as the local developer: the stack's jobs from its outputs in
/// CloudFormation, as on AWS (`robofleet dev` keeps the record).
async fn run(stack: &RunningStack, name: &str, args: &JobRunArgs) -> Result<JobRunSummary, String> {
    let jobs = JobStack::from_outputs(&stack.sdk, name)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(jobs.table, stack.resources.tables["JobsTable"]);
    fleet_ops::jobs::run_job(args, &stack.sdk, &jobs, fleet_console::Progress::Silent)
        .await
        .map_err(|e| e.to_string())
}

async fn shadow(client: &aws_sdk_iotdataplane::Client, thing: &str) -> Value {
    let out = client
        .get_thing_shadow()
        .thing_name(thing)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{thing}: {}", fleet_aws::error::describe(&e)));
    serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap()
}

fn data_plane(stack: &RunningStack) -> aws_sdk_iotdataplane::Client {
    aws_sdk_iotdataplane::Client::from_conf(
        aws_sdk_iotdataplane::config::Builder::from(&stack.sdk)
            .endpoint_url(&stack.endpoints.iot_data)
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulated_robots_receive_a_jobs_command_report_it_and_clear_it() {
    // One worker step per execution: the loop continues as new at every step, each time with
    // StartExecution on its own ARN through the front, as its role.
    let (stack, name, logs) = stack_with("e2e-job", &[("JobIterationsPerExecution", "1")]).await;
    let prefix = format!("{name}-rb");
    let robots = 12u64;
    let targets = Targets {
        mqtt: MqttTarget::parse_url(&stack.endpoints.mqtt).unwrap(),
        aws_endpoint: Some(stack.endpoints.aws.clone()),
        opensearch_url: None,
        missions_table: None,
        robots_alias: String::new(),
        rejects_queue_url: None,
        aws: Default::default(),
    };
    let sim = SimArgs::from_flags([
        "--mode",
        "steady",
        "--robots",
        &robots.to_string(),
        "--rate",
        "2",
        "--duration",
        "25s",
        "--mission-share",
        "0",
        "--commands",
        "0",
        "--prefix",
        &prefix,
    ])
    .unwrap();
    let fleet = fleet_sim::run(sim, targets, Progress::Silent);

    // The job: every simulated robot, a robot that is not connected, and a bad line.
    let input = logs.path().join("robots.jsonl");
    let mut lines: Vec<String> = (0..robots)
        .map(|k| {
            format!(
                "{{\"robotId\":\"{}\"}}",
                fleet_sim::args::robot_id(&prefix, k)
            )
        })
        .collect();
    lines.push(format!("{{\"robotId\":\"{prefix}-offline\"}}"));
    lines.push("{\"robot\": \"no id\"}".into());
    std::fs::write(&input, lines.join("\n")).unwrap();
    // The fleet runs while the job goes out (one task: the simulator's future is not Send).
    let job = async {
        tokio::time::sleep(Duration::from_secs(4)).await; // the robots connect and subscribe
        let job_id = format!("{name}-dock");
        // It starts in 3 s: the first step waits, and the loop continues as new.
        let start_at =
            fleet_core::timefmt::from_unix_seconds(fleet_core::timefmt::now_unix_secs() + 3)
                .unwrap();
        let spec = logs.path().join("job.json");
        std::fs::write(
            &spec,
            serde_json::json!({"startAt": fleet_core::timefmt::format_rfc3339(start_at)})
                .to_string(),
        )
        .unwrap();
        let mut args = run_args(&input, "dock", &job_id, Machine::Loop);
        args.spec = Some(spec);
        let summary = run(&stack, &name, &args)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{}", summary.to_text());
        assert_eq!(summary.state, "succeeded", "{summary:#?}");
        assert_eq!(
            summary.succeeded,
            robots + 1,
            "every robot's shadow got the command"
        );
        assert_eq!(summary.bad_lines, 1);
        assert_eq!(summary.failed, 0);
        assert!(
            summary.executions.len() >= 2
                && summary.executions.iter().all(|e| e.status == "SUCCEEDED"),
            "the loop continued as new executions that all succeeded: {:?}",
            summary.executions
        );

        // Each connected robot acts once, reports the command and clears it.
        let client = data_plane(&stack);
        let command_id = format!("job-{job_id}");
        let deadline = Instant::now() + Duration::from_secs(20);
        for k in 0..robots {
            let thing = fleet_sim::args::robot_id(&prefix, k);
            loop {
                let doc = shadow(&client, &thing).await;
                let acked = doc
                    .pointer("/state/reported/command/id")
                    .and_then(Value::as_str)
                    == Some(command_id.as_str());
                let cleared = doc.pointer("/state/desired/command").is_none();
                if acked && cleared {
                    assert_eq!(doc["state"]["reported"]["command"]["status"], "applied");
                    assert_eq!(doc["state"]["reported"]["command"]["action"], "dock");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{thing} did not acknowledge and clear the command: {doc}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        // The robot that was not connected still has it waiting.
        let offline = shadow(&client, &format!("{prefix}-offline")).await;
        assert_eq!(
            offline["state"]["desired"]["command"]["id"],
            command_id.as_str()
        );
    };
    let (report, ()) = tokio::join!(fleet, job);
    let report = report.unwrap();
    assert_eq!(
        report.published.commands_handled, robots,
        "each robot acted on the command once"
    );
    let _ = stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_distributed_map_runs_a_csv_job_in_batches() {
    let (stack, name, logs) = stack("e2e-jobmap").await;
    let input = logs.path().join("robots.csv");
    let mut csv = String::from("robotId,value\r\n");
    for k in 0..250 {
        csv.push_str(&format!("{name}-m{k:04},max\r\n"));
    }
    csv.push_str(",max\r\n"); // a row that names no robot
    std::fs::write(&input, csv).unwrap();
    let missing = JobStack::from_outputs(&stack.sdk, &format!("{name}-gone"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains(&format!("{name}-gone")) && missing.contains("cannot be read"),
        "{missing}"
    );
    let job_id = format!("{name}-suction");
    let summary = run(
        &stack,
        &name,
        &run_args(
            &input,
            r#"{"action": "setting", "params": {"name": "suctionPower", "value": "standard"}}"#,
            &job_id,
            Machine::Map,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", summary.to_text());
    assert_eq!(summary.state, "succeeded", "{summary:#?}");
    assert_eq!((summary.succeeded, summary.bad_lines), (250, 1));
    let doc = shadow(&data_plane(&stack), &format!("{name}-m0007")).await;
    assert_eq!(
        doc["state"]["desired"]["command"]["params"],
        serde_json::json!({"name": "suctionPower", "value": "max"}),
        "the line's value overrides the command's"
    );
    let _ = stack.shutdown().await;
}
