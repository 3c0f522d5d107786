//! The embedded MQTT broker: rumqttd behind a small MQTT-aware TCP front.
//!
//! Why a front at all: rumqttd 0.20 refuses every subscription whose filter starts with `$`
//! (except `$share/`) and never routes a topic that starts with `$` (`protocol::matches`
//! returns false for them). IoT Core lives on `$aws/...` topics, so a bare rumqttd cannot carry a
//! single shadow or Basic Ingest message. rumqttd also has no public connection-lifecycle API
//! (its meters are aggregate counts, its alerts only cover cursor jumps and bad publishes), so it
//! cannot drive presence events either.
//!
//! The front ([`EmbeddedBroker::start`]) owns the public port. For each client it:
//! - reads the CONNECT packet (client id, protocol level, keep-alive, username) and connects to
//!   the rumqttd listener for that protocol level (v4 or v5) on a private loopback port;
//! - rewrites, in place and at equal length, the first byte of every `$`-topic in PUBLISH,
//!   SUBSCRIBE, UNSUBSCRIBE and the CONNECT will topic to [`ESCAPE`] on the way in, and back to
//!   `$` on the way out, so rumqttd routes them as ordinary topics while every client sees the
//!   real `$aws/...` names;
//! - drops outgoing `$`-topic messages that reached a client only through a wildcard-first filter
//!   (`#`, `+/...`), as MQTT requires, acknowledging QoS 1 ones to rumqttd itself;
//! - reports connect (after a successful CONNACK) and disconnect (with IoT Core's reason codes) to
//!   the presence publisher ([`crate::presence`]).
//!
//! Everything else talks to the broker as an ordinary MQTT client through [`mqtt_options`], so the
//! same code works against an external broker (`mqtt://host:port`, e.g. mosquitto), which handles
//! `$`-topics natively.
//!
//! Lifetime: [`EmbeddedBroker::stop`] (or dropping the handle) closes the public port and every
//! proxied connection. rumqttd itself has no stop API: its threads stay alive, idle and reachable
//! only on their private loopback ports, until the process exits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::presence::{self, DisconnectReason, PresenceSignal, PresenceStats};

/// The byte that stands in for a leading `$` inside rumqttd. A control character: no real client
/// uses it in a topic, and rumqttd only forbids `+` and `#` in topic names.
pub const ESCAPE: u8 = 0x01;

/// Client ids with this prefix belong to the local stack itself (rules engine, shadow service,
/// presence publisher, pollers). They get no presence events.
pub const INTERNAL_CLIENT_PREFIX: &str = "robofleet-local-";

/// IoT Core's payload limit, 128 KiB.
pub const IOT_MAX_PAYLOAD: usize = 128 * 1024;

/// Read buffer per direction per connection: small, because a fleet simulation holds thousands
/// of connections open; larger packets simply take several reads.
const READ_CHUNK: usize = 8 * 1024;

/// Room for the fixed header, topic (IoT allows 256 bytes), packet id and v5 properties.
const PACKET_OVERHEAD: usize = 8 * 1024;

/// Errors of the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The public port could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another port or free this one")]
    Bind {
        /// Address that was tried.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// rumqttd's configuration was refused.
    #[error("the embedded broker refused its configuration: {0}; this is a bug in fleet-iot")]
    Config(#[source] serde_json::Error),
    /// No free loopback port for rumqttd's private listeners.
    #[error(transparent)]
    Port(#[from] fleet_process::ProcessError),
    /// rumqttd did not open its private listener in time.
    #[error(
        "the embedded broker did not start listening on 127.0.0.1:{port} within {secs} s; see the rumqttd log lines above"
    )]
    NotReady {
        /// Private port that never opened.
        port: u16,
        /// Seconds waited.
        secs: u64,
    },
    /// An OS-level error while starting.
    #[error("embedded broker i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// How to start the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Address the public port binds to (loopback by default).
    pub bind: IpAddr,
    /// Public port; 0 picks a free one.
    pub port: u16,
    /// Largest application payload accepted (IoT Core: 128 KiB).
    pub max_payload: usize,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// Publish `$aws/events/presence/...` events for client connects and disconnects.
    pub presence: bool,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            max_payload: IOT_MAX_PAYLOAD,
            max_connections: 20_000,
            presence: true,
        }
    }
}

