//! SigV4 signing of OpenSearch requests, for AWS-managed domains only.
//!
//! A plain local endpoint (osmem-server, a self-hosted cluster) needs no signing; an
//! `*.amazonaws.com` endpoint gets every request signed for the `es` service with the function's
//! role credentials, taken fresh from the provider each time (it caches and refreshes them).

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
        Signer {
            credentials,
            region: region.into(),
            service: "es",
        }
    }

    /// Whether `endpoint` is an AWS-managed domain that requires signing.
    pub fn required_for(endpoint: &str) -> bool {
        let host = endpoint
            .split("://")
            .nth(1)
            .unwrap_or(endpoint)
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    #[test]
    fn only_aws_domains_are_signed() {
        assert!(Signer::required_for(
            "https://search-robots-abc.us-east-1.es.amazonaws.com"
        ));
        assert!(Signer::required_for(
            "https://search-robots-abc.us-east-1.es.amazonaws.com:443/"
        ));
        assert!(!Signer::required_for("http://127.0.0.1:9200"));
        assert!(!Signer::required_for("https://opensearch.internal.example"));
        assert!(!Signer::required_for("https://amazonaws.com.evil.example"));
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
