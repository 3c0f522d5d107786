//! A robot's MQTT 3.1.1 session, kept lean for fleets of idle robots.
//!
//! rumqttc's `EventLoop` costs about 34 KB per session before a byte moves: a bitset of incoming
//! packet ids (8 KiB), an event queue of 100 slots, read and write buffers of 8 KiB each, a
//! request channel and a driver task with an event channel. A simulated robot publishes at QoS 0
//! and subscribes at QoS 0, so it needs none of the in-flight bookkeeping. This session keeps
//! the socket, two buffers that hold only what is in transit (and are released when they drain
//! after a large packet), and a keep-alive timer. It runs in the robot's own task: no driver task
//! and no channels. rumqttc's codec (`mqttbytes`) still reads and writes the packets.
//!
//! Nothing but CONNECT is written before the broker's CONNACK arrives.
//!
//! [`Session::recv`] is cancellation safe: every byte read or written is recorded in the
//! session's buffers in the same poll, so it can sit in a `select!` branch. Publishing only
//! queues bytes; they are written while the robot waits in `recv`, which reports each publish as
//! [`Outgoing::Publish`] once its last byte is handed to the socket (as rumqttc does).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rumqttc::{Connect, Event, Outgoing, Packet, PubAck, Publish, QoS, Subscribe, SubscribeFilter};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Packets a session holds unsent before `try_publish` refuses (rumqttc's request channel did
/// the same at this capacity).
pub const SESSION_QUEUE: usize = 64;
/// A drained buffer larger than this is released rather than kept for the next packet.
const KEEP_BUFFER: usize = 1024;
/// Bytes read from the socket per poll.
const READ_CHUNK: usize = 2048;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Where and how one robot connects.
#[derive(Clone)]
pub struct SessionOptions {
    /// MQTT client id (the thing name).
    pub client_id: String,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS client configuration (mutual TLS with the robot's certificate), or plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Keep-alive interval sent in CONNECT; a PINGREQ goes out when nothing was written for
    /// this long.
    pub keep_alive: Duration,
    /// Largest packet either way.
    pub max_packet: usize,
}

impl std::fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOptions")
            .field("client_id", &self.client_id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// One live MQTT connection. Dropping it (or [`Session::kill`]) closes the socket without a
/// DISCONNECT packet, as when a robot loses Wi-Fi.
pub struct Session {
    io: Box<dyn Io>,
    inbuf: BytesMut,
    out: BytesMut,
    /// Bytes ever queued and ever written: the marks below are positions in that count.
    queued: u64,
    written: u64,
    /// Packets to report once written, by the position of their last byte.
    marks: VecDeque<(u64, Outgoing)>,
    /// Written packets not yet reported.
    done: VecDeque<Outgoing>,
    flush_pending: bool,
    ping: Pin<Box<Sleep>>,
    keep_alive: Duration,
    awaiting_pong: bool,
    max_packet: usize,
    next_pkid: u16,
    /// The end of CONNECT in the byte count, and whether CONNACK arrived: nothing after
    /// CONNECT is written before it.
    connect_end: u64,
    connack: bool,
    closed: bool,
}

impl Session {
    /// Opens the TCP (and TLS) connection and queues CONNECT (clean session, the options'
    /// keep-alive). The broker's CONNACK arrives through [`Session::recv`].
    pub async fn connect(opts: &SessionOptions) -> Result<Session, String> {
        let tcp = TcpStream::connect((opts.host.as_str(), opts.port))
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", opts.host, opts.port))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &opts.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(opts.host.clone())
                    .map_err(|e| format!("{} is not a TLS server name: {e}", opts.host))?;
                let tls = rumqttc::tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {}: {e}", opts.host))?;
                Box::new(tls)
            }
        };
        let mut session = Session {
            io,
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            queued: 0,
            written: 0,
            marks: VecDeque::new(),
            done: VecDeque::new(),
            flush_pending: false,
            ping: Box::pin(tokio::time::sleep(opts.keep_alive)),
            keep_alive: opts.keep_alive,
            awaiting_pong: false,
            max_packet: opts.max_packet,
            next_pkid: 0,
            connect_end: 0,
            connack: false,
            closed: false,
        };
        let mut connect = Connect::new(opts.client_id.clone());
        connect.keep_alive = u16::try_from(opts.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.clean_session = true;
        session.queue(&Packet::Connect(connect), None)?;
        session.connect_end = session.queued;
        Ok(session)
    }

    fn queue(&mut self, packet: &Packet, mark: Option<Outgoing>) -> Result<(), String> {
        if self.closed {
            return Err("the session is closed".into());
        }
        let written = packet
            .write(&mut self.out, self.max_packet)
            .map_err(|e| format!("cannot encode the packet: {e:?}"))?;
        self.queued += written as u64;
        if let Some(m) = mark {
            self.marks.push_back((self.queued, m));
        }
        Ok(())
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }

    /// Queues a QoS 0 publish; it is reported as [`Outgoing::Publish`] once written.
    pub fn try_publish(
        &mut self,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), String> {
        if self.marks.len() >= SESSION_QUEUE {
            return Err(format!("{SESSION_QUEUE} packets are waiting to be written"));
        }
        let publish = Publish::new(topic, QoS::AtMostOnce, payload);
        self.queue(&Packet::Publish(publish), Some(Outgoing::Publish(0)))
    }

    /// Queues one SUBSCRIBE for `filters`; the broker's SUBACK arrives through `recv`.
    pub fn try_subscribe_many(
        &mut self,
        filters: impl IntoIterator<Item = SubscribeFilter>,
    ) -> Result<(), String> {
        let mut subscribe = Subscribe::new_many(filters);
        subscribe.pkid = self.pkid();
        let pkid = subscribe.pkid;
        self.queue(
            &Packet::Subscribe(subscribe),
            Some(Outgoing::Subscribe(pkid)),
        )
    }

    /// Queues DISCONNECT; [`Outgoing::Disconnect`] is reported once it is written.
    pub fn try_disconnect(&mut self) -> Result<(), String> {
        self.queue(&Packet::Disconnect, Some(Outgoing::Disconnect))
    }

    /// Drops the connection without a DISCONNECT packet (the broker sees the socket close).
    pub fn kill(self) {}

    /// The next event: an incoming packet, or an outgoing one fully written. `Some(Err(_))`
    /// ends the connection; after it, `None`. Cancellation safe.
    pub async fn recv(&mut self) -> Option<Result<Event, String>> {
        loop {
            if self.closed {
                return None;
            }
            if let Some(o) = self.done.pop_front() {
                return Some(Ok(Event::Outgoing(o)));
            }
            match Packet::read(&mut self.inbuf, self.max_packet) {
                Ok(packet) => return Some(self.incoming(packet)),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => return Some(self.fail(format!("bad packet from the broker: {e:?}"))),
            }
            if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_BUFFER {
                self.inbuf = BytesMut::new();
            }
            if let Err(e) = poll_fn(|cx| self.poll_io(cx)).await {
                return Some(self.fail(e));
            }
        }
    }

    fn fail(&mut self, problem: String) -> Result<Event, String> {
        self.closed = true;
        Err(problem)
    }

    fn incoming(&mut self, packet: Packet) -> Result<Event, String> {
        match &packet {
            Packet::PingResp => self.awaiting_pong = false,
            Packet::ConnAck(_) => self.connack = true,
            Packet::Publish(p) => match p.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => self.queue(&Packet::PubAck(PubAck::new(p.pkid)), None)?,
                QoS::ExactlyOnce => {
                    return self.fail(format!(
                        "the broker sent a QoS 2 publish on {} (this session subscribes at QoS 0)",
                        p.topic
                    ));
                }
            },
            _ => {}
        }
        Ok(Event::Incoming(packet))
    }

