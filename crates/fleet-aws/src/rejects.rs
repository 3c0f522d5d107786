//! The rejects queue (SQS): where records that can never succeed are kept for replay.
//!
//! An envelope carries the record's payload inline (base64). A record large enough that its
//! envelope would not fit in one SQS message (1 MiB: a Kinesis record of more than about
//! 760 KiB) has its payload written to S3 first, under `rejects/<function>/<shard>/<sequence>`
//! in the payloads bucket (the stack's failed-batches bucket), and the envelope points at it
//! (`payloadS3`). So a poison record of any size Kinesis accepts is dead-lettered once, instead
//! of failing to dead-letter and being retried forever.
//!
//! Sends are bounded by the invocation's deadline and made once (the SDK's own retries are off):
//! a reject that cannot be sent makes its record a retry, never a loss.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use base64::Engine as _;
use fleet_core::{RejectEnvelope, StoredPayload};
use fleet_lambda::{Deadline, RejectSink, RejectSinkError};

/// SQS's limit for one message and for one batch request: 1 MiB.
pub const SQS_MAX_BYTES: usize = 1024 * 1024;
const BATCH_ENTRIES: usize = 10;
/// Time kept before the deadline to answer Lambda once the rejects are sent.
const RESERVE: Duration = Duration::from_millis(200);

/// Where payloads too large for an envelope go.
#[derive(Debug, Clone)]
pub struct PayloadStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl PayloadStore {
    /// Payloads are written to `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The key of a reject's payload: one object per record, so a retried send overwrites it.
    pub fn key(envelope: &RejectEnvelope) -> String {
        format!(
            "rejects/{}/{}/{}",
            envelope.function, envelope.source.shard_id, envelope.source.sequence_number
        )
    }
}

/// Sends reject envelopes to an SQS queue, ten (or 1 MiB) to a request.
#[derive(Debug, Clone)]
pub struct SqsRejectSink {
    client: Client,
    queue_url: String,
    payloads: Option<PayloadStore>,
}

impl SqsRejectSink {
    /// A sink for the queue at `queue_url`. Without a [`PayloadStore`] an envelope too large
    /// for SQS cannot be sent, and its record is retried.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsRejectSink {
            client,
            queue_url: queue_url.into(),
            payloads: None,
        }
    }

    /// The sink of a function: the rejects queue at `queue_url`, payloads too large for it in
    /// `payload_bucket`, both through `sdk`.
    pub fn for_function(
        sdk: &aws_config::SdkConfig,
        queue_url: impl Into<String>,
        payload_bucket: impl Into<String>,
    ) -> Self {
        Self::new(Client::new(sdk), queue_url).with_payload_store(PayloadStore::new(
            aws_sdk_s3::Client::new(sdk),
            payload_bucket,
        ))
    }

    /// Keeps payloads too large for an envelope in `store`.
    pub fn with_payload_store(mut self, store: PayloadStore) -> Self {
        self.payloads = Some(store);
        self
    }

    /// The envelope as it is sent: unchanged when it fits in one message, otherwise with its
    /// payload moved to S3.
    async fn fitted(
        &self,
        envelope: &RejectEnvelope,
        deadline: Deadline,
    ) -> Result<String, RejectSinkError> {
        let body = serde_json::to_string(envelope)
            .map_err(|e| RejectSinkError(format!("envelope does not serialise: {e}")))?;
        if body.len() <= SQS_MAX_BYTES {
            return Ok(body);
        }
        let Some(store) = &self.payloads else {
            return Err(RejectSinkError(format!(
                "the envelope is {} bytes, over the {SQS_MAX_BYTES}-byte SQS limit, and no payload bucket is configured",
                body.len()
            )));
        };
        let payload = envelope
            .payload_base64
            .as_deref()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
            .transpose()
            .map_err(|e| RejectSinkError(format!("payload is not base64: {e}")))?
            .unwrap_or_default();
        let key = PayloadStore::key(envelope);
        let bytes = payload.len() as u64;
        store
            .client
            .put_object()
            .bucket(&store.bucket)
            .key(&key)
            .body(ByteStream::from(payload))
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default()
                    .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                    .timeout_config(
                        aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                            .operation_attempt_timeout(budget(deadline))
                            .build(),
                    ),
            )
            .send()
            .await
            .map_err(|e| {
                RejectSinkError(format!(
                    "keeping the payload in s3://{}/{key} failed: {}",
                    store.bucket,
                    crate::error::chain(&e)
                ))
            })?;
        let mut stored = envelope.clone();
        stored.payload_base64 = None;
        stored.payload_s3 = Some(StoredPayload {
            bucket: store.bucket.clone(),
            key,
            bytes,
        });
        serde_json::to_string(&stored)
            .map_err(|e| RejectSinkError(format!("envelope does not serialise: {e}")))
    }

    async fn send_chunk(
        &self,
        bodies: &[(usize, String)],
        results: &mut [Result<(), RejectSinkError>],
        deadline: Deadline,
    ) {
        let entries: Vec<SendMessageBatchRequestEntry> = bodies
            .iter()
            .filter_map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .ok()
            })
            .collect();
        match self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .operation_attempt_timeout(budget(deadline))
                            .build(),
                    ),
            )
            .send()
            .await
        {
            Ok(out) => {
                for failed in out.failed() {
                    if let Ok(i) = failed.id().parse::<usize>() {
                        results[i] = Err(RejectSinkError(format!(
                            "{}: {}",
                            failed.code(),
                            failed.message().unwrap_or_default()
                        )));
                    }
                }
                for ok in out.successful() {
                    if let Ok(i) = ok.id().parse::<usize>() {
                        results[i] = Ok(());
                    }
                }
            }
            Err(e) => {
                let text = crate::error::describe(&e);
                for (i, _) in bodies {
                    results[*i] = Err(RejectSinkError(text.clone()));
                }
            }
        }
    }
}

/// One attempt's time: what is left before the deadline, minus the reserve to answer.
fn budget(deadline: Deadline) -> Duration {
    deadline
        .remaining()
        .saturating_sub(RESERVE)
        .max(Duration::from_millis(1))
}

impl RejectSink for SqsRejectSink {
    async fn send(
        &self,
        envelopes: &[RejectEnvelope],
        deadline: Deadline,
    ) -> Vec<Result<(), RejectSinkError>> {
        let mut results: Vec<Result<(), RejectSinkError>> = envelopes
            .iter()
            .map(|_| Err(RejectSinkError("not sent".into())))
            .collect();
        let mut chunk: Vec<(usize, String)> = Vec::new();
        let mut chunk_bytes = 0;
        for (i, envelope) in envelopes.iter().enumerate() {
            let body = match self.fitted(envelope, deadline).await {
                Ok(b) => b,
                Err(e) => {
                    results[i] = Err(e);
                    continue;
                }
            };
            if !chunk.is_empty()
                && (chunk.len() == BATCH_ENTRIES || chunk_bytes + body.len() > SQS_MAX_BYTES)
            {
                self.send_chunk(&chunk, &mut results, deadline).await;
                chunk.clear();
                chunk_bytes = 0;
            }
            chunk_bytes += body.len();
            chunk.push((i, body));
        }
        if !chunk.is_empty() {
            self.send_chunk(&chunk, &mut results, deadline).await;
        }
        results
    }
}
