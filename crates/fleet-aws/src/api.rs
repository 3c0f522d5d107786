//! A client of the fleet API (functions/fleet-api): requests signed with SigV4 for the
//! `execute-api` service, as the HTTP API's IAM authorization requires. The caller's identity
//! policy needs `execute-api:Invoke` on the routes it calls.

use aws_credential_types::provider::SharedCredentialsProvider;
use serde_json::Value;

use crate::sigv4::Signer;

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiReply {
    pub status: u16,
    pub content_type: String,
    /// The `Location` header (a created resource).
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl ApiReply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Calls one fleet API.
#[derive(Debug, Clone)]
pub struct FleetApiClient {
    http: reqwest::Client,
    base: String,
    signer: Signer,
}

impl FleetApiClient {
    /// The API at `base_url` (the stack's `FleetApiUrl` output), signing with `credentials` in
    /// `region`.
    pub fn new(
        base_url: &str,
        credentials: SharedCredentialsProvider,
        region: impl Into<String>,
    ) -> Self {
        FleetApiClient {
            http: reqwest::Client::new(),
            base: base_url.trim_end_matches('/').to_string(),
            signer: Signer::for_service(credentials, region, "execute-api"),
        }
    }

    /// The API at `base_url` with the credentials and region of `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, base_url: &str) -> Result<Self, String> {
        let credentials = sdk
            .credentials_provider()
            .ok_or("no AWS credentials: set a profile or AWS_ACCESS_KEY_ID")?;
        let region = sdk
            .region()
            .ok_or("no AWS region: set --region or AWS_REGION")?;
        Ok(Self::new(base_url, credentials, region.to_string()))
    }

    /// `method path_and_query`, with a JSON body when given (a raw body and its content type
    /// with [`send_raw`](Self::send_raw)).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<ApiReply, String> {
        let body = body.map(|b| (b.to_string().into_bytes(), "application/json"));
        self.send_raw(method, path_and_query, body).await
    }

    /// A request with any body.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<ApiReply, String> {
        let url = format!("{}{path_and_query}", self.base);
        let (bytes, content_type) = match &body {
            Some((b, ct)) => (b.as_slice(), Some(*ct)),
            None => (&[][..], None),
        };
        let headers = self
            .signer
            .headers_for(method.as_str(), &url, content_type, bytes)
            .await
            .map_err(|e| e.to_string())?;
        let mut request = self.http.request(method, &url);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct).body(bytes.to_vec());
        }
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::error::chain(&e)))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("{url}: {}", crate::error::chain(&e)))?
            .to_vec();
        Ok(ApiReply {
            status,
            content_type,
            location,
            body,
        })
    }
}