/// Counters of the embedded broker's front, for the progress display.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Client connections currently open.
    pub connections_open: AtomicU64,
    /// Client connections accepted since start (CONNACK success).
    pub connections_total: AtomicU64,
    /// Connections refused or failed before CONNACK.
    pub connections_failed: AtomicU64,
    /// PUBLISH packets from clients.
    pub publishes_in: AtomicU64,
    /// PUBLISH packets to clients.
    pub publishes_out: AtomicU64,
    /// `$`-topic messages withheld from clients that only matched them through a wildcard.
    pub dollar_withheld: AtomicU64,
}

/// Where an MQTT broker listens, over plain TCP: the embedded one, or an external one (the
/// local stack parses `--mqtt-url` with the simulator's URL parser and hands the address here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddr {
    /// `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }
}

impl std::fmt::Display for BrokerAddr {
    /// `mqtt://host:port`, with an IPv6 host in brackets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "mqtt://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "mqtt://{}:{}", self.host, self.port)
        }
    }
}

/// A running embedded broker. Dropping it (or [`EmbeddedBroker::stop`]) closes the public port
/// and all client connections; see the module docs for rumqttd's own threads.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// `mqtt://127.0.0.1:PORT`, to hand to clients.
    pub url: String,
    /// The same as an address, for the rules engine and the shadow service.
    pub addr: BrokerAddr,
    /// The public port.
    pub port: u16,
    /// Front counters.
    pub stats: Arc<BrokerStats>,
    /// Presence counters (zero when presence is off).
    pub presence: Arc<PresenceStats>,
    stop_tx: watch::Sender<bool>,
}

impl EmbeddedBroker {
    /// Start rumqttd on private loopback ports (one v4, one v5 listener) in its own thread, and
    /// the front on the public port. Must be called inside a tokio runtime.
    pub async fn start(options: BrokerOptions) -> Result<Self, BrokerError> {
        let v4_port = fleet_process::free_port()?;
        let v5_port = fleet_process::free_port()?;
        let config = rumqttd_config(&options, v4_port, v5_port)?;
        std::thread::Builder::new()
            .name("rumqttd".to_owned())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded rumqttd stopped");
                }
            })?;
        wait_listening(v4_port).await?;
        wait_listening(v5_port).await?;

        let addr = SocketAddr::new(options.bind, options.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BrokerError::Bind { addr, source })?;
        let port = listener.local_addr()?.port();
        let addr = BrokerAddr::new(connect_host(options.bind), port);
        let url = addr.to_string();

        let (stop_tx, stop_rx) = watch::channel(false);
        let stats = Arc::new(BrokerStats::default());
        let presence_stats = Arc::new(PresenceStats::default());
        let presence_tx = if options.presence {
            let (tx, rx) = mpsc::unbounded_channel();
            presence::spawn_publisher(addr.clone(), rx, presence_stats.clone(), stop_rx.clone());
            Some(tx)
        } else {
            None
        };
        let front = Arc::new(Front {
            v4: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), v4_port),
            v5: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), v5_port),
            stats: stats.clone(),
            presence: presence_tx,
            generations: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
            stop: stop_rx.clone(),
        });
        tokio::spawn(accept_loop(listener, front, stop_rx));
        tracing::info!(%url, v4_port, v5_port, "embedded mqtt broker listening");
        Ok(Self {
            url,
            addr,
            port,
            stats,
            presence: presence_stats,
            stop_tx,
        })
    }

    /// Close the public port and every client connection (clients see a server disconnect).
    pub fn stop(&self) {
        let _ = self.stop_tx.send(true);
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The host clients connect to for a bind address (the loopback one for an unspecified bind).
fn connect_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(v6) if v6.is_unspecified() => "::1".to_owned(),
        ip => ip.to_string(),
    }
}

