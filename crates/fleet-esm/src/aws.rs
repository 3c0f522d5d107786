//! The ports over the AWS SDK: Kinesis as the [`ShardSource`], SQS and S3 as the
//! [`FailureSink`], the Lambda control plane as the [`MappingState`]. The same code runs
//! against moto locally and against AWS.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use futures::future::BoxFuture;

use crate::config::OnFailure;
use crate::error::{MappingError, SinkError, SourceError, StateError};
use crate::event::{s3_object_body, s3_object_key};
use crate::ports::{
    FailureRecord, FailureSink, IteratorStart, MappingState, RecordsPage, ShardInfo, ShardSource,
    StreamRecord,
};

/// A Kinesis stream read with aws-sdk-kinesis.
#[derive(Debug, Clone)]
pub struct KinesisSource {
    client: aws_sdk_kinesis::Client,
    stream_name: String,
}

impl KinesisSource {
    /// Reads `stream_name` through `client`.
    pub fn new(client: aws_sdk_kinesis::Client, stream_name: &str) -> Self {
        Self {
            client,
            stream_name: stream_name.to_owned(),
        }
    }
}

fn api(call: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> SourceError {
    SourceError::Api {
        call,
        source: Box::new(e),
    }
}

fn to_system_time(dt: &DateTime) -> SystemTime {
    SystemTime::try_from(*dt).unwrap_or(UNIX_EPOCH)
}

impl ShardSource for KinesisSource {
    fn list_shards(&self) -> BoxFuture<'_, Result<Vec<ShardInfo>, SourceError>> {
        Box::pin(async move {
            let mut shards = Vec::new();
            let mut token: Option<String> = None;
            loop {
                // ListShards takes either the stream name or a next token, never both.
                let req = match &token {
                    Some(t) => self.client.list_shards().next_token(t),
                    None => self.client.list_shards().stream_name(&self.stream_name),
                };
                let out = req.send().await.map_err(|e| {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception())
                    {
                        SourceError::NotFound(format!("stream {}", self.stream_name))
                    } else if e
                        .as_service_error()
                        .is_some_and(|s| s.is_limit_exceeded_exception())
                    {
                        SourceError::Throttled
                    } else {
                        api("ListShards", e)
                    }
                })?;
                shards.extend(out.shards().iter().map(|s| {
                    ShardInfo {
                        shard_id: s.shard_id().to_owned(),
                        parent_shard_id: s.parent_shard_id().map(str::to_owned),
                        adjacent_parent_shard_id: s.adjacent_parent_shard_id().map(str::to_owned),
                        closed: s
                            .sequence_number_range()
                            .is_some_and(|r| r.ending_sequence_number().is_some()),
                    }
                }));
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            Ok(shards)
        })
    }

    fn shard_iterator<'a>(
        &'a self,
        shard_id: &'a str,
        start: &'a IteratorStart,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(async move {
            let req = self
                .client
                .get_shard_iterator()
                .stream_name(&self.stream_name)
                .shard_id(shard_id);
            let req = match start {
                IteratorStart::TrimHorizon => {
                    req.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                IteratorStart::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
                IteratorStart::AtTimestamp(t) => req
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from(*t)),
                IteratorStart::AfterSequence(seq) => req
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
            };
            let out = req.send().await.map_err(|e| {
                let s = e.as_service_error();
                if s.is_some_and(|s| s.is_resource_not_found_exception()) {
                    SourceError::NotFound(format!("{} {shard_id}", self.stream_name))
                } else if s.is_some_and(|s| s.is_provisioned_throughput_exceeded_exception()) {
                    SourceError::Throttled
                } else {
                    api("GetShardIterator", e)
                }
            })?;
            out.shard_iterator().map(str::to_owned).ok_or_else(|| {
                SourceError::NotFound(format!("no iterator for {} {shard_id}", self.stream_name))
            })
        })
    }

    fn get_records<'a>(
        &'a self,
        iterator: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<RecordsPage, SourceError>> {
        Box::pin(async move {
            let limit = i32::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000);
            let out = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(limit)
                .send()
                .await
                .map_err(|e| {
                    let s = e.as_service_error();
                    if s.is_some_and(|s| s.is_expired_iterator_exception()) {
                        SourceError::ExpiredIterator
                    } else if s.is_some_and(|s| s.is_provisioned_throughput_exceeded_exception()) {
                        SourceError::Throttled
                    } else if s.is_some_and(|s| s.is_resource_not_found_exception()) {
                        SourceError::NotFound(format!("stream {}", self.stream_name))
                    } else {
                        api("GetRecords", e)
                    }
                })?;
            let records = out
                .records()
                .iter()
                .map(|r| StreamRecord {
                    sequence_number: r.sequence_number().to_owned(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: r.data().as_ref().to_vec(),
                    approximate_arrival: r
                        .approximate_arrival_timestamp()
                        .map(to_system_time)
                        .unwrap_or_else(SystemTime::now),
                })
                .collect();
            Ok(RecordsPage {
                records,
                next_iterator: out.next_shard_iterator().map(str::to_owned),
                millis_behind_latest: out.millis_behind_latest(),
            })
        })
    }
}

