//! Errors of the event source mapping poller, one enum per port.
//!
//! Every one of them is retried by the poller with backoff (as Lambda keeps retrying an event
//! source it cannot read); they surface in logs and counters, never as a lost record.

/// Boxed cause of an SDK or HTTP error.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A mapping's configuration is out of the range AWS accepts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A property is out of range.
    #[error(
        "event source mapping {mapping}: {field} = {value} is out of range ({allowed}); fix it in template.yaml"
    )]
    OutOfRange {
        /// Mapping UUID.
        mapping: String,
        /// CloudFormation property name.
        field: &'static str,
        /// The value given.
        value: String,
        /// The allowed range.
        allowed: &'static str,
    },
    /// A required property is missing.
    #[error("event source mapping {mapping}: {what} missing; fix it in template.yaml")]
    Missing {
        /// Mapping UUID.
        mapping: String,
        /// What is missing.
        what: &'static str,
    },
    /// An on-failure destination ARN cannot be used.
    #[error(
        "on-failure destination `{arn}` is not an SQS queue or S3 bucket ARN; use arn:aws:sqs:... or arn:aws:s3:::..."
    )]
    Destination {
        /// The ARN given.
        arn: String,
    },
}

/// Reading the stream failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The shard iterator is older than five minutes; the poller asks for a new one.
    #[error("shard iterator expired; a new one is requested after the last record read")]
    ExpiredIterator,
    /// Kinesis throttled the read; the poller backs off.
    #[error("kinesis read throughput exceeded; backing off")]
    Throttled,
    /// The stream or shard does not exist (deleted, or trimmed after its retention).
    #[error("stream or shard not found: {0}; check that the stream exists in moto")]
    NotFound(String),
    /// Any other failure of the Kinesis API.
    #[error("kinesis {call} failed: {source}; check that moto answers at the aws endpoint")]
    Api {
        /// The API call.
        call: &'static str,
        /// The cause.
        #[source]
        source: Cause,
    },
}

/// Sending an invocation record to the on-failure destination failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The SQS or S3 call failed; the poller retries it and holds the checkpoint meanwhile.
    #[error(
        "sending the failure record to {destination} failed: {source}; check that the queue or bucket exists"
    )]
    Api {
        /// Queue URL or bucket.
        destination: String,
        /// The cause.
        #[source]
        source: Cause,
    },
    /// The record could not be serialised.
    #[error("the failure record could not be serialised: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Reading the mapping's Enabled state failed; the last known state is kept.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The Lambda control plane call failed.
    #[error("reading event source mapping {uuid} failed: {source}; the last known state is kept")]
    Api {
        /// Mapping UUID.
        uuid: String,
        /// The cause.
        #[source]
        source: Cause,
    },
}
