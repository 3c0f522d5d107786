//! Typed errors of the simulator. Each message says what to change to get a run going.

use std::path::PathBuf;

/// Why a simulator run could not start, or could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No AWS credentials for the calls the run needs (an SSO sign-in to renew, say).
    #[error("{0}")]
    Credentials(String),
    /// A command-line value does not parse or does not make sense with the others.
    #[error("invalid argument `{arg}`: {problem}")]
    InvalidArg {
        /// The flag or value at fault.
        arg: String,
        /// What is wrong and what is expected instead.
        problem: String,
    },
    /// The target is an AWS endpoint and `--allow-aws` was not given.
    #[error(
        "`{endpoint}` is an AWS endpoint: this run would connect {robots} robots and cost about \
         ${cost:.4}; read the plan above and add --allow-aws to go ahead"
    )]
    AwsNotAllowed {
        /// The AWS IoT endpoint.
        endpoint: String,
        /// Robots this process would connect.
        robots: u64,
        /// Estimated IoT Core cost in US dollars.
        cost: f64,
    },
    /// A certificate, key or CA file could not be read or parsed.
    #[error("cannot use tls material `{path}`: {problem}")]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The rustls configuration could not be built from the given material.
    #[error("tls configuration rejected: {0}; check that the key matches the certificate")]
    TlsConfig(#[source] rustls::Error),
    /// Too few robots reached the broker at all.
    #[error(
        "only {connected} of {robots} robots could connect to {broker}; is the broker running and \
         reachable (last error: {last_error})?"
    )]
    Connect {
        /// The broker address.
        broker: String,
        /// Robots that connected at least once.
        connected: u64,
        /// Robots that tried.
        robots: u64,
        /// The last connection error seen.
        last_error: String,
    },
    /// Verification needs a target that was not given.
    #[error("--verify needs {what}; pass it on the command line (or run through `robofleet dev`)")]
    VerifyTarget {
        /// The missing target, e.g. `--missions-table`.
        what: &'static str,
    },
    /// A DynamoDB, SQS or IoT call failed.
    #[error("{service} call failed: {detail}; check the endpoint and credentials")]
    Aws {
        /// Service and operation, e.g. `dynamodb Query`.
        service: &'static str,
        /// The SDK's error text with its source chain.
        detail: String,
    },
    /// An OpenSearch request failed.
    #[error("opensearch request failed: {0}; check --opensearch-url and that the index exists")]
    OpenSearch(#[from] fleet_aws::IndexError),
    /// The OpenSearch answer was not what the verifier expected.
    #[error("unexpected opensearch answer: {0}")]
    OpenSearchAnswer(String),
    /// The JSON report could not be written.
    #[error("cannot write the report to `{path}`: {source}")]
    Report {
        /// The report path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl SimError {
    pub(crate) fn arg(arg: impl Into<String>, problem: impl Into<String>) -> Self {
        SimError::InvalidArg {
            arg: arg.into(),
            problem: problem.into(),
        }
    }

    /// Wraps an SDK error, keeping its whole source chain in the text.
    pub(crate) fn aws<E: std::error::Error>(service: &'static str, err: E) -> Self {
        SimError::Aws {
            service,
            detail: fleet_aws::error::chain(&err),
        }
    }
}
