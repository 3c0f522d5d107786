//! Adapters between Robofleet's domain and the services it writes to.
//!
//! - [`missions`]: the DynamoDB missions table. One conditional `PutItem` per report makes the
//!   write idempotent and order-safe (`attribute_not_exists(pk) OR rev < :rev`).
//! - [`robots`]: the OpenSearch robots index. One `_bulk` request per batch with external
//!   versions, classified item by item (409 stale, 429/5xx retry, other 4xx permanent), and the
//!   index template installed on a cold start. SigV4-signed against AWS domains.
//! - [`opensearch`]: SigV4-signed HTTP to an OpenSearch domain (functions, tools and tests).
//! - [`rejects`]: the SQS rejects queue, a [`fleet_lambda::RejectSink`]; payloads too large for
//!   an SQS message go to S3 first.
//! - [`jobs`]: the jobs table: a job's state and counters, a claim per line (exactly once),
//!   progress once per chunk.
//! - [`retry`]: exponential backoff with full jitter, bounded by the invocation's deadline.
//! - [`iam`]: IAM's query API for the local stack's `CreateRole` (signed).
//! - [`config`]: the SDK configuration of tools and tests (an endpoint, or the default chain).
//! - [`error`]: the adapters' errors, and [`error::chain`] for an error with its causes.
//!
//! Adapters are thin: all decisions about payloads live in `fleet-core`, all batch logic in
//! `fleet-lambda`. They are tested over real HTTP against moto and osmem-server.

pub mod api;
pub mod config;
pub mod error;
pub mod iam;
pub mod jobs;
pub mod missions;
pub mod opensearch;
pub mod rejects;
pub mod retry;
pub mod robots;
pub mod sigv4;
pub mod summary;
pub mod tombstones;

pub use error::{IndexError, StoreError};
pub use missions::{MissionStore, PutOutcome};
pub use opensearch::OpenSearchHttp;
pub use rejects::{PayloadStore, SqsRejectSink};
pub use retry::Backoff;
pub use robots::{IndexDoc, ItemResult, RobotIndex};
