//! Pure rules that turn the evaluated template into local names and environments.
//!
//! Nothing here does I/O, so the rules are unit-tested on their own:
//! - physical names of resources that the template leaves unnamed (CloudFormation would add a
//!   random suffix; locally the stack name prefix keeps them unique per stack and stable);
//! - placeholder values the template resolver hands out for attributes that only exist once a
//!   resource exists (queue URLs, the OpenSearch domain endpoint), and their substitution with
//!   the local endpoints in each function's environment;
//! - the local shard count of a stream.

use std::collections::BTreeMap;

use fleet_template::{FunctionSpec, PhysicalResolver, ResourceRef, resolver};
use serde_json::Value;

/// The stack name `robofleet dev` uses unless told otherwise.
pub const DEFAULT_STACK_NAME: &str = "robofleet-local";

/// The environment variable naming the robots alias (the shadow indexer's contract).
pub const ROBOTS_ALIAS_VAR: &str = "ROBOTS_ALIAS";

/// Host the resolver returns for an OpenSearch domain's `DomainEndpoint`; replaced by the osmem
/// URL in function environments.
pub const OPENSEARCH_PLACEHOLDER_HOST: &str = "opensearch.robofleet-local.invalid";

/// Shards a stream in `ON_DEMAND` mode gets locally (on-demand starts at 4 shards in AWS too).
pub const ON_DEMAND_LOCAL_SHARDS: u32 = 4;

/// Account id the local stack reports (moto's default account).
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// The person developing locally: the principal the AWS front trusts with every action (the
/// tools and tests act as this user), and the OpenSearch master user of the local stack unless
/// `--parameter-override OpenSearchMasterUserArn=...` says otherwise (the template requires one).
pub const LOCAL_DEVELOPER_ARN: &str = "arn:aws:iam::123456789012:user/robofleet-developer";

/// Template parameter naming the administrators of the OpenSearch domain.
pub const MASTER_USER_PARAMETER: &str = "OpenSearchMasterUserArn";

/// Template parameter naming the OpenSearch domain.
pub const DOMAIN_NAME_PARAMETER: &str = "OpenSearchDomainName";

/// The domain name of a local stack: the stack name as a domain name allows it (3-28
/// characters, lowercase letters, digits and `-`, starting with a letter).
pub fn local_domain_name(stack_name: &str) -> String {
    let mut name: String = stack_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert(0, 'd');
    }
    name.truncate(28);
    while name.len() < 3 {
        name.push('0');
    }
    name
}

/// Kind of resource, for naming rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// DynamoDB table (3-255 chars, `[a-zA-Z0-9_.-]`).
    Table,
    /// Kinesis stream (1-128 chars, `[a-zA-Z0-9_.-]`).
    Stream,
    /// SQS queue (1-80 chars, `[a-zA-Z0-9_-]`, `.fifo` suffix for FIFO).
    Queue,
    /// S3 bucket (3-63 chars, lowercase, digits, `-`, `.`).
    Bucket,
    /// Lambda function (1-64 chars, `[a-zA-Z0-9_-]`).
    Function,
    /// EventBridge rule or schedule (1-64 chars).
    Schedule,
}

impl ResourceKind {
    fn max_len(self) -> usize {
        match self {
            Self::Table => 255,
            Self::Stream => 128,
            Self::Queue => 80,
            Self::Bucket => 63,
            Self::Function | Self::Schedule => 64,
        }
    }
}