/// An SQS queue as the on-failure destination: receives the invocation record only.
#[derive(Debug, Clone)]
pub struct SqsFailureSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsFailureSink {
    /// Sends to `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        Self {
            client,
            queue_url: queue_url.to_owned(),
        }
    }

    /// Sends to the queue named by `arn` (`arn:aws:sqs:<region>:<account>:<name>`), looking
    /// its URL up with GetQueueUrl.
    pub async fn from_arn(client: aws_sdk_sqs::Client, arn: &str) -> Result<Self, SinkError> {
        let name = arn.rsplit(':').next().unwrap_or(arn);
        let out = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| SinkError::Api {
                destination: arn.to_owned(),
                source: Box::new(e),
            })?;
        let url = out.queue_url().unwrap_or_default().to_owned();
        Ok(Self::new(client, &url))
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl FailureSink for SqsFailureSink {
    fn send<'a>(&'a self, record: &'a FailureRecord) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let body = serde_json::to_string(&record.metadata)?;
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| SinkError::Api {
                    destination: self.queue_url.clone(),
                    source: Box::new(e),
                })?;
            Ok(())
        })
    }
}

/// An S3 bucket as the on-failure destination: one object per discarded batch holding the
/// invocation record and the event, under Lambda's key layout.
#[derive(Debug, Clone)]
pub struct S3FailureSink {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3FailureSink {
    /// Writes to `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
        }
    }

    /// Writes to the bucket named by `arn` (`arn:aws:s3:::<bucket>`).
    pub fn from_arn(client: aws_sdk_s3::Client, arn: &str) -> Result<Self, MappingError> {
        let bucket = arn
            .strip_prefix("arn:aws:s3:::")
            .filter(|b| !b.is_empty() && !b.contains('/'))
            .ok_or_else(|| MappingError::Destination {
                arn: arn.to_owned(),
            })?;
        Ok(Self::new(client, bucket))
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl FailureSink for S3FailureSink {
    fn send<'a>(&'a self, record: &'a FailureRecord) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&s3_object_body(&record.metadata, &record.event))?;
            let key = s3_object_key(&record.mapping_uuid, &record.shard_id, record.at);
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(body.into())
                .send()
                .await
                .map_err(|e| SinkError::Api {
                    destination: self.bucket.clone(),
                    source: Box::new(e),
                })?;
            Ok(())
        })
    }
}

/// Builds the sink for a mapping's destination from one SDK config (S3 with path-style
/// addressing, which moto on `localhost` needs).
pub async fn failure_sink(
    sdk: &aws_config::SdkConfig,
    destination: &OnFailure,
) -> Result<Arc<dyn FailureSink>, SinkError> {
    match destination {
        OnFailure::Sqs { arn } => {
            let sink = SqsFailureSink::from_arn(aws_sdk_sqs::Client::new(sdk), arn).await?;
            Ok(Arc::new(sink))
        }
        OnFailure::S3 { arn } => {
            let sink =
                S3FailureSink::from_arn(fleet_aws::config::s3_client(sdk), arn).map_err(|e| {
                    SinkError::Api {
                        destination: arn.clone(),
                        source: Box::new(e),
                    }
                })?;
            Ok(Arc::new(sink))
        }
    }
}

/// The mapping's state in the Lambda control plane (moto or AWS), read with
/// GetEventSourceMapping. `Disabled` and `Disabling` pause the poller; anything else runs it.
#[derive(Debug, Clone)]
pub struct LambdaMappingState {
    client: aws_sdk_lambda::Client,
    uuid: String,
}

impl LambdaMappingState {
    /// Reads mapping `uuid` through `client`.
    pub fn new(client: aws_sdk_lambda::Client, uuid: &str) -> Self {
        Self {
            client,
            uuid: uuid.to_owned(),
        }
    }
}

impl MappingState for LambdaMappingState {
    fn enabled(&self) -> BoxFuture<'_, Result<bool, StateError>> {
        Box::pin(async move {
            let out = self
                .client
                .get_event_source_mapping()
                .uuid(&self.uuid)
                .send()
                .await
                .map_err(|e| StateError::Api {
                    uuid: self.uuid.clone(),
                    source: Box::new(e),
                })?;
            Ok(!matches!(out.state(), Some("Disabled") | Some("Disabling")))
        })
    }
}
