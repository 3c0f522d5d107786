//! Test helpers: a mosquitto child process and a minimal shadow service speaking the IoT Core
//! shadow topics, so robot behaviour is tested against a real broker without the local stack.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity
)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Map, Value, json};

/// A mosquitto broker, killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts mosquitto with `extra` config lines for a listener on a free port.
    pub fn start(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    /// Starts mosquitto with its config written in `dir`.
    pub fn start_in(dir: tempfile::TempDir, extra: &str) -> Mosquitto {
        let port = fleet_testkit::free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n\
                 persistence false\nlog_dest stderr\n{extra}\n"
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (apt-get install -y mosquitto)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Mosquitto {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects a helper client and waits for its subscriptions.
pub async fn client(port: u16, id: &str, topics: &[&str]) -> (AsyncClient, rumqttc::EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_max_packet_size(512 * 1024, 512 * 1024);
    opts.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(opts, 10_000);
    for t in topics {
        c.subscribe(*t, QoS::AtMostOnce).await.unwrap();
    }
    let mut acks = 0;
    while acks < topics.len() {
        if let Event::Incoming(Incoming::SubAck(_)) = el.poll().await.unwrap() {
            acks += 1;
        }
    }
    (c, el)
}

/// One thing's shadow in the fake service.
#[derive(Debug, Default, Clone)]
pub struct FakeShadow {
    pub version: u64,
    pub reported: Map<String, Value>,
    pub desired: Map<String, Value>,
}

fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        if v.is_null() {
            into.remove(k);
        } else {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// Starts a shadow service on `port`: answers update/get with accepted and delta, as IoT Core.
pub async fn shadow_service(port: u16) -> Arc<Mutex<HashMap<String, FakeShadow>>> {
    let shadows: Arc<Mutex<HashMap<String, FakeShadow>>> = Arc::default();
    let (c, mut el) = client(
        port,
        "fake-shadow-service",
        &["$aws/things/+/shadow/update", "$aws/things/+/shadow/get"],
    )
    .await;
    let state = shadows.clone();
    tokio::spawn(async move {
        loop {
            let ev = match el.poll().await {
                Ok(ev) => ev,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Event::Incoming(Incoming::Publish(p)) = ev else {
                continue;
            };
            let parts: Vec<&str> = p.topic.split('/').collect();
            let (thing, op) = (parts[2].to_string(), parts[4]);
            let body: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
            let out = answer(&state, &thing, op, &body);
            continue_publish(&c, out).await;
        }
    });
    shadows
}

fn answer(
    state: &Mutex<HashMap<String, FakeShadow>>,
    thing: &str,
    op: &str,
    body: &Value,
) -> Vec<(String, Value)> {
    let token = body.get("clientToken").cloned().unwrap_or(Value::Null);
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut map = state.lock().unwrap();
    let s = map.entry(thing.to_string()).or_default();
    if op == "get" {
        out.push((
            format!("$aws/things/{thing}/shadow/get/accepted"),
            json!({"state": {"reported": s.reported, "desired": s.desired}, "version": s.version, "clientToken": token}),
        ));
        return out;
    }
    let Some(st) = body.get("state").and_then(Value::as_object) else {
        out.push((
            format!("$aws/things/{thing}/shadow/update/rejected"),
            json!({"code": 400}),
        ));
        return out;
    };
    if let Some(r) = st.get("reported").and_then(Value::as_object) {
        merge(&mut s.reported, r);
    }
    if let Some(d) = st.get("desired").and_then(Value::as_object) {
        merge(&mut s.desired, d);
    }
    // Desired keys the robot has caught up with disappear, as on IoT Core.
    let reported = s.reported.clone();
    s.desired.retain(|k, v| reported.get(k) != Some(v));
    s.version += 1;
    out.push((
        format!("$aws/things/{thing}/shadow/update/accepted"),
        json!({"state": body["state"], "version": s.version, "clientToken": token}),
    ));
    if st.get("desired").is_some() && !s.desired.is_empty() {
        out.push((
            format!("$aws/things/{thing}/shadow/update/delta"),
            json!({"state": s.desired, "version": s.version}),
        ));
    }
    out
}

async fn continue_publish(c: &AsyncClient, out: Vec<(String, Value)>) {
    for (topic, v) in out {
        let _ = c.try_publish(topic, QoS::AtMostOnce, false, v.to_string());
    }
}

/// Collects every message on `topics` for inspection.
pub async fn observer(port: u16, topics: &[&str]) -> Arc<Mutex<Vec<(String, Vec<u8>)>>> {
    let seen: Arc<Mutex<Vec<(String, Vec<u8>)>>> = Arc::default();
    let (c, mut el) = client(port, &format!("observer-{}", std::process::id()), topics).await;
    let s = seen.clone();
    tokio::spawn(async move {
        let _keep = c;
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    s.lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    seen
}

/// Parses CLI-style arguments into `SimArgs`.
pub fn sim_args(args: &[&str]) -> fleet_sim::SimArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: fleet_sim::SimArgs,
    }
    let mut all = vec!["sim"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap().sim
}
