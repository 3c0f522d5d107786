//! Adapter errors, classified by what the caller should do, and [`chain`], the one way an SDK
//! or HTTP error becomes text without losing its causes.

/// A mission write failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, a 5xx or a network failure, still failing after the retries this invocation
    /// could afford: report the record so Lambda retries it.
    #[error("dynamodb write failed after {attempts} attempts, retry later: {message}")]
    Transient {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// DynamoDB refused the item for good (validation, missing table, access denied): dead-letter
    /// the record, fix the cause, then replay it from the rejects queue.
    #[error(
        "dynamodb refused the mission ({code}): {message}; fix the table or the item, then replay the reject"
    )]
    Permanent {
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
}

/// A request to OpenSearch failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Network failure, 429 or 5xx: retry later.
    #[error(
        "opensearch is unavailable ({status}): {message}; the stream holds the records until it is back"
    )]
    Unavailable {
        /// HTTP status, or 0 for a connection failure.
        status: u16,
        /// What happened.
        message: String,
    },
    /// Any other refusal (bad request, forbidden): needs a human.
    #[error("opensearch refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The response body or error.
        message: String,
    },
    /// Signing the request failed (no credentials?).
    #[error(
        "could not sign the request for opensearch: {0}; check the function's role and credentials"
    )]
    Signing(String),
}

/// An error and its whole source chain as one line (`outer: cause: root cause`). The AWS SDK's
/// own `Display` is terse (`service error`, `dispatch failure`): the useful part is in the
/// sources.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // Some errors repeat their source in their own message; print each text once.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_keeps_every_cause() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(chain(&e), "outer: connection refused");
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
