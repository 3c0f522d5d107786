//! What became of one record.

use fleet_core::RejectKind;

/// Why a record can never succeed. It goes to the rejects queue with its payload, and counts as
/// handled so that it never stalls its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The class of problem (the envelope's `reason.kind`).
    pub kind: RejectKind,
    /// What exactly is wrong, naming the field where there is one.
    pub detail: String,
}

impl Reject {
    /// A reject of `kind` with a human-readable detail.
    pub fn new(kind: RejectKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

impl From<fleet_core::DecodeError> for Reject {
    fn from(e: fleet_core::DecodeError) -> Self {
        Reject::new(e.kind(), e.to_string())
    }
}

/// The end state of one record in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written.
    Succeeded,
    /// Already there, or older than what is there: an at-least-once replay. Success.
    Duplicate,
    /// Permanent failure: dead-lettered to the rejects queue, not retried.
    Rejected(Reject),
    /// Transient failure (throttling, 5xx, timeout): reported to Lambda so it is retried.
    Retry(String),
    /// Not attempted: the downstream's circuit breaker is open and the mapping is being paused.
    /// Reported to Lambda like a retry (the record is delivered again once the mapping runs),
    /// but counted apart: it says nothing about this release, so the canary does not see it.
    Deferred(String),
}

impl Outcome {
    /// Whether Lambda must deliver this record again.
    pub fn needs_retry(&self) -> bool {
        matches!(self, Outcome::Retry(_) | Outcome::Deferred(_))
    }
}
