//! The robots index against osmem-server over real HTTP, one fresh alias per test; and the
//! retry of 429 items against a scripted HTTP server (osmem never answers 429).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fleet_aws::retry::Backoff;
use fleet_aws::{IndexDoc, ItemResult, RobotIndex};
use fleet_lambda::Deadline;
use fleet_testkit::{developer_signer, opensearch, opensearch_url, unique_name};
use rand::seq::SliceRandom as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../opensearch/robots-template.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

async fn index() -> RobotIndex {
    let alias = unique_name("robots");
    let idx = RobotIndex::new(
        reqwest::Client::new(),
        &opensearch_url(),
        alias,
        Some(developer_signer()),
    );
    assert!(
        idx.ensure_template(&template(), deadline()).await.unwrap(),
        "first cold start installs"
    );
    assert!(
        !idx.ensure_template(&template(), deadline()).await.unwrap(),
        "second cold start finds it"
    );
    idx
}

async fn get(alias: &str, id: &str) -> Value {
    fleet_testkit::get_doc(&opensearch(), alias, id).await
}

#[tokio::test]
async fn shuffled_versions_leave_every_robot_at_its_highest_version() {
    let idx = index().await;
    let mut docs = Vec::new();
    for robot in 0..50 {
        for version in 1..=10u64 {
            docs.push(IndexDoc {
                id: format!("rb-{robot:03}"),
                version,
                source: json!({"docType": "shadow", "robotId": format!("rb-{robot:03}"), "version": version,
                               "reported": {"battery": 100 - version}}),
            });
        }
    }
    assert_eq!(docs.len(), 500);
    docs.shuffle(&mut rand::rng());
    let mut written = 0;
    let mut stale = 0;
    for chunk in docs.chunks(100) {
        for r in idx.bulk(chunk, &template(), deadline()).await {
            match r {
                ItemResult::Indexed => written += 1,
                ItemResult::Stale => stale += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(written + stale, 500);
    assert!(stale > 0, "shuffling must produce stale updates");
    for robot in 0..50 {
        let doc = get(idx.alias(), &format!("rb-{robot:03}")).await;
        assert_eq!(doc["_version"], 10, "{doc}");
        assert_eq!(doc["_source"]["version"], 10);
        assert_eq!(doc["_source"]["reported"]["battery"], 90);
    }
}

#[tokio::test]
async fn the_same_version_twice_is_stale_not_an_error() {
    let idx = index().await;
    let doc = IndexDoc {
        id: "rb-1#schedule".into(),
        version: 7,
        source: json!({"robotId": "rb-1", "shadowName": "schedule"}),
    };
    assert_eq!(
        idx.bulk(std::slice::from_ref(&doc), &template(), deadline())
            .await,
        vec![ItemResult::Indexed]
    );
    assert_eq!(
        idx.bulk(&[doc], &template(), deadline()).await,
        vec![ItemResult::Stale]
    );
    assert_eq!(
        get(idx.alias(), "rb-1#schedule").await["_source"]["shadowName"],
        "schedule"
    );
}

/// A one-route HTTP server that answers every `_bulk` with the scripted item statuses
/// (the first document gets `first`, every other one 201) and counts requests and documents.
async fn scripted_bulk_server(first: u16) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let docs_seen = Arc::new(AtomicUsize::new(0));
    let (r, d) = (requests.clone(), docs_seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (r, d) = (r.clone(), d.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Read headers, then the body by content-length.
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..pos]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        break (pos + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                let n_docs = body.lines().filter(|l| !l.is_empty()).count() / 2;
                r.fetch_add(1, Ordering::SeqCst);
                d.fetch_add(n_docs, Ordering::SeqCst);
                let items: Vec<Value> = (0..n_docs)
                    .map(|i| {
                        let is_first = body.lines().nth(i * 2).is_some_and(|l| l.contains("\"rb-first\""));
                        let status = if is_first { first } else { 201 };
                        if status == 201 { json!({"index": {"status": 201}}) }
                        else { json!({"index": {"status": status, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}}) }
                    })
                    .collect();
                let out = json!({"errors": true, "items": items}).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, requests, docs_seen)
}

#[tokio::test]
async fn a_429_item_is_retried_alone_then_reported_as_a_failure() {
    let (url, requests, docs_seen) = scripted_bulk_server(429).await;
    let backoff = Backoff {
        max_attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        reserve: Duration::ZERO,
    };
    let idx = RobotIndex::new(reqwest::Client::new(), &url, "robots", None).with_backoff(backoff);
    let docs = vec![
        IndexDoc {
            id: "rb-first".into(),
            version: 1,
            source: json!({}),
        },
        IndexDoc {
            id: "rb-2".into(),
            version: 1,
            source: json!({}),
        },
        IndexDoc {
            id: "rb-3".into(),
            version: 1,
            source: json!({}),
        },
    ];
    let results = idx.bulk(&docs, &template(), deadline()).await;
    assert!(
        matches!(&results[0], ItemResult::Retry { reason, .. } if reason.contains("429")),
        "{results:?}"
    );
    assert_eq!(results[1], ItemResult::Indexed);
    assert_eq!(results[2], ItemResult::Indexed);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "first request + 2 retries"
    );
    assert_eq!(
        docs_seen.load(Ordering::SeqCst),
        3 + 1 + 1,
        "retries carry only the 429 item"
    );
}

#[tokio::test]
async fn an_unreachable_cluster_makes_every_item_a_retry() {
    let port = fleet_testkit::free_port();
    let backoff = Backoff {
        max_attempts: 2,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(1),
        reserve: Duration::ZERO,
    };
    let idx = RobotIndex::new(
        reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}"),
        "robots",
        None,
    )
    .with_backoff(backoff);
    let docs = vec![IndexDoc {
        id: "rb-1".into(),
        version: 1,
        source: json!({}),
    }];
    let results = idx.bulk(&docs, &template(), deadline()).await;
    assert!(
        matches!(&results[0], ItemResult::Retry { .. }),
        "{results:?}"
    );
}

/// Defect 13: a new, empty cluster (the old one lost) must not get a concrete index named after
/// the alias. The bulk request requires the alias, finds it missing, installs the template and
/// `<alias>-v1` again, and the documents land behind the alias.
#[tokio::test]
async fn a_new_empty_cluster_gets_the_template_and_alias_again_not_a_concrete_index() {
    let idx = index().await;
    let alias = idx.alias().to_string();
    let os = opensearch();
    // The cluster is "replaced": index and template gone.
    for path in [format!("/{alias}-v1"), format!("/_index_template/{alias}")] {
        let reply = os.call(reqwest::Method::DELETE, &path, None).await.unwrap();
        assert!(reply.is_success(), "DELETE {path}: {}", reply.status);
    }
    let doc = IndexDoc {
        id: "rb-9".into(),
        version: 3,
        source: json!({"docType": "shadow", "robotId": "rb-9", "version": 3}),
    };
    assert_eq!(
        idx.bulk(&[doc], &template(), deadline()).await,
        vec![ItemResult::Indexed]
    );
    // The alias points at <alias>-v1, a real index made from the template.
    assert_eq!(
        fleet_testkit::alias_indices(&os, &alias).await,
        [format!("{alias}-v1")]
    );
    assert_eq!(get(&alias, "rb-9").await["_source"]["version"], 3);
    let template_status = os
        .call(
            reqwest::Method::GET,
            &format!("/_index_template/{alias}"),
            None,
        )
        .await
        .unwrap()
        .status;
    assert_eq!(template_status, 200);
}

/// A bulk request never creates an index: without an alias (and with no template to install,
/// as when the role may not), the documents are retried, and no index named like the alias
/// appears.
#[tokio::test]
async fn a_write_never_creates_an_index() {
    let alias = unique_name("robots");
    let idx = RobotIndex::new(
        reqwest::Client::new(),
        &opensearch_url(),
        &alias,
        Some(developer_signer()),
    )
    .with_backoff(Backoff {
        max_attempts: 2,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(1),
        reserve: Duration::ZERO,
    });
    // A template the cluster refuses, so the alias cannot be installed.
    let broken = json!("not an index template");
    let doc = IndexDoc {
        id: "rb-1".into(),
        version: 1,
        source: json!({"robotId": "rb-1"}),
    };
    let results = idx.bulk(&[doc], &broken, deadline()).await;
    assert!(
        matches!(&results[0], ItemResult::Retry { .. }),
        "{results:?}"
    );
    let status = opensearch()
        .call(reqwest::Method::GET, &format!("/{alias}"), None)
        .await
        .unwrap()
        .status;
    assert_eq!(status, 404, "a write created the index {alias}");
}

/// Defect 2: a signature must cover exactly the headers sent. Signing `content-type` on a
/// request that carries no body (and so no content-type) is what the indexer used to do for
/// `GET /_index_template/...` and `HEAD .../_alias/...`; the AWS front, like OpenSearch Service,
/// answers 403. The client signs what it sends and gets through.
#[tokio::test]
async fn a_request_signed_over_a_header_it_does_not_send_is_refused() {
    let alias = unique_name("robots");
    let url = format!("{}/_index_template/{alias}", opensearch_url());
    let host = fleet_aws::sigv4::host_of(&url).to_string();
    let signed = developer_signer()
        .headers(
            "GET",
            &url,
            &[
                ("host", host.as_str()),
                ("content-type", "application/json"),
            ],
            b"",
        )
        .await
        .unwrap();
    let mut request = reqwest::Client::new().get(&url);
    for (k, v) in &signed {
        request = request.header(k, v);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.to_lowercase().contains("signature"), "{body}");

    // Signed over exactly what is sent: allowed (the template does not exist: 404).
    let reply = opensearch()
        .call(
            reqwest::Method::GET,
            &format!("/_index_template/{alias}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 404, "{}", reply.text());
}

fn shadow_part(version: u64, battery: u64) -> (u64, Value) {
    (
        version,
        json!({"docType": "shadow", "version": version, "updatedAt": "2026-11-29T06:00:00Z",
               "reported": {"battery": battery, "status": "cleaning", "firmware": "3.4.2"}}),
    )
}

fn presence_part(version: u64, connected: bool) -> (u64, Value) {
    (
        version,
        json!({"docType": "presence", "connected": connected, "lastSeenAt": format!("2026-11-29T06:00:{:02}Z", version % 60)}),
    )
}

/// Robot summaries: parts in shuffled order from concurrent writers (each a batch of its own)
/// end with every robot at the newest of each part, none lost to a concurrent write.
#[tokio::test]
async fn concurrent_shuffled_summary_merges_keep_the_newest_of_each_part() {
    use fleet_aws::summary::{Parts, summary_id};
    let idx = Arc::new(index().await);
    let robots: Vec<String> = (0..10).map(|r| format!("rb-sum-{r}")).collect();
    // Versions 1..=8 of each part of each robot, one update per (robot, part, version).
    let mut updates: Vec<(String, Parts)> = Vec::new();
    for robot in &robots {
        for v in 1..=8u64 {
            updates.push((
                robot.clone(),
                Parts {
                    shadow: Some(shadow_part(v, v * 10)),
                    presence: None,
                },
            ));
            updates.push((
                robot.clone(),
                Parts {
                    shadow: None,
                    presence: Some(presence_part(100 + v, v % 2 == 0)),
                },
            ));
        }
    }
    updates.shuffle(&mut rand::rng());
    // Four writers at once, each sending one robot's update per call.
    let chunks: Vec<Vec<(String, Parts)>> = updates.chunks(40).map(<[_]>::to_vec).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let idx = idx.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for (robot, parts) in chunk {
                let one = std::collections::BTreeMap::from([(robot, parts)]);
                results.extend(
                    idx.merge_summaries(&one, &template(), deadline())
                        .await
                        .into_values(),
                );
            }
            results
        }));
    }
    for t in tasks {
        for r in t.await.unwrap() {
            assert!(
                matches!(r, ItemResult::Indexed | ItemResult::Stale),
                "{r:?}"
            );
        }
    }
    for robot in &robots {
        let doc = get(idx.alias(), &summary_id(robot)).await;
        let s = &doc["_source"];
        assert_eq!(s["docType"], "robot", "{doc}");
        assert_eq!(s["reported"]["battery"], 80, "{doc}");
        assert_eq!(s["version"], 8);
        assert_eq!(s["shadowPartVersion"], 8);
        assert_eq!(s["presencePartVersion"], 108);
        assert_eq!(s["connected"], true);
    }
}
