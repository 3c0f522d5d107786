//! fleet-core: the pure domain of Robofleet: robot ids, mission reports, shadow documents,
//! presence events, their storage keys and index documents, and the reject envelope.
//!
//! No I/O, no AWS types, no async: everything here is a function of its input, so the Lambdas, the
//! local stack, the simulator and the tests share one definition of every message contract (the
//! same rules as the JSON Schemas in `schemas/`).
//!
//! Layout:
//! - [`ids`]: [`RobotId`] (thing names), [`MissionId`] (ULIDs), shadow names.
//! - [`mission`]: [`MissionReport`] parsing/validation and DynamoDB keys (`pk`, `sk`, day shards).
//! - [`shadow`]: [`ShadowRecord`] (update documents or presence), robots-index ids, external
//!   versions and document bodies.
//! - [`reject`]: [`RejectEnvelope`] and [`RejectKind`], the dead-letter contract.
//! - [`error`]: [`ValidationError`] and [`DecodeError`]; every decode failure has a [`RejectKind`].
//! - [`timefmt`]: RFC 3339 in UTC, the only timestamp format on the wire.
//! - [`window`]: wall-clock windows in a time zone (`weekdays 09:40-11:00 America/New_York`),
//!   DST-correct: pre-warm rules and job maintenance windows.
//!
//! Every decoder takes the raw bytes of one stream record, checks the size limit, parses JSON and
//! validates field by field, so errors name a JSON path (`battery.end`) and never panic.

pub mod error;
pub mod ids;
mod json;
pub mod mission;
pub mod reject;
pub mod shadow;
pub mod timefmt;
pub mod window;

pub use error::{DecodeError, ValidationError};
pub use ids::{MissionId, RobotId};
pub use mission::{
    Battery, MissionError, MissionReport, MissionStatus, check_partition_key, day_partition_key,
    day_shard, robot_partition_key,
};
pub use reject::{
    RejectEnvelope, RejectKind, RejectReason, RejectSource, StoredPayload, shard_id_from_event_id,
};
pub use shadow::{
    PresenceEvent, PresenceKind, ShadowDoc, ShadowDocuments, ShadowRecord, ShadowState,
};

/// Largest payload accepted, in bytes: the AWS IoT Core message size limit (128 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;
