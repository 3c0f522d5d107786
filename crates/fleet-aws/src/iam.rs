//! IAM's query API, for the few calls the local stack and its tests make without an IAM SDK
//! client (the workspace has none: one `CreateRole` per role does not pay for a whole SDK crate).
//! Requests are SigV4-signed like any other: the local stack's AWS front verifies them.

use crate::sigv4::Signer;

/// The trust policy of a role Lambda assumes.
pub const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Creates the role `name` with the trust policy `trust` at `endpoint`, signed with the
/// credentials of `sdk`. An existing role is fine. Errors say what IAM answered.
pub async fn create_role(
    sdk: &aws_config::SdkConfig,
    endpoint: &str,
    region: &str,
    name: &str,
    trust: &str,
) -> Result<(), String> {
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let body = form_body(&[
        ("Action", "CreateRole"),
        ("Version", "2010-05-08"),
        ("RoleName", name),
        ("AssumeRolePolicyDocument", trust),
    ]);
    let credentials = sdk
        .credentials_provider()
        .ok_or("the sdk config has no credentials to sign with")?;
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signed = Signer::for_service(credentials, region, "iam")
        .headers_for("POST", &url, Some(content_type), body.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut request = reqwest::Client::new()
        .post(&url)
        .header("content-type", content_type)
        .body(body);
    for (k, v) in signed {
        request = request.header(k, v);
    }
    let resp = request.send().await.map_err(|e| crate::error::chain(&e))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() || text.contains("EntityAlreadyExists") {
        return Ok(());
    }
    Err(format!(
        "CreateRole {name}: status {status}: {}",
        text.chars().take(300).collect::<String>()
    ))
}

/// `application/x-www-form-urlencoded` body.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_percent_encoded() {
        assert_eq!(
            form_body(&[("A", "x y"), ("B", "{\"k\":1}")]),
            "A=x%20y&B=%7B%22k%22%3A1%7D"
        );
    }
}
