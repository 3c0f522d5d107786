//! The runner against fake services: the loop with continue-as-new, the Distributed Map's
//! reader, batcher, concurrency and tolerance, retries, the history limit, and refusals.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use super::*;

const ARN: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:t-loop";

/// A worker that says `done` after `steps` steps, and `continueAsNew` every `per_execution`.
#[derive(Default)]
struct Fake {
    steps: u64,
    per_execution: u64,
    calls: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    throttles_left: AtomicU64,
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    batches: Mutex<Vec<Value>>,
}

impl Services for Fake {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        payload: Value,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            if self
                .throttles_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(Failure::new(
                    "Lambda.TooManyRequestsException",
                    "Rate exceeded",
                ));
            }
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(function, "worker");
            if let Some(items) = payload.get("Items") {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                self.batches.lock().unwrap().push(payload.clone());
                if items
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["item"]["robotId"] == "bad")
                {
                    return Err(Failure::new(
                        "JobAborted",
                        json!({"errorType": "JobAborted"}).to_string(),
                    ));
                }
                return Ok(json!({"n": items.as_array().unwrap().len()}));
            }
            if payload.get("finish").is_some() {
                return Ok(json!({"state": "succeeded", "done": true}));
            }
            let iteration = payload["iteration"].as_u64().unwrap();
            let next = iteration + 1;
            Ok(json!({
                "jobId": payload["jobId"],
                "iteration": next,
                "done": next >= self.steps,
                "state": if next >= self.steps { "succeeded" } else { "running" },
                "waitSeconds": 0,
                "continueAsNew": next.is_multiple_of(self.per_execution),
                "executionName": format!("{}-{next}", payload["jobId"].as_str().unwrap()),
            }))
        })
    }

    fn get_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, Failure>> {
        Box::pin(async move {
            self.objects
                .lock()
                .unwrap()
                .get(&format!("{bucket}/{key}"))
                .cloned()
                .ok_or_else(|| Failure::new("S3.NoSuchKey", "The specified key does not exist."))
        })
    }

    fn put_object<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            self.objects
                .lock()
                .unwrap()
                .insert(format!("{bucket}/{key}"), body);
            Ok(())
        })
    }
}

fn loop_definition() -> Value {
    json!({
        "StartAt": "Step",
        "States": {
            "Step": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "worker", "Payload": {"jobId.$": "$.jobId", "iteration.$": "$.iteration"}},
                "OutputPath": "$.Payload",
                "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2}],
                "Next": "Done?"
            },
            "Done?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.done", "BooleanEquals": true, "Next": "Finished"},
                    {"Variable": "$.continueAsNew", "BooleanEquals": true, "Next": "ContinueAsNew"},
                    {"Variable": "$.waitSeconds", "NumericGreaterThan": 0, "Next": "Wait"}
                ],
                "Default": "Step"
            },
            "Wait": {"Type": "Wait", "SecondsPath": "$.waitSeconds", "Next": "Step"},
            "ContinueAsNew": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {"StateMachineArn": ARN, "Name.$": "$.executionName", "Input": {"jobId.$": "$.jobId", "iteration.$": "$.iteration"}},
                "End": true
            },
            "Finished": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.state", "StringEquals": "succeeded", "Next": "Succeeded"}],
                "Default": "NotSucceeded"
            },
            "Succeeded": {"Type": "Succeed"},
            "NotSucceeded": {"Type": "Fail", "Error": "JobNotSucceeded", "Cause": "the job ended aborted or failed"}
        }
    })
}

fn runner_with(def: Value, fake: Arc<Fake>) -> Runner {
    let runner = Runner::new();
    runner.add_machine(ARN, parse(&def).unwrap(), fake);
    runner
}

#[tokio::test(start_paused = true)]
async fn the_loop_continues_as_new_executions_until_the_job_is_done() {
    let fake = Arc::new(Fake {
        steps: 25,
        per_execution: 10,
        ..Fake::default()
    });
    fake.throttles_left.store(2, Ordering::SeqCst);
    let runner = runner_with(loop_definition(), fake.clone());
    runner
        .start(ARN, Some("j1-0"), json!({"jobId": "j1", "iteration": 0}))
        .unwrap();
    runner.wait_idle().await;
    let mut execs = runner.executions();
    execs.sort_by_key(|e| e.input["iteration"].as_u64());
    let names: Vec<&str> = execs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["j1-0", "j1-10", "j1-20"]);
    assert!(
        execs.iter().all(|e| e.status == Status::Succeeded),
        "{execs:#?}"
    );
    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        25,
        "two throttled calls were retried, not counted"
    );
    // 10 steps: execution start and end, 10 x (task 5 + choice 2), the continue task 5, and
    // the two throttled attempts (scheduled, started, failed: 3 each).
    assert_eq!(execs[0].history_events, 2 + 10 * 7 + 5 + 2 * 3);
}

