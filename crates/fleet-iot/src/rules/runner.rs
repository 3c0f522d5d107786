//! The rules engine at work: one MQTT event loop subscribed to the rules' topics, routing each
//! message with [`RulesEngine::route`], and senders that batch Kinesis records per stream
//! (PutRecords: up to 500 records / 5 MiB, or whatever arrived within the batch window) and send
//! SQS messages with bounded concurrency. Failed PutRecords entries are retried alone; an action
//! that still fails goes to the rule's error action, in IoT Core's error message shape.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use bytes::Bytes;
use rumqttc::{Event, Packet, QoS};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::client_id_from_topic;
use super::engine::{Delivery, RulesEngine, basic_ingest};
use crate::broker::{BrokerAddr, mqtt_options};

/// Counters for the progress display. All monotonic.
#[derive(Debug, Default)]
pub struct RulesStats {
    /// MQTT messages received.
    pub messages_in: AtomicU64,
    /// (message, rule) matches.
    pub matched: AtomicU64,
    /// Basic Ingest messages for a rule that does not exist (or is disabled), dropped.
    pub dropped_unknown_rule: AtomicU64,
    /// Kinesis records accepted by PutRecords.
    pub records_put: AtomicU64,
    /// PutRecords calls made.
    pub put_records_calls: AtomicU64,
    /// Kinesis entries retried after a partial failure or a failed call.
    pub records_retried: AtomicU64,
    /// SQS messages sent by actions.
    pub sqs_sent: AtomicU64,
    /// Action deliveries that failed after retries.
    pub errors: AtomicU64,
    /// Error-action messages sent.
    pub error_actions_sent: AtomicU64,
    /// Error-action messages that failed too (logged).
    pub error_actions_failed: AtomicU64,
    /// MQTT connection errors (each followed by a reconnect).
    pub mqtt_errors: AtomicU64,
    ready: AtomicBool,
}

impl RulesStats {
    /// True once the subscriptions are acknowledged (after each reconnect, again).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Runner settings. [`RunnerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The broker.
    pub broker: BrokerAddr,
    /// MQTT client id (keep the `robofleet-local-` prefix: no presence events for it).
    pub client_id: String,
    /// How long a Kinesis batch may wait for more records.
    pub batch_window: Duration,
    /// Most records per PutRecords (Kinesis allows 500).
    pub max_batch_records: usize,
    /// Most bytes (data + partition keys) per PutRecords (Kinesis allows 5 MiB).
    pub max_batch_bytes: usize,
    /// Attempts per record / message before the error action.
    pub max_attempts: u32,
    /// SQS sends in flight.
    pub sqs_concurrency: usize,
    /// PutRecords calls in flight per stream. 1 keeps every stream's records in arrival order;
    /// more is faster against a slow endpoint but, like IoT Core's own parallel actions, may
    /// reorder records of one partition key.
    pub max_in_flight_batches: usize,
}

impl RunnerConfig {
    /// Defaults for `broker`: 50 ms window, 500 records, 5 MiB, 5 attempts, 32 SQS sends.
    pub fn new(broker: BrokerAddr) -> Self {
        Self {
            broker,
            client_id: "robofleet-local-rules".to_owned(),
            batch_window: Duration::from_millis(50),
            max_batch_records: 500,
            max_batch_bytes: 5 * 1024 * 1024,
            max_attempts: 5,
            sqs_concurrency: 32,
            max_in_flight_batches: 1,
        }
    }
}

/// A running rules engine.
#[derive(Debug)]
pub struct RulesRunner {
    /// Ends after shutdown, once every batch in hand is sent (or handed to its error action).
    pub handle: JoinHandle<()>,
    /// Live counters.
    pub stats: Arc<RulesStats>,
}

impl RulesRunner {
    /// Wait until the subscriptions are in place (so a test or `robofleet dev` can start
    /// publishing). Returns false on timeout.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.stats.is_ready()).await
    }
}

/// Where a routed message came from, for the error action.
#[derive(Debug)]
struct Origin {
    rule: usize,
    topic: String,
    client_id: String,
    payload: Bytes,
}

struct Rec {
    partition_key: String,
    data: Bytes,
    stream: String,
    origin: Arc<Origin>,
}

#[derive(Clone)]
struct Shared {
    engine: Arc<RulesEngine>,
    config: Arc<RunnerConfig>,
    kinesis: aws_sdk_kinesis::Client,
    sqs: aws_sdk_sqs::Client,
    stats: Arc<RulesStats>,
}

/// Start the rules engine against the broker at `config.broker`. Returns at once; the MQTT
/// client connects (and reconnects) in the background. Stop it by sending `true` on the
/// shutdown channel, then await [`RulesRunner::handle`].
pub fn run(
    engine: Arc<RulesEngine>,
    config: RunnerConfig,
    kinesis: aws_sdk_kinesis::Client,
    sqs: aws_sdk_sqs::Client,
    shutdown: watch::Receiver<bool>,
) -> RulesRunner {
    let options = mqtt_options(&config.broker, &config.client_id);
    let stats = Arc::new(RulesStats::default());
    let shared = Shared {
        engine,
        config: Arc::new(config),
        kinesis,
        sqs,
        stats: stats.clone(),
    };
    let handle = tokio::spawn(mqtt_loop(shared, options, shutdown));
    RulesRunner { handle, stats }
}