async fn wait_listening(port: u16) -> Result<(), BrokerError> {
    let secs = 10;
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BrokerError::NotReady { port, secs });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rumqttd_config(
    options: &BrokerOptions,
    v4_port: u16,
    v5_port: u16,
) -> Result<rumqttd::Config, BrokerError> {
    let connections = serde_json::json!({
        "connection_timeout_ms": 60_000,
        "max_payload_size": options.max_payload + PACKET_OVERHEAD,
        "max_inflight_count": 10_000,
        "dynamic_filters": true
    });
    let value = serde_json::json!({
        "id": 0,
        "router": {
            "id": 0,
            "max_connections": options.max_connections + 100,
            // How many packets the router queues per connection before it stops reading a slow
            // consumer's filters; the rules engine subscribes to high-volume topics.
            "max_outgoing_packet_count": 10_000,
            // In-memory commitlog per filter: 4 x 32 MiB lets a subscriber lag far behind a burst.
            "max_segment_size": 32 * 1024 * 1024,
            "max_segment_count": 4
        },
        "v4": { "1": {
            "name": "robofleet-v4",
            "listen": format!("127.0.0.1:{v4_port}"),
            "next_connection_delay_ms": 0,
            "connections": connections.clone()
        }},
        "v5": { "1": {
            "name": "robofleet-v5",
            "listen": format!("127.0.0.1:{v5_port}"),
            "next_connection_delay_ms": 0,
            "connections": connections
        }}
    });
    serde_json::from_value(value).map_err(BrokerError::Config)
}

/// rumqttc options for one of the stack's own clients: large packets (IoT's 128 KiB plus
/// overhead, both ways), clean session, 30 s keep-alive, a deep request channel.
/// `client_id` should start with [`INTERNAL_CLIENT_PREFIX`] so it gets no presence events.
pub fn mqtt_options(broker: &BrokerAddr, client_id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(client_id, broker.host.clone(), broker.port);
    let max = 4 * (IOT_MAX_PAYLOAD + PACKET_OVERHEAD);
    o.set_max_packet_size(max, max)
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(1000)
        .set_request_channel_capacity(10_000);
    o
}

// ---------------------------------------------------------------------------------------------
// The front

struct Front {
    v4: SocketAddr,
    v5: SocketAddr,
    stats: Arc<BrokerStats>,
    presence: Option<mpsc::UnboundedSender<PresenceSignal>>,
    /// Per live client id, the generation of its newest connection (to recognise a takeover).
    generations: Mutex<HashMap<String, u64>>,
    next_generation: AtomicU64,
    stop: watch::Receiver<bool>,
}

async fn accept_loop(listener: TcpListener, front: Arc<Front>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let front = front.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve(socket, peer, front.clone()).await {
                            front.stats.connections_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, error = %e, "mqtt connection ended before connack");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "mqtt accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    tracing::info!("embedded mqtt broker front stopped");
}

/// Fixed-header decoding: `Some((header_len, remaining_len))` when enough bytes are present.
fn frame_header(buf: &[u8]) -> Result<Option<(usize, usize)>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let mut value = 0usize;
    let mut shift = 0;
    for i in 1..5 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(Some((i + 1, value)));
        }
        shift += 7;
    }
    Err("malformed remaining length")
}

fn varint(buf: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    let mut shift = 0;
    for i in 0..4 {
        let b = *buf.get(at + i)?;
        value |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
        shift += 7;
    }
    None
}

fn u16_at(buf: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *buf.get(at)?,
        *buf.get(at + 1)?,
    ])))
}

/// What the front needs from a CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectInfo {
    pub level: u8,
    pub client_id: String,
    pub username: Option<String>,
    pub keep_alive: u16,
    /// Offset of the will topic's first byte, to escape a `$` will topic.
    pub will_topic_at: Option<usize>,
}

/// Parse a complete CONNECT packet (fixed header included).
pub(crate) fn parse_connect(packet: &[u8]) -> Option<ConnectInfo> {
    if packet.first()? >> 4 != 1 {
        return None;
    }
    let (hl, _) = frame_header(packet).ok()??;
    let mut at = hl;
    let name_len = u16_at(packet, at)?;
    at += 2 + name_len;
    let level = *packet.get(at)?;
    let flags = *packet.get(at + 1)?;
    let keep_alive = u16_at(packet, at + 2)? as u16;
    at += 4;
    if level == 5 {
        let (len, n) = varint(packet, at)?;
        at += n + len;
    }
    let id_len = u16_at(packet, at)?;
    let client_id = std::str::from_utf8(packet.get(at + 2..at + 2 + id_len)?)
        .ok()?
        .to_owned();
    at += 2 + id_len;
    let mut will_topic_at = None;
    if flags & 0x04 != 0 {
        if level == 5 {
            let (len, n) = varint(packet, at)?;
            at += n + len;
        }
        let tl = u16_at(packet, at)?;
        if tl > 0 {
            will_topic_at = Some(at + 2);
        }
        at += 2 + tl;
        let pl = u16_at(packet, at)?;
        at += 2 + pl;
    }
    let username = if flags & 0x80 != 0 {
        let ul = u16_at(packet, at)?;
        Some(
            std::str::from_utf8(packet.get(at + 2..at + 2 + ul)?)
                .ok()?
                .to_owned(),
        )
    } else {
        None
    };
    Some(ConnectInfo {
        level,
        client_id,
        username,
        keep_alive,
        will_topic_at,
    })
}

