//! Test helpers: a real broker (mosquitto) and the real shadow service of fleet-iot (the one
//! `robofleet dev` runs), so robot behaviour is tested against both without the whole stack.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_iot::BrokerAddr;
use fleet_iot::shadow::{ShadowHandle, ShadowKey, ShadowService};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::Value;
use tokio::sync::watch;

pub use fleet_testkit::Mosquitto;

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

/// The shadow service of fleet-iot on the broker at `port`, stopped on drop.
pub struct Shadows {
    pub handle: ShadowHandle,
    _stop: watch::Sender<bool>,
}

impl Shadows {
    /// The classic shadow of `thing` as GetThingShadow returns it (with `state.delta` while
    /// desired and reported differ), or `None` when it has none.
    pub fn document(&self, thing: &str) -> Option<Value> {
        self.handle
            .store
            .lock()
            .unwrap()
            .get(&ShadowKey::classic(thing), b"{}", 0)
            .ok()
    }
}

/// Starts the shadow service against the broker on `port`, and waits for its subscriptions.
pub async fn shadow_service(port: u16) -> Shadows {
    let (stop, stop_rx) = watch::channel(false);
    let handle = ShadowService::start(
        &BrokerAddr::new("127.0.0.1", port),
        "127.0.0.1:0".parse().unwrap(),
        stop_rx,
    )
    .await
    .unwrap();
    assert!(handle.wait_ready(Duration::from_secs(10)).await);
    Shadows {
        handle,
        _stop: stop,
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
    fleet_sim::SimArgs::from_flags(args).unwrap()
}
