//! `--cleanup` against moto's IoT: things and certificates of the run go, others stay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_iot::types::CertificateStatus;

#[tokio::test]
async fn cleanup_deletes_the_runs_things_and_their_certificates_only() {
    let sdk = fleet_testkit::sdk_config().await;
    let iot = aws_sdk_iot::Client::new(&sdk);
    let prefix = fleet_testkit::unique_name("rbclean");
    let other = fleet_testkit::unique_name("keep");
    let policy = fleet_testkit::unique_name("sim-policy");
    iot.create_policy()
        .policy_name(&policy)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let mut cert_ids = Vec::new();
    for name in [
        format!("{prefix}-000000"),
        format!("{prefix}-000001"),
        format!("{other}-000000"),
    ] {
        iot.create_thing().thing_name(&name).send().await.unwrap();
        let cert = iot
            .create_keys_and_certificate()
            .set_as_active(true)
            .send()
            .await
            .unwrap();
        let arn = cert.certificate_arn().unwrap().to_string();
        iot.attach_thing_principal()
            .thing_name(&name)
            .principal(&arn)
            .send()
            .await
            .unwrap();
        iot.attach_policy()
            .policy_name(&policy)
            .target(&arn)
            .send()
            .await
            .unwrap();
        cert_ids.push(cert.certificate_id().unwrap().to_string());
    }

    let report = fleet_sim::cleanup::delete_things(&iot, &prefix)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.things_deleted, 2);
    assert_eq!(report.certificates_deleted, 2);
    assert_eq!(report.policies_detached, 2);

    assert!(
        fleet_sim::cleanup::list_things(&iot, &prefix)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        fleet_sim::cleanup::list_things(&iot, &other)
            .await
            .unwrap()
            .len(),
        1
    );
    for id in &cert_ids[..2] {
        assert!(
            iot.describe_certificate()
                .certificate_id(id)
                .send()
                .await
                .is_err(),
            "{id} still exists"
        );
    }
    let kept = iot
        .describe_certificate()
        .certificate_id(&cert_ids[2])
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept.certificate_description().unwrap().status(),
        Some(&CertificateStatus::Active)
    );
}
