//! Adapter errors, classified by what the caller should do, and [`chain`], the one way an SDK
//! or HTTP error becomes text without losing its causes.
//!
//! Every failure of a downstream call is one of two things. Either the record itself is refused
//! (a validation error on that item): it is rejected, dead-lettered with its payload. Or the
//! call failed for a reason outside the record ([`Failure`]): it is retried, and the record
//! waits in the stream until the cause is gone. A deployment's mistake (access denied, a missing
//! KMS grant, a missing table or alias) is such a cause, not a bad record: dead-lettering would
//! empty the stream into the rejects queue on the first deploy with a missing grant.

/// Why a call failed for a reason outside the record. Every kind is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Throttled (429, `ProvisionedThroughputExceededException`, `ThrottlingException`): a
    /// capacity problem, not a sick downstream.
    Throttled,
    /// 5xx, a timeout or a connection failure: the downstream is unavailable.
    Unavailable,
    /// Authentication refused (401, 403, `UnrecognizedClientException`, an invalid signature or
    /// an expired token).
    Authentication,
    /// The deployment is wrong: access denied by a policy, a missing KMS grant, a missing table,
    /// queue, index or alias.
    Configuration,
}

impl Failure {
    /// Lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Throttled => "throttled",
            Failure::Unavailable => "unavailable",
            Failure::Authentication => "authentication",
            Failure::Configuration => "configuration",
        }
    }

    /// Whether the failure says the downstream itself is unhealthy (what a circuit breaker
    /// counts): unavailability and refused authentication, not throttling.
    pub fn is_downstream_fault(self) -> bool {
        matches!(self, Failure::Unavailable | Failure::Authentication)
    }

    /// The class of an AWS error code (JSON `__type` without its namespace, or an XML `Code`)
    /// and HTTP status: `None` when the record itself was refused (a validation error).
    pub fn of_aws_error(code: &str, status: u16) -> Option<Failure> {
        let code = code.rsplit('#').next().unwrap_or(code);
        match code {
            "ValidationException"
            | "SerializationException"
            | "ItemCollectionSizeLimitExceededException" => None,
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "Throttling"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "LimitExceededException"
            | "KMSThrottlingException"
            | "TransactionConflictException"
            | "SlowDown" => Some(Failure::Throttled),
            "InternalServerError"
            | "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "KMSInternalException" => Some(Failure::Unavailable),
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "ExpiredToken"
            | "MissingAuthenticationToken"
            | "MissingAuthenticationTokenException" => Some(Failure::Authentication),
            "AccessDeniedException" | "AccessDenied" | "ResourceNotFoundException" => {
                Some(Failure::Configuration)
            }
            c if c.starts_with("KMS") || c.starts_with("Kms") => Some(Failure::Configuration),
            _ => Some(match status {
                429 => Failure::Throttled,
                401 | 403 => Failure::Authentication,
                s if s >= 500 => Failure::Unavailable,
                // An unknown 4xx is not known to be about the record: keep it in the stream.
                _ => Failure::Configuration,
            }),
        }
    }

    /// The class of a whole HTTP response (OpenSearch): 429 throttled, 5xx unavailable, 401/403
    /// authentication, any other status the deployment's.
    pub fn of_http_status(status: u16) -> Failure {
        match status {
            429 => Failure::Throttled,
            401 | 403 => Failure::Authentication,
            s if s >= 500 || s == 0 => Failure::Unavailable,
            _ => Failure::Configuration,
        }
    }
}

/// A mission write failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The call kept failing for a reason outside the record, after the retries this
    /// invocation could afford: report the record so Lambda retries it.
    #[error(
        "dynamodb write failed after {attempts} attempts ({}), retry later: {message}",
        failure.as_str()
    )]
    Retry {
        /// Why.
        failure: Failure,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// DynamoDB refused this item for good (a validation error): dead-letter the record, fix
    /// the cause, then replay it from the rejects queue.
    #[error(
        "dynamodb refused the mission ({code}): {message}; fix the item, then replay the reject"
    )]
    Rejected {
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
}

/// A request to OpenSearch failed as a whole. Every variant is retried: the records wait in the
/// stream.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The request failed ({failure}) with `status` (0 when no answer came).
    #[error(
        "opensearch request failed ({}, status {status}): {message}; the stream holds the records until it is fixed",
        failure.as_str()
    )]
    Failed {
        /// Why.
        failure: Failure,
        /// HTTP status, or 0 when no answer came.
        status: u16,
        /// The response body or the transport error.
        message: String,
    },
    /// No answer within the request's time: the domain is unavailable, and another attempt
    /// in this invocation would only wait as long again.
    #[error(
        "opensearch did not answer within {} ms; the stream holds the records until it answers",
        after.as_millis()
    )]
    TimedOut {
        /// How long the request waited.
        after: std::time::Duration,
    },
    /// Signing the request failed (no credentials?).
    #[error(
        "could not sign the request for opensearch: {0}; check the function's role and credentials"
    )]
    Signing(String),
}

impl IndexError {
    /// The failure class (a signing failure is an authentication failure).
    pub fn failure(&self) -> Failure {
        match self {
            IndexError::Failed { failure, .. } => *failure,
            IndexError::TimedOut { .. } => Failure::Unavailable,
            IndexError::Signing(_) => Failure::Authentication,
        }
    }
}

/// An AWS SDK error as `Code: message` (the service's own words), or its [`chain`] when the
/// service said nothing (a timeout, a connection failure, a request that could not be built).
pub fn describe<E>(e: &E) -> String
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => chain(e),
    }
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

    #[test]
    fn only_validation_errors_are_about_the_record() {
        use Failure::*;
        let cases: &[(&str, u16, Option<Failure>)] = &[
            (
                "com.amazonaws.dynamodb.v20120810#ValidationException",
                400,
                None,
            ),
            (
                "ProvisionedThroughputExceededException",
                400,
                Some(Throttled),
            ),
            ("ThrottlingException", 400, Some(Throttled)),
            ("RequestLimitExceeded", 400, Some(Throttled)),
            ("InternalServerError", 500, Some(Unavailable)),
            ("UnrecognizedClientException", 400, Some(Authentication)),
            ("ExpiredTokenException", 400, Some(Authentication)),
            ("InvalidSignatureException", 400, Some(Authentication)),
            ("AccessDeniedException", 400, Some(Configuration)),
            ("ResourceNotFoundException", 400, Some(Configuration)),
            ("KMSAccessDeniedException", 400, Some(Configuration)),
            ("KMSDisabledException", 400, Some(Configuration)),
            ("KMSThrottlingException", 400, Some(Throttled)),
            ("SomethingNew", 400, Some(Configuration)),
            ("SomethingNew", 503, Some(Unavailable)),
        ];
        for (code, status, want) in cases {
            assert_eq!(
                Failure::of_aws_error(code, *status),
                *want,
                "{code} {status}"
            );
        }
        assert!(!Throttled.is_downstream_fault());
        assert!(!Configuration.is_downstream_fault());
        assert!(Unavailable.is_downstream_fault() && Authentication.is_downstream_fault());
        assert_eq!(Failure::of_http_status(403), Authentication);
        assert_eq!(Failure::of_http_status(404), Configuration);
        assert_eq!(Failure::of_http_status(0), Unavailable);
    }
}
