//! The OpenSearch robots index (docs/architecture.md §3).
//!
//! Every batch becomes one `_bulk` request of `index` actions with `version_type=external`, sent
//! to the `robots` alias. Each item is classified as Vector classifies bulk items: 2xx written,
//! 409 stale or duplicate (success), 429 and 5xx retried (only those items) with backoff, any
//! other 4xx permanent. A cold start installs the index template from `opensearch/` and the first
//! index behind the alias when they are missing.

use std::collections::HashMap;

use bytes::Bytes;
use fleet_lambda::Deadline;
use serde::Deserialize;
use serde_json::Value;

use crate::error::IndexError;
use crate::retry::Backoff;
use crate::sigv4::Signer;

/// One document to index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDoc {
    /// Document id (`<thing>`, `<thing>#<shadow>`, `<thing>#presence`).
    pub id: String,
    /// External version: a write with a version not above the stored one is refused (409).
    pub version: u64,
    /// The document body.
    pub source: Value,
}

/// What became of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// Written.
    Indexed,
    /// A version at least as new is already indexed (409): a duplicate or stale update.
    Stale,
    /// Still failing with 429/5xx (or OpenSearch unreachable) after the retries: Lambda retries.
    Retry(String),
    /// Refused for good (a 4xx other than 409/429): dead-letter it.
    Permanent(String),
}

/// Writes robot documents to OpenSearch.
#[derive(Debug, Clone)]
pub struct RobotIndex {
    http: reqwest::Client,
    endpoint: String,
    alias: String,
    signer: Option<Signer>,
    backoff: Backoff,
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

impl RobotIndex {
    /// An index client writing through `alias` at `endpoint`; requests are signed when `signer`
    /// is given (see [`Signer::required_for`]).
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        alias: impl Into<String>,
        signer: Option<Signer>,
    ) -> Self {
        RobotIndex {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            alias: alias.into(),
            signer,
            backoff: Backoff::default(),
        }
    }

