//! The mission store against moto over real HTTP, one fresh table per test.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use fleet_aws::error::Failure;
use fleet_aws::{MissionStore, PutOutcome, StoreError};
use fleet_core::MissionReport;
use fleet_lambda::Deadline;
use fleet_testkit::{sdk_config, tables::create_missions_table, unique_name};

fn report(robot: &str, mission: &str, rev: u32, status: &str) -> MissionReport {
    MissionReport::from_json(
        format!(
            r#"{{"schema":1,"robotId":"{robot}","missionId":"{mission}","rev":{rev},
            "status":"{status}","startedAt":"2026-11-23T15:00:04Z","endedAt":"2026-11-23T15:41:10Z",
            "areaM2":{area},"durationS":2466,"battery":{{"start":100,"end":37}},"errors":[]}}"#,
            area = 10 * rev
        )
        .as_bytes(),
    )
    .unwrap()
}

async fn store() -> (MissionStore, aws_sdk_dynamodb::Client, String) {
    let sdk = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique_name("missions");
    create_missions_table(&client, &table).await;
    (
        MissionStore::new(client.clone(), &table, 30, 8),
        client,
        table,
    )
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

async fn items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    client
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items()
        .to_vec()
}

#[tokio::test]
async fn the_same_report_twice_gives_one_item() {
    let (store, client, table) = store().await;
    let r = report("rb-1", "01JD3Z8X6Y7ZQ4W5V6T7S8R9PQ", 1, "completed");
    assert_eq!(store.put(&r, deadline()).await.unwrap(), PutOutcome::Stored);
    assert_eq!(
        store.put(&r, deadline()).await.unwrap(),
        PutOutcome::DuplicateOrStale
    );
    let items = items(&client, &table).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["rev"], AttributeValue::N("1".into()));
}

#[tokio::test]
async fn rev_3_then_rev_2_leaves_rev_3() {
    let (store, client, table) = store().await;
    let m = "01JD3Z8X6Y7ZQ4W5V6T7S8R9PR";
    assert_eq!(
        store
            .put(&report("rb-2", m, 3, "completed"), deadline())
            .await
            .unwrap(),
        PutOutcome::Stored
    );
    assert_eq!(
        store
            .put(&report("rb-2", m, 2, "cancelled"), deadline())
            .await
            .unwrap(),
        PutOutcome::DuplicateOrStale
    );
    let items = items(&client, &table).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["rev"], AttributeValue::N("3".into()));
    assert_eq!(items[0]["status"], AttributeValue::S("completed".into()));
    assert_eq!(items[0]["areaM2"], AttributeValue::N("30".into()));
}

#[tokio::test]
async fn a_richer_rev_replaces_the_older_one() {
    let (store, client, table) = store().await;
    let m = "01JD3Z8X6Y7ZQ4W5V6T7S8R9PS";
    store
        .put(&report("rb-3", m, 1, "completed"), deadline())
        .await
        .unwrap();
    assert_eq!(
        store
            .put(&report("rb-3", m, 2, "completed"), deadline())
            .await
            .unwrap(),
        PutOutcome::Stored
    );
    let items = items(&client, &table).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["rev"], AttributeValue::N("2".into()));
}

#[tokio::test]
async fn missions_are_queryable_by_day_through_the_sharded_gsi() {
    let (store, client, table) = store().await;
    let robots: Vec<String> = (0..20).map(|i| format!("rb-{i:03}")).collect();
    for (i, robot) in robots.iter().enumerate() {
        let mission = format!("01JD3Z8X6Y7ZQ4W5V6T7S8R{i:03}");
        store
            .put(&report(robot, &mission, 1, "completed"), deadline())
            .await
            .unwrap();
    }
    let mut found = 0;
    let mut shards_used = 0;
    for shard in 0..8 {
        let out = client
            .query()
            .table_name(&table)
            .index_name("byDay")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", AttributeValue::S(format!("DAY#2026-11-23#{shard}")))
            .send()
            .await
            .unwrap();
        found += out.count();
        shards_used += usize::from(out.count() > 0);
    }
    assert_eq!(
        found, 20,
        "every mission is found by reading the day's shards"
    );
    assert!(shards_used > 1, "20 robots spread over more than one shard");
}

#[tokio::test]
async fn a_missing_table_is_a_deployment_mistake_and_is_retried() {
    // Defect 6: ResourceNotFound is the deployment's fault, not the record's: the record must
    // wait in the stream (retry), never be dead-lettered (reject).
    let sdk = sdk_config().await;
    let store = MissionStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        unique_name("no-such-table"),
        0,
        4,
    );
    let err = store
        .put(
            &report("rb-4", "01JD3Z8X6Y7ZQ4W5V6T7S8R9PT", 1, "completed"),
            Deadline::after(Duration::from_secs(2)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Retry {
                failure: Failure::Configuration,
                ..
            }
        ),
        "{err}"
    );
}
