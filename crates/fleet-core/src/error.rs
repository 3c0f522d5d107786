//! Typed errors of the domain crate.
//!
//! Every decode failure maps to one [`RejectKind`], so a consumer can dead-letter the record with a
//! reason a firmware team can act on. None of these errors is worth a retry: the same bytes fail the
//! same way every time.

use crate::reject::RejectKind;

/// One field of a payload broke one rule of its contract.
///
/// `field` is a JSON path such as `battery.end` or `errors[2].at` (`$` is the whole payload), so the
/// message points at the exact place to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct ValidationError {
    /// JSON path of the offending field (`$` for the payload itself).
    pub field: String,
    /// What is wrong, phrased so that the fix is obvious.
    pub problem: String,
}

impl ValidationError {
    /// Builds an error for `field` with the given problem text.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Why a payload could not be turned into a domain value.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all (or not UTF-8); serde's text carries line and column.
    #[error("payload is not valid json ({0}); publish one utf-8 json object per message")]
    Json(#[source] serde_json::Error),
    /// A field the contract requires is absent.
    #[error("`{field}` is missing; the contract requires it, add it to the payload")]
    MissingField {
        /// JSON path of the missing field.
        field: String,
    },
    /// The payload is JSON but breaks a rule of its schema.
    #[error("schema violation: {0}; fix the payload to match schemas/ in the repository")]
    Validation(#[from] ValidationError),
    /// Over the IoT Core message limit ([`crate::MAX_PAYLOAD_BYTES`]).
    #[error("payload is {size} bytes, over the {max}-byte limit; trim it below the limit")]
    TooLarge {
        /// Size of the payload in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The robot id in the payload is not the robot the record was published for.
    #[error(
        "robot id `{robot_id}` in the payload does not match the record's partition key \
         `{partition_key}`; a robot may only publish on its own topic"
    )]
    RobotMismatch {
        /// The robot id found in the payload.
        robot_id: String,
        /// The partition key of the stream record (the thing name from the topic).
        partition_key: String,
    },
}

impl DecodeError {
    /// The reject kind under which this failure is dead-lettered.
    pub fn kind(&self) -> RejectKind {
        match self {
            DecodeError::Json(_) => RejectKind::BadJson,
            DecodeError::MissingField { .. } => RejectKind::MissingField,
            DecodeError::Validation(_) => RejectKind::SchemaViolation,
            DecodeError::TooLarge { .. } => RejectKind::TooLarge,
            DecodeError::RobotMismatch { .. } => RejectKind::RobotMismatch,
        }
    }

    /// The JSON path of the offending field, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            DecodeError::MissingField { field } => Some(field),
            DecodeError::Validation(e) => Some(&e.field),
            DecodeError::RobotMismatch { .. } => Some("robotId"),
            DecodeError::Json(_) | DecodeError::TooLarge { .. } => None,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        DecodeError::Validation(ValidationError::new(field, problem))
    }

    pub(crate) fn missing(field: impl Into<String>) -> Self {
        DecodeError::MissingField {
            field: field.into(),
        }
    }
}
