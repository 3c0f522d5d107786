//! What the local stack (and the template tests) need to know about each kind of resource,
//! extracted from the evaluated template. Structs are `#[non_exhaustive]` so later issues can
//! add fields without breaking readers: match them with `..`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// One resource after Conditions, with evaluated properties. SAM functions appear with their
/// type `AWS::Serverless::Function` and the Globals merged into their properties.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Resource {
    pub logical_id: String,
    pub type_: String,
    /// The name in the account (name property, or a deterministic generated name).
    pub physical_name: String,
    pub properties: Value,
    /// `Metadata`, not evaluated (build settings, checkov skips).
    pub metadata: Value,
}

/// A SAM function with Globals merged.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The function's name in the account.
    pub function_name: String,
    /// Cargo binary (`Metadata.BuildProperties.Binary`): also the crate name.
    pub binary: String,
    pub runtime: String,
    pub architectures: Vec<String>,
    pub memory_mb: u32,
    pub timeout_s: u32,
    /// Evaluated to strings where possible; otherwise a deferred marker (see [`crate::deferred`]).
    pub environment: BTreeMap<String, Value>,
    pub auto_publish_alias: Option<String>,
    pub tracing: Option<String>,
}

/// Where a Kinesis mapping starts reading a shard (`StartingPosition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StartingPosition {
    /// Only records written after the mapping starts.
    Latest,
    /// The oldest record still in the stream.
    TrimHorizon,
    /// The first record at or after this time (`StartingPositionTimestamp`).
    AtTimestamp(std::time::SystemTime),
}

/// On-failure destination of a mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Destination {
    Sqs {
        queue_logical_id: String,
        queue_name: String,
    },
    S3 {
        bucket_logical_id: String,
        bucket_name: String,
    },
}

/// A Kinesis event source mapping, from a SAM `Events` entry of type `Kinesis` or from an
/// `AWS::Lambda::EventSourceMapping` resource. Values are validated against Lambda's limits.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct KinesisMapping {
    /// SAM: `<Function><Event>` (the logical id SAM gives the generated mapping); raw: its own.
    pub logical_id: String,
    /// SAM event name, or the raw mapping's logical id.
    pub event_name: String,
    pub function_logical_id: String,
    pub stream_logical_id: String,
    pub stream_name: String,
    pub batch_size: u32,
    pub max_batching_window_s: u32,
    pub starting_position: StartingPosition,
    pub parallelization_factor: u32,
    pub bisect_on_error: bool,
    pub report_batch_item_failures: bool,
    /// `None` is -1: retry until the record expires (or reaches its maximum age).
    pub max_retry_attempts: Option<u32>,
    /// `None` is -1: no maximum age (the stream's retention applies).
    pub max_record_age_s: Option<u32>,
    pub on_failure: Option<Destination>,
    pub enabled: bool,
}

/// A route of an HTTP API (API Gateway v2), from a SAM function's `HttpApi` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HttpRouteSpec {
    /// `<Function><Event>`.
    pub logical_id: String,
    pub function_logical_id: String,
    /// The `AWS::Serverless::HttpApi` the route belongs to.
    pub api_logical_id: String,
    /// `GET`, `POST`, ... or `ANY`.
    pub method: String,
    /// `/robots/{id}`: literal segments and `{name}` parameters (`{name+}` greedy, last only).
    pub path: String,
    /// `AWS_IAM` or `NONE`: the route's `Auth.Authorizer`, else the API's `DefaultAuthorizer`.
    pub authorization: String,
    /// The integration's timeout (50..30,000 ms).
    pub timeout_ms: u32,
}

/// A scheduled invocation of a function.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ScheduleSpec {
    pub logical_id: String,
    pub target_function_logical_id: String,
    /// `rate(1 minute)` or `cron(...)`.
    pub expression: String,
    pub enabled: bool,
    /// The constant JSON input, if any.
    pub input: Option<String>,
}

/// One IoT rule action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum RuleAction {
    Kinesis {
        stream_logical_id: Option<String>,
        stream_name: String,
        /// An IoT substitution template such as `${topic(2)}`; `None` means a random key.
        partition_key_template: Option<String>,
    },
    Sqs {
        queue_logical_id: Option<String>,
        queue_name: String,
        queue_url: String,
        use_base64: bool,
    },
}

/// An IoT topic rule.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TopicRuleSpec {
    pub logical_id: String,
    pub rule_name: String,
    pub sql: String,
    pub sql_version: String,
    pub actions: Vec<RuleAction>,
    pub error_action: Option<RuleAction>,
    pub enabled: bool,
}

/// Hash and range key of a table or index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySchema {
    pub hash_key: String,
    pub range_key: Option<String>,
}

/// `AttributeDefinitions` entry: name and type (`S`, `N` or `B`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeDefinition {
    pub name: String,
    pub type_: String,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GsiSpec {
    pub index_name: String,
    pub keys: KeySchema,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

/// A DynamoDB table.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TableSpec {
    pub logical_id: String,
    pub table_name: String,
    pub key_schema: KeySchema,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub gsis: Vec<GsiSpec>,
    pub ttl_attribute: Option<String>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    pub billing_mode: String,
    pub stream_view_type: Option<String>,
}

/// Kinesis capacity mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StreamMode {
    OnDemand,
    Provisioned,
}

/// A Kinesis stream.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StreamSpec {
    pub logical_id: String,
    pub stream_name: String,
    pub mode: StreamMode,
    pub shard_count: Option<u32>,
    pub retention_hours: u32,
    pub encrypted: bool,
}

/// An SQS queue.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct QueueSpec {
    pub logical_id: String,
    pub queue_name: String,
    pub fifo: bool,
    pub retention_s: u32,
    pub visibility_timeout_s: u32,
}

/// An S3 bucket.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BucketSpec {
    pub logical_id: String,
    pub bucket_name: String,
}
