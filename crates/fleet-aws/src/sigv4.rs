//! SigV4 signing of hand-made HTTP requests: OpenSearch (the `es` service), and the few calls
//! the local stack makes without an SDK client (IAM's query API).
//!
//! Whether a request is signed depends on one thing: whether the function has credentials. It
//! never depends on the endpoint's host name, so the local stack (whose AWS front checks
//! signatures as the OpenSearch Service does) takes the same path as AWS. Credentials are taken
//! fresh from the provider each time (it caches and refreshes them). The caller passes exactly
//! the headers it sends; a header signed but not sent would make AWS answer 403
//! SignatureDoesNotMatch.

use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::error::IndexError;

/// Signs requests to an AWS OpenSearch domain.
#[derive(Debug, Clone)]
pub struct Signer {
    credentials: SharedCredentialsProvider,
    region: String,
    service: &'static str,
}

impl Signer {
    /// A signer for the `es` service (OpenSearch Service domains) in `region`.
    pub fn new(credentials: SharedCredentialsProvider, region: impl Into<String>) -> Self {
        Self::for_service(credentials, region, "es")
    }

    /// A signer for `service` (the signing name, such as `iam`) in `region`.
    pub fn for_service(
        credentials: SharedCredentialsProvider,
        region: impl Into<String>,
        service: &'static str,
    ) -> Self {
        Signer {
            credentials,
            region: region.into(),
            service,
        }
    }

    /// The headers to add to a request that carries `host` (from `url`) and, when given,
    /// `content-type`, and nothing else the signature must cover: exactly the headers sent.
    pub async fn headers_for(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, IndexError> {
        let host = host_of(url);
        let mut headers = vec![("host", host)];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        self.headers(method, url, &headers, body).await
    }

    /// The headers to add to a request (`authorization`, `x-amz-date`, and the security token
    /// when the credentials carry one).
    pub async fn headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, IndexError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| IndexError::Signing(e.to_string()))?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| IndexError::Signing(e.to_string()))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| IndexError::Signing(e.to_string()))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| IndexError::Signing(e.to_string()))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// The authority of `url` (`host` or `host:port`): the `host` header a client sends.
pub fn host_of(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    #[test]
    fn the_host_is_the_authority_of_the_url() {
        assert_eq!(host_of("http://127.0.0.1:9200/_bulk?x=1"), "127.0.0.1:9200");
        assert_eq!(
            host_of("https://search-x.es.amazonaws.com"),
            "search-x.es.amazonaws.com"
        );
        assert_eq!(host_of("not a url"), "");
    }

    #[tokio::test]
    async fn signed_headers_carry_the_sigv4_authorization() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
        let signer = Signer::new(SharedCredentialsProvider::new(creds), "us-east-1");
        let headers = signer
            .headers(
                "POST",
                "https://search-x.us-east-1.es.amazonaws.com/_bulk",
                &[
                    ("host", "search-x.us-east-1.es.amazonaws.com"),
                    ("content-type", "application/x-ndjson"),
                ],
                b"{}\n",
            )
            .await
            .unwrap();
        let auth = headers.iter().find(|(k, _)| k == "authorization").unwrap();
        assert!(
            auth.1
                .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{}",
            auth.1
        );
        assert!(auth.1.contains("/us-east-1/es/aws4_request"), "{}", auth.1);
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "x-amz-security-token" && v == "token")
        );
        assert!(headers.iter().any(|(k, _)| k == "x-amz-date"));
    }
}
