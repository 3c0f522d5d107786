//! The OpenSearch robots index (docs/architecture.md §3).
//!
//! Every batch becomes one `_bulk` request of `index` actions with `version_type=external`, sent
//! to the `robots` alias with `require_alias`, so a write never creates an index. Each item is
//! classified as Vector classifies bulk items: 2xx written, 409 stale or duplicate (success),
//! 429 and 5xx retried (only those items) with backoff; 401 and 403 are retried too (a role the
//! security plugin refuses is the deployment's mistake, not the document's); any other 4xx is
//! about the document and permanent. A cold start installs the index template from
//! `opensearch/` and the first index behind the alias when they are missing, and so does a
//! bulk that finds the alias gone (a new, empty cluster).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use fleet_lambda::Deadline;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Failure, IndexError};
use crate::opensearch::OpenSearchHttp;
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

/// A document of a `_bulk` request: its action line and its source.
pub trait BulkDoc {
    /// The action line (`{"index": {...}}`, `{"create": {...}}`) writing through `alias`.
    fn action(&self, alias: &str) -> Value;
    /// The document.
    fn source(&self) -> &Value;
}

impl BulkDoc for IndexDoc {
    fn action(&self, alias: &str) -> Value {
        serde_json::json!({
            "index": {"_index": alias, "_id": self.id, "version": self.version, "version_type": "external", "require_alias": true}
        })
    }
    fn source(&self) -> &Value {
        &self.source
    }
}

/// What became of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// Written.
    Indexed,
    /// A version at least as new is already indexed (409): a duplicate or stale update.
    Stale,
    /// Still failing for a reason outside the document after the retries (429, 5xx, no answer,
    /// refused authentication, a missing alias): Lambda retries it.
    Retry {
        /// Why.
        failure: Failure,
        /// What OpenSearch said.
        reason: String,
    },
    /// Refused for good (a 4xx about the document, such as a mapping error): dead-letter it.
    Permanent(String),
}

