//! Where rejected records go: the rejects queue (SQS in the cloud, see `fleet-aws`), or memory in
//! tests.

use std::future::Future;
use std::sync::Mutex;

use fleet_core::RejectEnvelope;

use crate::batch::Deadline;

/// Sending one reject envelope failed. The record is then retried rather than lost.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not send the reject to the rejects queue: {0}")]
pub struct RejectSinkError(pub String);

/// A destination for reject envelopes.
pub trait RejectSink: Send + Sync {
    /// Sends every envelope before `deadline`; the result has one entry per envelope, in order.
    fn send(
        &self,
        envelopes: &[RejectEnvelope],
        deadline: Deadline,
    ) -> impl Future<Output = Vec<Result<(), RejectSinkError>>> + Send;
}

/// Keeps rejects in memory. For tests, and for a function that runs without a queue.
#[derive(Debug, Default)]
pub struct MemoryRejectSink {
    sent: Mutex<Vec<RejectEnvelope>>,
    /// When set, every send fails with this message.
    pub fail_with: Option<String>,
}

impl MemoryRejectSink {
    /// A sink whose every send fails with `message`.
    pub fn failing(message: &str) -> Self {
        Self {
            fail_with: Some(message.to_string()),
            ..Default::default()
        }
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<RejectEnvelope> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl RejectSink for MemoryRejectSink {
    async fn send(
        &self,
        envelopes: &[RejectEnvelope],
        _deadline: Deadline,
    ) -> Vec<Result<(), RejectSinkError>> {
        if let Some(msg) = &self.fail_with {
            return envelopes
                .iter()
                .map(|_| Err(RejectSinkError(msg.clone())))
                .collect();
        }
        if let Ok(mut sent) = self.sent.lock() {
            sent.extend_from_slice(envelopes);
        }
        envelopes.iter().map(|_| Ok(())).collect()
    }
}
