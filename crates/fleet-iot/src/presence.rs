//! Presence events: `$aws/events/presence/connected|disconnected/<clientId>`, as IoT Core
//! publishes them, for clients of the embedded broker.
//!
//! Mechanism: rumqttd 0.20 exposes no connection-lifecycle events (its meters link gives only
//! aggregate router counts, its alerts link only cursor jumps and bad publishes, and the per
//! connection `ConnectionEvents` are private to its router). The embedded broker's TCP front
//! ([`crate::broker`]) sees every CONNECT/CONNACK and every socket end, so it reports them here
//! as [`PresenceSignal`]s, and one internal MQTT client (`robofleet-local-presence`) publishes the
//! events with QoS 1.
//!
//! The stack cannot see connections to an external broker (mosquitto): with `--mqtt-url` no
//! presence events are produced.
//!
//! `versionNumber` grows by one with every event of a client id (connected and disconnected
//! alike) within one run of the stack, so consumers can order a client's events; it restarts at 0
//! when the stack restarts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::broker::{BrokerAddr, mqtt_options};

/// The presence publisher's MQTT client id.
pub const PRESENCE_CLIENT_ID: &str = "robofleet-local-presence";

/// IoT Core's disconnect reasons that the local front can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent DISCONNECT.
    ClientInitiatedDisconnect,
    /// The socket closed without DISCONNECT.
    ConnectionLost,
    /// The client sent bytes that are not MQTT.
    ClientError,
    /// Another connection with the same client id took over.
    DuplicateClientId,
    /// The broker closed a client that stayed silent past its keep-alive.
    MqttKeepAliveTimeout,
    /// The broker (or the stack shutting down) closed the connection.
    ServerInitiatedDisconnect,
}

impl DisconnectReason {
    /// IoT Core's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientInitiatedDisconnect => "CLIENT_INITIATED_DISCONNECT",
            Self::ConnectionLost => "CONNECTION_LOST",
            Self::ClientError => "CLIENT_ERROR",
            Self::DuplicateClientId => "DUPLICATE_CLIENTID",
            Self::MqttKeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            Self::ServerInitiatedDisconnect => "SERVER_INITIATED_DISCONNECT",
        }
    }
}

/// A connection lifecycle change seen by the broker front.
#[derive(Debug, Clone)]
pub enum PresenceSignal {
    /// CONNACK success.
    Connected {
        /// MQTT client id.
        client_id: String,
        /// One id per connection.
        session: String,
        /// MQTT username, if any.
        principal: Option<String>,
        /// Peer address.
        ip: IpAddr,
    },
    /// The connection ended.
    Disconnected {
        /// MQTT client id.
        client_id: String,
        /// The id given at connect.
        session: String,
        /// MQTT username, if any.
        principal: Option<String>,
        /// Peer address.
        ip: IpAddr,
        /// Why.
        reason: DisconnectReason,
    },
}

/// Presence counters.
#[derive(Debug, Default)]
pub struct PresenceStats {
    /// Connected events published.
    pub connected: AtomicU64,
    /// Disconnected events published.
    pub disconnected: AtomicU64,
    /// Events that could not be handed to the MQTT client.
    pub failed: AtomicU64,
}

/// The topic of an event.
pub fn presence_topic(event_type: &str, client_id: &str) -> String {
    format!("$aws/events/presence/{event_type}/{client_id}")
}