/// The longest one request may take (the deadline permitting): a 500-document bulk request
/// takes well under a second on a healthy domain, so a request still unanswered after 10 s
/// counts as the domain being unavailable (and towards its circuit breaker) instead of holding
/// the invocation.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes robot documents to OpenSearch.
#[derive(Debug, Clone)]
pub struct RobotIndex {
    http: OpenSearchHttp,
    alias: String,
    backoff: Backoff,
    /// Longest a single request may take, deadline permitting.
    request_timeout: Duration,
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
    /// An index client writing through `alias` at `endpoint`; every request is SigV4-signed
    /// when `signer` is given (the function gives one whenever it has credentials, whatever the
    /// endpoint's host name: the local stand-in checks signatures as AWS does).
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        alias: impl Into<String>,
        signer: Option<Signer>,
    ) -> Self {
        Self::over(OpenSearchHttp::new(http, endpoint, signer), alias)
    }

    /// An index client writing through `alias` over an existing OpenSearch client (a tool's
    /// [`OpenSearchHttp::from_sdk`]).
    pub fn over(http: OpenSearchHttp, alias: impl Into<String>) -> Self {
        RobotIndex {
            http,
            alias: alias.into(),
            backoff: Backoff::default(),
            request_timeout: REQUEST_TIMEOUT,
        }
    }

    /// Replaces the retry policy.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Replaces the longest time one request may take (the deadline still bounds it).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The alias written to.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// One request, bounded by the deadline minus the backoff's reserve (and the longest time
    /// one request may take).
    pub(crate) async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(Bytes, &str)>,
        deadline: Deadline,
    ) -> Result<(u16, Vec<u8>), IndexError> {
        let budget = self
            .backoff
            .attempt_budget(deadline)
            .min(self.request_timeout);
        let reply = self.http.send(method, path, body, budget).await?;
        Ok((reply.status, reply.body))
    }

    /// Installs the index template (named after the alias, adapted to it by
    /// [`template_for_alias`]) if it is missing, then the first index (`<alias>-v1`) if the alias
    /// does not exist yet. Returns whether anything was created. Safe to race with another cold
    /// start, and to run again when a new, empty cluster has replaced the old one.
    pub async fn ensure_template(
        &self,
        template: &Value,
        deadline: Deadline,
    ) -> Result<bool, IndexError> {
        let template = template_for_alias(template, &self.alias);
        let mut created = false;
        let path = format!("/_index_template/{}", self.alias);
        let (status, body) = self
            .request(reqwest::Method::GET, &path, None, deadline)
            .await?;
        match status {
            200 => {}
            404 => {
                let bytes = serde_json::to_vec(&template).unwrap_or_default();
                let (status, body) = self
                    .request(
                        reqwest::Method::PUT,
                        &path,
                        Some((Bytes::from(bytes), "application/json")),
                        deadline,
                    )
                    .await?;
                check(status, &body)?;
                created = true;
            }
            _ => check(status, &body)?,
        }
        // Scoped to the alias itself, so a role limited to `<alias>` and `<alias>-*` may ask.
        let (status, body) = self
            .request(
                reqwest::Method::HEAD,
                &format!("/{0}/_alias/{0}", self.alias),
                None,
                deadline,
            )
            .await?;
        match status {
            200 => {}
            404 => {
                let index = format!("/{}-v1", self.alias);
                let first = Bytes::from(first_index_body(&self.alias).to_string());
                let (status, body) = self
                    .request(
                        reqwest::Method::PUT,
                        &index,
                        Some((first, "application/json")),
                        deadline,
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

    /// Indexes `docs` in one `_bulk` request, retrying the items that got 429/5xx (or no
    /// answer) until they succeed, the attempts run out or the deadline nears. Writes go to the
    /// alias only (`require_alias`): a write never creates an index. When the alias is missing,
    /// as on a new, empty cluster, the template and the alias are installed again from
    /// `template` and the items retried. One result per doc, in order.
    pub async fn bulk<D: BulkDoc>(
        &self,
        docs: &[D],
        template: &Value,
        deadline: Deadline,
    ) -> Vec<ItemResult> {
        let mut results: Vec<Option<ItemResult>> = vec![None; docs.len()];
        let mut pending: Vec<usize> = (0..docs.len()).collect();
        let mut attempt = 0;
        // Each round sends the documents that still need it: all of them at first, then only
        // those whose item (or whole request) got 429/5xx, no answer, or a missing alias.
        while !pending.is_empty() {
            let batch: Vec<&D> = pending.iter().map(|&i| &docs[i]).collect();
            let round = self.send_bulk(&batch, deadline).await;
            attempt += 1;
            let alias_missing = round.iter().any(|r| matches!(r, Round::AliasMissing));
            if alias_missing {
                match self.ensure_template(template, deadline).await {
                    Ok(_) => tracing::warn!(
                        alias = %self.alias,
                        "the robots alias was missing (a new cluster?): template and alias installed again"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "installing the robots alias again failed")
                    }
                }
            }
            let next = self.backoff.next_delay(attempt, deadline);
            let last = next.is_none();
            let mut again = Vec::new();
            for (&i, item) in pending.iter().zip(round) {
                match item {
                    Round::Done(result) => results[i] = Some(result),
                    Round::Again { .. } | Round::AliasMissing if !last => again.push(i),
                    Round::Again { failure, reason } => {
                        results[i] = Some(ItemResult::Retry { failure, reason })
                    }
                    Round::AliasMissing => {
                        results[i] = Some(ItemResult::Retry {
                            failure: Failure::Configuration,
                            reason: format!("the alias {} does not exist", self.alias),
                        })
                    }
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
            .map(|r| {
                r.unwrap_or_else(|| ItemResult::Retry {
                    failure: Failure::Unavailable,
                    reason: "no result for this item".into(),
                })
            })
            .collect()
    }

    /// One `_bulk` request: a result per document. A whole-request failure gives every
    /// document the same result: every status is retried (the request is ours, not a document's:
    /// a 401 or 403 is the deployment's mistake, a 429 or 5xx the cluster's state).
    async fn send_bulk<D: BulkDoc>(&self, batch: &[&D], deadline: Deadline) -> Vec<Round> {
        let body = Bytes::from(bulk_body(&self.alias, batch));
        let all = |r: Round| vec![r; batch.len()];
        match self
            .request(
                reqwest::Method::POST,
                "/_bulk?require_alias=true",
                Some((body, "application/x-ndjson")),
                deadline,
            )
            .await
        {
            Ok((status, bytes)) if (200..300).contains(&status) => parse_bulk(&bytes, batch.len())
                .unwrap_or_else(|reason| {
                    all(Round::Again {
                        failure: Failure::Unavailable,
                        reason,
                    })
                }),
            Ok((status, bytes)) => all(Round::Again {
                failure: Failure::of_http_status(status),
                reason: format!("bulk request got {status}: {}", snippet(&bytes)),
            }),
            // No answer at all: another round would only wait as long again. The records go
            // back to the stream now (and the timeout counts against the domain's breaker).
            Err(e @ IndexError::TimedOut { .. }) => all(Round::Done(ItemResult::Retry {
                failure: e.failure(),
                reason: e.to_string(),
            })),
            Err(e) => all(Round::Again {
                failure: e.failure(),
                reason: e.to_string(),
            }),
        }
    }
}

/// What one round of a bulk request says about one document.
#[derive(Debug, Clone)]
enum Round {
    /// Final.
    Done(ItemResult),
    /// Worth another round.
    Again { failure: Failure, reason: String },
    /// The alias is missing (`require_alias`): install it, then another round.
    AliasMissing,
}

/// The index template from `opensearch/robots-template.json`, pointed at `alias`: its index
/// pattern becomes `<alias>-*`. Another alias (a second stack, a test) gets its own indices.
/// The template adds no alias: an index joins the alias only when it is made for it (the first
/// index, [`first_index_body`]) or swapped in by `robofleet reindex`, so building
/// `<alias>-v(n+1)` never gives the alias a second index to write to.
pub fn template_for_alias(template: &Value, alias: &str) -> Value {
    let mut t = template.clone();
    if let Some(obj) = t.as_object_mut() {
        obj.insert(
            "index_patterns".into(),
            serde_json::json!([format!("{alias}-*")]),
        );
        if let Some(inner) = obj.get_mut("template").and_then(Value::as_object_mut) {
            inner.remove("aliases");
        }
    }
    t
}

/// The body that creates the first index of `alias` (`<alias>-v1`) behind the alias.
pub fn first_index_body(alias: &str) -> Value {
    serde_json::json!({ "aliases": { alias: {} } })
}

/// The NDJSON body of a `_bulk` request: each doc's action line and source (for an
/// [`IndexDoc`], an `index` action with its external version).
pub fn bulk_body<D: BulkDoc>(alias: &str, docs: &[&D]) -> Vec<u8> {
    let mut body = Vec::with_capacity(docs.len() * 700);
    for doc in docs {
        // Serialising a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, &doc.action(alias));
        body.push(b'\n');
        let _ = serde_json::to_writer(&mut body, doc.source());
        body.push(b'\n');
    }
    body
}

/// Classifies the items of a bulk response; `Err` when the response can't be read.
fn parse_bulk(bytes: &[u8], expected: usize) -> Result<Vec<Round>, String> {
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
            Some((_, item)) => classify_round(item.status, item.error.as_ref()),
            None => Round::Again {
                failure: Failure::Unavailable,
                reason: "empty bulk item".into(),
            },
        })
        .collect())
}

fn classify_round(status: u16, error: Option<&Value>) -> Round {
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    if status == 404 && kind == Some("index_not_found_exception") {
        return Round::AliasMissing;
    }
    match classify_item(status, error) {
        ItemResult::Retry { failure, reason } => Round::Again { failure, reason },
        done => Round::Done(done),
    }
}

/// 2xx written, 409 stale; 429 and 5xx retried, and so are 401 and 403 (the security plugin
/// refusing the role: the deployment's mistake, not the document's); any other 4xx is about the
/// document and permanent.
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
        401 | 403 | 429 | 500..=599 => ItemResult::Retry {
            failure: Failure::of_http_status(status),
            reason: reason(),
        },
        _ => ItemResult::Permanent(reason()),
    }
}