    /// Replaces the retry policy.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The alias written to.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(Bytes, &str)>,
    ) -> Result<(u16, Vec<u8>), IndexError> {
        let url = format!("{}{}", self.endpoint, path);
        let mut request = self.http.request(method.clone(), &url);
        if let Some((bytes, content_type)) = &body {
            // `Bytes` is shared, not copied: a 1,000-document bulk body is about 1 MB.
            request = request
                .header("content-type", *content_type)
                .body(bytes.clone());
        }
        if let Some(signer) = &self.signer {
            let host = url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default()
                .to_string();
            let content_type = body.as_ref().map_or("application/json", |(_, c)| *c);
            let headers = [("host", host.as_str()), ("content-type", content_type)];
            for (k, v) in signer
                .headers(
                    method.as_str(),
                    &url,
                    &headers,
                    body.as_ref().map_or(&[][..], |(b, _)| &b[..]),
                )
                .await?
            {
                request = request.header(k, v);
            }
        }
        let response = request.send().await.map_err(|e| IndexError::Unavailable {
            status: 0,
            message: crate::error::chain(&e),
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| IndexError::Unavailable {
                status,
                message: crate::error::chain(&e),
            })?;
        Ok((status, bytes.to_vec()))
    }

    /// Installs the index template (named after the alias, adapted to it by
    /// [`template_for_alias`]) if it is missing, then the first index (`<alias>-v1`) if the alias
    /// does not exist yet. Returns whether anything was created. Safe to race with another cold
    /// start.
    pub async fn ensure_template(&self, template: &Value) -> Result<bool, IndexError> {
        let template = template_for_alias(template, &self.alias);
        let mut created = false;
        let path = format!("/_index_template/{}", self.alias);
        let (status, body) = self.request(reqwest::Method::GET, &path, None).await?;
        match status {
            200 => {}
            404 => {
                let bytes = serde_json::to_vec(&template).unwrap_or_default();
                let (status, body) = self
                    .request(
                        reqwest::Method::PUT,
                        &path,
                        Some((Bytes::from(bytes), "application/json")),
                    )
                    .await?;
                check(status, &body)?;
                created = true;
            }
            _ => check(status, &body)?,
        }
        let (status, body) = self
            .request(
                reqwest::Method::HEAD,
                &format!("/_alias/{}", self.alias),
                None,
            )
            .await?;
        match status {
            200 => {}
            404 => {
                let index = format!("/{}-v1", self.alias);
                let (status, body) = self
                    .request(
                        reqwest::Method::PUT,
                        &index,
                        Some((Bytes::from_static(b"{}"), "application/json")),
                    )
                    .await?;
                let raced = status == 400
                    && String::from_utf8_lossy(&body).contains("resource_already_exists");
                if !raced {
                    check(status, &body)?;
                    created = true;
                }
            }
            _ => check(status, &body)?,
        }
        Ok(created)
    }

    /// Indexes `docs` in one `_bulk` request, retrying the items that got 429/5xx until they
    /// succeed, the attempts run out or the deadline nears. One result per doc, in order.
    pub async fn bulk(&self, docs: &[IndexDoc], deadline: Deadline) -> Vec<ItemResult> {
        let mut results: Vec<Option<ItemResult>> = vec![None; docs.len()];
        let mut pending: Vec<usize> = (0..docs.len()).collect();
        let mut attempt = 0;
        // Each round sends the documents that still need it: all of them at first, then only
        // those whose item (or whole request) got 429/5xx or no answer.
        while !pending.is_empty() {
            let batch: Vec<&IndexDoc> = pending.iter().map(|&i| &docs[i]).collect();
            let round = self.send_bulk(&batch).await;
            attempt += 1;
            let next = self.backoff.next_delay(attempt, deadline);
            let last = next.is_none();
            let mut again = Vec::new();
            for (&i, item) in pending.iter().zip(round) {
                match item {
                    ItemResult::Retry(_) if !last => again.push(i),
                    other => results[i] = Some(other),
                }
            }
            if let (false, Some(sleep)) = (again.is_empty(), next) {
                tracing::debug!(
                    items = again.len(),
                    attempt,
                    "retrying bulk items that got 429/5xx"
                );
                tokio::time::sleep(sleep).await;
            }
            pending = again;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| ItemResult::Retry("no result for this item".into())))
            .collect()
    }

    /// One `_bulk` request: a result per document. A whole-request failure gives every
    /// document the same result (429/5xx or unreachable: retry; other statuses, or a response
    /// that can't be read: permanent).
    async fn send_bulk(&self, batch: &[&IndexDoc]) -> Vec<ItemResult> {
        let body = Bytes::from(bulk_body(&self.alias, batch));
        let all = |r: ItemResult| vec![r; batch.len()];
        match self
            .request(
                reqwest::Method::POST,
                "/_bulk",
                Some((body, "application/x-ndjson")),
            )
            .await
        {
            Ok((status, bytes)) if (200..300).contains(&status) => {
                parse_bulk(&bytes, batch.len()).unwrap_or_else(|e| all(ItemResult::Permanent(e)))
            }
            Ok((status, bytes)) if status == 429 || status >= 500 => all(ItemResult::Retry(
                format!("bulk request got {status}: {}", snippet(&bytes)),
            )),
            Ok((status, bytes)) => all(ItemResult::Permanent(format!(
                "bulk request refused with {status}: {}",
                snippet(&bytes)
            ))),
            Err(e) => all(ItemResult::Retry(e.to_string())),
        }
    }
}

/// The index template from `opensearch/robots-template.json`, pointed at `alias`: its index
/// pattern becomes `<alias>-*` and its alias `alias`. With the default alias `robots` it is the
/// file unchanged; another alias (a second stack, a test) gets its own indices.
pub fn template_for_alias(template: &Value, alias: &str) -> Value {
    let mut t = template.clone();
    if let Some(obj) = t.as_object_mut() {
        obj.insert(
            "index_patterns".into(),
            serde_json::json!([format!("{alias}-*")]),
        );
        if let Some(inner) = obj.get_mut("template").and_then(Value::as_object_mut) {
            inner.insert("aliases".into(), serde_json::json!({ alias: {} }));
        }
    }
    t
}

