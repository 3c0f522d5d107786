//! The verifier's accounting against the real stand-ins (moto for DynamoDB and SQS, osmem for
//! OpenSearch). The stores are seeded by the test (not by the pipeline) so that every case the
//! verifier must recognise is present exactly once: stored, lost, stored below its last rev,
//! extra, stale, missing from the index, duplicate and foreign rejects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use fleet_sim::ledger::RobotLedger;
use fleet_sim::verify::Verifier;
use fleet_sim::{MqttTarget, Targets};
use serde_json::json;

async fn table(sdk: &aws_config::SdkConfig) -> (aws_sdk_dynamodb::Client, String) {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let name = fleet_testkit::unique_name("sim-missions");
    fleet_testkit::tables::create_table(&ddb, &name, "pk", Some("sk")).await;
    (ddb, name)
}

async fn put(ddb: &aws_sdk_dynamodb::Client, table: &str, robot: &str, sk: &str, rev: u32) {
    ddb.put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(format!("ROBOT#{robot}")))
        .item("sk", AttributeValue::S(sk.to_string()))
        .item("rev", AttributeValue::N(rev.to_string()))
        .send()
        .await
        .unwrap();
}

fn ulid_now() -> String {
    ulid::Ulid::new().to_string()
}

#[tokio::test]
async fn verifier_counts_lost_extra_stale_and_rejects_in_the_real_stores() {
    let sdk = fleet_testkit::sdk_config().await;
    let (ddb, table_name) = table(&sdk).await;
    let os = fleet_testkit::opensearch_url();
    let index = fleet_testkit::unique_name("robots-sim");
    let alias = format!("{index}-alias");
    let http = fleet_testkit::opensearch();
    let r = http
        .call(
            reqwest::Method::PUT,
            &format!("/{index}"),
            Some(&json!({"aliases": {alias.clone(): {}}})),
        )
        .await
        .unwrap();
    assert!(r.is_success(), "{}", r.text());
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name(fleet_testkit::unique_name("sim-rejects"))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();

    let run_started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let prefix = fleet_testkit::unique_name("rb");
    let (a, b, c) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("{prefix}-c"),
    );
    let (m1, m2, m3, m4, m5) = (ulid_now(), ulid_now(), ulid_now(), ulid_now(), ulid_now());
    let t = "2026-11-23T15:00:04Z";

    // Robot a: m1 stored at rev 2 (ok), m2 never stored (lost), m3 stored twice under two keys
    // (one extra), and an item of this run nobody sent (extra).
    let mut la = RobotLedger::new(&a);
    la.report_flushed(&m1, t, 1);
    la.report_flushed(&m1, t, 2);
    la.report_flushed(&m2, t, 1);
    la.report_flushed(&m3, t, 1);
    la.final_version = Some(7);
    put(&ddb, &table_name, &a, &format!("MISSION#{t}#{m1}"), 2).await;
    put(&ddb, &table_name, &a, &format!("MISSION#{t}#{m3}"), 1).await;
    put(
        &ddb,
        &table_name,
        &a,
        &format!("MISSION#2026-11-23T15:00:05Z#{m3}"),
        1,
    )
    .await;
    put(&ddb, &table_name, &a, &format!("MISSION#{t}#{m5}"), 1).await;
    // An item of an earlier run: ignored.
    let old = ulid::Ulid::from_parts(1_000, 7).to_string();
    put(
        &ddb,
        &table_name,
        &a,
        &format!("MISSION#2026-01-01T00:00:00Z#{old}"),
        1,
    )
    .await;
    // Robot b: m4 sent at rev 2, stored at rev 1.
    let mut lb = RobotLedger::new(&b);
    lb.report_flushed(&m4, t, 1);
    lb.report_flushed(&m4, t, 2);
    lb.last_accepted_version = Some(4);
    put(&ddb, &table_name, &b, &format!("MISSION#{t}#{m4}"), 1).await;
    // Robot c: no missions; its shadow never reached the index.
    let mut lc = RobotLedger::new(&c);
    lc.final_version = Some(2);

    // Index: a is current (7), b is behind (3 < 4), c is missing. Presence docs do not count.
    for (id, version) in [(a.clone(), 7), (b.clone(), 3), (format!("{c}#presence"), 9)] {
        let r = http
            .call(
                reqwest::Method::PUT,
                &format!("/{index}/_doc/{}?refresh=true", id.replace('#', "%23")),
                Some(&json!({"docType": "shadow", "robotId": id, "version": version})),
            )
            .await
            .unwrap();
        assert!(r.is_success(), "{}", r.text());
    }

    // Rejects: three of ours, one retried copy, one of a robot outside this run.
    let envelope = |pk: &str, shard: &str, seq: &str, kind: &str| {
        json!({
            "function": "mission-ingest",
            "source": {"streamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/missions", "shardId": shard,
                       "sequenceNumber": seq, "partitionKey": pk, "approximateArrivalTimestamp": 1.0},
            "reason": {"kind": kind, "detail": "x"},
            "payloadBase64": "e30=",
            "rejectedAt": "2026-11-23T15:00:04Z"
        })
        .to_string()
    };
    for body in [
        envelope(&a, "shardId-0", "1", "bad_json"),
        envelope(&a, "shardId-0", "2", "robot_mismatch"),
        envelope(&a, "shardId-0", "2", "robot_mismatch"),
        // Same sequence number on another shard (moto numbers per shard): a different record.
        envelope(&b, "shardId-1", "2", "schema_violation"),
        envelope("someone-else", "shardId-0", "3", "bad_json"),
    ] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let targets = Targets {
        mqtt: MqttTarget::plain("127.0.0.1", 1),
        aws_endpoint: Some(fleet_testkit::aws_endpoint()),
        opensearch_url: Some(os.clone()),
        missions_table: Some(table_name.clone()),
        robots_alias: alias.clone(),
        rejects_queue_url: Some(queue_url.clone()),
        aws: Default::default(),
    };
    let v = Verifier::new(&targets).await.unwrap();
    let ledgers = [&la, &lb, &lc];
    let counts = v.missions(&ledgers, run_started_ms).await.unwrap();
    let mut total = fleet_sim::verify::MissionCounts::default();
    for c in &counts {
        total.add(c);
    }
    assert_eq!(total.expected, 4);
    assert_eq!(total.stored, 3);
    assert_eq!(total.lost, 1);
    assert_eq!(total.lost_revs, 1);
    assert_eq!(total.extra, 2);

    // The drain wait's key lookups agree: a lost one mission, b holds m4 below its last rev, c
    // expects none. d and e expect 120 each (two BatchGetItem chunks); e's last one is missing.
    let (d, e) = (format!("{prefix}-d"), format!("{prefix}-e"));
    let (mut ld, mut le) = (RobotLedger::new(&d), RobotLedger::new(&e));
    for i in 0..120 {
        let (md, me) = (ulid_now(), ulid_now());
        ld.report_flushed(&md, t, 1);
        le.report_flushed(&me, t, 1);
        put(&ddb, &table_name, &d, &format!("MISSION#{t}#{md}"), 1).await;
        if i < 119 {
            put(&ddb, &table_name, &e, &format!("MISSION#{t}#{me}"), 1).await;
        }
    }
    let stored = v.missions_stored(&[&la, &lb, &lc, &ld, &le]).await.unwrap();
    assert_eq!(stored, [false, false, true, true, false]);

    let (robots, stale) = v.robots(&ledgers).await.unwrap();
    assert_eq!((robots.expected, robots.indexed, robots.stale), (3, 2, 2));
    assert_eq!(
        stale.into_iter().collect::<HashSet<_>>(),
        HashSet::from([b.clone(), c.clone()])
    );

    let ours: HashSet<String> = [a.clone(), b.clone(), c.clone()].into();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let rejects = v.rejects(&ours, 3, deadline, false).await.unwrap();
    assert_eq!(rejects.found, 3);
    assert_eq!(rejects.by_kind.get("schema_violation"), Some(&1));
    assert_eq!(rejects.deduplicated, 1);
    assert_eq!(rejects.by_kind.get("bad_json"), Some(&1));
    assert_eq!(rejects.by_kind.get("robot_mismatch"), Some(&1));
    // Without --drain-rejects the messages are visible again for the next reader.
    let mut again = 0;
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        again += out.messages().len();
        if again >= 5 {
            break;
        }
    }
    assert_eq!(again, 5);
}
