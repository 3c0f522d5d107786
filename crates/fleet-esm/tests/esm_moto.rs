//! The event source mapping poller against moto over real HTTP: the Kinesis source, the SQS and
//! S3 on-failure destinations, and the Enabled flag read from moto's Lambda control plane.
//! Each test makes its own stream, queue, bucket, role and function (unique names).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use fleet_esm::InvokeError;
use fleet_esm::{
    FailureSink, InvokeOutcome, Invoker, KinesisSource, LambdaMappingState, MappingConfig,
    NoShutdown, Poller, PollerHandle, PollerOptions, S3FailureSink, SqsFailureSink,
    StartingPosition, SwitchState,
};
use fleet_testkit::{sdk_config, unique_name};
use futures::future::BoxFuture;
use serde_json::{Value, json};

const SHARD: &str = "shardId-000000000000";

type Script = Box<dyn Fn(usize, &[String]) -> InvokeOutcome + Send + Sync>;

/// A function that answers by script and remembers the sequence numbers of every batch.
struct Function {
    script: Script,
    batches: Mutex<Vec<Vec<String>>>,
}

impl Function {
    fn new(
        script: impl Fn(usize, &[String]) -> InvokeOutcome + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            batches: Mutex::new(Vec::new()),
        })
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().unwrap().clone()
    }
}

impl Invoker for Function {
    fn invoke<'a>(
        &'a self,
        _function: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
        Box::pin(async move {
            let seqs: Vec<String> = event["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["kinesis"]["sequenceNumber"].as_str().unwrap().to_owned())
                .collect();
            let n = {
                let mut b = self.batches.lock().unwrap();
                b.push(seqs.clone());
                b.len() - 1
            };
            Ok((self.script)(n, &seqs))
        })
    }
}

