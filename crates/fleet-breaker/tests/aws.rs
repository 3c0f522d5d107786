//! The DynamoDB store and the Lambda switch against moto, through the AWS front.

#![allow(clippy::unwrap_used)]

use fleet_breaker::{DynamoStore, LambdaSwitch, MappingSwitch, Policy, State, StateStore, Status};
use fleet_testkit::{sdk_config, unique_name};

async fn table() -> DynamoStore {
    let sdk = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let name = unique_name("breaker");
    fleet_testkit::tables::create_table(&client, &name, "downstream", None).await;
    DynamoStore::new(client, name)
}

#[tokio::test]
async fn writes_are_conditional_on_the_version_read() {
    let store = table().await;
    let p = Policy::default();
    let fresh = store.load("robots-index").await.unwrap();
    assert_eq!((fresh.status, fresh.version), (Status::Closed, 0));
    let a = fresh.trip(1_000, "a", &p, 0.0).unwrap();
    let b = fresh.trip(1_000, "b", &p, 0.0).unwrap();
    assert!(store.save(&a).await.unwrap(), "the first writer wins");
    assert!(
        !store.save(&b).await.unwrap(),
        "the second read the same version: refused"
    );
    let stored = store.load("robots-index").await.unwrap();
    assert_eq!(stored, a);
    let half = stored.acquire("probe", stored.open_until_ms, &p).unwrap();
    assert!(store.save(&half).await.unwrap());
    assert!(
        !store.save(&half).await.unwrap(),
        "the same version twice: refused"
    );
    // A version that skips one is refused too, even on a fresh item.
    let mut skip = State::new("missions-table");
    skip.version = 5;
    assert!(!store.save(&skip).await.unwrap());
    let all = store.list().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, Status::HalfOpen);
}

#[tokio::test]
async fn the_switch_pauses_and_resumes_every_mapping_of_a_function() {
    let sdk = sdk_config().await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let role = fleet_testkit::create_role(&unique_name("breaker-role")).await;
    let function = unique_name("breaker-fn");
    lambda
        .create_function()
        .function_name(&function)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .role(&role)
        .handler("bootstrap")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(
                    b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut uuids = Vec::new();
    for _ in 0..2 {
        let stream = unique_name("breaker-stream");
        kinesis
            .create_stream()
            .stream_name(&stream)
            .shard_count(1)
            .send()
            .await
            .unwrap();
        let arn = kinesis
            .describe_stream_summary()
            .stream_name(&stream)
            .send()
            .await
            .unwrap()
            .stream_description_summary
            .unwrap()
            .stream_arn;
        let m = lambda
            .create_event_source_mapping()
            .function_name(&function)
            .event_source_arn(arn)
            .starting_position(aws_sdk_lambda::types::EventSourcePosition::TrimHorizon)
            .send()
            .await
            .unwrap();
        uuids.push(m.uuid.unwrap());
    }
    let switch = LambdaSwitch::new(lambda.clone());
    let functions = vec![function.clone()];
    let before = switch.mappings(&functions).await.unwrap();
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|(_, on)| *on), "{before:?}");
    assert_eq!(switch.set_enabled(&functions, false).await.unwrap(), 2);
    assert!(
        switch
            .mappings(&functions)
            .await
            .unwrap()
            .iter()
            .all(|(_, on)| !on)
    );
    assert_eq!(
        switch.set_enabled(&functions, false).await.unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(switch.set_enabled(&functions, true).await.unwrap(), 2);
    for uuid in uuids {
        let m = lambda
            .get_event_source_mapping()
            .uuid(&uuid)
            .send()
            .await
            .unwrap();
        assert_eq!(m.state(), Some("Enabled"), "{uuid}");
    }
}
