//! `--cleanup`: delete the test things named `<prefix>-…` and their certificates from AWS IoT, so
//! a load test leaves no credentials behind.
//!
//! For each thing: detach every principal; a certificate no other thing uses is detached from its
//! policies, set INACTIVE and deleted; then the thing is deleted. Failures are collected, not
//! fatal, so one stuck certificate does not leave the other 9,999 things behind.

use aws_sdk_iot::types::CertificateStatus;

use crate::error::SimError;

/// What `--cleanup` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CleanupReport {
    /// Things deleted.
    pub things_deleted: u64,
    /// Certificates deactivated and deleted.
    pub certificates_deleted: u64,
    /// Policy attachments removed from those certificates.
    pub policies_detached: u64,
    /// What could not be removed, with the reason.
    pub errors: Vec<String>,
}

/// Thing names starting with `<prefix>-`.
pub async fn list_things(
    client: &aws_sdk_iot::Client,
    prefix: &str,
) -> Result<Vec<String>, SimError> {
    let want = format!("{prefix}-");
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_things()
            .max_results(250)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| SimError::aws("iot ListThings", e))?;
        for t in out.things() {
            if let Some(name) = t.thing_name()
                && name.starts_with(&want)
            {
                names.push(name.to_string());
            }
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(names)
}

/// Deletes every thing named `<prefix>-…` and the certificates only they used.
pub async fn delete_things(
    client: &aws_sdk_iot::Client,
    prefix: &str,
) -> Result<CleanupReport, SimError> {
    let mut report = CleanupReport::default();
    for thing in list_things(client, prefix).await? {
        let principals = match client
            .list_thing_principals()
            .thing_name(&thing)
            .send()
            .await
        {
            Ok(out) => out.principals().to_vec(),
            Err(e) => {
                report.errors.push(format!(
                    "{thing}: list principals: {}",
                    SimError::aws("iot", e)
                ));
                continue;
            }
        };
        for principal in principals {
            if let Err(e) = client
                .detach_thing_principal()
                .thing_name(&thing)
                .principal(&principal)
                .send()
                .await
            {
                report.errors.push(format!(
                    "{thing}: detach {principal}: {}",
                    SimError::aws("iot", e)
                ));
                continue;
            }
            if let Err(e) = delete_certificate_if_unused(client, &principal, &mut report).await {
                report.errors.push(format!("{principal}: {e}"));
            }
        }
        match client.delete_thing().thing_name(&thing).send().await {
            Ok(_) => report.things_deleted += 1,
            Err(e) => report
                .errors
                .push(format!("{thing}: delete: {}", SimError::aws("iot", e))),
        }
    }
    Ok(report)
}

async fn delete_certificate_if_unused(
    client: &aws_sdk_iot::Client,
    principal: &str,
    report: &mut CleanupReport,
) -> Result<(), SimError> {
    let Some(cert_id) = principal
        .rsplit_once(":cert/")
        .map(|(_, id)| id.to_string())
    else {
        return Ok(());
    };
    let still_used = client
        .list_principal_things()
        .principal(principal)
        .send()
        .await
        .map_err(|e| SimError::aws("iot ListPrincipalThings", e))?;
    if !still_used.things().is_empty() {
        return Ok(());
    }
    let policies = client
        .list_attached_policies()
        .target(principal)
        .send()
        .await
        .map_err(|e| SimError::aws("iot ListAttachedPolicies", e))?;
    for p in policies.policies() {
        if let Some(name) = p.policy_name() {
            client
                .detach_policy()
                .policy_name(name)
                .target(principal)
                .send()
                .await
                .map_err(|e| SimError::aws("iot DetachPolicy", e))?;
            report.policies_detached += 1;
        }
    }
    client
        .update_certificate()
        .certificate_id(&cert_id)
        .new_status(CertificateStatus::Inactive)
        .send()
        .await
        .map_err(|e| SimError::aws("iot UpdateCertificate", e))?;
    client
        .delete_certificate()
        .certificate_id(&cert_id)
        .send()
        .await
        .map_err(|e| SimError::aws("iot DeleteCertificate", e))?;
    report.certificates_deleted += 1;
    Ok(())
}