/// The local physical name of a resource the template does not name: `<stack>-<LogicalId>`,
/// lowercased for buckets, with characters the service refuses replaced by `-`, cut to the
/// service's length limit.
pub fn default_physical_name(stack: &str, logical_id: &str, kind: ResourceKind) -> String {
    let raw = format!("{stack}-{logical_id}");
    let mut name: String = raw
        .chars()
        .map(|c| {
            let ok = match kind {
                ResourceKind::Bucket => c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
                ResourceKind::Queue | ResourceKind::Function => {
                    c.is_ascii_alphanumeric() || c == '-' || c == '_'
                }
                ResourceKind::Table | ResourceKind::Stream | ResourceKind::Schedule => {
                    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
                }
            };
            if kind == ResourceKind::Bucket && c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else if ok {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(kind.max_len());
    if kind == ResourceKind::Bucket {
        while name.ends_with('-') {
            name.pop();
        }
    }
    name
}

/// The endpoints a function sees locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoints {
    /// moto.
    pub aws: String,
    /// osmem.
    pub opensearch: String,
    /// The shadow service's IoT Data Plane face.
    pub iot_data: String,
    /// Region.
    pub region: String,
}

/// A function's environment for the local stack: the template's evaluated `Environment` with the
/// OpenSearch placeholder replaced by the domain's endpoint, plus the endpoint and credential
/// variables the AWS SDK reads. `credentials` are the function role's, as Lambda gives them
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`): the AWS front issued them
/// and checks every call against the role's policies. Template values win over nothing but the
/// SDK variables, which always point at the local stack (a template never sets them).
pub fn function_environment(
    template_env: &BTreeMap<String, String>,
    endpoints: &LocalEndpoints,
    credentials: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = template_env
        .iter()
        .map(|(k, v)| (k.clone(), substitute_placeholders(v, endpoints)))
        .collect();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoints.aws.as_str()),
        (
            "AWS_ENDPOINT_URL_IOT_DATA_PLANE",
            endpoints.iot_data.as_str(),
        ),
        ("AWS_REGION", endpoints.region.as_str()),
        ("AWS_DEFAULT_REGION", endpoints.region.as_str()),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    for (k, v) in credentials {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// Replaces the OpenSearch placeholder (with or without a scheme) by the osmem URL.
pub fn substitute_placeholders(value: &str, endpoints: &LocalEndpoints) -> String {
    let os = endpoints.opensearch.trim_end_matches('/');
    value
        .replace(&format!("https://{OPENSEARCH_PLACEHOLDER_HOST}"), os)
        .replace(&format!("http://{OPENSEARCH_PLACEHOLDER_HOST}"), os)
        .replace(OPENSEARCH_PLACEHOLDER_HOST, os)
}

/// What `Ref` / `GetAtt` give locally: moto's real queue URLs (once the queues exist) and the
/// OpenSearch placeholder host for a domain endpoint; everything else as AWS would name it.
#[derive(Debug, Clone, Default)]
pub struct LocalResolver {
    /// Queue physical name → queue URL in moto.
    pub queue_urls: BTreeMap<String, String>,
}

impl PhysicalResolver for LocalResolver {
    fn reference(&self, r: &ResourceRef<'_>) -> Option<String> {
        if r.type_ == "AWS::SQS::Queue"
            && let Some(url) = self.queue_urls.get(r.physical_name)
        {
            return Some(url.clone());
        }
        resolver::default_reference(r)
    }

    fn attribute(&self, r: &ResourceRef<'_>, attribute: &str) -> Option<String> {
        match (r.type_, attribute) {
            ("AWS::SQS::Queue", "QueueUrl") => self.reference(r),
            ("AWS::OpenSearchService::Domain", "DomainEndpoint") => {
                Some(OPENSEARCH_PLACEHOLDER_HOST.to_string())
            }
            _ => resolver::default_attribute(r, attribute),
        }
    }
}

/// A function's `Environment.Variables` as strings. Values the template cannot know offline
/// (deferred markers) are left out and named in the second list.
pub fn template_environment(f: &FunctionSpec) -> (BTreeMap<String, String>, Vec<String>) {
    let mut env = BTreeMap::new();
    let mut unknown = Vec::new();
    for (k, v) in &f.environment {
        match v {
            Value::String(s) => {
                env.insert(k.clone(), s.clone());
            }
            Value::Number(n) => {
                env.insert(k.clone(), n.to_string());
            }
            Value::Bool(b) => {
                env.insert(k.clone(), b.to_string());
            }
            _ => unknown.push(k.clone()),
        }
    }
    (env, unknown)
}

/// The robots alias locally: the template's alias for the default stack, `<stack>-<alias>` for
/// any other stack name, so that stacks sharing one OpenSearch stand-in keep their own indices
/// (in the cloud each stack has its own domain).
pub fn local_robots_alias(stack: &str, template_alias: &str) -> String {
    if stack == DEFAULT_STACK_NAME {
        template_alias.to_string()
    } else {
        format!("{stack}-{template_alias}")
    }
}

/// Shards to create locally for a stream: its `ShardCount` in `PROVISIONED` mode (default 1, as
/// CloudFormation), [`ON_DEMAND_LOCAL_SHARDS`] in `ON_DEMAND` mode. The text says which.
pub fn local_shard_count(mode: Option<&str>, shard_count: Option<u32>) -> (u32, String) {
    match mode.map(str::to_ascii_uppercase).as_deref() {
        Some("ON_DEMAND") => (
            ON_DEMAND_LOCAL_SHARDS,
            format!(
                "ON_DEMAND: {ON_DEMAND_LOCAL_SHARDS} shards locally (AWS starts on-demand streams at 4 and scales them)"
            ),
        ),
        _ => {
            let n = shard_count.unwrap_or(1).max(1);
            (n, format!("PROVISIONED: {n} shard(s) as declared"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> LocalEndpoints {
        LocalEndpoints {
            aws: "http://127.0.0.1:4000".into(),
            opensearch: "http://127.0.0.1:4001/".into(),
            iot_data: "http://127.0.0.1:4002".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn unnamed_resources_get_the_stack_prefix() {
        assert_eq!(
            default_physical_name("robofleet-local", "MissionsTable", ResourceKind::Table),
            "robofleet-local-MissionsTable"
        );
    }

    #[test]
    fn bucket_names_are_lowercase_and_short() {
        let n = default_physical_name("Robofleet_Local", "JobFilesBucket", ResourceKind::Bucket);
        assert_eq!(n, "robofleet-local-jobfilesbucket");
        let long = default_physical_name(&"s".repeat(70), "B", ResourceKind::Bucket);
        assert_eq!(long.len(), 63);
    }

    #[test]
    fn queue_names_drop_characters_sqs_refuses() {
        assert_eq!(
            default_physical_name("a.b", "Rejects", ResourceKind::Queue),
            "a-b-Rejects"
        );
    }

    #[test]
    fn opensearch_placeholder_becomes_the_osmem_url_with_its_own_scheme() {
        let mut env = BTreeMap::new();
        env.insert(
            "OPENSEARCH_ENDPOINT".to_string(),
            format!("https://{OPENSEARCH_PLACEHOLDER_HOST}"),
        );
        env.insert("ROBOTS_ALIAS".to_string(), "robots".to_string());
        let creds = [("AWS_ACCESS_KEY_ID".to_string(), "ASIAROLE".to_string())];
        let out = function_environment(&env, &endpoints(), &creds);
        assert_eq!(out["AWS_ACCESS_KEY_ID"], "ASIAROLE");
        assert_eq!(out["OPENSEARCH_ENDPOINT"], "http://127.0.0.1:4001");
        assert_eq!(out["ROBOTS_ALIAS"], "robots");
        assert_eq!(out["AWS_ENDPOINT_URL"], "http://127.0.0.1:4000");
        assert_eq!(
            out["AWS_ENDPOINT_URL_IOT_DATA_PLANE"],
            "http://127.0.0.1:4002"
        );
        assert_eq!(out["AWS_REGION"], "us-east-1");
    }

    #[test]
    fn a_domain_name_is_the_stack_name_as_opensearch_allows_it() {
        assert_eq!(local_domain_name("robofleet-local"), "robofleet-local");
        assert_eq!(local_domain_name("e2e-123-0-abcd"), "e2e-123-0-abcd");
        assert_eq!(local_domain_name("9Lives_Stack"), "d9lives-stack");
        assert_eq!(local_domain_name("x"), "x00");
        assert_eq!(
            local_domain_name("a-very-long-stack-name-for-a-test-run").len(),
            28
        );
    }

    #[test]
    fn bare_placeholder_host_is_replaced_too() {
        assert_eq!(
            substitute_placeholders(OPENSEARCH_PLACEHOLDER_HOST, &endpoints()),
            "http://127.0.0.1:4001"
        );
        assert_eq!(
            substitute_placeholders("unrelated", &endpoints()),
            "unrelated"
        );
    }

    #[test]
    fn on_demand_streams_get_four_local_shards_and_say_so() {
        let (n, note) = local_shard_count(Some("ON_DEMAND"), None);
        assert_eq!(n, 4);
        assert!(note.contains("ON_DEMAND"));
        assert_eq!(local_shard_count(Some("PROVISIONED"), Some(3)).0, 3);
        assert_eq!(local_shard_count(None, Some(2)).0, 2);
        assert_eq!(local_shard_count(None, None).0, 1);
    }

    #[test]
    fn robots_alias_is_prefixed_only_for_other_stacks() {
        assert_eq!(local_robots_alias(DEFAULT_STACK_NAME, "robots"), "robots");
        assert_eq!(local_robots_alias("t-1", "robots"), "t-1-robots");
    }

    #[test]
    fn local_resolver_gives_moto_queue_urls_and_the_opensearch_placeholder() {
        let mut res = LocalResolver::default();
        res.queue_urls.insert(
            "s-rejects".into(),
            "http://127.0.0.1:5/123456789012/s-rejects".into(),
        );
        let r = |type_, name| ResourceRef {
            logical_id: "L",
            type_,
            physical_name: name,
            stack_name: "s",
            region: "us-east-1",
            account_id: LOCAL_ACCOUNT_ID,
            partition: "aws",
        };
        assert_eq!(
            res.reference(&r("AWS::SQS::Queue", "s-rejects")).as_deref(),
            Some("http://127.0.0.1:5/123456789012/s-rejects")
        );
        assert_eq!(
            res.attribute(&r("AWS::SQS::Queue", "s-rejects"), "QueueUrl")
                .as_deref(),
            Some("http://127.0.0.1:5/123456789012/s-rejects")
        );
        assert_eq!(
            res.attribute(
                &r("AWS::OpenSearchService::Domain", "robofleet"),
                "DomainEndpoint"
            )
            .as_deref(),
            Some(OPENSEARCH_PLACEHOLDER_HOST)
        );
        assert_eq!(
            res.attribute(&r("AWS::Kinesis::Stream", "s-m"), "Arn")
                .as_deref(),
            Some("arn:aws:kinesis:us-east-1:123456789012:stream/s-m")
        );
    }

    #[test]
    fn the_real_template_evaluates_to_local_environments() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let opts = crate::dev::load_options("t-env", "us-east-1", &[]);
        let mut res = LocalResolver::default();
        res.queue_urls.insert(
            "t-env-rejects".into(),
            "http://127.0.0.1:5/123456789012/t-env-rejects".into(),
        );
        let stack = fleet_template::load_with(&path, &opts, &res).unwrap_or_else(|e| panic!("{e}"));
        let indexer = stack
            .functions()
            .into_iter()
            .find(|f| f.binary == "shadow-indexer")
            .unwrap_or_else(|| panic!("no shadow-indexer in template.yaml"));
        let (env, unknown) = template_environment(indexer);
        assert!(unknown.is_empty(), "{unknown:?}");
        let local = function_environment(&env, &endpoints(), &[]);
        assert_eq!(local["OPENSEARCH_ENDPOINT"], "http://127.0.0.1:4001");
        assert_eq!(
            local["REJECTS_QUEUE_URL"],
            "http://127.0.0.1:5/123456789012/t-env-rejects"
        );
        for var in shadow_indexer::Config::ENV_VARS {
            assert!(local.contains_key(*var), "{var} missing");
        }
        let ingest = stack
            .functions()
            .into_iter()
            .find(|f| f.binary == "mission-ingest")
            .unwrap_or_else(|| panic!("no mission-ingest in template.yaml"));
        let (env, _) = template_environment(ingest);
        // The table has no fixed name: locally it is `<stack>-<LogicalId>`.
        assert_eq!(env["MISSIONS_TABLE"], "t-env-MissionsTable");
        for var in mission_ingest::Config::ENV_VARS {
            assert!(env.contains_key(*var), "{var} missing");
        }
    }
}
