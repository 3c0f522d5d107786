//! fleet-breaker: a circuit breaker for event consumers, at the level of the event source.
//!
//! While a downstream (the OpenSearch robots index, the DynamoDB missions table) is broken,
//! the Kinesis mappings that feed it are paused: no invocation happens at all, the records wait
//! in the stream, and the downstream gets room to recover. A scheduled probe tests it and
//! resumes the mappings once it answers again (docs/breaker.md).
//!
//! - [`policy`]: the knobs, after Envoy's outlier detection, and the ejection time;
//! - [`counter`]: the trip rules, counted in memory per execution environment;
//! - [`state`]: the shared state (closed, open, half-open) and its transitions, pure;
//! - [`store`]: the state in one DynamoDB item per downstream, conditional writes only;
//! - [`switch`]: pausing and resuming the mappings through Lambda's API;
//! - [`breaker`]: what a consumer function calls ([`Breaker::admit`], [`Breaker::record`]);
//! - [`config`]: a function's breaker from its environment, and which failures count;
//! - [`probe`]: what the probe function runs, and the operator's override;
//! - [`metrics`]: one EMF count per transition.

pub mod breaker;
pub mod config;
pub mod counter;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod state;
pub mod store;
pub mod switch;

pub use breaker::{Admission, Breaker};
pub use config::{BreakerConfig, FunctionBreaker, counts_as};
pub use counter::CallOutcome;
pub use policy::Policy;
pub use state::{State, Status};
pub use store::{DynamoStore, MemoryStore, StateStore};
pub use switch::{LambdaSwitch, MappingSwitch, MemorySwitch};

/// The downstream names: one breaker each.
pub mod downstreams {
    /// The OpenSearch robots index (shadow-indexer).
    pub const ROBOTS_INDEX: &str = "robots-index";
    /// The DynamoDB missions table (mission-ingest).
    pub const MISSIONS_TABLE: &str = "missions-table";
}
