//! Errors of the operator tools, one enum per tool. Messages are lowercase and say what to do.

/// `robofleet rejects` failed.
#[derive(Debug, thiserror::Error)]
pub enum RejectsError {
    /// No credentials (an SSO sign-in to renew, say).
    #[error(transparent)]
    Credentials(fleet_aws::config::CredentialsError),
    /// No queue was named, and no `robofleet dev` report named one either.
    #[error(
        "no rejects queue known: pass --queue-url (the stack's RejectsQueueUrl output), or run `robofleet dev`, whose report names it"
    )]
    NoQueue,
    /// An SQS or Kinesis call failed.
    #[error("{what} failed: {source}; check the aws endpoint and the queue url")]
    Aws {
        /// The call.
        what: &'static str,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Replay was asked without a selection.
    #[error("nothing selected: pass --kind, --robot or --all")]
    NoSelection,
}

/// One reject could not be put back into its stream; it stays in the queue.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The envelope's stream ARN is not a Kinesis stream ARN.
    #[error("`{0}` is not a kinesis stream arn")]
    NotAStream(String),
    /// The envelope's payload is not base64.
    #[error("payloadBase64 is not base64")]
    BadPayload,
    /// The message is neither a reject envelope nor an on-failure record.
    #[error("unreadable messages cannot be replayed")]
    Unreadable,
    /// A Kinesis call failed.
    #[error("{call} on {stream} failed: {source}")]
    Kinesis {
        /// The call.
        call: &'static str,
        /// The stream.
        stream: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The payload kept in S3 could not be read.
    #[error("reading the stored payload s3://{bucket}/{key} failed: {source}")]
    S3 {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The on-failure batch's records have left the stream.
    #[error("the batch's records are no longer in the stream (past retention?)")]
    Trimmed,
}

/// `robofleet breaker` failed.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError {
    /// No breaker table given, and no dev report naming one.
    #[error(
        "no breaker table: pass --table (the stack's BreakerTableName output), or run `robofleet dev` first"
    )]
    NoTable,
    /// No stack name given, and no dev report naming one.
    #[error(
        "no stack name: pass --stack (the consumers are <stack>-shadow-indexer:live and <stack>-mission-ingest:live)"
    )]
    NoStack,
    /// Not a downstream with a breaker.
    #[error("unknown downstream `{0}`: use robots-index or missions-table")]
    UnknownDownstream(String),
    /// The breaker table or Lambda's API refused or failed.
    #[error("{0}; check the endpoint, the region and your credentials")]
    Aws(String),
}

/// `robofleet job` failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No jobs table given, and no dev report naming one.
    #[error(
        "no jobs table: pass --stack NAME or --table (the stack's JobsTableName output), or run `robofleet dev` first"
    )]
    NoTable,
    /// The stack's outputs could not be read.
    #[error("{0}")]
    Stack(String),
    /// The jobs table refused, or the job does not exist, or the change is not allowed.
    #[error(transparent)]
    Jobs(#[from] fleet_aws::jobs::JobsError),
    /// No credentials (an SSO sign-in to renew, say).
    #[error(transparent)]
    Credentials(#[from] fleet_aws::config::CredentialsError),
}

/// `robofleet status` failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No stack named, and no dev report naming one.
    #[error("no stack: pass --stack NAME, or run `robofleet dev` first")]
    NoStackName,
    /// The stack is not there (or the credentials may not read it).
    #[error(
        "stack {stack} cannot be read from CloudFormation: {message}; check the name, the region and your credentials"
    )]
    NoStack { stack: String, message: String },
    /// A part could not be read.
    #[error("{what} failed: {message}")]
    Aws { what: &'static str, message: String },
    /// No credentials.
    #[error(transparent)]
    Credentials(#[from] fleet_aws::config::CredentialsError),
}
