//! The rejects queue (SQS): where records that can never succeed are kept for replay.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use fleet_core::RejectEnvelope;
use fleet_lambda::{RejectSink, RejectSinkError};

/// SQS's limit for one message and for one batch request (1 MiB since 2025; moto and older
/// queues keep 256 KiB, so the queue's own `MaximumMessageSize` is what really applies).
const BATCH_BYTES: usize = 250 * 1024;
const BATCH_ENTRIES: usize = 10;

/// Sends reject envelopes to an SQS queue, ten (or 250 KiB) to a request.
#[derive(Debug, Clone)]
pub struct SqsRejectSink {
    client: Client,
    queue_url: String,
}

impl SqsRejectSink {
    /// A sink for the queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsRejectSink {
            client,
            queue_url: queue_url.into(),
        }
    }

    async fn send_chunk(
        &self,
        bodies: &[(usize, String)],
        results: &mut [Result<(), RejectSinkError>],
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
                use aws_sdk_sqs::error::ProvideErrorMetadata as _;
                let text = match (e.code(), e.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    _ => aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
                };
                for (i, _) in bodies {
                    results[*i] = Err(RejectSinkError(text.clone()));
                }
            }
        }
    }
}

impl RejectSink for SqsRejectSink {
    async fn send(&self, envelopes: &[RejectEnvelope]) -> Vec<Result<(), RejectSinkError>> {
        let mut results: Vec<Result<(), RejectSinkError>> = envelopes
            .iter()
            .map(|_| Err(RejectSinkError("not sent".into())))
            .collect();
        let mut chunk: Vec<(usize, String)> = Vec::new();
        let mut chunk_bytes = 0;
        for (i, envelope) in envelopes.iter().enumerate() {
            let body = match serde_json::to_string(envelope) {
                Ok(b) => b,
                Err(e) => {
                    results[i] = Err(RejectSinkError(format!("envelope does not serialise: {e}")));
                    continue;
                }
            };
            if !chunk.is_empty()
                && (chunk.len() == BATCH_ENTRIES || chunk_bytes + body.len() > BATCH_BYTES)
            {
                self.send_chunk(&chunk, &mut results).await;
                chunk.clear();
                chunk_bytes = 0;
            }
            chunk_bytes += body.len();
            chunk.push((i, body));
        }
        if !chunk.is_empty() {
            self.send_chunk(&chunk, &mut results).await;
        }
        results
    }
}