async fn mqtt_loop(
    shared: Shared,
    options: rumqttc::MqttOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
    let filters = shared.engine.subscriptions();
    let mut streams: HashMap<String, mpsc::Sender<Rec>> = HashMap::new();
    let mut batchers: Vec<JoinHandle<()>> = Vec::new();
    let sqs_permits = Arc::new(Semaphore::new(shared.config.sqs_concurrency.max(1)));
    tracing::info!(?filters, broker = %shared.config.broker, "rules engine starting");
    loop {
        let event = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                shared.stats.ready.store(false, Ordering::Release);
                let subs = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(subs) {
                    tracing::error!(error = %e, "rules engine cannot subscribe");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    tracing::error!("the broker refused a rules-engine subscription");
                }
                shared.stats.ready.store(true, Ordering::Release);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                handle_message(
                    &shared,
                    &p.topic,
                    p.payload,
                    &mut streams,
                    &mut batchers,
                    &sqs_permits,
                )
                .await;
            }
            Ok(_) => {}
            Err(e) => {
                shared.stats.ready.store(false, Ordering::Release);
                shared.stats.mqtt_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "rules engine mqtt connection error; reconnecting");
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    let _ = client.try_disconnect();
    drop(streams);
    for b in batchers {
        let _ = b.await;
    }
    let _ = sqs_permits
        .acquire_many(shared.config.sqs_concurrency.max(1) as u32)
        .await;
    tracing::info!("rules engine stopped");
}

