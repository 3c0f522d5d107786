//! HTTP to an OpenSearch domain, SigV4-signed whenever there are credentials: the one way the
//! functions, the tools and the tests talk to OpenSearch.
//!
//! A request carries `content-type` only with a body, and its signature covers exactly the
//! headers sent (`host`, and with a body `content-type`), plus the signer's own (`x-amz-date`,
//! `x-amz-content-sha256` is not used by `es`, the security token when there is one). Signing
//! depends only on having credentials, never on the endpoint's host name: the local stack's AWS
//! front checks signatures as the OpenSearch Service does.

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Failure, IndexError};
use crate::sigv4::Signer;

/// A domain endpoint and how to sign for it.
#[derive(Debug, Clone)]
pub struct OpenSearchHttp {
    http: reqwest::Client,
    endpoint: String,
    signer: Option<Signer>,
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// 2xx?
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON when the status is 2xx, else the status and the body as the error.
    pub fn ok_json(&self) -> Result<serde_json::Value, String> {
        if self.is_success() {
            Ok(self.json())
        } else {
            Err(format!("{} {}", self.status, self.text()))
        }
    }
}

impl OpenSearchHttp {
    /// Requests to `endpoint` through `http`, signed by `signer` when given.
    pub fn new(http: reqwest::Client, endpoint: &str, signer: Option<Signer>) -> Self {
        OpenSearchHttp {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            signer,
        }
    }

    /// Requests to `endpoint` signed with the credentials and region of `sdk` (unsigned when it
    /// has no credentials): what tools and tests use.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let signer = match (sdk.credentials_provider(), sdk.region()) {
            (Some(credentials), Some(region)) => Some(Signer::new(credentials, region.to_string())),
            _ => None,
        };
        Self::new(reqwest::Client::new(), endpoint, signer)
    }

    /// The endpoint, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether requests are signed.
    pub fn signs(&self) -> bool {
        self.signer.is_some()
    }

    /// One request, at most `timeout` long. `body` is the bytes and their content type.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(Bytes, &str)>,
        timeout: Duration,
    ) -> Result<Reply, IndexError> {
        if timeout.is_zero() {
            return Err(IndexError::Failed {
                failure: Failure::Unavailable,
                status: 0,
                message: "no time left before the deadline".into(),
            });
        }
        let url = format!("{}{}", self.endpoint, path);
        let mut request = self.http.request(method.clone(), &url).timeout(timeout);
        if let Some((bytes, content_type)) = &body {
            // `Bytes` is shared, not copied: a 1,000-document bulk body is about 1 MB.
            request = request
                .header("content-type", *content_type)
                .body(bytes.clone());
        }
        if let Some(signer) = &self.signer {
            for (k, v) in signer
                .headers_for(
                    method.as_str(),
                    &url,
                    body.as_ref().map(|(_, ct)| *ct),
                    body.as_ref().map_or(&[][..], |(b, _)| &b[..]),
                )
                .await?
            {
                request = request.header(k, v);
            }
        }
        let failed = |e: reqwest::Error, status: u16| {
            if e.is_timeout() {
                IndexError::TimedOut { after: timeout }
            } else {
                IndexError::Failed {
                    failure: Failure::Unavailable,
                    status,
                    message: crate::error::chain(&e),
                }
            }
        };
        let response = request.send().await.map_err(|e| failed(e, 0))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| failed(e, status))?;
        Ok(Reply {
            status,
            body: bytes.to_vec(),
        })
    }

    /// A request with a JSON body (or none), 30 s at most: for tools and tests.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<Reply, IndexError> {
        let body = json.map(|v| {
            (
                Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
                "application/json",
            )
        });
        self.send(method, path, body, Duration::from_secs(30)).await
    }
}