    /// Moves bytes: writes what is queued, reads what arrived, sends PINGREQ when due. Ready
    /// once something moved.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let mut moved = false;
        loop {
            // Until CONNACK, only CONNECT goes out (rumqttd drops what follows CONNECT in the
            // same read; waiting is what rumqttc does too).
            let allowed = if self.connack {
                self.out.len()
            } else {
                usize::try_from(self.connect_end.saturating_sub(self.written)).unwrap_or(0)
            };
            if allowed == 0 {
                break;
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.out[..allowed]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err("the broker closed the connection".into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.out.advance(n);
                    self.written += n as u64;
                    self.flush_pending = true;
                    moved = true;
                    while let Some((end, _)) = self.marks.front() {
                        if *end > self.written {
                            break;
                        }
                        if let Some((_, o)) = self.marks.pop_front() {
                            self.done.push_back(o);
                        }
                    }
                    if !self.awaiting_pong {
                        self.ping.as_mut().reset(Instant::now() + self.keep_alive);
                    }
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(format!("writing to the broker: {e}")));
                }
                Poll::Pending => break,
            }
        }
        if self.out.is_empty() && self.out.capacity() > KEEP_BUFFER {
            self.out = BytesMut::new();
        }
        if self.flush_pending {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_pending = false,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(format!("writing to the broker: {e}")));
                }
                Poll::Pending => {}
            }
        }
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                return Poll::Ready(Err("the broker closed the connection".into()));
            }
            Poll::Ready(Ok(())) => {
                self.inbuf.extend_from_slice(buf.filled());
                moved = true;
            }
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Err(format!("reading from the broker: {e}")));
            }
            Poll::Pending => {}
        }
        if self.ping.as_mut().poll(cx).is_ready() {
            if self.awaiting_pong {
                return Poll::Ready(Err(format!(
                    "the broker did not answer PINGREQ within {} s",
                    self.keep_alive.as_secs()
                )));
            }
            self.queue(&Packet::PingReq, None)?;
            self.awaiting_pong = true;
            self.ping.as_mut().reset(Instant::now() + self.keep_alive);
            moved = true;
        }
        if moved {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn options(port: u16, keep_alive: Duration) -> SessionOptions {
        SessionOptions {
            client_id: "rb-lean".into(),
            host: "127.0.0.1".into(),
            port,
            tls: None,
            keep_alive,
            max_packet: 64 * 1024,
        }
    }

    /// Reads one packet the client sent.
    async fn read_packet(sock: &mut TcpStream, buf: &mut BytesMut) -> Packet {
        loop {
            match Packet::read(buf, 1 << 20) {
                Ok(p) => return p,
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
            let n = sock.read_buf(buf).await.unwrap();
            assert!(n > 0, "the client closed the socket");
        }
    }

    fn connack() -> Packet {
        Packet::ConnAck(rumqttc::ConnAck::new(
            rumqttc::ConnectReturnCode::Success,
            false,
        ))
    }

    async fn send(sock: &mut TcpStream, p: Packet) {
        let mut b = BytesMut::new();
        p.write(&mut b, 1 << 20).unwrap();
        sock.write_all(&b).await.unwrap();
    }

    #[tokio::test]
    async fn connects_subscribes_publishes_and_answers_qos1_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let Packet::Connect(c) = read_packet(&mut sock, &mut buf).await else {
                panic!("expected CONNECT")
            };
            assert_eq!((c.client_id.as_str(), c.keep_alive), ("rb-lean", 30));
            // The SUBSCRIBE queued right after connecting waits for CONNACK.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut probe = [0u8; 1];
            assert!(
                buf.is_empty()
                    && matches!(sock.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "nothing but CONNECT before CONNACK"
            );
            send(&mut sock, connack()).await;
            let Packet::Subscribe(s) = read_packet(&mut sock, &mut buf).await else {
                panic!("expected SUBSCRIBE")
            };
            assert_eq!(s.filters.len(), 2);
            send(
                &mut sock,
                Packet::SubAck(rumqttc::SubAck::new(
                    s.pkid,
                    vec![rumqttc::SubscribeReasonCode::Success(QoS::AtMostOnce); 2],
                )),
            )
            .await;
            let mut topics = Vec::new();
            for _ in 0..3 {
                let Packet::Publish(p) = read_packet(&mut sock, &mut buf).await else {
                    panic!("expected PUBLISH")
                };
                assert_eq!(p.qos, QoS::AtMostOnce);
                topics.push((p.topic, p.payload.len()));
            }
            // A QoS 1 publish gets its PUBACK.
            let mut p = Publish::new("rb/in", QoS::AtLeastOnce, "x");
            p.pkid = 7;
            send(&mut sock, Packet::Publish(p)).await;
            let Packet::PubAck(ack) = read_packet(&mut sock, &mut buf).await else {
                panic!("expected PUBACK")
            };
            assert_eq!(ack.pkid, 7);
            assert!(matches!(
                read_packet(&mut sock, &mut buf).await,
                Packet::Disconnect
            ));
            topics
        });
        let mut s = Session::connect(&options(port, Duration::from_secs(30)))
            .await
            .unwrap();
        s.try_subscribe_many([
            SubscribeFilter::new("a/#".into(), QoS::AtMostOnce),
            SubscribeFilter::new("b".into(), QoS::AtMostOnce),
        ])
        .unwrap();
        let mut seen = Vec::new();
        while !seen
            .iter()
            .any(|e| matches!(e, Event::Incoming(Packet::SubAck(_))))
        {
            seen.push(s.recv().await.unwrap().unwrap());
        }
        assert!(
            matches!(
                seen.as_slice(),
                [
                    Event::Incoming(Packet::ConnAck(_)),
                    Event::Outgoing(Outgoing::Subscribe(1)),
                    Event::Incoming(Packet::SubAck(_))
                ]
            ),
            "{seen:?}"
        );
        // A payload larger than a read chunk and the kept buffer goes out whole.
        s.try_publish("t/1", vec![1u8; 10 * READ_CHUNK]).unwrap();
        s.try_publish("t/2", "small").unwrap();
        s.try_publish("t/3", "").unwrap();
        let mut flushed = 0;
        while flushed < 3 {
            if let Event::Outgoing(Outgoing::Publish(_)) = s.recv().await.unwrap().unwrap() {
                flushed += 1;
            }
        }
        assert!(
            s.out.capacity() <= KEEP_BUFFER,
            "the drained write buffer is released"
        );
        loop {
            if let Event::Incoming(Packet::Publish(p)) = s.recv().await.unwrap().unwrap() {
                assert_eq!(p.topic, "rb/in");
                break;
            }
        }
        s.try_disconnect().unwrap();
        while !matches!(
            s.recv().await.unwrap().unwrap(),
            Event::Outgoing(Outgoing::Disconnect)
        ) {}
        let topics = broker.await.unwrap();
        assert_eq!(
            topics,
            vec![
                ("t/1".into(), 10 * READ_CHUNK),
                ("t/2".into(), 5),
                ("t/3".into(), 0)
            ]
        );
    }

    #[tokio::test]
    async fn pings_when_idle_and_ends_when_the_broker_stops_answering() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            assert!(matches!(
                read_packet(&mut sock, &mut buf).await,
                Packet::Connect(_)
            ));
            send(&mut sock, connack()).await;
            // The first PINGREQ is answered, the second is not.
            assert!(matches!(
                read_packet(&mut sock, &mut buf).await,
                Packet::PingReq
            ));
            send(&mut sock, Packet::PingResp).await;
            assert!(matches!(
                read_packet(&mut sock, &mut buf).await,
                Packet::PingReq
            ));
            // Keep the socket open and silent until the client gives up.
            let mut rest = Vec::new();
            let _ = sock.read_to_end(&mut rest).await;
        });
        let mut s = Session::connect(&options(port, Duration::from_secs(1)))
            .await
            .unwrap();
        let started = Instant::now();
        let mut pongs = 0;
        let problem = loop {
            match s.recv().await {
                Some(Ok(Event::Incoming(Packet::PingResp))) => pongs += 1,
                Some(Ok(_)) => {}
                Some(Err(e)) => break e,
                None => panic!("ended without an error"),
            }
        };
        assert_eq!(pongs, 1);
        assert!(problem.contains("did not answer PINGREQ"), "{problem}");
        // Ping at 1 s, again at 2 s, unanswered at 3 s.
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(s.recv().await.is_none(), "nothing after the end");
        drop(s);
        broker.await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_socket_and_a_garbage_packet_are_errors_that_end_the_session() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            sock.write_all(&[0xF0, 0x00]).await.unwrap(); // packet type 15: reserved
            let (sock2, _) = listener.accept().await.unwrap();
            drop(sock2);
            let mut rest = Vec::new();
            let _ = sock.read_to_end(&mut rest).await;
        });
        let opts = options(port, Duration::from_secs(30));
        let mut s = Session::connect(&opts).await.unwrap();
        let e = loop {
            if let Err(e) = s.recv().await.unwrap() {
                break e;
            }
        };
        assert!(e.contains("bad packet"), "{e}");
        assert!(
            s.try_publish("t", "x").is_err(),
            "a closed session takes no publish"
        );
        let mut s2 = Session::connect(&opts).await.unwrap();
        let e = loop {
            if let Err(e) = s2.recv().await.unwrap() {
                break e;
            }
        };
        // Closed with our CONNECT unread, the socket may be reset rather than shut.
        assert!(e.contains("the broker"), "{e}");
        drop(s);
        broker.await.unwrap();
    }
}