async fn handle_message(
    shared: &Shared,
    topic: &str,
    payload: Bytes,
    streams: &mut HashMap<String, mpsc::Sender<Rec>>,
    batchers: &mut Vec<JoinHandle<()>>,
    sqs_permits: &Arc<Semaphore>,
) {
    let stats = &shared.stats;
    stats.messages_in.fetch_add(1, Ordering::Relaxed);
    if let Some((name, _)) = basic_ingest(topic)
        && !shared.engine.has_enabled_rule(name)
    {
        stats.dropped_unknown_rule.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(topic, "basic ingest message for an unknown rule dropped");
        return;
    }
    let client_id = client_id_from_topic(topic);
    let routed = shared.engine.route(topic, &payload, client_id);
    for r in routed {
        stats.matched.fetch_add(1, Ordering::Relaxed);
        let origin = Arc::new(Origin {
            rule: r.rule,
            topic: topic.to_owned(),
            client_id: client_id.to_owned(),
            payload: payload.clone(),
        });
        for d in r.deliveries {
            match d {
                Delivery::Kinesis {
                    stream,
                    partition_key,
                    data,
                } => {
                    let tx = streams.entry(stream.clone()).or_insert_with(|| {
                        let (tx, rx) = mpsc::channel(10_000);
                        batchers.push(tokio::spawn(kinesis_batcher(
                            shared.clone(),
                            stream.clone(),
                            rx,
                        )));
                        tx
                    });
                    let rec = Rec {
                        partition_key,
                        data,
                        stream,
                        origin: origin.clone(),
                    };
                    if tx.send(rec).await.is_err() {
                        tracing::error!("kinesis batcher stopped unexpectedly");
                    }
                }
                sqs @ Delivery::Sqs { .. } => {
                    let Ok(permit) = sqs_permits.clone().acquire_owned().await else {
                        return;
                    };
                    let shared = shared.clone();
                    let origin = origin.clone();
                    tokio::spawn(async move {
                        send_sqs_action(&shared, sqs, &origin).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

async fn send_sqs_action(shared: &Shared, d: Delivery, origin: &Origin) {
    let Delivery::Sqs { queue_url, body } = &d else {
        return;
    };
    let mut last = String::new();
    for attempt in 0..shared.config.max_attempts.max(1) {
        match shared
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
        {
            Ok(_) => {
                shared.stats.sqs_sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                last = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
    shared.stats.errors.fetch_add(1, Ordering::Relaxed);
    send_error_action(shared, origin, vec![(d, last)]).await;
}

/// The pause before retrying a failed action: 50 ms doubling up to 2 s.
fn backoff(attempt: u32) -> Duration {
    fleet_aws::Backoff::exponential(Duration::from_millis(50), Duration::from_secs(2))
        .ceiling(attempt)
}

async fn kinesis_batcher(shared: Shared, stream: String, mut rx: mpsc::Receiver<Rec>) {
    // A bounded hand-off keeps batches in order and lets the next batch fill while one is sent.
    let (batch_tx, mut batch_rx) = mpsc::channel::<Vec<Rec>>(2);
    let flusher = {
        let shared = shared.clone();
        let stream = stream.clone();
        let in_flight = shared.config.max_in_flight_batches.max(1);
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(in_flight));
            while let Some(batch) = batch_rx.recv().await {
                if in_flight == 1 {
                    put_records(&shared, &stream, batch).await;
                    continue;
                }
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let shared = shared.clone();
                let stream = stream.clone();
                tokio::spawn(async move {
                    put_records(&shared, &stream, batch).await;
                    drop(permit);
                });
            }
            let _ = permits.acquire_many(in_flight as u32).await;
        })
    };
    let cfg = shared.config.clone();
    'outer: while let Some(first) = rx.recv().await {
        let mut bytes = first.data.len() + first.partition_key.len();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + cfg.batch_window;
        let mut closed = false;
        while batch.len() < cfg.max_batch_records {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(rec) => {
                        let size = rec.data.len() + rec.partition_key.len();
                        if bytes + size > cfg.max_batch_bytes {
                            if batch_tx.send(std::mem::take(&mut batch)).await.is_err() {
                                break 'outer;
                            }
                            bytes = 0;
                        }
                        bytes += size;
                        batch.push(rec);
                    }
                    None => { closed = true; break; }
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if !batch.is_empty() && batch_tx.send(batch).await.is_err() {
            break;
        }
        if closed {
            break;
        }
    }
    drop(batch_tx);
    let _ = flusher.await;
}

async fn put_records(shared: &Shared, stream: &str, batch: Vec<Rec>) {
    let stats = &shared.stats;
    let mut pending: Vec<(Rec, String)> = Vec::with_capacity(batch.len());
    let mut failed: Vec<(Rec, String)> = Vec::new();
    for rec in batch {
        let n = rec.partition_key.chars().count();
        if n == 0 || n > 256 {
            failed.push((
                rec,
                format!("partition key must be 1 to 256 characters, got {n}"),
            ));
        } else {
            pending.push((rec, String::new()));
        }
    }
    let is_arn = stream.starts_with("arn:");
    let mut attempt = 0;
    while !pending.is_empty() && attempt < shared.config.max_attempts.max(1) {
        if attempt > 0 {
            stats
                .records_retried
                .fetch_add(pending.len() as u64, Ordering::Relaxed);
            tokio::time::sleep(backoff(attempt)).await;
        }
        attempt += 1;
        let mut entries = Vec::with_capacity(pending.len());
        for (rec, _) in &pending {
            match PutRecordsRequestEntry::builder()
                .data(Blob::new(rec.data.to_vec()))
                .partition_key(&rec.partition_key)
                .build()
            {
                Ok(e) => entries.push(e),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a kinesis entry");
                }
            }
        }
        if entries.len() != pending.len() {
            for (rec, _) in pending.drain(..) {
                failed.push((rec, "invalid kinesis entry".to_owned()));
            }
            break;
        }
        let req = shared.kinesis.put_records().set_records(Some(entries));
        let req = if is_arn {
            req.stream_arn(stream)
        } else {
            req.stream_name(stream)
        };
        stats.put_records_calls.fetch_add(1, Ordering::Relaxed);
        match req.send().await {
            Ok(out) => {
                let results = out.records();
                let mut retry = Vec::new();
                for (i, (rec, _)) in pending.drain(..).enumerate() {
                    match results.get(i) {
                        Some(r) if r.error_code().is_none() => {
                            stats.records_put.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(r) => {
                            let msg = format!(
                                "{}: {}",
                                r.error_code().unwrap_or("error"),
                                r.error_message().unwrap_or("")
                            );
                            retry.push((rec, msg));
                        }
                        None => retry.push((rec, "missing result entry".to_owned())),
                    }
                }
                pending = retry;
            }
            Err(e) => {
                let msg = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                tracing::warn!(stream, error = %msg, "PutRecords failed; retrying");
                for p in pending.iter_mut() {
                    p.1 = msg.clone();
                }
            }
        }
    }
    failed.extend(pending);
    for (rec, msg) in failed {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(stream, topic = %rec.origin.topic, error = %msg, "kinesis action failed");
        let d = Delivery::Kinesis {
            stream: rec.stream.clone(),
            partition_key: rec.partition_key.clone(),
            data: rec.data.clone(),
        };
        send_error_action(shared, &rec.origin, vec![(d, msg)]).await;
    }
}

async fn send_error_action(shared: &Shared, origin: &Origin, failures: Vec<(Delivery, String)>) {
    let Some(d) = shared.engine.error_delivery(
        origin.rule,
        &origin.topic,
        &origin.client_id,
        &origin.payload,
        &failures,
    ) else {
        tracing::warn!(topic = %origin.topic, "rule has no error action; failure only logged");
        return;
    };
    let ok = match &d {
        Delivery::Sqs { queue_url, body } => shared
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()),
        Delivery::Kinesis {
            stream,
            partition_key,
            data,
        } => {
            let req = shared
                .kinesis
                .put_record()
                .partition_key(partition_key)
                .data(Blob::new(data.to_vec()));
            let req = if stream.starts_with("arn:") {
                req.stream_arn(stream)
            } else {
                req.stream_name(stream)
            };
            req.send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string())
        }
    };
    match ok {
        Ok(()) => {
            shared
                .stats
                .error_actions_sent
                .fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            shared
                .stats
                .error_actions_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, topic = %origin.topic, "error action failed too; the message is lost");
        }
    }
}
