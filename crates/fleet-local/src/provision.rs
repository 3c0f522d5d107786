//! Creates the template's resources in the stand-ins: tables (with GSIs and TTL), streams (with
//! their local shard counts), queues, buckets, the Lambda control-plane objects (a role, one
//! function per template function with a placeholder zip, one event source mapping per mapping,
//! whose UUID the poller watches), and the OpenSearch index template, first index and alias.
//!
//! Every name comes from the evaluated template; nothing here knows a resource name. Creating
//! is idempotent: against a moto that already holds the stack (same `--stack-name`), existing
//! resources are reused.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types as ddb;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types as lambda;
use fleet_template::{KinesisMapping, Stack, StreamMode, TableSpec};
use serde_json::Value;

use crate::error::ProvisionError;
use crate::names;
use crate::report::{OpenSearchInfo, StreamInfo};

/// An empty zip archive: the end-of-central-directory record alone. moto stores the code of a
/// function and never runs it; the local stack runs the real handler.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn aws<E>(kind: &'static str, name: &str) -> impl FnOnce(E) -> ProvisionError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let name = name.to_string();
    move |e| ProvisionError::Aws {
        kind,
        name,
        source: Box::new(e),
    }
}

fn display<E: std::error::Error>(e: &E) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
}

/// Storage resources created in moto, by logical id.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    /// Table names.
    pub tables: BTreeMap<String, String>,
    /// Streams.
    pub streams: BTreeMap<String, StreamInfo>,
    /// Queue URLs by logical id.
    pub queues: BTreeMap<String, String>,
    /// Queue URLs by physical name (for the template resolver).
    pub queue_urls_by_name: BTreeMap<String, String>,
    /// Bucket names.
    pub buckets: BTreeMap<String, String>,
    /// What the operator should know (shard counts chosen, settings moto ignores).
    pub notes: Vec<String>,
}

