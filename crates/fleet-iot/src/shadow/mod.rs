//! The local device shadow service: one state ([`state::ShadowStore`]), two faces.
//!
//! - MQTT face ([`mqtt`]): one client (`robofleet-local-shadow`) subscribed to
//!   `$aws/things/+/shadow/{update,get,delete}` and the named forms
//!   `$aws/things/+/shadow/name/+/{update,get,delete}`; it answers on `/accepted` and
//!   `/rejected`, and publishes `/update/documents` and `/update/delta` as IoT Core does.
//! - HTTP face ([`http`]): the IoT Data Plane REST API that `aws-sdk-iotdataplane` speaks
//!   (GetThingShadow, UpdateThingShadow, DeleteThingShadow, ListNamedShadowsForThing, Publish).
//!   Clients reach it with `AWS_ENDPOINT_URL_IOT_DATA_PLANE=<http_url>`. An update or delete
//!   through HTTP publishes the same MQTT messages as one over MQTT, so a command sent through
//!   the API reaches the robot as a delta.
//!
//! Every change is computed under one lock and its messages are queued for publishing in the
//! same critical section, so subscribers see each shadow's messages in version order.
//!
//! Differences from IoT Core: state lives in memory (a restart forgets every shadow); a deleted
//! shadow is forgotten at once, so a re-created one starts again at version 1 (IoT Core keeps the
//! version for 48 h and then restarts at 0, see docs/architecture.md §3); there is no authorisation.

pub mod http;
pub mod mqtt;
pub mod state;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use state::{Rejection, ShadowKey, ShadowStore, UpdateOutcome};

use crate::broker::BrokerAddr;

/// The shadow service's MQTT client id.
pub const SHADOW_CLIENT_ID: &str = "robofleet-local-shadow";

/// Why the shadow service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// The HTTP port could not be bound.
    #[error(
        "the shadow service cannot listen on {addr}: {source}; pick another port or free this one"
    )]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Other I/O.
    #[error("shadow service i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters for the progress display.
#[derive(Debug, Default)]
pub struct ShadowStats {
    /// Accepted updates (both faces).
    pub updates_accepted: AtomicU64,
    /// Rejected updates (both faces).
    pub updates_rejected: AtomicU64,
    /// Get requests answered.
    pub gets: AtomicU64,
    /// Shadows deleted.
    pub deletes: AtomicU64,
    /// Requests received over MQTT.
    pub mqtt_requests: AtomicU64,
    /// Requests received over HTTP.
    pub http_requests: AtomicU64,
    /// Messages published to the broker.
    pub published: AtomicU64,
    /// Messages that could not be published.
    pub publish_failed: AtomicU64,
    ready: AtomicBool,
}

impl ShadowStats {
    /// True once the MQTT subscriptions are acknowledged.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// One message for the broker.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: rumqttc::QoS,
    pub retain: bool,
}

/// State shared by both faces.
#[derive(Clone)]
pub(crate) struct Core {
    pub store: Arc<Mutex<ShadowStore>>,
    pub out: mpsc::UnboundedSender<Outgoing>,
    pub stats: Arc<ShadowStats>,
}

pub(crate) fn now_s() -> u64 {
    crate::presence::now_ms() / 1000
}

impl Core {
    fn publish_json(&self, topic: String, v: &Value) {
        let _ = self.out.send(Outgoing {
            topic,
            payload: v.to_string().into_bytes(),
            qos: rumqttc::QoS::AtLeastOnce,
            retain: false,
        });
    }

    /// Apply an update and queue its messages (accepted, documents, delta). A rejection is
    /// published on `/update/rejected` only when `publish_rejection` (the MQTT face).
    pub fn update(
        &self,
        key: &ShadowKey,
        payload: &[u8],
        publish_rejection: bool,
    ) -> Result<Value, Rejection> {
        let now = now_s();
        let prefix = key.topic_prefix();
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        match store.update(key, payload, now) {
            Ok(out) => {
                self.stats.updates_accepted.fetch_add(1, Ordering::Relaxed);
                self.publish_json(format!("{prefix}/update/accepted"), &out.accepted);
                self.publish_json(format!("{prefix}/update/documents"), &out.documents);
                if let Some(delta) = &out.delta {
                    self.publish_json(format!("{prefix}/update/delta"), delta);
                }
                Ok(out.accepted)
            }
            Err(r) => {
                self.stats.updates_rejected.fetch_add(1, Ordering::Relaxed);
                if publish_rejection {
                    let token = state::request_client_token(payload);
                    self.publish_json(
                        format!("{prefix}/update/rejected"),
                        &r.payload(now, token.as_deref()),
                    );
                }
                Err(r)
            }
        }
    }