/// Offsets of the topic-filter first bytes in a SUBSCRIBE (`has_options`) or UNSUBSCRIBE packet.
fn filter_offsets(packet: &[u8], hl: usize, level: u8, has_options: bool) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = hl + 2;
    if level == 5 {
        match varint(packet, at) {
            Some((len, n)) => at += n + len,
            None => return out,
        }
    }
    while let Some(len) = u16_at(packet, at) {
        if at + 2 + len > packet.len() {
            break;
        }
        if len > 0 {
            out.push(at + 2);
        }
        at += 2 + len + usize::from(has_options);
    }
    out
}

/// Escape `$` at `at` unless the name is `$SYS...` or `$share/...` (which keep their meaning).
fn escape_at(packet: &mut [u8], at: usize) {
    if packet.get(at) == Some(&b'$') {
        let rest = &packet[at..];
        if !(rest.starts_with(b"$SYS") || rest.starts_with(b"$share/")) {
            packet[at] = ESCAPE;
        }
    }
}

/// The filter proper: a shared subscription `$share/<group>/<filter>` without its prefix.
fn filter_body(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, body)| body)
}

/// Escape a subscription filter starting at `at` (inside a shared subscription, the filter
/// after `$share/<group>/`).
fn escape_filter_at(packet: &mut [u8], at: usize, len: usize) {
    let skip = packet
        .get(at..at + len)
        .and_then(|f| std::str::from_utf8(f).ok())
        .map_or(0, |f| len - filter_body(f).len());
    escape_at(packet, at + skip);
}

/// Does topic (already unescaped, starting with `$`) match one of the client's filters under
/// MQTT rules (a `$` topic is never matched by a filter starting with a wildcard)?
fn dollar_topic_wanted(topic: &str, filters: &[String]) -> bool {
    filters
        .iter()
        .map(|f| filter_body(f))
        .any(|f| f.starts_with('$') && crate::rules::topic_matches(f, topic))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientClosed,
    ClientDisconnect,
    BrokerClosed,
    ClientError,
    Stopped,
}