/// Creates tables, streams, queues and buckets.
pub async fn provision_storage(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
) -> Result<Storage, ProvisionError> {
    let mut out = Storage::default();
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    for t in stack.tables() {
        create_table(&ddb, t, &mut out.notes).await?;
        out.tables
            .insert(t.logical_id.clone(), t.table_name.clone());
    }
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    for s in stack.streams() {
        let mode = match s.mode {
            StreamMode::OnDemand => "ON_DEMAND",
            StreamMode::Provisioned => "PROVISIONED",
        };
        let (shards, note) = names::local_shard_count(Some(mode), s.shard_count);
        out.notes.push(format!("stream {}: {note}", s.stream_name));
        let arn = create_stream(
            &kinesis,
            &s.stream_name,
            shards,
            s.retention_hours,
            &mut out.notes,
        )
        .await?;
        out.streams.insert(
            s.logical_id.clone(),
            StreamInfo {
                name: s.stream_name.clone(),
                arn,
                shards,
                mode: mode.to_string(),
            },
        );
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    for q in stack.queues() {
        let mut req = sqs
            .create_queue()
            .queue_name(&q.queue_name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod,
                q.retention_s.to_string(),
            )
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                q.visibility_timeout_s.to_string(),
            );
        if q.fifo {
            req = req.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
        }
        let url = match req.send().await {
            Ok(r) => r.queue_url.unwrap_or_default(),
            Err(e) => {
                // Same name, other attributes (an older run): reuse the queue.
                let existing = sqs.get_queue_url().queue_name(&q.queue_name).send().await;
                match existing {
                    Ok(r) => {
                        out.notes.push(format!(
                            "queue {} existed with other attributes ({}); reused",
                            q.queue_name,
                            display(&e)
                        ));
                        r.queue_url.unwrap_or_default()
                    }
                    Err(_) => return Err(aws("queue", &q.queue_name)(e)),
                }
            }
        };
        out.queue_urls_by_name
            .insert(q.queue_name.clone(), url.clone());
        out.queues.insert(q.logical_id.clone(), url);
    }
    let s3 = fleet_aws::config::s3_client(sdk);
    for b in stack.buckets() {
        if let Err(e) = s3.create_bucket().bucket(&b.bucket_name).send().await {
            let owned = e.as_service_error().is_some_and(|se| {
                se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists()
            });
            if !owned {
                return Err(aws("bucket", &b.bucket_name)(e));
            }
        }
        out.buckets
            .insert(b.logical_id.clone(), b.bucket_name.clone());
    }
    Ok(out)
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    t: &TableSpec,
    notes: &mut Vec<String>,
) -> Result<(), ProvisionError> {
    let name = t.table_name.as_str();
    let build = |e: aws_sdk_dynamodb::error::BuildError| ProvisionError::Unsupported {
        logical_id: t.logical_id.clone(),
        detail: e.to_string(),
    };
    let key =
        |hash: &str, range: Option<&str>| -> Result<Vec<ddb::KeySchemaElement>, ProvisionError> {
            let mut keys = vec![
                ddb::KeySchemaElement::builder()
                    .attribute_name(hash)
                    .key_type(ddb::KeyType::Hash)
                    .build()
                    .map_err(build)?,
            ];
            if let Some(r) = range {
                keys.push(
                    ddb::KeySchemaElement::builder()
                        .attribute_name(r)
                        .key_type(ddb::KeyType::Range)
                        .build()
                        .map_err(build)?,
                );
            }
            Ok(keys)
        };
    let provisioned = t.billing_mode.eq_ignore_ascii_case("PROVISIONED");
    let throughput = || {
        ddb::ProvisionedThroughput::builder()
            .read_capacity_units(5)
            .write_capacity_units(5)
            .build()
    };
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(if provisioned {
            ddb::BillingMode::Provisioned
        } else {
            ddb::BillingMode::PayPerRequest
        })
        .set_key_schema(Some(key(
            &t.key_schema.hash_key,
            t.key_schema.range_key.as_deref(),
        )?));
    if provisioned {
        req = req.provisioned_throughput(throughput().map_err(build)?);
    }
    for a in &t.attribute_definitions {
        req = req.attribute_definitions(
            ddb::AttributeDefinition::builder()
                .attribute_name(&a.name)
                .attribute_type(ddb::ScalarAttributeType::from(a.type_.as_str()))
                .build()
                .map_err(build)?,
        );
    }
    for g in &t.gsis {
        let mut projection = ddb::Projection::builder()
            .projection_type(ddb::ProjectionType::from(g.projection_type.as_str()));
        if !g.non_key_attributes.is_empty() {
            projection = projection.set_non_key_attributes(Some(g.non_key_attributes.clone()));
        }
        let mut gsi = ddb::GlobalSecondaryIndex::builder()
            .index_name(&g.index_name)
            .set_key_schema(Some(key(&g.keys.hash_key, g.keys.range_key.as_deref())?))
            .projection(projection.build());
        if provisioned {
            gsi = gsi.provisioned_throughput(throughput().map_err(build)?);
        }
        req = req.global_secondary_indexes(gsi.build().map_err(build)?);
    }
    if let Some(view) = &t.stream_view_type {
        req = req.stream_specification(
            ddb::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(ddb::StreamViewType::from(view.as_str()))
                .build()
                .map_err(build)?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) =>
        {
            notes.push(format!("table {name} existed; reused"));
        }
        Err(e) => return Err(aws("table", name)(e)),
    }
    if let Some(attr) = &t.ttl_attribute {
        let spec = ddb::TimeToLiveSpecification::builder()
            .attribute_name(attr)
            .enabled(true)
            .build()
            .map_err(build)?;
        if let Err(e) = client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            // Already enabled on a reused table.
            tracing::debug!(table = name, error = %display(&e), "ttl update");
        }
    }
    Ok(())
}

