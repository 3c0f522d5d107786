//! Fresh resources for adapter tests, shaped as template.yaml declares them.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

fn attr(n: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(n)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition")
}

fn key(n: &str, t: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(n)
        .key_type(t)
        .build()
        .expect("key schema")
}

/// Creates an on-demand table named `name` keyed by the string attribute `hash`, and `range`
/// when given (the breaker's, the stream-scaler's and the jobs table's shapes).
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    hash: &str,
    range: Option<&str>,
) {
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(hash))
        .key_schema(key(hash, KeyType::Hash));
    if let Some(range) = range {
        create = create
            .attribute_definitions(attr(range))
            .key_schema(key(range, KeyType::Range));
    }
    create
        .send()
        .await
        .unwrap_or_else(|e| panic!("create the table {name} in moto: {e:?}"));
}

/// Creates a missions table (`pk`/`sk`, GSI `byDay` on `gsi1pk`/`gsi1sk`) named `name`.
pub async fn create_missions_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .attribute_definitions(attr("gsi1pk"))
        .attribute_definitions(attr("gsi1sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byDay")
                .key_schema(key("gsi1pk", KeyType::Hash))
                .key_schema(key("gsi1sk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("gsi"),
        )
        .send()
        .await
        .expect("create the missions table in moto");
}

/// Creates an SQS queue named `name` and returns its URL.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create a queue in moto")
        .queue_url()
        .expect("queue url")
        .to_string()
}

/// Receives every message currently in the queue (up to `max`), without deleting them.
pub async fn drain_queue(client: &aws_sdk_sqs::Client, url: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..(max / 10 + 2) {
        let got = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .send()
            .await
            .expect("receive from moto");
        let msgs = got.messages();
        if msgs.is_empty() {
            break;
        }
        out.extend(msgs.iter().filter_map(|m| m.body().map(str::to_string)));
        if out.len() >= max {
            break;
        }
    }
    out
}

/// Creates an S3 bucket named `name` (lowercase, as S3 requires) and returns the name.
pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) -> String {
    let name = name.to_ascii_lowercase();
    client
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    name
}