async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    loop {
        if let Some((hl, rl)) = frame_header(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            if hl + rl > max {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "first packet too large",
                ));
            }
            if buf.len() >= hl + rl {
                let rest = buf.split_off(hl + rl);
                return Ok(std::mem::replace(buf, rest));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve(mut client: TcpStream, peer: SocketAddr, front: Arc<Front>) -> std::io::Result<()> {
    let mut cbuf = Vec::new();
    let mut connect = tokio::time::timeout(
        Duration::from_secs(10),
        read_frame(&mut client, &mut cbuf, 1 << 20),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no connect packet"))??;
    let info = parse_connect(&connect).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "first packet is not CONNECT",
        )
    })?;
    if let Some(at) = info.will_topic_at {
        escape_at(&mut connect, at);
    }
    let upstream_addr = if info.level == 5 { front.v5 } else { front.v4 };
    let mut upstream = TcpStream::connect(upstream_addr).await?;
    let _ = upstream.set_nodelay(true);
    upstream.write_all(&connect).await?;
    upstream.write_all(&cbuf).await?; // anything the client pipelined after CONNECT
    cbuf.clear();
    let mut ubuf = Vec::new();
    let connack = read_frame(&mut upstream, &mut ubuf, 1 << 16).await?;
    client.write_all(&connack).await?;
    let (hl, _) = frame_header(&connack).ok().flatten().unwrap_or((2, 0));
    let accepted = connack.first().map(|b| b >> 4) == Some(2) && connack.get(hl + 1) == Some(&0);
    if !accepted {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "broker refused the connection",
        ));
    }

    let internal = info.client_id.starts_with(INTERNAL_CLIENT_PREFIX) || info.client_id.is_empty();
    let generation = front.next_generation.fetch_add(1, Ordering::Relaxed);
    front
        .generations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(info.client_id.clone(), generation);
    front
        .stats
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    front.stats.connections_open.fetch_add(1, Ordering::Relaxed);
    let session = uuid::Uuid::new_v4().to_string();
    if !internal && let Some(tx) = &front.presence {
        let _ = tx.send(PresenceSignal::Connected {
            client_id: info.client_id.clone(),
            session: session.clone(),
            principal: info.username.clone(),
            ip: peer.ip(),
        });
    }

    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let filters = Arc::new(Mutex::new(Vec::<String>::new()));
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<[u8; 4]>();
    let last_seen = Arc::new(Mutex::new(Instant::now()));
    let mut stop = front.stop.clone();
    let c2b = client_to_broker(
        cr,
        uw,
        cbuf,
        info.level,
        filters.clone(),
        ack_rx,
        front.stats.clone(),
        last_seen.clone(),
    );
    let b2c = broker_to_client(ur, cw, ubuf, filters, ack_tx, front.stats.clone());
    let end = tokio::select! {
        e = c2b => e,
        e = b2c => e,
        _ = stop.wait_for(|s| *s) => End::Stopped,
    };
    front.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
    // A newer connection with this client id took over, or this was the newest and its entry
    // goes (the map only holds live client ids).
    let superseded = {
        let mut g = front.generations.lock().unwrap_or_else(|p| p.into_inner());
        match g.get(&info.client_id) {
            Some(&newest) if newest == generation => {
                g.remove(&info.client_id);
                false
            }
            Some(_) => true,
            None => false,
        }
    };
    if !internal {
        let idle = last_seen.lock().map(|t| t.elapsed()).unwrap_or_default();
        let keep_alive = Duration::from_secs(u64::from(info.keep_alive));
        let reason = match end {
            End::ClientDisconnect => DisconnectReason::ClientInitiatedDisconnect,
            End::ClientClosed => DisconnectReason::ConnectionLost,
            End::ClientError => DisconnectReason::ClientError,
            End::Stopped => DisconnectReason::ServerInitiatedDisconnect,
            End::BrokerClosed if superseded => DisconnectReason::DuplicateClientId,
            End::BrokerClosed if info.keep_alive > 0 && idle >= keep_alive => {
                DisconnectReason::MqttKeepAliveTimeout
            }
            End::BrokerClosed => DisconnectReason::ServerInitiatedDisconnect,
        };
        if let Some(tx) = &front.presence {
            let _ = tx.send(PresenceSignal::Disconnected {
                client_id: info.client_id.clone(),
                session,
                principal: info.username.clone(),
                ip: peer.ip(),
                reason,
            });
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn client_to_broker(
    mut r: OwnedReadHalf,
    mut w: OwnedWriteHalf,
    mut buf: Vec<u8>,
    level: u8,
    filters: Arc<Mutex<Vec<String>>>,
    mut acks: mpsc::UnboundedReceiver<[u8; 4]>,
    stats: Arc<BrokerStats>,
    last_seen: Arc<Mutex<Instant>>,
) -> End {
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    loop {
        let n = tokio::select! {
            ack = acks.recv() => {
                if let Some(ack) = ack
                    && w.write_all(&ack).await.is_err()
                {
                    return End::BrokerClosed;
                }
                continue;
            }
            n = r.read(&mut chunk) => n,
        };
        let n = match n {
            Ok(0) => return End::ClientClosed,
            Ok(n) => n,
            Err(_) => return End::ClientClosed,
        };
        if let Ok(mut t) = last_seen.lock() {
            *t = Instant::now();
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        let mut disconnect = false;
        loop {
            let (hl, rl) = match frame_header(&buf[consumed..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => return End::ClientError,
            };
            if buf.len() - consumed < hl + rl {
                break;
            }
            let packet = &mut buf[consumed..consumed + hl + rl];
            match packet[0] >> 4 {
                3 => {
                    stats.publishes_in.fetch_add(1, Ordering::Relaxed);
                    escape_at(packet, hl + 2);
                }
                8 => {
                    let offs = filter_offsets(packet, hl, level, true);
                    let mut names = Vec::new();
                    for &at in &offs {
                        let len = at
                            .checked_sub(2)
                            .and_then(|p| u16_at(packet, p))
                            .unwrap_or(0);
                        if let Some(name) = packet.get(at..at + len) {
                            names.push(String::from_utf8_lossy(name).into_owned());
                        }
                        escape_filter_at(packet, at, len);
                    }
                    if let Ok(mut f) = filters.lock() {
                        f.extend(names);
                    }
                }
                10 => {
                    let offs = filter_offsets(packet, hl, level, false);
                    for &at in &offs {
                        let len = at
                            .checked_sub(2)
                            .and_then(|p| u16_at(packet, p))
                            .unwrap_or(0);
                        if let (Some(name), Ok(mut f)) = (packet.get(at..at + len), filters.lock())
                        {
                            let name = String::from_utf8_lossy(name);
                            f.retain(|x| *x != name);
                        }
                        escape_filter_at(packet, at, len);
                    }
                }
                14 => disconnect = true,
                _ => {}
            }
            out.extend_from_slice(&buf[consumed..consumed + hl + rl]);
            consumed += hl + rl;
        }
        buf.drain(..consumed);
        if !out.is_empty() {
            if w.write_all(&out).await.is_err() {
                return End::BrokerClosed;
            }
            out.clear();
        }
        if disconnect {
            // Let the broker see the DISCONNECT, then stop: the client is done.
            let _ = w.flush().await;
            return End::ClientDisconnect;
        }
    }
}

async fn broker_to_client(
    mut r: OwnedReadHalf,
    mut w: OwnedWriteHalf,
    mut buf: Vec<u8>,
    filters: Arc<Mutex<Vec<String>>>,
    acks: mpsc::UnboundedSender<[u8; 4]>,
    stats: Arc<BrokerStats>,
) -> End {
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    loop {
        // Process what is buffered first (bytes that arrived with the CONNACK).
        let mut consumed = 0;
        loop {
            let (hl, rl) = match frame_header(&buf[consumed..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => return End::BrokerClosed,
            };
            if buf.len() - consumed < hl + rl {
                break;
            }
            let packet = &mut buf[consumed..consumed + hl + rl];
            let mut forward = true;
            if packet[0] >> 4 == 3 {
                stats.publishes_out.fetch_add(1, Ordering::Relaxed);
                if packet.get(hl + 2) == Some(&ESCAPE) {
                    packet[hl + 2] = b'$';
                    let tl = u16_at(packet, hl).unwrap_or(0);
                    let topic =
                        String::from_utf8_lossy(packet.get(hl + 2..hl + 2 + tl).unwrap_or(&[]));
                    let wanted = filters
                        .lock()
                        .map(|f| dollar_topic_wanted(&topic, &f))
                        .unwrap_or(true);
                    if !wanted {
                        forward = false;
                        stats.dollar_withheld.fetch_add(1, Ordering::Relaxed);
                        let qos = (packet[0] >> 1) & 0x03;
                        if qos == 1
                            && let Some(pkid) = u16_at(packet, hl + 2 + tl)
                        {
                            let p = (pkid as u16).to_be_bytes();
                            let _ = acks.send([0x40, 0x02, p[0], p[1]]);
                        }
                        // QoS 2 towards a client that never asked for the topic: forward
                        // anyway rather than stall the broker's flow (our stack uses QoS 0/1).
                        if qos == 2 {
                            forward = true;
                        }
                    }
                }
            }
            if forward {
                out.extend_from_slice(&buf[consumed..consumed + hl + rl]);
            }
            consumed += hl + rl;
        }
        buf.drain(..consumed);
        if !out.is_empty() {
            if w.write_all(&out).await.is_err() {
                return End::ClientClosed;
            }
            out.clear();
        }
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return End::BrokerClosed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_print_as_urls() {
        assert_eq!(
            BrokerAddr::new("127.0.0.1", 1883).to_string(),
            "mqtt://127.0.0.1:1883"
        );
        assert_eq!(
            BrokerAddr::new("::1", 2000).to_string(),
            "mqtt://[::1]:2000"
        );
        assert_eq!(connect_host(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), "127.0.0.1");
    }

    fn connect_packet(
        client_id: &str,
        will: Option<&str>,
        user: Option<&str>,
        level: u8,
    ) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level];
        let mut flags = 0x02;
        if will.is_some() {
            flags |= 0x04;
        }
        if user.is_some() {
            flags |= 0x80;
        }
        body.push(flags);
        body.extend_from_slice(&[0, 30]);
        if level == 5 {
            body.push(0);
        }
        let s = |b: &mut Vec<u8>, v: &str| {
            b.extend_from_slice(&(v.len() as u16).to_be_bytes());
            b.extend_from_slice(v.as_bytes());
        };
        s(&mut body, client_id);
        if let Some(w) = will {
            if level == 5 {
                body.push(0);
            }
            s(&mut body, w);
            s(&mut body, "bye");
        }
        if let Some(u) = user {
            s(&mut body, u);
        }
        let mut p = vec![0x10, body.len() as u8];
        p.extend(body);
        p
    }

    #[test]
    fn reads_connect_fields_for_v4_and_v5() {
        for level in [4, 5] {
            let p = connect_packet("rb-1", Some("$aws/x"), Some("alice"), level);
            let info = parse_connect(&p).expect("connect parses");
            assert_eq!(info.client_id, "rb-1");
            assert_eq!(info.level, level);
            assert_eq!(info.keep_alive, 30);
            assert_eq!(info.username.as_deref(), Some("alice"));
            let at = info.will_topic_at.expect("will topic");
            assert_eq!(p[at], b'$');
        }
    }

    #[test]
    fn escapes_dollar_topics_but_not_sys_or_share() {
        let mut t = b"xx$aws/things".to_vec();
        escape_at(&mut t, 2);
        assert_eq!(t[2], ESCAPE);
        let mut t = b"$SYS/broker".to_vec();
        escape_at(&mut t, 0);
        assert_eq!(t[0], b'$');
        let mut t = b"$share/g/a".to_vec();
        escape_at(&mut t, 0);
        assert_eq!(t[0], b'$');
        let mut t = b"plain".to_vec();
        escape_at(&mut t, 0);
        assert_eq!(t, b"plain");
    }

    #[test]
    fn finds_filters_in_subscribe() {
        // SUBSCRIBE pkid 1: "$aws/#" qos1, "a/b" qos0
        let mut p = vec![0x82, 0, 0, 1];
        for (f, q) in [("$aws/#", 1u8), ("a/b", 0)] {
            p.extend_from_slice(&(f.len() as u16).to_be_bytes());
            p.extend_from_slice(f.as_bytes());
            p.push(q);
        }
        p[1] = (p.len() - 2) as u8;
        let offs = filter_offsets(&p, 2, 4, true);
        assert_eq!(offs.len(), 2);
        assert_eq!(p[offs[0]], b'$');
        assert_eq!(p[offs[1]], b'a');
    }

    #[test]
    fn shared_subscriptions_escape_the_filter_after_the_group() {
        let mut f = b"$share/g/$aws/things/+".to_vec();
        let len = f.len();
        escape_filter_at(&mut f, 0, len);
        assert_eq!(&f[..9], b"$share/g/");
        assert_eq!(f[9], ESCAPE);
        assert!(dollar_topic_wanted(
            "$aws/things/x",
            &["$share/g/$aws/things/+".to_owned()]
        ));
        assert!(!dollar_topic_wanted(
            "$aws/things/x",
            &["$share/g/#".to_owned()]
        ));
    }

    #[test]
    fn dollar_topics_only_reach_dollar_filters() {
        let wild = vec!["#".to_owned(), "+/things/x".to_owned()];
        assert!(!dollar_topic_wanted("$aws/things/x", &wild));
        let exact = vec!["$aws/things/+".to_owned()];
        assert!(dollar_topic_wanted("$aws/things/x", &exact));
    }

    #[test]
    fn frame_header_handles_partial_and_multibyte_lengths() {
        assert_eq!(frame_header(&[0x30]), Ok(None));
        assert_eq!(frame_header(&[0x30, 0x80]), Ok(None));
        assert_eq!(frame_header(&[0x30, 0x80, 0x01]), Ok(Some((3, 128))));
        assert!(frame_header(&[0x30, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