#[tokio::test(start_paused = true)]
async fn a_name_used_before_starts_nothing_new_and_another_input_is_refused() {
    let fake = Arc::new(Fake {
        steps: 1,
        per_execution: 10,
        ..Fake::default()
    });
    let runner = runner_with(loop_definition(), fake.clone());
    let input = json!({"jobId": "j2", "iteration": 0});
    let a = runner.start(ARN, Some("j2-0"), input.clone()).unwrap();
    let b = runner.start(ARN, Some("j2-0"), input).unwrap();
    assert_eq!(a, b);
    let e = runner
        .start(ARN, Some("j2-0"), json!({"jobId": "other", "iteration": 0}))
        .unwrap_err();
    assert!(e.to_string().contains("ExecutionAlreadyExists"), "{e}");
    runner.wait_idle().await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    let e = runner.start(ARN, Some("bad name!"), json!({})).unwrap_err();
    assert!(e.to_string().contains("InvalidName"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn an_execution_that_never_continues_fails_at_the_history_limit() {
    let fake = Arc::new(Fake {
        steps: u64::MAX,
        per_execution: u64::MAX,
        ..Fake::default()
    });
    let runner = runner_with(loop_definition(), fake.clone());
    let arn = runner
        .start(ARN, Some("forever"), json!({"jobId": "j3", "iteration": 0}))
        .unwrap();
    runner.wait_idle().await;
    let e = runner.describe(&arn).unwrap();
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
    assert!(e.cause.unwrap().contains("25000 events"));
    // 25,000 events at 7 a step: about 3,570 steps, not one more.
    let calls = fake.calls.load(Ordering::SeqCst);
    assert!((3_560..=3_575).contains(&calls), "{calls}");
}

fn map_definition(format: &str, key: &str) -> Value {
    let mut reader_config = json!({"InputType": format});
    if format == "CSV" {
        reader_config["CSVHeaderLocation"] = json!("FIRST_ROW");
    }
    json!({
        "StartAt": "Fan out",
        "States": {
            "Fan out": {
                "Type": "Map",
                "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": reader_config,
                               "Parameters": {"Bucket.$": "$.bucket", "Key": key}},
                "ItemSelector": {"index.$": "$$.Map.Item.Index", "item.$": "$$.Map.Item.Value"},
                "ItemBatcher": {"MaxItemsPerBatch": 3, "BatchInput": {"jobId.$": "$.jobId"}},
                "MaxConcurrency": 2,
                "ToleratedFailurePercentage": 0,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "Batch",
                    "States": {"Batch": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                                         "Parameters": {"FunctionName": "worker", "Payload.$": "$"},
                                         "OutputPath": "$.Payload", "End": true}}
                },
                "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket.$": "$.bucket", "Prefix": "results"}},
                "ResultPath": "$.map",
                "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "ResultPath": "$.error", "Next": "Finish"}],
                "Next": "Finish"
            },
            "Finish": {"Type": "Pass", "End": true}
        }
    })
}

async fn run_map(format: &str, body: &str) -> (Arc<Fake>, ExecutionInfo) {
    let fake = Arc::new(Fake::default());
    fake.objects
        .lock()
        .unwrap()
        .insert("b/in".into(), body.as_bytes().to_vec());
    let runner = runner_with(map_definition(format, "in"), fake.clone());
    let arn = runner
        .start(ARN, None, json!({"jobId": "m1", "bucket": "b"}))
        .unwrap();
    runner.wait_idle().await;
    (fake.clone(), runner.describe(&arn).unwrap())
}

#[tokio::test]
async fn the_map_reads_jsonl_batches_items_and_keeps_to_its_concurrency() {
    let body: String = (0..10)
        .map(|i| format!("{{\"robotId\":\"r{i}\"}}\r\n"))
        .collect::<String>()
        + "\n";
    let (fake, exec) = run_map("JSONL", &body).await;
    assert_eq!(exec.status, Status::Succeeded, "{exec:#?}");
    let batches = fake.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 4, "10 items in batches of 3");
    let mut indexes: Vec<u64> = batches
        .iter()
        .flat_map(|b| {
            b["Items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["index"].as_u64().unwrap())
        })
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..10).collect::<Vec<_>>());
    assert!(
        batches
            .iter()
            .all(|b| b["BatchInput"] == json!({"jobId": "m1"}))
    );
    assert!(fake.max_in_flight.load(Ordering::SeqCst) <= 2);
    let out = exec.output.unwrap();
    let manifest = out["map"]["ResultWriterDetails"]["Key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fake.objects
            .lock()
            .unwrap()
            .contains_key(&format!("b/{manifest}"))
    );
}

#[tokio::test]
async fn the_map_reads_csv_rows_as_objects_of_their_header() {
    let (fake, exec) = run_map("CSV", "robotId,channel\nr1,beta\nr2,\"stable, lts\"\n").await;
    assert_eq!(exec.status, Status::Succeeded, "{exec:#?}");
    let batches = fake.batches.lock().unwrap().clone();
    assert_eq!(
        batches[0]["Items"],
        json!([{"index": 0, "item": {"robotId": "r1", "channel": "beta"}},
               {"index": 1, "item": {"robotId": "r2", "channel": "stable, lts"}}])
    );
}