fn options() -> PollerOptions {
    PollerOptions {
        idle_poll_interval: Duration::from_millis(100),
        busy_poll_interval: Duration::from_millis(50),
        state_poll_interval: Duration::from_millis(200),
        retry_backoff_base: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(200),
        ..PollerOptions::default()
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..300 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A fresh one-shard stream; returns its name and ARN.
async fn stream(sdk: &aws_config::SdkConfig) -> (aws_sdk_kinesis::Client, String, String) {
    let k = aws_sdk_kinesis::Client::new(sdk);
    let name = unique_name("esm");
    k.create_stream()
        .stream_name(&name)
        .shard_count(1)
        .send()
        .await
        .expect("create stream");
    for _ in 0..50 {
        let s = k
            .describe_stream_summary()
            .stream_name(&name)
            .send()
            .await
            .expect("describe");
        let summary = s.stream_description_summary().expect("summary");
        if summary.stream_status().as_str() == "ACTIVE" {
            return (k, name, summary.stream_arn().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stream {name} did not become active");
}

async fn put(k: &aws_sdk_kinesis::Client, stream: &str, key: &str, data: &str) -> String {
    k.put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data.as_bytes()))
        .send()
        .await
        .expect("put record")
        .sequence_number()
        .to_owned()
}

/// The mapping's real state, counting how often the poller reads it.
struct CountingState {
    inner: LambdaMappingState,
    reads: AtomicU64,
}

impl fleet_esm::MappingState for CountingState {
    fn enabled(&self) -> BoxFuture<'_, Result<bool, fleet_esm::StateError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.enabled()
    }
}

fn spawn(
    config: MappingConfig,
    k: &aws_sdk_kinesis::Client,
    f: &Arc<Function>,
    state: Arc<dyn fleet_esm::MappingState>,
    sink: Option<Arc<dyn FailureSink>>,
) -> PollerHandle {
    let source = Arc::new(KinesisSource::new(k.clone(), &config.stream_name));
    let mut p = Poller::new(config, source, f.clone(), state).options(options());
    if let Some(sink) = sink {
        p = p.on_failure(sink);
    }
    p.spawn(NoShutdown).expect("spawn")
}

#[tokio::test]
async fn esm_kinesis_records_are_all_delivered_after_a_partial_failure() {
    let sdk = sdk_config().await;
    let (k, name, arn) = stream(&sdk).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(put(&k, &name, &format!("rb-{i}"), &format!("{{\"n\":{i}}}")).await);
    }
    let failing = seqs[2].clone();
    let f = Function::new(move |n, _| {
        if n == 0 {
            InvokeOutcome::ok(json!({"batchItemFailures": [{"itemIdentifier": failing}]}))
        } else {
            InvokeOutcome::ok(json!({"batchItemFailures": []}))
        }
    });
    let mut c = MappingConfig::new("esm-moto-1", "fn", &name);
    c.stream_arn = arn;
    c.starting_position = StartingPosition::TrimHorizon;
    c.report_batch_item_failures = true;
    let h = spawn(c, &k, &f, Arc::new(SwitchState::new(true)), None);
    let last = seqs[4].clone();
    until("all delivered", || {
        h.checkpoint(SHARD).as_deref() == Some(last.as_str())
    })
    .await;
    assert_eq!(f.batches(), vec![seqs.clone(), seqs[2..].to_vec()]);
    let s = h.stats().snapshot();
    assert_eq!(
        (s.records_polled, s.item_failures, s.records_behind),
        (5, 1, 0)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn esm_exhausted_retries_reach_the_sqs_queue_as_lambdas_invocation_record() {
    let sdk = sdk_config().await;
    let (k, name, arn) = stream(&sdk).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = unique_name("esm-dlq");
    let url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap();
    let seq = put(&k, &name, "rb-1", "{}").await;
    let f = Function::new(|_, _| InvokeOutcome::unhandled("boom"));
    let mut c = MappingConfig::new("esm-moto-2", "fn", &name);
    c.stream_arn = arn.clone();
    c.starting_position = StartingPosition::TrimHorizon;
    c.max_retry_attempts = Some(1);
    let sink = SqsFailureSink::from_arn(sqs.clone(), &queue_arn)
        .await
        .unwrap();
    assert_eq!(sink.queue_url(), url);
    let h = spawn(
        c,
        &k,
        &f,
        Arc::new(SwitchState::new(true)),
        Some(Arc::new(sink)),
    );
    until("discarded", || {
        h.checkpoint(SHARD).as_deref() == Some(seq.as_str())
    })
    .await;
    assert_eq!(f.batches().len(), 2, "one try and one retry");
    let msgs = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(msgs.messages()[0].body().unwrap()).unwrap();
    assert_eq!(
        body["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(body["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(body["responseContext"]["functionError"], "Unhandled");
    assert_eq!(body["version"], "1.0");
    let info = &body["KinesisBatchInfo"];
    assert_eq!(info["shardId"], SHARD);
    assert_eq!(info["startSequenceNumber"], seq.as_str());
    assert_eq!(info["endSequenceNumber"], seq.as_str());
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["streamArn"], arn.as_str());
    assert!(
        info["approximateArrivalOfFirstRecord"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(
        body.get("payload").is_none(),
        "an SQS destination gets metadata only"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn esm_the_s3_destination_gets_metadata_and_payload_under_lambdas_key_layout() {
    let sdk = sdk_config().await;
    let (k, name, arn) = stream(&sdk).await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    let bucket = unique_name("esm-fail");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let seq = put(&k, &name, "rb-9", "{\"bad\":true}").await;
    let f = Function::new(|_, _| InvokeOutcome::unhandled("boom"));
    let mut c = MappingConfig::new("esm-moto-3", "fn", &name);
    c.stream_arn = arn;
    c.starting_position = StartingPosition::TrimHorizon;
    c.max_retry_attempts = Some(0);
    let sink = S3FailureSink::from_arn(s3.clone(), &format!("arn:aws:s3:::{bucket}")).unwrap();
    let h = spawn(
        c,
        &k,
        &f,
        Arc::new(SwitchState::new(true)),
        Some(Arc::new(sink)),
    );
    until("discarded", || {
        h.checkpoint(SHARD).as_deref() == Some(seq.as_str())
    })
    .await;
    let prefix = format!("aws/lambda/esm-moto-3/{SHARD}/");
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    let key = listed.contents()[0].key().unwrap().to_owned();
    assert_eq!(
        key.len(),
        prefix.len() + "2026/11/24/2026-11-24T01.02.03-".len() + 36,
        "{key}"
    );
    let obj = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let bytes = obj.body.collect().await.unwrap().into_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        body["KinesisBatchInfo"]["startSequenceNumber"],
        seq.as_str()
    );
    let payload: Value = serde_json::from_str(body["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload["Records"][0]["kinesis"]["sequenceNumber"],
        seq.as_str()
    );
    assert_eq!(payload["Records"][0]["kinesis"]["data"], "eyJiYWQiOnRydWV9");
    h.shutdown().await;
}

/// Creates an IAM role as the local developer (signed; the front checks it).
async fn create_role(name: &str) -> String {
    fleet_testkit::create_role(name).await
}

/// The smallest valid zip archive (an empty one): moto stores the code, never runs it here.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[tokio::test]
async fn esm_the_enabled_flag_is_read_from_motos_lambda_control_plane() {
    let sdk = sdk_config().await;
    let (k, name, arn) = stream(&sdk).await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let function = unique_name("esm-fn");
    let role = create_role(&unique_name("esm-role")).await;
    lambda
        .create_function()
        .function_name(&function)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(&role)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(EMPTY_ZIP.to_vec()))
                .build(),
        )
        .send()
        .await
        .expect("create function");
    let esm = lambda
        .create_event_source_mapping()
        .function_name(&function)
        .event_source_arn(&arn)
        .starting_position(aws_sdk_lambda::types::EventSourcePosition::TrimHorizon)
        .batch_size(10)
        .send()
        .await
        .expect("create event source mapping");
    let uuid = esm.uuid().unwrap().to_owned();

    let first = put(&k, &name, "rb-1", "{}").await;
    let f = Function::new(|_, _| InvokeOutcome::ok(json!({"batchItemFailures": []})));
    let mut c = MappingConfig::new(&uuid, &function, &name);
    c.stream_arn = arn;
    c.starting_position = StartingPosition::TrimHorizon;
    let state = Arc::new(CountingState {
        inner: LambdaMappingState::new(lambda.clone(), &uuid),
        reads: AtomicU64::new(0),
    });
    let h = spawn(c, &k, &f, state.clone(), None);
    until("first record", || {
        h.checkpoint(SHARD).as_deref() == Some(first.as_str())
    })
    .await;

    lambda
        .update_event_source_mapping()
        .uuid(&uuid)
        .enabled(false)
        .send()
        .await
        .unwrap();
    let stats = h.stats();
    until("disabled", || !stats.snapshot().enabled).await;
    let calls = stats.snapshot().get_records_calls;
    let second = put(&k, &name, "rb-1", "{}").await;
    // The barrier: the poller itself reads its state three more times after the put, so its
    // shard loop has had every chance to poll the record. It must not have.
    let reads = state.reads.load(Ordering::SeqCst);
    until("three more state reads", || {
        state.reads.load(Ordering::SeqCst) >= reads + 3
    })
    .await;
    assert_eq!(
        stats.snapshot().get_records_calls,
        calls,
        "a disabled mapping is not polled"
    );
    assert_eq!(f.batches().concat(), vec![first.clone()]);

    lambda
        .update_event_source_mapping()
        .uuid(&uuid)
        .enabled(true)
        .send()
        .await
        .unwrap();
    until("resumed", || {
        h.checkpoint(SHARD).as_deref() == Some(second.as_str())
    })
    .await;
    assert_eq!(
        f.batches().concat(),
        vec![first, second],
        "resumed after the checkpoint"
    );
    h.shutdown().await;
}

/// moto 5.2.5 closes the parent on UpdateShardCount (EndingSequenceNumber, children listed with
/// ParentShardId) yet keeps writing every record to it and keeps answering GetRecords with a
/// NextShardIterator. The poller follows the parent until GetRecords stops giving an iterator
/// (AWS's end-of-shard signal), so nothing written after a reshard is lost either way.
#[tokio::test]
async fn esm_after_a_reshard_the_children_are_read_once_the_parent_is_drained() {
    let sdk = sdk_config().await;
    let (k, name, arn) = stream(&sdk).await;
    let before = put(&k, &name, "rb-0", "{}").await;
    let f = Function::new(|_, _| InvokeOutcome::ok(json!({"batchItemFailures": []})));
    let mut c = MappingConfig::new("esm-moto-5", "fn", &name);
    c.stream_arn = arn;
    c.starting_position = StartingPosition::TrimHorizon;
    let source = Arc::new(KinesisSource::new(k.clone(), &name));
    let mut opts = options();
    opts.shard_discovery_interval = Duration::from_millis(300);
    let h = Poller::new(c, source, f.clone(), Arc::new(SwitchState::new(true)))
        .options(opts)
        .spawn(NoShutdown)
        .expect("spawn");
    until("first record", || {
        h.checkpoint(SHARD).as_deref() == Some(before.as_str())
    })
    .await;
    k.update_shard_count()
        .stream_name(&name)
        .target_shard_count(2)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .expect("update shard count");
    let mut after = Vec::new();
    for i in 0..6 {
        after.push(put(&k, &name, &format!("rb-{i}"), "{}").await);
    }
    until("records after the reshard", || {
        let got = f.batches().concat();
        after.iter().all(|s| got.contains(s))
    })
    .await;
    let got = f.batches().concat();
    assert_eq!(got[0], before, "the parent's record came first");
    assert_eq!(got.len(), 7, "each record once: {got:?}");
    h.shutdown().await;
}