/// IoT Core's presence payload for one signal. `timestamp_ms` and `version` are inputs so the
/// shape can be tested exactly.
pub fn presence_payload(
    signal: &PresenceSignal,
    timestamp_ms: u64,
    version: u64,
) -> (String, Value) {
    match signal {
        PresenceSignal::Connected {
            client_id,
            session,
            principal,
            ip,
        } => (
            presence_topic("connected", client_id),
            json!({
                "clientId": client_id,
                "timestamp": timestamp_ms,
                "eventType": "connected",
                "sessionIdentifier": session,
                "principalIdentifier": principal.clone().unwrap_or_else(|| "anonymous".to_owned()),
                "ipAddress": ip.to_string(),
                "versionNumber": version,
            }),
        ),
        PresenceSignal::Disconnected {
            client_id,
            session,
            principal,
            ip,
            reason,
        } => (
            presence_topic("disconnected", client_id),
            json!({
                "clientId": client_id,
                "timestamp": timestamp_ms,
                "eventType": "disconnected",
                "sessionIdentifier": session,
                "principalIdentifier": principal.clone().unwrap_or_else(|| "anonymous".to_owned()),
                "ipAddress": ip.to_string(),
                "clientInitiatedDisconnect": *reason == DisconnectReason::ClientInitiatedDisconnect,
                "disconnectReason": reason.as_str(),
                "versionNumber": version,
            }),
        ),
    }
}

pub(crate) use fleet_core::timefmt::now_unix_ms as now_ms;

/// Spawn the task that turns signals into published events on the broker at `broker`.
pub(crate) fn spawn_publisher(
    broker: BrokerAddr,
    mut rx: mpsc::UnboundedReceiver<PresenceSignal>,
    stats: Arc<PresenceStats>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let options = mqtt_options(&broker, PRESENCE_CLIENT_ID);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10_000);
        // Drive the connection; rumqttc reconnects on the next poll after an error.
        let driver = tokio::spawn(async move {
            loop {
                if let Err(e) = eventloop.poll().await {
                    tracing::debug!(error = %e, "presence publisher connection error");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        });
        let mut versions: HashMap<String, u64> = HashMap::new();
        loop {
            let signal = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                s = rx.recv() => match s { Some(s) => s, None => break },
            };
            let client_id = match &signal {
                PresenceSignal::Connected { client_id, .. }
                | PresenceSignal::Disconnected { client_id, .. } => client_id.clone(),
            };
            let v = versions.entry(client_id).or_insert(0);
            let version = *v;
            *v += 1;
            let (topic, payload) = presence_payload(&signal, now_ms(), version);
            let body = payload.to_string();
            match client
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, body)
                .await
            {
                Ok(()) => {
                    let counter = match signal {
                        PresenceSignal::Connected { .. } => &stats.connected,
                        PresenceSignal::Disconnected { .. } => &stats.disconnected,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "presence event dropped");
                }
            }
        }
        driver.abort();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_payload_has_iot_core_fields() {
        let s = PresenceSignal::Connected {
            client_id: "rb-1".into(),
            session: "s-1".into(),
            principal: None,
            ip: "127.0.0.1".parse().expect("ip"),
        };
        let (topic, p) = presence_payload(&s, 1_700_000_000_123, 3);
        assert_eq!(topic, "$aws/events/presence/connected/rb-1");
        assert_eq!(p["clientId"], "rb-1");
        assert_eq!(p["timestamp"], 1_700_000_000_123u64);
        assert_eq!(p["eventType"], "connected");
        assert_eq!(p["sessionIdentifier"], "s-1");
        assert_eq!(p["versionNumber"], 3);
        assert_eq!(p["ipAddress"], "127.0.0.1");
        assert!(p.get("disconnectReason").is_none());
    }

    #[test]
    fn disconnected_payload_carries_reason() {
        let s = PresenceSignal::Disconnected {
            client_id: "rb-1".into(),
            session: "s-1".into(),
            principal: Some("u".into()),
            ip: "10.0.0.1".parse().expect("ip"),
            reason: DisconnectReason::ConnectionLost,
        };
        let (topic, p) = presence_payload(&s, 5, 4);
        assert_eq!(topic, "$aws/events/presence/disconnected/rb-1");
        assert_eq!(p["eventType"], "disconnected");
        assert_eq!(p["disconnectReason"], "CONNECTION_LOST");
        assert_eq!(p["clientInitiatedDisconnect"], false);
        assert_eq!(p["principalIdentifier"], "u");
    }
}