fn check(status: u16, body: &[u8]) -> Result<(), IndexError> {
    match status {
        200..=299 => Ok(()),
        _ => Err(IndexError::Failed {
            failure: Failure::of_http_status(status),
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
        assert_eq!(action["index"]["require_alias"], true);
        assert!(body.ends_with('\n'));
    }

    #[test]
    fn items_are_classified_like_vector_does() {
        assert_eq!(classify_item(201, None), ItemResult::Indexed);
        assert_eq!(classify_item(409, None), ItemResult::Stale);
        assert!(matches!(
            classify_item(429, None),
            ItemResult::Retry {
                failure: Failure::Throttled,
                ..
            }
        ));
        assert!(matches!(
            classify_item(503, None),
            ItemResult::Retry {
                failure: Failure::Unavailable,
                ..
            }
        ));
        // The security plugin refusing the role is the deployment's mistake: retried.
        assert!(matches!(
            classify_item(403, None),
            ItemResult::Retry {
                failure: Failure::Authentication,
                ..
            }
        ));
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
        assert!(matches!(
            parse_bulk(body, 1).unwrap().as_slice(),
            [Round::Done(ItemResult::Indexed)]
        ));
        let missing = br#"{"errors":true,"items":[{"index":{"status":404,"error":{"type":"index_not_found_exception","reason":"no such index [robots] and [require_alias] request flag is [true]"}}}]}"#;
        assert!(matches!(
            parse_bulk(missing, 1).unwrap().as_slice(),
            [Round::AliasMissing]
        ));
    }
}
