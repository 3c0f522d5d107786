//! Errors of fleet-esm: one enum per port of the poller, and one each for invoking, scheduling
//! and `cargo lambda watch`.
//!
//! The ports' errors ([`SourceError`], [`SinkError`], [`StateError`]) are retried by the poller
//! with backoff (as Lambda keeps retrying an event source it cannot read); they surface in logs
//! and counters, never as a lost record.

/// Boxed cause of an SDK or HTTP error.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A mapping's configuration is out of the range AWS accepts.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
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
        allowed: String,
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

/// The `errorType` of a handler error that has no type of its own.
pub const UNTYPED_ERROR: &str = "Error";

/// Invoking a function failed as a whole (not an item failure inside a good response).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No function with that name is known to the invoker.
    #[error("no function named `{0}` in this stack; check the template's function logical ids")]
    UnknownFunction(String),
    /// The handler returned an error (the whole batch failed, as a Lambda error would).
    #[error("function `{function}` failed: {message}")]
    Function {
        /// Function name.
        function: String,
        /// The error's type, as Lambda reports it in `errorType` (what a state machine's
        /// `Retry` and `Catch` match on).
        error_type: String,
        /// The handler's error text.
        message: String,
    },
    /// The handler could not be built (bad config, client set-up).
    #[error(
        "function `{function}` could not start: {message}; check its environment in template.yaml"
    )]
    Build {
        /// Function name.
        function: String,
        /// The cause as text (the build error types differ per function crate).
        message: String,
    },
    /// The HTTP call to `cargo lambda watch` failed.
    #[error("invoking `{function}` through cargo lambda watch failed: {detail}")]
    Http {
        /// Function name.
        function: String,
        /// Transport error or status and body.
        detail: String,
    },
}

/// A schedule expression is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not `rate(...)`, `cron(...)` or `at(...)`.
    #[error(
        "schedule expression `{0}` is not rate(...), cron(...) or at(...); fix it in template.yaml"
    )]
    Syntax(String),
    /// A rate expression is wrong.
    #[error("rate expression `{expr}`: {problem}")]
    Rate {
        /// The expression.
        expr: String,
        /// What is wrong.
        problem: String,
    },
    /// A cron expression is wrong.
    #[error("cron expression `{expr}`: {problem}")]
    Cron {
        /// The expression.
        expr: String,
        /// What is wrong.
        problem: String,
    },
    /// An at expression is wrong.
    #[error("at expression `{expr}`: {problem}; use at(yyyy-mm-ddThh:mm:ss)")]
    At {
        /// The expression.
        expr: String,
        /// What is wrong.
        problem: String,
    },
}

/// `cargo lambda watch` or a function behind it could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The function's binary is not in the functions directory.
    #[error(
        "function {binary} is not built ({path} is missing); run `cargo build -p {binary}` (or `make test`, which builds every function)"
    )]
    NotBuilt {
        /// Binary name.
        binary: String,
        /// Where it was looked for.
        path: std::path::PathBuf,
    },
    /// A process could not be found, started, or did not listen.
    #[error(transparent)]
    Process(#[from] fleet_process::ProcessError),
    /// The Runtime API proxy of a function could not listen.
    #[error("the Runtime API proxy of {binary} could not listen: {source}")]
    Proxy {
        /// Binary name.
        binary: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
