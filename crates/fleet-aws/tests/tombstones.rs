//! Robot tombstones against moto over real HTTP (through the AWS front), one fresh table per
//! test.

#![allow(clippy::unwrap_used)]

use fleet_aws::tombstones::{Mode, Tombstone, Tombstones, is_purged};
use fleet_testkit::{sdk_config, tables::create_table, unique_name};
use serde_json::json;

fn tombstone(robot: &str, mode: Mode, at: i64) -> Tombstone {
    Tombstone {
        robot_id: robot.into(),
        mode,
        state: "purging".into(),
        requested_at_ms: at,
        caller: "arn:aws:sts::123456789012:assumed-role/ops/me".into(),
        counts: serde_json::Value::Null,
        reason: None,
    }
}

#[tokio::test]
async fn one_tombstone_per_robot_cutoffs_over_many_robots_and_an_ordered_audit_trail() {
    let sdk = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique_name("tombstones");
    create_table(&client, &table, "robotId", Some("sk")).await;
    let t = Tombstones::new(client, &table);

    // The first request writes; the second finds the first (no overwrite of mode or instant).
    assert_eq!(
        t.create(&tombstone("rb-1", Mode::Decommission, 1_000))
            .await
            .unwrap(),
        None
    );
    let existing = t
        .create(&tombstone("rb-1", Mode::Reset, 9_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (existing.mode, existing.requested_at_ms),
        (Mode::Decommission, 1_000)
    );
    assert_eq!(
        t.create(&tombstone("rb-7", Mode::Reset, 5_000))
            .await
            .unwrap(),
        None
    );

    // Cutoffs of a batch of 250 robots (three BatchGetItem calls), two of them tombstoned.
    let robots: Vec<String> = (0..250).map(|k| format!("rb-{k}")).collect();
    let refs: Vec<&str> = robots.iter().map(String::as_str).collect();
    let cutoffs = t.cutoffs(&refs).await.unwrap();
    assert_eq!(cutoffs.len(), 2, "{cutoffs:?}");
    assert!(
        is_purged(&cutoffs, "rb-1", i64::MAX - 1),
        "a decommission is forever"
    );
    assert!(is_purged(&cutoffs, "rb-7", 5_000) && !is_purged(&cutoffs, "rb-7", 5_001));
    assert!(!is_purged(&cutoffs, "rb-2", 0));

    // The purge's end, then the audit trail in order.
    let counts = json!({"missions": 3, "indexDocuments": 4, "shadows": 2, "certificates": 1});
    t.finish("rb-1", "done", &counts, None).await.unwrap();
    let done = t.get("rb-1").await.unwrap().unwrap();
    assert_eq!(
        (done.state.as_str(), done.counts.clone()),
        ("done", counts.clone())
    );
    t.finish(
        "rb-7",
        "failed",
        &serde_json::Value::Null,
        Some("the index did not answer"),
    )
    .await
    .unwrap();
    assert_eq!(
        t.get("rb-7").await.unwrap().unwrap().reason.as_deref(),
        Some("the index did not answer")
    );
    for event in ["requested", "purged"] {
        t.audit("rb-1", event, &json!({"n": 1})).await.unwrap();
    }
    let trail = t.audits("rb-1").await.unwrap();
    let events: Vec<&str> = trail.iter().map(|a| a["event"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["requested", "purged"]);
    assert_eq!(t.get("rb-2").await.unwrap(), None);
}
