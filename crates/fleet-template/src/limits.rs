//! Lambda's limits on a Kinesis event source mapping (`CreateEventSourceMapping`), in one table.
//!
//! The template reader refuses a template that breaks them, and the local poller
//! (`fleet-esm`) refuses a mapping built in code that breaks them: both read this table.

/// The allowed values of one numeric mapping property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// CloudFormation property name.
    pub property: &'static str,
    /// The value when the property is left out.
    pub default: i64,
    /// Smallest allowed value (apart from `-1`, see [`Limit::minus_one`]).
    pub min: i64,
    /// Largest allowed value.
    pub max: i64,
    /// Whether `-1` ("infinite") is allowed too.
    pub minus_one: bool,
}

impl Limit {
    /// Whether `n` is allowed.
    pub fn allows(&self, n: i64) -> bool {
        (self.minus_one && n == -1) || (self.min..=self.max).contains(&n)
    }

    /// The rule as people read it, e.g. `-1 (infinite) or 60..=604800`.
    pub fn rule(&self) -> String {
        if self.minus_one {
            format!("-1 (infinite) or {}..={}", self.min, self.max)
        } else {
            format!("{}..={}", self.min, self.max)
        }
    }
}

/// `BatchSize` for a Kinesis stream.
pub const BATCH_SIZE: Limit = Limit {
    property: "BatchSize",
    default: 100,
    min: 1,
    max: 10_000,
    minus_one: false,
};

/// `MaximumBatchingWindowInSeconds`.
pub const MAX_BATCHING_WINDOW_S: Limit = Limit {
    property: "MaximumBatchingWindowInSeconds",
    default: 0,
    min: 0,
    max: 300,
    minus_one: false,
};

/// `ParallelizationFactor`.
pub const PARALLELIZATION_FACTOR: Limit = Limit {
    property: "ParallelizationFactor",
    default: 1,
    min: 1,
    max: 10,
    minus_one: false,
};

/// `MaximumRetryAttempts`: `-1` retries until the record expires.
pub const MAX_RETRY_ATTEMPTS: Limit = Limit {
    property: "MaximumRetryAttempts",
    default: -1,
    min: 0,
    max: 10_000,
    minus_one: true,
};

/// `MaximumRecordAgeInSeconds`: `-1` is no limit (the stream's retention applies).
pub const MAX_RECORD_AGE_S: Limit = Limit {
    property: "MaximumRecordAgeInSeconds",
    default: -1,
    min: 60,
    max: 604_800,
    minus_one: true,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_one_is_allowed_only_where_lambda_allows_it() {
        assert!(MAX_RECORD_AGE_S.allows(-1));
        assert!(!MAX_RECORD_AGE_S.allows(59));
        assert!(MAX_RECORD_AGE_S.allows(604_800));
        assert!(!MAX_RECORD_AGE_S.allows(604_801));
        assert!(!BATCH_SIZE.allows(-1));
        assert!(!BATCH_SIZE.allows(0));
        assert!(BATCH_SIZE.allows(10_000));
        assert_eq!(MAX_RETRY_ATTEMPTS.rule(), "-1 (infinite) or 0..=10000");
        assert_eq!(PARALLELIZATION_FACTOR.rule(), "1..=10");
    }
}