#[tokio::test]
async fn one_failed_batch_passes_a_zero_tolerance_and_is_caught() {
    let body: String = (0..30)
        .map(|i| {
            if i == 4 {
                "{\"robotId\":\"bad\"}\n".to_string()
            } else {
                format!("{{\"robotId\":\"r{i}\"}}\n")
            }
        })
        .collect();
    let (fake, exec) = run_map("JSONL", &body).await;
    assert_eq!(
        exec.status,
        Status::Succeeded,
        "the Catch led to Finish: {exec:#?}"
    );
    let out = exec.output.unwrap();
    assert_eq!(
        out["error"]["Error"],
        "States.ExceedToleratedFailureThreshold"
    );
    assert!(
        out["error"]["Cause"]
            .as_str()
            .unwrap()
            .contains("JobAborted")
    );
    assert!(
        fake.batches.lock().unwrap().len() < 10,
        "the map stopped starting batches once the threshold was passed"
    );
}

#[tokio::test]
async fn a_missing_input_object_fails_the_reader() {
    let fake = Arc::new(Fake::default());
    let runner = runner_with(map_definition("JSONL", "missing"), fake);
    let arn = runner
        .start(ARN, None, json!({"jobId": "m2", "bucket": "b"}))
        .unwrap();
    runner.wait_idle().await;
    let e = runner.describe(&arn).unwrap();
    assert_eq!(e.error.as_deref(), Some("States.ItemReaderFailed"));
    assert!(e.cause.unwrap().contains("NoSuchKey"));
}

#[test]
fn what_is_outside_the_subset_is_refused_by_name() {
    let mut d = loop_definition();
    d["States"]["Both"] = json!({"Type": "Parallel", "Branches": [], "End": true});
    let e = parse(&d).unwrap_err().to_string();
    assert!(e.contains("state type Parallel"), "{e}");
    let mut d = loop_definition();
    d["QueryLanguage"] = json!("JSONata");
    assert!(
        parse(&d)
            .unwrap_err()
            .to_string()
            .contains("QueryLanguage \"JSONata\"")
    );
    let mut d = loop_definition();
    d["States"]["Step"]["Resource"] = json!("arn:aws:states:::sqs:sendMessage");
    assert!(
        parse(&d)
            .unwrap_err()
            .to_string()
            .contains("Task resource arn:aws:states:::sqs:sendMessage")
    );
    let mut d = loop_definition();
    d["States"]["Step"]["Parameters"]["Payload"]["n.$"] = json!("States.MathAdd($.iteration, 1)");
    assert!(
        parse(&d)
            .unwrap_err()
            .to_string()
            .contains("intrinsic function States.MathAdd")
    );
    let mut d = loop_definition();
    d["States"]["Done?"]["Choices"][0] =
        json!({"Variable": "$.done", "StringMatches": "x*", "Next": "Finished"});
    assert!(
        parse(&d)
            .unwrap_err()
            .to_string()
            .contains("Choice comparison StringMatches")
    );
    let mut d = map_definition("JSON", "k");
    assert!(
        parse(&d)
            .unwrap_err()
            .to_string()
            .contains("ItemReader InputType JSON")
    );
    d = map_definition("JSONL", "k");
    d["States"]["Fan out"]["ItemProcessor"]["ProcessorConfig"]["Mode"] = json!("INLINE");
    assert!(parse(&d).unwrap_err().to_string().contains("Mode INLINE"));
    let mut d = loop_definition();
    d["States"]["Wait"]["Next"] = json!("Nowhere");
    assert!(
        parse(&d)
            .unwrap_err()
            .to_string()
            .contains("Nowhere, which is not a state")
    );
}

#[tokio::test]
async fn a_missing_choice_variable_is_a_runtime_error_no_catch_all_takes() {
    let def = json!({
        "StartAt": "Pick",
        "States": {
            "Pick": {"Type": "Choice",
                     "Choices": [{"Variable": "$.format", "StringEquals": "csv", "Next": "Done"}],
                     "Default": "Done"},
            "Done": {"Type": "Succeed"}
        }
    });
    let runner = runner_with(def, Arc::new(Fake::default()));
    let arn = runner.start(ARN, None, json!({"jobId": "x"})).unwrap();
    runner.wait_idle().await;
    let e = runner.describe(&arn).unwrap();
    assert_eq!(e.error.as_deref(), Some("States.Runtime"), "{e:?}");
    assert!(e.cause.unwrap().contains("$.format"));
    // States.ALL and States.TaskFailed never take States.Runtime or DataLimitExceeded.
    let all = vec!["States.ALL".to_string()];
    let task = vec!["States.TaskFailed".to_string()];
    assert!(!run::matches_for_test(&all, "States.Runtime"));
    assert!(!run::matches_for_test(&task, "States.DataLimitExceeded"));
    assert!(run::matches_for_test(&all, "Lambda.Unknown"));
    assert!(!run::matches_for_test(&task, "States.Timeout"));
    assert!(run::matches_for_test(
        &["States.Runtime".to_string()],
        "States.Runtime"
    ));
}
