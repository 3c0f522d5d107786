//! Errors of the batch kit.

/// A function's configuration could not be read from its environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error(
        "environment variable {name} is not set; template.yaml sets it for the deployed function, set it yourself when running locally"
    )]
    Missing {
        /// The variable's name.
        name: &'static str,
    },
    /// A variable is set to a value that does not parse.
    #[error("environment variable {name}={value:?} is invalid: {problem}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// The value found.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The invocation payload is not a Kinesis event at all. Nothing in it can be reported back
/// item by item, so this is the one case that fails the whole invocation.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The payload has no `Records` array.
    #[error(
        "the event has no `Records` array; this function expects a Kinesis event from an event source mapping"
    )]
    NoRecords,
}
