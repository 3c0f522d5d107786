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
