//! What one Kinesis event source mapping asks for, and how the poller paces itself.
//!
//! [`MappingConfig`] mirrors the `AWS::Lambda::EventSourceMapping` properties that apply to
//! Kinesis (Lambda developer guide, "Lambda parameters for Amazon Kinesis Data Streams event
//! source mappings"); [`PollerOptions`] holds the local pacing knobs that AWS does not expose.

use std::time::Duration;

pub use fleet_template::StartingPosition;

use crate::error::MappingError;

/// The account moto answers with; used to build ARNs when the caller gives none.
pub const LOCAL_ACCOUNT: &str = "123456789012";
/// The region of the local stack.
pub const LOCAL_REGION: &str = "us-east-1";
/// Lambda's limit on a synchronous invocation payload (6 MB); a batch is cut before it.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The mapping's `DestinationConfig.OnFailure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailure {
    /// An SQS queue: receives the invocation record (metadata only).
    Sqs {
        /// Queue ARN (`arn:aws:sqs:<region>:<account>:<name>`).
        arn: String,
    },
    /// An S3 bucket: receives the invocation record plus the whole event, one object per failure.
    S3 {
        /// Bucket ARN (`arn:aws:s3:::<bucket>`).
        arn: String,
    },
}

/// One Kinesis event source mapping, as the template declares it.
///
/// Field meanings and ranges follow `CreateEventSourceMapping`; [`MappingConfig::validate`]
/// enforces the ranges so that a bad value fails at start-up, not at the first failure.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingConfig {
    /// The mapping's UUID (from moto's `CreateEventSourceMapping`); names S3 failure objects and
    /// is the key for reading the Enabled state.
    pub uuid: String,
    /// Function name the poller invokes.
    pub function_name: String,
    /// ARN of that function (`requestContext.functionArn` of failure records).
    pub function_arn: String,
    /// Stream name.
    pub stream_name: String,
    /// Stream ARN (`eventSourceARN` of each record).
    pub stream_arn: String,
    /// Region (`awsRegion` of each record).
    pub region: String,
    /// Execution role ARN (`invokeIdentityArn` of each record).
    pub invoke_identity_arn: String,
    /// `BatchSize`: 1..=10000, default 100.
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds`: 0..=300, default 0.
    pub max_batching_window: Duration,
    /// `StartingPosition`.
    pub starting_position: StartingPosition,
    /// `ParallelizationFactor`: 1..=10, default 1.
    pub parallelization_factor: u32,
    /// `BisectBatchOnFunctionError`, default false.
    pub bisect_on_error: bool,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`: the function's partial batch
    /// response is honoured only when this is on (as in AWS).
    pub report_batch_item_failures: bool,
    /// `MaximumRetryAttempts`: `None` is -1 (retry until the record expires), else 0..=10000.
    pub max_retry_attempts: Option<u32>,
    /// `MaximumRecordAgeInSeconds`: `None` is -1 (no limit), else 60..=604800.
    pub max_record_age: Option<Duration>,
    /// `DestinationConfig.OnFailure`.
    pub on_failure: Option<OnFailure>,
    /// `Enabled` as declared; the live value is read through [`crate::MappingState`].
    pub enabled: bool,
}

impl MappingConfig {
    /// A mapping with AWS's defaults, ARNs built for the local account and region.
    pub fn new(uuid: &str, function_name: &str, stream_name: &str) -> Self {
        Self {
            uuid: uuid.to_owned(),
            function_name: function_name.to_owned(),
            function_arn: format!(
                "arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{function_name}"
            ),
            stream_name: stream_name.to_owned(),
            stream_arn: format!(
                "arn:aws:kinesis:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stream/{stream_name}"
            ),
            region: LOCAL_REGION.to_owned(),
            invoke_identity_arn: format!("arn:aws:iam::{LOCAL_ACCOUNT}:role/{function_name}-role"),
            batch_size: 100,
            max_batching_window: Duration::ZERO,
            starting_position: StartingPosition::Latest,
            parallelization_factor: 1,
            bisect_on_error: false,
            report_batch_item_failures: false,
            max_retry_attempts: None,
            max_record_age: None,
            on_failure: None,
            enabled: true,
        }
    }

    /// Checks the ranges `CreateEventSourceMapping` enforces for Kinesis
    /// ([`fleet_template::limits`], the table the template reader checks too).
    pub fn validate(&self) -> Result<(), MappingError> {
        use fleet_template::limits::{self, Limit};
        let check = |limit: Limit, value: i64| {
            if limit.allows(value) {
                Ok(())
            } else {
                Err(MappingError::OutOfRange {
                    mapping: self.uuid.clone(),
                    field: limit.property,
                    value: value.to_string(),
                    allowed: limit.rule(),
                })
            }
        };
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        check(limits::BATCH_SIZE, i64::from(self.batch_size))?;
        check(
            limits::MAX_BATCHING_WINDOW_S,
            secs(self.max_batching_window),
        )?;
        check(
            limits::PARALLELIZATION_FACTOR,
            i64::from(self.parallelization_factor),
        )?;
        check(
            limits::MAX_RETRY_ATTEMPTS,
            self.max_retry_attempts.map_or(-1, i64::from),
        )?;
        check(
            limits::MAX_RECORD_AGE_S,
            self.max_record_age.map_or(-1, secs),
        )?;
        if self.function_name.is_empty() || self.stream_name.is_empty() {
            return Err(MappingError::Missing {
                mapping: self.uuid.clone(),
                what: "function name and stream name",
            });
        }
        Ok(())
    }
}