    /// Get; over MQTT the answer is published on `/get/accepted|rejected`.
    pub fn get(&self, key: &ShadowKey, request: &[u8], publish: bool) -> Result<Value, Rejection> {
        let now = now_s();
        let res = {
            let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            store.get(key, request, now)
        };
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        if publish {
            let prefix = key.topic_prefix();
            match &res {
                Ok(v) => self.publish_json(format!("{prefix}/get/accepted"), v),
                Err(r) => {
                    let token = state::request_client_token(request);
                    self.publish_json(
                        format!("{prefix}/get/rejected"),
                        &r.payload(now, token.as_deref()),
                    );
                }
            }
        }
        res
    }

    /// Delete; `/delete/accepted` is published for both faces, `/delete/rejected` for MQTT.
    pub fn delete(
        &self,
        key: &ShadowKey,
        request: &[u8],
        publish_rejection: bool,
    ) -> Result<Value, Rejection> {
        let now = now_s();
        let prefix = key.topic_prefix();
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let res = store.delete(key, request, now);
        match &res {
            Ok(v) => {
                self.stats.deletes.fetch_add(1, Ordering::Relaxed);
                self.publish_json(format!("{prefix}/delete/accepted"), v);
            }
            Err(r) if publish_rejection => {
                let token = state::request_client_token(request);
                self.publish_json(
                    format!("{prefix}/delete/rejected"),
                    &r.payload(now, token.as_deref()),
                );
            }
            Err(_) => {}
        }
        res
    }
}

/// A running shadow service.
pub struct ShadowHandle {
    /// `http://127.0.0.1:PORT`: set `AWS_ENDPOINT_URL_IOT_DATA_PLANE` to this.
    pub http_url: String,
    /// The HTTP face's address.
    pub http_addr: SocketAddr,
    /// Live counters.
    pub stats: Arc<ShadowStats>,
    /// The state, for inspection (tests, reports).
    pub store: Arc<Mutex<ShadowStore>>,
    /// The service's tasks; they end after shutdown.
    pub tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ShadowHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowHandle")
            .field("http_url", &self.http_url)
            .finish_non_exhaustive()
    }
}

impl ShadowHandle {
    /// Wait until the MQTT subscriptions are in place. False on timeout.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.stats.is_ready()).await
    }
}

/// The service.
pub struct ShadowService;

impl ShadowService {
    /// Start both faces: the MQTT face against `broker` (embedded or external),
    /// the HTTP face on `http_addr` (port 0 picks a free one). Stop with `true` on `shutdown`.
    pub async fn start(
        broker: &BrokerAddr,
        http_addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Result<ShadowHandle, ShadowError> {
        let options = crate::broker::mqtt_options(broker, SHADOW_CLIENT_ID);
        let listener = tokio::net::TcpListener::bind(http_addr)
            .await
            .map_err(|source| ShadowError::Bind {
                addr: http_addr,
                source,
            })?;
        let addr = listener.local_addr()?;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let core = Core {
            store: Arc::new(Mutex::new(ShadowStore::new())),
            out: out_tx,
            stats: Arc::new(ShadowStats::default()),
        };
        let mut tasks = mqtt::spawn(core.clone(), options, out_rx, shutdown.clone());
        tasks.push(tokio::spawn(http::serve(listener, core.clone(), shutdown)));
        let http_url = format!("http://{addr}");
        tracing::info!(%http_url, %broker, "shadow service started");
        Ok(ShadowHandle {
            http_url,
            http_addr: addr,
            stats: core.stats.clone(),
            store: core.store.clone(),
            tasks,
        })
    }
}