async fn create_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: u32,
    retention_hours: u32,
    notes: &mut Vec<String>,
) -> Result<String, ProvisionError> {
    match client
        .create_stream()
        .stream_name(name)
        .shard_count(shards as i32)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) =>
        {
            notes.push(format!("stream {name} existed; reused"));
        }
        Err(e) => return Err(aws("stream", name)(e)),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let arn = loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(aws("stream", name))?;
        if let Some(d) = summary.stream_description_summary
            && d.stream_status == aws_sdk_kinesis::types::StreamStatus::Active
        {
            break d.stream_arn;
        }
        if Instant::now() > deadline {
            return Err(ProvisionError::NotReady {
                kind: "stream",
                name: name.to_string(),
                secs: 30,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if retention_hours > 24
        && let Err(e) = client
            .increase_stream_retention_period()
            .stream_name(name)
            .retention_period_hours(retention_hours as i32)
            .send()
            .await
    {
        tracing::debug!(stream = name, error = %display(&e), "retention update");
    }
    Ok(arn)
}

/// The Lambda control plane objects: function physical names and mapping UUIDs.
#[derive(Debug, Clone, Default)]
pub struct LambdaObjects {
    /// Function physical names by logical id.
    pub functions: BTreeMap<String, String>,
    /// Mapping UUIDs by mapping logical id.
    pub mappings: BTreeMap<String, String>,
}

/// Creates the template's roles in moto's IAM (Lambda checks that a function's role exists;
/// what the role may do is the AWS front's business), one function per template function
/// (placeholder zip, its own role, the local environment) and one event source mapping per
/// mapping.
pub async fn provision_lambda(
    sdk: &aws_config::SdkConfig,
    aws_endpoint: &str,
    stack: &Stack,
    access: &crate::front::AccessModel,
    environments: &BTreeMap<String, BTreeMap<String, String>>,
    streams: &BTreeMap<String, StreamInfo>,
) -> Result<LambdaObjects, ProvisionError> {
    for role in access.roles.values() {
        // A role ARN ends with its name (`arn:aws:iam::<account>:role/<name>`).
        let name = role.arn.rsplit('/').next().unwrap_or_default();
        fleet_aws::iam::create_role(
            sdk,
            aws_endpoint,
            stack.region(),
            name,
            fleet_aws::iam::LAMBDA_TRUST,
        )
        .await
        .map_err(|e| ProvisionError::Aws {
            kind: "iam role",
            name: name.to_string(),
            source: e.into(),
        })?;
    }
    let client = aws_sdk_lambda::Client::new(sdk);
    let mut out = LambdaObjects::default();
    for f in stack.functions() {
        let env: HashMap<String, String> = environments
            .get(&f.logical_id)
            .map(|e| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let code = lambda::FunctionCode::builder()
            .zip_file(Blob::new(EMPTY_ZIP.to_vec()))
            .build();
        let arch = if f.architectures.iter().any(|a| a == "x86_64") {
            lambda::Architecture::X8664
        } else {
            lambda::Architecture::Arm64
        };
        let role_arn = access
            .function_roles
            .get(&f.logical_id)
            .and_then(|id| access.roles.get(id))
            .map(|r| r.arn.clone())
            .ok_or_else(|| ProvisionError::Unsupported {
                logical_id: f.logical_id.clone(),
                detail: "the function has no role of the template".into(),
            })?;
        let result = client
            .create_function()
            .function_name(&f.function_name)
            .runtime(lambda::Runtime::from(f.runtime.as_str()))
            .role(&role_arn)
            .handler("bootstrap")
            .code(code)
            .architectures(arch)
            .timeout(f.timeout_s as i32)
            .memory_size(f.memory_mb as i32)
            .environment(
                lambda::Environment::builder()
                    .set_variables(Some(env.clone()))
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_conflict_exception()) =>
            {
                client
                    .update_function_configuration()
                    .function_name(&f.function_name)
                    .environment(
                        lambda::Environment::builder()
                            .set_variables(Some(env))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(aws("function", &f.function_name))?;
            }
            Err(e) => return Err(aws("function", &f.function_name)(e)),
        }
        // SAM's AutoPublishAlias: a version and the alias, which the mappings are attached to.
        if let Some(alias) = &f.auto_publish_alias {
            publish_alias(&client, &f.function_name, alias).await?;
        }
        out.functions
            .insert(f.logical_id.clone(), f.function_name.clone());
    }
    for m in stack.event_source_mappings() {
        let function = stack
            .function(&m.function_logical_id)
            .map(|f| f.function_name.clone())
            .ok_or_else(|| ProvisionError::Unsupported {
                logical_id: m.logical_id.clone(),
                detail: format!(
                    "maps to `{}`, which is not a SAM function of the template",
                    m.function_logical_id
                ),
            })?;
        let stream =
            streams
                .get(&m.stream_logical_id)
                .ok_or_else(|| ProvisionError::Unsupported {
                    logical_id: m.logical_id.clone(),
                    detail: format!(
                        "reads stream `{}`, which the template does not declare",
                        m.stream_logical_id
                    ),
                })?;
        // As SAM does: the mapping invokes the function's alias when it has one.
        let target = match stack
            .function(&m.function_logical_id)
            .and_then(|f| f.auto_publish_alias.as_ref())
        {
            Some(alias) => format!("{function}:{alias}"),
            None => function,
        };
        let uuid = create_mapping(&client, m, &target, &stream.arn).await?;
        out.mappings.insert(m.logical_id.clone(), uuid);
    }
    Ok(out)
}

/// Publishes a version of `function` and points `alias` at it (creating the alias, or moving
/// it on a stack that already exists).
async fn publish_alias(
    client: &aws_sdk_lambda::Client,
    function: &str,
    alias: &str,
) -> Result<(), ProvisionError> {
    let version = client
        .publish_version()
        .function_name(function)
        .send()
        .await
        .map_err(aws("function version", function))?
        .version
        .unwrap_or_else(|| "1".into());
    let created = client
        .create_alias()
        .function_name(function)
        .name(alias)
        .function_version(&version)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        // AWS answers ResourceConflictException; moto answers ConflictException.
        Err(e)
            if e.as_service_error().is_some_and(|se| {
                se.is_resource_conflict_exception()
                    || aws_sdk_lambda::error::ProvideErrorMetadata::code(se)
                        == Some("ConflictException")
            }) =>
        {
            client
                .update_alias()
                .function_name(function)
                .name(alias)
                .function_version(&version)
                .send()
                .await
                .map_err(aws("function alias", function))?;
            Ok(())
        }
        Err(e) => Err(aws("function alias", function)(e)),
    }
}

async fn create_mapping(
    client: &aws_sdk_lambda::Client,
    m: &KinesisMapping,
    function: &str,
    stream_arn: &str,
) -> Result<String, ProvisionError> {
    let existing = client
        .list_event_source_mappings()
        .function_name(function)
        .event_source_arn(stream_arn)
        .send()
        .await
        .map_err(aws("event source mapping", &m.logical_id))?;
    if let Some(uuid) = existing
        .event_source_mappings
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.event_source_arn.as_deref() == Some(stream_arn))
        .find_map(|e| e.uuid)
    {
        return Ok(uuid);
    }
    let position = match m.starting_position {
        fleet_template::StartingPosition::Latest => lambda::EventSourcePosition::Latest,
        fleet_template::StartingPosition::TrimHorizon => lambda::EventSourcePosition::TrimHorizon,
        fleet_template::StartingPosition::AtTimestamp(_) => {
            lambda::EventSourcePosition::AtTimestamp
        }
    };
    let resp = client
        .create_event_source_mapping()
        .function_name(function)
        .event_source_arn(stream_arn)
        .starting_position(position)
        .batch_size(m.batch_size as i32)
        .enabled(m.enabled)
        .send()
        .await
        .map_err(aws("event source mapping", &m.logical_id))?;
    resp.uuid.ok_or_else(|| ProvisionError::Unsupported {
        logical_id: m.logical_id.clone(),
        detail: "moto returned a mapping without a uuid".into(),
    })
}

/// Installs the index template (the repository's file, pointed at `alias`), then the first
/// index `<alias>-v1` unless the alias exists. The shadow indexer does the same on a cold start
/// and finds everything in place.
pub async fn provision_opensearch(
    os: &fleet_aws::OpenSearchHttp,
    template_file: &Path,
    alias: &str,
) -> Result<OpenSearchInfo, ProvisionError> {
    let text =
        std::fs::read_to_string(template_file).map_err(|e| ProvisionError::IndexTemplate {
            path: template_file.to_path_buf(),
            source: Box::new(e),
        })?;
    let template: Value =
        serde_json::from_str(&text).map_err(|e| ProvisionError::IndexTemplate {
            path: template_file.to_path_buf(),
            source: Box::new(e),
        })?;
    let template = fleet_aws::robots::template_for_alias(&template, alias);
    let call = |what: String, method: reqwest::Method, path: String, body: Option<Value>| async move {
        os.call(method, &path, body.as_ref())
            .await
            .map_err(|e| ProvisionError::OpenSearch {
                what: what.clone(),
                detail: e.to_string(),
            })
            .map(|reply| (what, reply))
    };
    let (what, put) = call(
        format!("PUT _index_template/{alias}"),
        reqwest::Method::PUT,
        format!("/_index_template/{alias}"),
        Some(template),
    )
    .await?;
    if !put.is_success() {
        return Err(ProvisionError::OpenSearch {
            what,
            detail: format!("status {}: {}", put.status, put.text()),
        });
    }
    let index = format!("{alias}-v1");
    let (_, head) = call(
        format!("HEAD {alias}/_alias/{alias}"),
        reqwest::Method::HEAD,
        format!("/{alias}/_alias/{alias}"),
        None,
    )
    .await?;
    if !head.is_success() {
        let (what, resp) = call(
            format!("PUT {index}"),
            reqwest::Method::PUT,
            format!("/{index}"),
            Some(fleet_aws::robots::first_index_body(alias)),
        )
        .await?;
        if !resp.is_success() && !resp.text().contains("resource_already_exists") {
            return Err(ProvisionError::OpenSearch {
                what,
                detail: format!("status {}: {}", resp.status, resp.text()),
            });
        }
    }
    Ok(OpenSearchInfo {
        alias: alias.to_string(),
        index,
        template: alias.to_string(),
    })
}

/// Registers the stack's outputs as a CloudFormation stack record in moto (a placeholder
/// resource and the evaluated `Outputs`), so `robofleet status --stack` reads the local stack
/// the way it reads a deployed one. An output only the cloud knows (a domain endpoint) is left
/// out. Registering again replaces the record.
pub async fn register_stack_outputs(
    sdk: &aws_config::SdkConfig,
    stack: &fleet_template::Stack,
) -> Result<usize, ProvisionError> {
    let mut outputs = serde_json::Map::new();
    for (name, value) in stack.outputs() {
        if value.to_string().contains(fleet_template::DEFERRED_KEY) {
            continue;
        }
        let text = value
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        outputs.insert(name.clone(), serde_json::json!({ "Value": text }));
    }
    let count = outputs.len();
    let template = serde_json::json!({
        "Description": "robofleet dev: the local stack's outputs, for robofleet status",
        "Resources": { "LocalStack": { "Type": "AWS::CloudFormation::WaitConditionHandle" } },
        "Outputs": outputs,
    })
    .to_string();
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let name = stack.stack_name();
    let err = |e: String| ProvisionError::Aws {
        kind: "cloudformation stack record",
        name: name.to_string(),
        source: e.into(),
    };
    let exists = cfn
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .is_ok_and(|d| !d.stacks().is_empty());
    if exists {
        if let Err(e) = cfn
            .update_stack()
            .stack_name(name)
            .template_body(&template)
            .send()
            .await
        {
            // The same outputs as last time: CloudFormation says there is nothing to update.
            let why = fleet_aws::error::describe(&e);
            if !why.contains("No updates are to be performed") {
                return Err(err(why));
            }
        }
    } else {
        cfn.create_stack()
            .stack_name(name)
            .template_body(&template)
            .send()
            .await
            .map_err(|e| err(fleet_aws::error::describe(&e)))?;
    }
    Ok(count)
}

/// Registers `things` in the thing registry (moto's IoT, behind the front), as `robofleet sim
/// provision` does on IoT Core, so that `robofleet reindex` finds the simulated robots.
/// Returns how many were registered; a thing that exists already counts.
pub async fn register_things(
    sdk: &aws_config::SdkConfig,
    things: impl Iterator<Item = String>,
) -> Result<usize, ProvisionError> {
    use futures::StreamExt as _;
    let iot = aws_sdk_iot::Client::new(sdk);
    let results: Vec<Result<(), ProvisionError>> = futures::stream::iter(things)
        .map(|thing| {
            let iot = iot.clone();
            async move {
                match iot.create_thing().thing_name(&thing).send().await {
                    Ok(_) => Ok(()),
                    Err(e)
                        if aws_sdk_iot::error::ProvideErrorMetadata::code(&e)
                            == Some("ResourceAlreadyExistsException") =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(ProvisionError::Aws {
                        kind: "thing",
                        name: thing,
                        source: fleet_aws::error::describe(&e).into(),
                    }),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut n = 0;
    for r in results {
        r?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_zip_is_an_empty_archive() {
        assert_eq!(&EMPTY_ZIP[..4], b"PK\x05\x06");
        assert_eq!(EMPTY_ZIP.len(), 22);
    }
}