impl MappingConfig {
    /// The mapping as template.yaml declares it, for the mapping `uuid` (from moto's
    /// `CreateEventSourceMapping`) invoking `function_name` (the physical name). Queue and
    /// bucket ARNs are built for the local account and region.
    pub fn from_template(
        mapping: &fleet_template::KinesisMapping,
        uuid: &str,
        function_name: &str,
    ) -> Self {
        let mut c = Self::from(mapping);
        c.uuid = uuid.to_owned();
        c.function_name = function_name.to_owned();
        c.function_arn =
            format!("arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{function_name}");
        c.invoke_identity_arn = format!("arn:aws:iam::{LOCAL_ACCOUNT}:role/{function_name}-role");
        c
    }
}

/// Names come from the template's logical ids (UUID = the mapping's logical id, function =
/// its function's logical id); [`MappingConfig::from_template`] sets the physical ones.
impl From<&fleet_template::KinesisMapping> for MappingConfig {
    fn from(m: &fleet_template::KinesisMapping) -> Self {
        use fleet_template::Destination;
        let mut c = Self::new(&m.logical_id, &m.function_logical_id, &m.stream_name);
        c.batch_size = m.batch_size;
        c.max_batching_window = Duration::from_secs(u64::from(m.max_batching_window_s));
        c.starting_position = m.starting_position;
        c.parallelization_factor = m.parallelization_factor;
        c.bisect_on_error = m.bisect_on_error;
        c.report_batch_item_failures = m.report_batch_item_failures;
        c.max_retry_attempts = m.max_retry_attempts;
        c.max_record_age = m
            .max_record_age_s
            .map(|s| Duration::from_secs(u64::from(s)));
        c.on_failure = m.on_failure.as_ref().map(|d| match d {
            Destination::Sqs { queue_name, .. } => OnFailure::Sqs {
                arn: format!("arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{queue_name}"),
            },
            Destination::S3 { bucket_name, .. } => OnFailure::S3 {
                arn: format!("arn:aws:s3:::{bucket_name}"),
            },
        });
        c.enabled = m.enabled;
        c
    }
}

/// Local pacing: how often the poller asks Kinesis, moto and the function. AWS does not expose
/// these; the defaults are Lambda's observed behaviour (one GetRecords per shard per second when
/// idle, at most five per second per shard when busy).
#[derive(Debug, Clone, PartialEq)]
pub struct PollerOptions {
    /// Wait after a GetRecords call that returned nothing.
    pub idle_poll_interval: Duration,
    /// Least wait between two GetRecords calls on one shard (Kinesis allows 5 per second).
    pub busy_poll_interval: Duration,
    /// How often the Enabled state is read.
    pub state_poll_interval: Duration,
    /// How often the shard list is read to find new shards (after a split or merge).
    pub shard_discovery_interval: Duration,
    /// First wait before retrying a failed batch or a failed API call; doubles each time.
    pub retry_backoff_base: Duration,
    /// Cap of that wait.
    pub retry_backoff_max: Duration,
    /// A batch is cut before its event would exceed this many bytes.
    pub max_payload_bytes: usize,
}

impl Default for PollerOptions {
    fn default() -> Self {
        Self {
            idle_poll_interval: Duration::from_secs(1),
            busy_poll_interval: Duration::from_millis(200),
            state_poll_interval: Duration::from_secs(1),
            shard_discovery_interval: Duration::from_secs(10),
            retry_backoff_base: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(10),
            max_payload_bytes: MAX_PAYLOAD_BYTES,
        }
    }
}

impl PollerOptions {
    /// The wait before attempt `n` (0-based) of something that keeps failing: doubling from
    /// the base up to the cap, without jitter (Lambda spaces a mapping's retries this way).
    pub fn backoff(&self, attempt: u32) -> Duration {
        fleet_aws::Backoff::exponential(self.retry_backoff_base, self.retry_backoff_max)
            .ceiling(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ranges_are_enforced() {
        let mut c = MappingConfig::new("u", "f", "s");
        assert!(c.validate().is_ok());
        c.batch_size = 0;
        assert!(c.validate().is_err());
        c.batch_size = 10_000;
        c.max_retry_attempts = Some(10_001);
        assert!(c.validate().is_err());
        c.max_retry_attempts = Some(10_000);
        c.max_record_age = Some(Duration::from_secs(59));
        assert!(c.validate().is_err());
        c.max_record_age = Some(Duration::from_secs(60));
        c.parallelization_factor = 11;
        assert!(c.validate().is_err());
        c.parallelization_factor = 10;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = PollerOptions::default();
        assert_eq!(o.backoff(0), Duration::from_millis(100));
        assert_eq!(o.backoff(3), Duration::from_millis(800));
        assert_eq!(o.backoff(40), Duration::from_secs(10));
    }
}