/// The NDJSON body of a `_bulk` request: one `index` action with an external version per doc.
pub fn bulk_body(alias: &str, docs: &[&IndexDoc]) -> Vec<u8> {
    let mut body = Vec::with_capacity(docs.len() * 700);
    for doc in docs {
        let action = serde_json::json!({
            "index": {"_index": alias, "_id": doc.id, "version": doc.version, "version_type": "external"}
        });
        // Serialising a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, &action);
        body.push(b'\n');
        let _ = serde_json::to_writer(&mut body, &doc.source);
        body.push(b'\n');
    }
    body
}

/// Classifies the items of a bulk response; `Err` when the response can't be read.
fn parse_bulk(bytes: &[u8], expected: usize) -> Result<Vec<ItemResult>, String> {
    let response: BulkResponse = serde_json::from_slice(bytes)
        .map_err(|e| format!("unreadable bulk response ({e}): {}", snippet(bytes)))?;
    if response.items.len() != expected {
        return Err(format!(
            "bulk response has {} items for {expected} documents",
            response.items.len()
        ));
    }
    let _ = response.errors;
    Ok(response
        .items
        .into_iter()
        .map(|mut item| match item.drain().next() {
            Some((_, item)) => classify_item(item.status, item.error.as_ref()),
            None => ItemResult::Retry("empty bulk item".into()),
        })
        .collect())
}

/// 2xx written, 409 stale, 429/5xx retry, other 4xx permanent.
pub fn classify_item(status: u16, error: Option<&Value>) -> ItemResult {
    let reason = || {
        error
            .map(|e| {
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
                let why = e.get("reason").and_then(Value::as_str).unwrap_or_default();
                format!("{status} {kind}: {why}")
            })
            .unwrap_or_else(|| status.to_string())
    };
    match status {
        200..=299 => ItemResult::Indexed,
        409 => ItemResult::Stale,
        429 | 500..=599 => ItemResult::Retry(reason()),
        _ => ItemResult::Permanent(reason()),
    }
}

fn check(status: u16, body: &[u8]) -> Result<(), IndexError> {
    match status {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(IndexError::Unavailable {
            status,
            message: snippet(body),
        }),
        _ => Err(IndexError::Refused {
            status,
            message: snippet(body),
        }),
    }
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bulk_body_is_ndjson_with_external_versions() {
        let doc = IndexDoc {
            id: "rb-1#\"x\"".into(),
            version: 42,
            source: json!({"a": 1}),
        };
        let body = String::from_utf8(bulk_body("robots", &[&doc])).unwrap();
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 2);
        let action: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(action["index"]["_id"], "rb-1#\"x\"");
        assert_eq!(action["index"]["version"], 42);
        assert_eq!(action["index"]["version_type"], "external");
        assert_eq!(action["index"]["_index"], "robots");
        assert!(body.ends_with('\n'));
    }

    #[test]
    fn items_are_classified_like_vector_does() {
        assert_eq!(classify_item(201, None), ItemResult::Indexed);
        assert_eq!(classify_item(409, None), ItemResult::Stale);
        assert!(matches!(classify_item(429, None), ItemResult::Retry(_)));
        assert!(matches!(classify_item(503, None), ItemResult::Retry(_)));
        let e = json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [lastSeenAt]"});
        match classify_item(400, Some(&e)) {
            ItemResult::Permanent(why) => {
                assert!(why.contains("mapper_parsing_exception"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bulk_response_with_the_wrong_item_count_is_an_error() {
        let body = br#"{"errors":false,"items":[{"index":{"status":201}}]}"#;
        assert!(parse_bulk(body, 2).is_err());
        assert_eq!(parse_bulk(body, 1).unwrap(), vec![ItemResult::Indexed]);
    }
}
