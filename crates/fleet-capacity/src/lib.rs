//! fleet-capacity: enough Kinesis and DynamoDB capacity for the 10:00 spike and Christmas
//! morning, without an operator (docs/capacity.md).
//!
//! Reactive scaling alone is too slow for those spikes: a provisioned stream at most doubles per
//! UpdateShardCount call, ten calls per rolling 24 h, and an on-demand stream absorbs only twice
//! its previous peak within 15 minutes. So capacity is raised *before* the known peaks by
//! pre-warm rules, and follows the traffic in between. Everything here is pure: the same inputs
//! give the same decision, which is what the tests, the replay and the planner rely on. The
//! `stream-scaler` function does the I/O around it (CloudWatch, Kinesis, DynamoDB).
//!
//! - [`limits`]: AWS's numbers (per-shard limits, the resharding rules);
//! - [`rules`]: pre-warm rules, daily windows and dated events in a time zone, DST-correct;
//! - [`observe`]: what the policy sees: per-minute stream metrics and the stream's capacity;
//! - [`budget`]: the resharding calls of the last 24 h, with calls held in reserve;
//! - [`policy`]: the decision for one stream: a shard count or a warm throughput, with its reason;
//! - [`table`]: DynamoDB warm throughput for the missions table and its index, raise-only;
//! - [`prices`]: the dated price table the planner uses, with the source of each price;
//! - [`plan`]: the planner: demand curves for a fleet, capacity, quotas and monthly cost;
//! - [`replay`]: the policy run minute by minute over a demand curve, against an oracle, fixed
//!   provisioning and the on-demand modes.

pub mod budget;
pub mod limits;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod prices;
pub mod replay;
pub mod rules;
pub mod table;

pub use budget::{Budget, Call, CallKind};
pub use observe::{Minute, StreamCapacity, StreamMode};
pub use policy::{Action, Decision, Policy};
pub use rules::{Need, Rules};
