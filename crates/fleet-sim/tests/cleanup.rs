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

/// Against IoT Core the app side uses the IoT Data Plane API: desired state reaches the shadow.
#[tokio::test]
async fn commands_reach_the_shadows_through_the_data_plane() {
    use fleet_sim::robot::{CommandSink, LiveStats, Shared, SimClock, run_controller};
    use fleet_sim::shape::CommandKind;
    use std::sync::Arc;

    let sdk = fleet_testkit::sdk_config().await;
    let iot = aws_sdk_iot::Client::new(&sdk);
    let prefix = fleet_testkit::unique_name("rbcmd");
    let things: Vec<String> = (0..3).map(|k| format!("{prefix}-{k:06}")).collect();
    for t in &things {
        iot.create_thing().thing_name(t).send().await.unwrap();
    }
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        sessions: fleet_sim::mqtt::SessionFactory::new(fleet_sim::MqttTarget::plain(
            "127.0.0.1",
            1,
        ))
        .unwrap(),
        limiter: fleet_sim::mqtt::ConnectLimiter::new(100.0),
        clock: SimClock {
            real_start: tokio::time::Instant::now(),
            sim_start: time::OffsetDateTime::now_utc(),
            compression: 1.0,
        },
        faults: fleet_sim::faults::FaultConfig::none(),
        live: LiveStats::default(),
        samples: None,
        sample_every: 50,
        seed: 1,
        length_s: 1.0,
        stop,
    });
    let commands = vec![
        (0.0, things[0].clone(), CommandKind::Start),
        (0.1, things[1].clone(), CommandKind::Dock),
        (0.2, things[2].clone(), CommandKind::Schedule),
    ];
    // The data plane has its own endpoint (per account in AWS; the front's IoT port here).
    let data = aws_sdk_iotdataplane::Client::from_conf(
        aws_sdk_iotdataplane::config::Builder::from(&sdk)
            .endpoint_url(fleet_testkit::iot_data_url())
            .build(),
    );
    let (sent, _) = run_controller(commands, shared, CommandSink::DataPlane(data.clone())).await;
    assert_eq!(sent, 3);
    for (t, key, op) in [
        (&things[0], "command", Some("start")),
        (&things[1], "command", Some("dock")),
        (&things[2], "schedule", None),
    ] {
        let out = data.get_thing_shadow().thing_name(t).send().await.unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
        let desired = &doc["state"]["desired"][key];
        assert!(desired.is_object(), "{t}: {doc}");
        if let Some(op) = op {
            assert_eq!(desired["action"], op);
        }
    }
}

#[tokio::test]
async fn provision_makes_things_certificates_and_files_and_cleanup_removes_them() {
    let sdk = fleet_testkit::sdk_config().await;
    let iot = aws_sdk_iot::Client::new(&sdk);
    let prefix = fleet_testkit::unique_name("rbprov");
    let policy = fleet_testkit::unique_name("robot-policy");
    iot.create_policy()
        .policy_name(&policy)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = fleet_sim::provision::ProvisionArgs {
        count: 3,
        prefix: prefix.clone(),
        policy: policy.clone(),
        certs_dir: dir.path().to_path_buf(),
        tps: 50.0,
        concurrency: 2,
        aws_endpoint: None,
    };
    let report = fleet_sim::provision::provision(&iot, &args).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.things_created, report.certificates_created), (3, 3));
    for k in 0..3 {
        let thing = fleet_sim::provision::thing_name(&prefix, k);
        let cert = std::fs::read_to_string(dir.path().join(format!("{thing}.cert.pem"))).unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE"), "{thing}");
        let key = dir.path().join(format!("{thing}.private.key"));
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        let principals = iot
            .list_thing_principals()
            .thing_name(&thing)
            .send()
            .await
            .unwrap();
        let principal = principals.principals()[0].clone();
        let attached = iot
            .list_attached_policies()
            .target(&principal)
            .send()
            .await
            .unwrap();
        assert_eq!(attached.policies()[0].policy_name(), Some(policy.as_str()));
    }
    // Run again: nothing new.
    let again = fleet_sim::provision::provision(&iot, &args).await.unwrap();
    assert_eq!((again.things_created, again.skipped), (0, 3));
    // A policy that does not exist is named before anything is made.
    let wrong = fleet_sim::provision::ProvisionArgs {
        policy: "no-such-policy".into(),
        ..args.clone()
    };
    let e = fleet_sim::provision::provision(&iot, &wrong)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("RobotPolicyName"), "{e}");

    let removed = fleet_sim::cleanup::delete_things(&iot, &prefix)
        .await
        .unwrap();
    assert_eq!(
        (removed.things_deleted, removed.certificates_deleted),
        (3, 3)
    );
}
