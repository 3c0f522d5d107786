//! Mutual TLS up to the AWS boundary: mosquitto with a CA and client certificates generated here
//! (rcgen), `require_certificate` and `use_identity_as_username`, as IoT Core authenticates robots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use fleet_sim::mqtt::{Session, SessionFactory, robot_cert_paths};
use fleet_sim::{MqttTarget, Progress, Targets, TlsTarget};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

fn leaf(ca: &Ca, cn: &str, sans: &[&str]) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write_robot(dir: &Path, ca: &Ca, thing: &str) {
    let (cert, key) = leaf(ca, thing, &[]);
    let (c, k) = robot_cert_paths(dir, thing);
    std::fs::write(c, cert).unwrap();
    std::fs::write(k, key).unwrap();
}

fn tls_target(port: u16, ca_file: &Path, certs_dir: Option<&Path>) -> MqttTarget {
    MqttTarget {
        host: "localhost".into(),
        port,
        tls: Some(TlsTarget {
            ca_file: Some(ca_file.to_path_buf()),
            certs_dir: certs_dir.map(Path::to_path_buf),
            alpn: false,
        }),
    }
}

async fn first_outcome(factory: &SessionFactory, thing: &str) -> Result<(), String> {
    let opts = factory.options(thing).map_err(|e| e.to_string())?;
    let mut s = Session::connect(&opts).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.recv()).await {
            Err(_) => return Err("timeout".into()),
            Ok(None) => return Err("closed".into()),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(a))))) => {
                return if a.code == rumqttc::ConnectReturnCode::Success {
                    Ok(())
                } else {
                    Err(format!("{:?}", a.code))
                };
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_connect_with_their_certificates_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let ca_main = ca("robofleet test CA");
    let (server_cert, server_key) = leaf(&ca_main, "localhost", &["localhost"]);
    std::fs::write(root.join("ca.pem"), &ca_main.pem).unwrap();
    std::fs::write(root.join("server.pem"), server_cert).unwrap();
    std::fs::write(root.join("server.key"), server_key).unwrap();
    let certs = root.join("certs");
    std::fs::create_dir(&certs).unwrap();
    write_robot(&certs, &ca_main, "rb-tls-000000");
    write_robot(&certs, &ca_main, "rb-tls-000001");
    // A robot whose certificate comes from another CA.
    let rogue_ca = ca("someone else");
    let rogue = root.join("rogue");
    std::fs::create_dir(&rogue).unwrap();
    write_robot(&rogue, &rogue_ca, "rb-tls-000002");

    let tls_port = fleet_testkit::free_port();
    let broker = Mosquitto::start(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {r}/ca.pem\ncertfile {r}/server.pem\nkeyfile {r}/server.key\n\
         require_certificate true\nuse_identity_as_username true\n",
        r = root.display()
    ));
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _shadows = shadow_service(broker.port).await;
    let seen = observer(
        broker.port,
        &[
            "$aws/things/+/shadow/update",
            "$aws/things/+/shadow/get",
            "$aws/rules/mission_reports/robots/+/missions",
        ],
    )
    .await;

    let ca_file = root.join("ca.pem");
    let targets = Targets {
        mqtt: tls_target(tls_port, &ca_file, Some(&certs)),
        aws_endpoint: None,
        opensearch_url: None,
        missions_table: None,
        robots_alias: "robots".into(),
        rejects_queue_url: None,
        aws: Default::default(),
    };
    let args = sim_args(&[
        "--mode",
        "steady",
        "--robots",
        "2",
        "--rate",
        "10",
        "--duration",
        "3s",
        "--mission-share",
        "0.5",
        "--prefix",
        "rb-tls",
        "--connect-rate",
        "50",
    ]);
    let report = fleet_sim::run(args, targets, Progress::Silent)
        .await
        .unwrap();
    assert_eq!(
        report.connections.robots_connected, 2,
        "{:?}",
        report.connections
    );
    assert!(report.published.total > 10, "{:?}", report.published);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A plain subscriber on the broker got what the TLS robots published.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len() as u64, report.published.total);
    for thing in ["rb-tls-000000", "rb-tls-000001"] {
        assert!(
            seen.iter().any(|(t, _)| t.contains(thing)),
            "nothing from {thing}"
        );
    }

    // Refused: a certificate from another CA, and no certificate at all.
    let rogue_factory = SessionFactory::new(tls_target(tls_port, &ca_file, Some(&rogue))).unwrap();
    assert!(
        first_outcome(&rogue_factory, "rb-tls-000002")
            .await
            .is_err()
    );
    let anonymous = SessionFactory::new(tls_target(tls_port, &ca_file, None)).unwrap();
    assert!(first_outcome(&anonymous, "rb-tls-000000").await.is_err());
    // While the right certificate still gets in.
    let good = SessionFactory::new(tls_target(tls_port, &ca_file, Some(&certs))).unwrap();
    first_outcome(&good, "rb-tls-000000").await.unwrap();
}
