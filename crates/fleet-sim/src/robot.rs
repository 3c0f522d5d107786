//! One virtual robot: its MQTT session, its state (battery, status, position, firmware, errors),
//! its plan, its answers to desired-state commands, and its ledger.
//!
//! A robot executes its planned actions at their simulated times, publishes QoS 0, and records each
//! publish in its ledger when rumqttc reports it flushed. Commands arrive on the shadow delta
//! topic (`start`, `dock`, a new `schedule`); the robot acts and reports the same value back, which
//! clears the delta as on a real device. At the end it reads its shadow (`get`) to learn the final
//! version the robots index must reach.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{Event, Incoming, Outgoing, QoS, SubscribeFilter};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::faults::{FaultConfig, MalformedKind};
use crate::ledger::RobotLedger;
use crate::mqtt::{ConnectLimiter, Session, SessionFactory};
use crate::payload::{self, Mission};
use crate::shape::{Action, CommandKind, END_STATUSES, Planned, RobotPlan};

/// Maps planned simulated seconds to real instants.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    /// Real instant of simulated second 0.
    pub real_start: Instant,
    /// Simulated time at second 0.
    pub sim_start: OffsetDateTime,
    /// Simulated seconds per real second.
    pub compression: f64,
}

impl SimClock {
    /// The real instant of simulated second `at_s`.
    pub fn instant(&self, at_s: f64) -> Instant {
        self.real_start + Duration::from_secs_f64((at_s / self.compression).max(0.0))
    }

    /// Simulated time now.
    pub fn sim_now(&self) -> OffsetDateTime {
        let real = Instant::now().saturating_duration_since(self.real_start);
        self.sim_start + time::Duration::seconds_f64(real.as_secs_f64() * self.compression)
    }
}

/// Counters the progress display reads while the run goes on.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Robots with a live session.
    pub connected: AtomicU64,
    /// Publishes flushed so far.
    pub published: AtomicU64,
    /// Missions started and not yet ended.
    pub in_flight: AtomicU64,
    /// Robots that finished their plan.
    pub done: AtomicU64,
}

/// A publish-to-visible latency probe.
#[derive(Debug, Clone)]
pub enum Sample {
    /// A mission report: visible when the item holds at least `rev`.
    Mission {
        /// Thing name.
        robot: String,
        /// Sort key of the item.
        sk: String,
        /// Revision published.
        rev: u32,
        /// When it was flushed.
        at: Instant,
    },
    /// A shadow update: visible when the robots index holds at least `version`.
    Shadow {
        /// Thing name (the document id).
        robot: String,
        /// Version the shadow service gave the update.
        version: u64,
        /// When the update was flushed.
        at: Instant,
    },
}

impl Sample {
    /// When the probed message was flushed to the broker.
    pub fn at(&self) -> Instant {
        match self {
            Sample::Mission { at, .. } | Sample::Shadow { at, .. } => *at,
        }
    }
}

/// What every robot of a run shares.
pub struct Shared {
    /// Session options per robot.
    pub sessions: SessionFactory,
    /// CONNECT pacing.
    pub limiter: ConnectLimiter,
    /// Simulated time.
    pub clock: SimClock,
    /// Fault rates.
    pub faults: FaultConfig,
    /// Live counters.
    pub live: LiveStats,
    /// Where latency probes go (when verifying).
    pub samples: Option<mpsc::UnboundedSender<Sample>>,
    /// Probe every n-th mission report and shadow update.
    pub sample_every: u64,
    /// Seed of the fault draws.
    pub seed: u64,
    /// Simulated length of the window.
    pub length_s: f64,
    /// Flips to true to stop every robot early.
    pub stop: watch::Receiver<bool>,
}

#[derive(Debug, Clone)]
enum Tracked {
    Report {
        mission_id: String,
        started_at: String,
        rev: u32,
        duplicate: bool,
        reorder: bool,
        sample: bool,
    },
    Shadow {
        duplicate: bool,
        token: Option<String>,
    },
    Malformed(MalformedKind),
    Get,
}

const ADHOC_SLOT_BASE: u32 = 100_000;
const FIRMWARE_FACTORY: &str = "3.2.0";
const FIRMWARE_CURRENT: &str = "3.4.2";

struct Robot {
    id: String,
    shared: Arc<Shared>,
    ledger: RobotLedger,
    rng: StdRng,
    agenda: VecDeque<Planned>,
    battery: f64,
    status: &'static str,
    firmware: &'static str,
    position: (f64, f64),
    error_codes: Vec<String>,
    schedule: Value,
    running: Option<(u32, Mission, u8)>,
    finished: HashMap<u32, Mission>,
    steady_last: Option<(Mission, u32)>,
    next_slot: u32,
    pending: VecDeque<Tracked>,
    token_seq: u64,
    sample_tokens: HashMap<String, Instant>,
    malformed_counter: usize,
    report_counter: u64,
    shadow_counter: u64,
    disconnect_at: Option<Instant>,
    seen_commands: Vec<String>,
    /// When this robot (client id) last sent CONNECT: IoT Core takes one a second per client id.
    last_connect: Option<tokio::time::Instant>,
    /// Settings and firmware channels set by commands, in order.
    settings: Vec<Value>,
}

/// Runs one robot to the end of the window and returns its ledger.
pub async fn run_robot(plan: RobotPlan, id: String, shared: Arc<Shared>) -> RobotLedger {
    let mut rng = crate::shape::robot_rng(shared.seed ^ 0xFA17, plan.k);
    let disconnect_at = (shared.faults.disconnect > 0.0
        && rng.random::<f64>() < shared.faults.disconnect)
        .then(|| {
            let at = rng.random_range(0.1..0.8) * shared.length_s;
            shared.clock.instant(at.max(plan.connect_at_s + 1.0))
        });
    let mut robot = Robot {
        ledger: RobotLedger::new(id.clone()),
        id,
        battery: rng.random_range(60.0..100.0),
        rng,
        agenda: plan.actions.into_iter().collect(),
        status: "docked",
        firmware: if plan.new_robot {
            FIRMWARE_FACTORY
        } else {
            FIRMWARE_CURRENT
        },
        position: (0.0, 0.0),
        error_codes: Vec::new(),
        schedule: Value::Null,
        running: None,
        finished: HashMap::new(),
        steady_last: None,
        next_slot: ADHOC_SLOT_BASE,
        pending: VecDeque::new(),
        token_seq: 0,
        sample_tokens: HashMap::new(),
        // Start the kind rotation at the robot's index, so a small fleet still shows every kind.
        malformed_counter: usize::try_from(plan.k).unwrap_or(0),
        report_counter: 0,
        shadow_counter: 0,
        disconnect_at,
        seen_commands: Vec::new(),
        last_connect: None,
        settings: Vec::new(),
        shared,
    };
    // Robots in service connect during the connect phase, before simulated time starts; new
    // robots (Christmas) connect when they are switched on.
    if plan.connect_at_s > 0.0 {
        tokio::time::sleep_until(robot.shared.clock.instant(plan.connect_at_s)).await;
    }
    robot.run().await;
    robot.ledger
}

impl Robot {
    async fn connect(&mut self) -> Option<Session> {
        let mut backoff = Duration::from_millis(200);
        for _attempt in 0..8 {
            if *self.shared.stop.borrow() {
                return None;
            }
            self.shared
                .limiter
                .acquire_for(&mut self.last_connect)
                .await;
            match self.try_connect().await {
                Ok(s) => {
                    self.ledger.connects += 1;
                    self.shared.live.connected.fetch_add(1, Ordering::Relaxed);
                    return Some(s);
                }
                Err(e) => {
                    tracing::debug!(robot = %self.id, error = %e, "connect failed");
                    self.ledger.connect_errors += 1;
                    self.ledger.last_error = Some(e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        None
    }

    async fn try_connect(&mut self) -> Result<Session, String> {
        let opts = self
            .shared
            .sessions
            .options(&self.id)
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(15);
        // Boxed: the TCP and TLS connect futures would otherwise size every robot's task.
        let mut session = tokio::time::timeout_at(deadline, Box::pin(Session::connect(&opts)))
            .await
            .map_err(|_| "timed out connecting".to_string())??;
        let filters = payload::shadow_subscriptions(&self.id)
            .into_iter()
            .map(|t| SubscribeFilter::new(t, QoS::AtMostOnce));
        session.try_subscribe_many(filters)?;
        let mut connected = false;
        loop {
            match tokio::time::timeout_at(deadline, session.recv()).await {
                Err(_) => return Err("timed out waiting for CONNACK/SUBACK".into()),
                Ok(None) => return Err("eventloop ended".into()),
                Ok(Some(Err(e))) => return Err(e),
                Ok(Some(Ok(Event::Incoming(Incoming::ConnAck(ack))))) => {
                    if ack.code != rumqttc::ConnectReturnCode::Success {
                        return Err(format!("connection refused: {:?}", ack.code));
                    }
                    connected = true;
                }
                Ok(Some(Ok(Event::Incoming(Incoming::SubAck(_))))) if connected => {
                    return Ok(session);
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    fn lost_connection(&mut self, session: Session, abrupt_injected: bool) {
        session.kill();
        self.shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        // Whatever was queued and not reported flushed may or may not have reached the broker.
        for t in std::mem::take(&mut self.pending) {
            self.ledger.unflushed += 1;
            if let Tracked::Report {
                mission_id,
                started_at,
                rev,
                ..
            } = t
            {
                self.ledger.report_uncertain(&mission_id, &started_at, rev);
            }
        }
        if abrupt_injected {
            self.ledger.disconnects += 1;
        } else {
            self.ledger.unexpected_disconnects += 1;
        }
    }

    async fn run(&mut self) {
        let Some(mut session) = self.connect().await else {
            return;
        };
        let mut stop = self.shared.stop.clone();
        let end = self.shared.clock.instant(self.shared.length_s);
        loop {
            let next = self
                .agenda
                .front()
                .map(|p| self.shared.clock.instant(p.at_s));
            let disconnect = self.disconnect_at.filter(|_| self.pending.is_empty());
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                ev = session.recv() => match ev {
                    Some(Ok(ev)) => self.on_event(ev, &mut session),
                    other => {
                        let e = match other { Some(Err(e)) => e, _ => "eventloop ended".into() };
                        tracing::debug!(robot = %self.id, error = %e, "connection lost");
                        self.ledger.last_error = Some(e);
                        self.lost_connection(session, false);
                        match self.connect().await { Some(s) => session = s, None => return }
                    }
                },
                _ = sleep_until_opt(disconnect), if disconnect.is_some() => {
                    self.disconnect_at = None;
                    self.lost_connection(session, true);
                    let pause = Duration::from_millis(self.rng.random_range(100..1500));
                    tokio::time::sleep(pause).await;
                    match self.connect().await { Some(s) => session = s, None => return }
                },
                _ = sleep_until_opt(next), if next.is_some() => {
                    if let Some(p) = self.agenda.pop_front() {
                        self.perform(p.action, &mut session);
                    }
                },
                _ = tokio::time::sleep_until(end), if next.is_none() => break,
            }
        }
        self.finish(session).await;
    }

    /// Flushes what is queued, reads the final shadow version, disconnects cleanly.
    async fn finish(&mut self, mut session: Session) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let token = self.next_token();
        let get = json!({ "clientToken": token }).to_string();
        if session
            .try_publish(payload::shadow_get_topic(&self.id), get)
            .is_ok()
        {
            self.pending.push_back(Tracked::Get);
        }
        let mut tries = 0;
        while self.ledger.final_version.is_none() || !self.pending.is_empty() {
            match tokio::time::timeout_at(
                deadline.min(Instant::now() + Duration::from_secs(3)),
                session.recv(),
            )
            .await
            {
                Ok(Some(Ok(ev))) => self.on_event(ev, &mut session),
                Ok(_) => break,
                Err(_) => {
                    tries += 1;
                    if Instant::now() >= deadline || tries >= 3 {
                        break;
                    }
                    // No answer yet: ask again (QoS 0 answers can be lost).
                    let get = json!({ "clientToken": self.next_token() }).to_string();
                    if session
                        .try_publish(payload::shadow_get_topic(&self.id), get)
                        .is_ok()
                    {
                        self.pending.push_back(Tracked::Get);
                    }
                }
            }
        }
        let _ = session.try_disconnect();
        let bye = Instant::now() + Duration::from_secs(2);
        while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(bye, session.recv()).await {
            if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                break;
            }
            self.on_event(ev, &mut session);
        }
        for t in std::mem::take(&mut self.pending) {
            self.ledger.unflushed += 1;
            if let Tracked::Report {
                mission_id,
                started_at,
                rev,
                ..
            } = t
            {
                self.ledger.report_uncertain(&mission_id, &started_at, rev);
            }
        }
        self.shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        self.shared.live.done.fetch_add(1, Ordering::Relaxed);
    }

    fn next_token(&mut self) -> String {
        self.token_seq += 1;
        format!("{}-{}", self.id, self.token_seq)
    }

    fn publish(&mut self, session: &mut Session, topic: String, bytes: Vec<u8>, tracked: Tracked) {
        match session.try_publish(topic, bytes) {
            Ok(()) => self.pending.push_back(tracked),
            Err(e) => {
                tracing::debug!(robot = %self.id, error = %e, "publish not queued");
                self.ledger.unflushed += 1;
            }
        }
    }

    fn on_event(&mut self, ev: Event, session: &mut Session) {
        match ev {
            Event::Outgoing(Outgoing::Publish(_)) => {
                if let Some(t) = self.pending.pop_front() {
                    self.flushed(t);
                }
            }
            Event::Incoming(Incoming::Publish(p)) => self.on_message(&p.topic, &p.payload, session),
            _ => {}
        }
    }

    fn flushed(&mut self, t: Tracked) {
        self.shared.live.published.fetch_add(1, Ordering::Relaxed);
        self.ledger
            .publishes
            .count(self.shared.clock.real_start.elapsed().as_secs_f64());
        match t {
            Tracked::Report {
                mission_id,
                started_at,
                rev,
                duplicate,
                reorder,
                sample,
            } => {
                self.ledger.report_flushed(&mission_id, &started_at, rev);
                if duplicate {
                    self.ledger.duplicates += 1;
                }
                if reorder {
                    self.ledger.reorders += 1;
                }
                if sample && let Some(tx) = &self.shared.samples {
                    let _ = tx.send(Sample::Mission {
                        robot: self.id.clone(),
                        sk: format!("MISSION#{started_at}#{mission_id}"),
                        rev,
                        at: Instant::now(),
                    });
                }
            }
            Tracked::Shadow { duplicate, token } => {
                self.ledger.shadow_updates += 1;
                if duplicate {
                    self.ledger.duplicates += 1;
                }
                if let Some(token) = token {
                    self.sample_tokens.insert(token, Instant::now());
                }
            }
            Tracked::Malformed(kind) => {
                *self.ledger.malformed.entry(kind).or_default() += 1;
            }
            Tracked::Get => self.ledger.shadow_gets += 1,
        }
    }

    fn on_message(&mut self, topic: &str, body: &[u8], session: &mut Session) {
        let Some(suffix) = topic.rsplit_once("/shadow/").map(|(_, s)| s) else {
            return;
        };
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let version = v.get("version").and_then(Value::as_u64);
        match suffix {
            "update/accepted" => {
                if let Some(ver) = version {
                    let last = self.ledger.last_accepted_version.get_or_insert(ver);
                    *last = (*last).max(ver);
                    if let (Some(token), Some(tx)) = (
                        v.get("clientToken").and_then(Value::as_str),
                        &self.shared.samples,
                    ) && let Some(at) = self.sample_tokens.remove(token)
                    {
                        let _ = tx.send(Sample::Shadow {
                            robot: self.id.clone(),
                            version: ver,
                            at,
                        });
                    }
                }
            }
            "get/accepted" => {
                if let Some(ver) = version {
                    self.ledger.final_version = Some(ver);
                }
            }
            "update/rejected" => self.ledger.shadow_rejected += 1,
            "get/rejected" => {
                // No shadow yet (404): nothing for the index to reach.
                self.ledger.final_version = self.ledger.last_accepted_version.or(Some(0));
            }
            "update/delta" => self.on_delta(&v, session),
            _ => {}
        }
    }

    fn on_delta(&mut self, v: &Value, session: &mut Session) {
        let Some(state) = v.get("state").and_then(Value::as_object) else {
            return;
        };
        let mut ack = serde_json::Map::new();
        let fresh = |v: &Value, seen: &mut Vec<String>| -> bool {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if seen.contains(&id) {
                return false;
            }
            seen.push(id);
            true
        };
        let mut clear_command = false;
        if let Some(cmd) = state.get("command").filter(|c| c.is_object()) {
            // schemas/job-command: act on a command id once; a repeated delivery gets the same
            // acknowledgement again, and the desired command is cleared either way.
            let id = cmd.get("id").and_then(Value::as_str).unwrap_or_default();
            let action = cmd
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let first_time = fresh(cmd, &mut self.seen_commands);
            let outcome = if first_time {
                self.ledger.commands_handled += 1;
                self.act(cmd, session)
            } else {
                Ok(())
            };
            let mut reply = json!({"id": id, "action": action, "status": "applied"});
            if let Err(reason) = outcome {
                reply["status"] = json!("rejected");
                reply["reason"] = json!(reason);
            }
            ack.insert("command".into(), reply);
            clear_command = true;
        }
        if let Some(schedule) = state
            .get("schedule")
            .filter(|s| fresh(s, &mut self.seen_commands))
        {
            self.schedule = schedule.clone();
            ack.insert("schedule".into(), schedule.clone());
            self.ledger.commands_handled += 1;
        }
        if clear_command {
            self.report_and_clear(session, Value::Object(ack), json!({"command": null}));
        } else if !ack.is_empty() {
            self.report_shadow(session, Value::Object(ack));
        }
    }

    /// Acts on one command (schemas/job-command): `Err` names why it was not applied.
    fn act(&mut self, cmd: &Value, session: &mut Session) -> Result<(), String> {
        let params = cmd.get("params").cloned().unwrap_or_else(|| json!({}));
        match cmd.get("action").and_then(Value::as_str) {
            Some("start") => {
                if self.running.is_some() {
                    return Err("a mission is running".into());
                }
                let slot = self.next_slot;
                self.next_slot += 1;
                let now_s = self.sim_now_s();
                self.start_mission(session, slot, 25.0 * 60.0, 0);
                self.schedule_mission_end(slot, now_s, 25.0 * 60.0);
                Ok(())
            }
            Some("dock") => {
                if let Some((slot, _, _)) = &self.running {
                    let slot = *slot;
                    self.end_mission(session, slot, Some("cancelled"));
                }
                Ok(())
            }
            Some("reboot") => Ok(()),
            Some("schedule") => {
                self.schedule = params;
                Ok(())
            }
            Some("setting") | Some("firmware-channel") => {
                self.settings.push(params);
                Ok(())
            }
            Some(other) => Err(format!("unknown action {other:?}")),
            None => Err("the command has no action".into()),
        }
    }

    fn sim_now_s(&self) -> f64 {
        (self.shared.clock.sim_now() - self.shared.clock.sim_start).as_seconds_f64()
    }

    fn schedule_mission_end(&mut self, slot: u32, start_s: f64, duration_s: f64) {
        let mut extra = vec![Planned {
            at_s: start_s + duration_s,
            action: Action::MissionEnd { slot },
        }];
        let mut t = crate::shape::PROGRESS_EVERY_S;
        while t < duration_s {
            extra.push(Planned {
                at_s: start_s + t,
                action: Action::MissionProgress { slot },
            });
            t += crate::shape::PROGRESS_EVERY_S;
        }
        extra.push(Planned {
            at_s: start_s + duration_s + 300.0,
            action: Action::MissionRev2 { slot },
        });
        for p in extra {
            let pos = self.agenda.partition_point(|q| q.at_s <= p.at_s);
            self.agenda.insert(pos, p);
        }
    }

    fn base_reported(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("battery".into(), json!(self.battery.round() as u64));
        m.insert("status".into(), json!(self.status));
        m.insert(
            "position".into(),
            json!({ "x": (self.position.0 * 100.0).round() / 100.0, "y": (self.position.1 * 100.0).round() / 100.0 }),
        );
        m.insert("firmware".into(), json!(self.firmware));
        m.insert("errorCodes".into(), json!(self.error_codes));
        m
    }

    /// Reports `reported` and sets `desired` in one update (a command's acknowledgement clears
    /// the desired command with `null`).
    fn report_and_clear(&mut self, session: &mut Session, reported: Value, desired: Value) {
        let token = self.next_token();
        let body = payload::shadow_ack(reported, desired, &token)
            .to_string()
            .into_bytes();
        let topic = payload::shadow_update_topic(&self.id);
        self.publish(
            session,
            topic,
            body,
            Tracked::Shadow {
                duplicate: false,
                token: None,
            },
        );
    }

    fn report_shadow(&mut self, session: &mut Session, reported: Value) {
        self.shadow_counter += 1;
        let every = self.shared.sample_every.max(1);
        let sample = self.shared.samples.is_some() && self.shadow_counter % every == 1 % every;
        let token = self.next_token();
        let body = payload::shadow_report(reported, &token)
            .to_string()
            .into_bytes();
        let topic = payload::shadow_update_topic(&self.id);
        self.publish(
            session,
            topic.clone(),
            body.clone(),
            Tracked::Shadow {
                duplicate: false,
                token: sample.then(|| token.clone()),
            },
        );
        if self.shared.faults.roll_duplicate(&mut self.rng) {
            self.publish(
                session,
                topic,
                body,
                Tracked::Shadow {
                    duplicate: true,
                    token: None,
                },
            );
        }
    }

    fn send_report(
        &mut self,
        session: &mut Session,
        mission: &Mission,
        rev: u32,
        allow_reorder: bool,
    ) {
        self.report_counter += 1;
        let every = self.shared.sample_every.max(1);
        let sample = self.shared.samples.is_some() && self.report_counter % every == 1 % every;
        let topic = payload::mission_topic(&self.id);
        let body = mission.report(&self.id, rev).to_string().into_bytes();
        let tracked = |duplicate, reorder, sample, rev| Tracked::Report {
            mission_id: mission.mission_id.clone(),
            started_at: mission.started_at_str(),
            rev,
            duplicate,
            reorder,
            sample,
        };
        self.publish(
            session,
            topic.clone(),
            body.clone(),
            tracked(false, false, sample, rev),
        );
        if self.shared.faults.roll_duplicate(&mut self.rng) {
            self.publish(
                session,
                topic.clone(),
                body,
                tracked(true, false, false, rev),
            );
        }
        if allow_reorder && rev > 1 && self.shared.faults.roll_reorder(&mut self.rng) {
            let older = mission.report(&self.id, rev - 1).to_string().into_bytes();
            self.publish(
                session,
                topic.clone(),
                older,
                tracked(false, true, false, rev - 1),
            );
        }
        if let Some(kind) = self
            .shared
            .faults
            .roll_malformed(&mut self.rng, &mut self.malformed_counter)
        {
            let bad = payload::malformed_report(kind, &self.id, mission);
            self.publish(session, topic, bad, Tracked::Malformed(kind));
        }
    }

    fn start_mission(&mut self, session: &mut Session, slot: u32, _duration_s: f64, status: u8) {
        let now = self.shared.clock.sim_now();
        let mission = Mission {
            mission_id: ulid::Ulid::new().to_string(),
            started_at: now,
            ended_at: now,
            status: "completed",
            area_m2: 0.0,
            battery: (self.battery.round() as u8, self.battery.round() as u8),
            errors: Vec::new(),
        };
        self.status = "cleaning";
        self.error_codes.clear();
        let mut r = self.base_reported();
        r.insert(
            "mission".into(),
            json!({ "id": mission.mission_id, "startedAt": mission.started_at_str(), "progress": 0 }),
        );
        self.running = Some((slot, mission, status));
        self.shared.live.in_flight.fetch_add(1, Ordering::Relaxed);
        self.report_shadow(session, Value::Object(r));
    }

    fn progress(&mut self, session: &mut Session, slot: u32) {
        let Some((s, mission, _)) = &mut self.running else {
            return;
        };
        if *s != slot {
            return;
        }
        let step = self.rng.random_range(4.0..9.0);
        mission.area_m2 += step;
        self.battery = (self.battery - self.rng.random_range(3.0..7.0)).max(5.0);
        self.position.0 += self.rng.random_range(-2.0..2.0);
        self.position.1 += self.rng.random_range(-2.0..2.0);
        if self.rng.random::<f64>() < 0.03 {
            let at = self.shared.clock.sim_now();
            mission.errors.push(("wheel_slip".into(), at));
            self.error_codes.push("wheel_slip".into());
        }
        let progress = json!({
            "id": mission.mission_id,
            "startedAt": mission.started_at_str(),
            "areaM2": (mission.area_m2 * 10.0).round() / 10.0,
        });
        let mut r = self.base_reported();
        r.insert("mission".into(), progress);
        self.report_shadow(session, Value::Object(r));
    }

    fn end_mission(&mut self, session: &mut Session, slot: u32, forced: Option<&'static str>) {
        let Some((s, _, _)) = &self.running else {
            return;
        };
        if *s != slot {
            return;
        }
        let Some((_, mut mission, status)) = self.running.take() else {
            return;
        };
        self.shared.live.in_flight.fetch_sub(1, Ordering::Relaxed);
        let now = self.shared.clock.sim_now();
        mission.ended_at = now.max(mission.started_at + time::Duration::seconds(60));
        mission.status = forced.unwrap_or(END_STATUSES[usize::from(status) % END_STATUSES.len()].0);
        if mission.area_m2 < 1.0 {
            mission.area_m2 = self.rng.random_range(5.0..15.0);
        }
        if matches!(mission.status, "stuck" | "error") && mission.errors.is_empty() {
            mission.errors.push((mission.status.to_string(), now));
        }
        mission.battery.1 = self.battery.round() as u8;
        self.status = match mission.status {
            "stuck" => "stuck",
            "error" => "error",
            _ => "docked",
        };
        self.error_codes = mission.errors.iter().map(|(c, _)| c.clone()).collect();
        let mut r = self.base_reported();
        r.insert("mission".into(), Value::Null);
        r.insert(
            "lastMission".into(),
            json!({ "id": mission.mission_id, "status": mission.status }),
        );
        self.report_shadow(session, Value::Object(r));
        self.send_report(session, &mission, 1, false);
        self.finished.insert(slot, mission);
    }

    fn perform(&mut self, action: Action, session: &mut Session) {
        match action {
            Action::Heartbeat | Action::SteadyShadow => {
                if self.status == "docked" {
                    self.battery = (self.battery + self.rng.random_range(5.0..20.0)).min(100.0);
                }
                let r = self.base_reported();
                self.report_shadow(session, Value::Object(r));
            }
            Action::Activate => {
                self.battery = self.rng.random_range(30.0..70.0);
                let mut r = self.base_reported();
                r.insert("provisioned".into(), json!(true));
                r.insert("schedule".into(), Value::Null);
                self.report_shadow(session, Value::Object(r));
            }
            Action::FirmwareUpdate => {
                self.firmware = FIRMWARE_CURRENT;
                let r = self.base_reported();
                self.report_shadow(session, Value::Object(r));
            }
            Action::MissionStart {
                slot,
                duration_s,
                status,
            } => {
                if self.running.is_some() {
                    self.ledger.skipped += 1;
                } else {
                    self.start_mission(session, slot, duration_s, status);
                }
            }
            Action::MissionProgress { slot } => self.progress(session, slot),
            Action::MissionEnd { slot } => self.end_mission(session, slot, None),
            Action::MissionRev2 { slot } => {
                if let Some(m) = self.finished.remove(&slot) {
                    self.send_report(session, &m, 2, true);
                }
            }
            Action::SteadyReport => self.steady_report(session),
        }
    }

    fn steady_report(&mut self, session: &mut Session) {
        match self.steady_last.take() {
            Some((m, 1)) => {
                self.send_report(session, &m, 2, true);
                self.steady_last = Some((m, 2));
            }
            _ => {
                let now = self.shared.clock.sim_now();
                let minutes = self.rng.random_range(20..70);
                let m = Mission {
                    mission_id: ulid::Ulid::new().to_string(),
                    started_at: now - time::Duration::minutes(minutes),
                    ended_at: now,
                    status: "completed",
                    area_m2: self.rng.random_range(20.0..80.0),
                    battery: (100, self.rng.random_range(20..80)),
                    errors: Vec::new(),
                };
                self.send_report(session, &m, 1, false);
                self.steady_last = Some((m, 1));
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How the app side reaches the shadows.
pub enum CommandSink {
    /// An MQTT session of its own (local stack, plain brokers).
    Mqtt {
        /// Its client id.
        client_id: String,
    },
    /// The IoT Data Plane API (`UpdateThingShadow`), as a cloud backend does against IoT Core.
    DataPlane(aws_sdk_iotdataplane::Client),
}

/// Connects the app side's session: a few tries, paced by the CONNECT limiter, with backoff.
async fn app_session(shared: &Shared, client_id: &str) -> Option<Session> {
    let opts = shared.sessions.options(client_id).ok()?;
    let mut backoff = Duration::from_millis(200);
    for _ in 0..5 {
        shared.limiter.acquire().await;
        match Box::pin(Session::connect(&opts)).await {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(client = client_id, error = %e, "app side: connect failed");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
    None
}

fn desired_for(kind: CommandKind, rng: &mut StdRng) -> (String, Value) {
    let id = format!("cmd-{:08x}", rng.random::<u32>());
    let desired = match kind {
        CommandKind::Start => json!({ "command": { "action": "start", "id": id } }),
        CommandKind::Dock => json!({ "command": { "action": "dock", "id": id } }),
        CommandKind::Schedule => json!({ "schedule": {
            "days": ["mon", "wed", "sat"],
            "at": format!("{:02}:{:02}", rng.random_range(7..20), if rng.random::<bool>() { 0 } else { 30 }),
            "id": id,
        } }),
    };
    let body = payload::shadow_desired(desired, &id);
    (id, body)
}

/// The app side: sets desired state on robots' shadows (start, dock, a new schedule) at the
/// planned times, as the mobile app does. Returns (commands sent, commands confirmed).
pub async fn run_controller(
    commands: Vec<(f64, String, CommandKind)>,
    shared: Arc<Shared>,
    sink: CommandSink,
) -> (u64, u64) {
    if commands.is_empty() {
        return (0, 0);
    }
    let mut rng = StdRng::seed_from_u64(shared.seed ^ 0xA99);
    let mut stop = shared.stop.clone();
    match sink {
        CommandSink::DataPlane(client) => {
            let mut sent = 0;
            for (at, robot, kind) in commands {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep_until(shared.clock.instant(at)) => {}
                }
                let (_, body) = desired_for(kind, &mut rng);
                let r = client
                    .update_thing_shadow()
                    .thing_name(&robot)
                    .payload(aws_sdk_iotdataplane::primitives::Blob::new(
                        body.to_string(),
                    ))
                    .send()
                    .await;
                match r {
                    Ok(_) => sent += 1,
                    Err(e) => {
                        tracing::warn!(robot = %robot, error = %crate::error::SimError::aws("iot-data UpdateThingShadow", e), "command not sent")
                    }
                }
            }
            (sent, sent)
        }
        CommandSink::Mqtt { client_id } => {
            let mut sent = 0u64;
            let mut flushed = 0u64;
            let Some(mut session) = app_session(&shared, &client_id).await else {
                return (0, 0);
            };
            let mut queue: VecDeque<(f64, String, CommandKind)> = commands.into();
            loop {
                let next = queue.front().map(|c| shared.clock.instant(c.0));
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    ev = session.recv() => match ev {
                        Some(Ok(Event::Outgoing(Outgoing::Publish(_)))) => flushed += 1,
                        Some(Ok(_)) => {}
                        _ => {
                            match app_session(&shared, &client_id).await {
                                Some(s) => session = s,
                                None => break,
                            }
                        }
                    },
                    _ = sleep_until_opt(next), if next.is_some() => {
                        if let Some((_, robot, kind)) = queue.pop_front() {
                            let (_, body) = desired_for(kind, &mut rng);
                            if session.try_publish(payload::shadow_update_topic(&robot), body.to_string()).is_ok() {
                                sent += 1;
                            }
                        }
                    },
                    _ = std::future::ready(()), if next.is_none() => break,
                }
            }
            // Let the last publishes flush.
            let until = Instant::now() + Duration::from_secs(2);
            while flushed < sent {
                match tokio::time::timeout_at(until, session.recv()).await {
                    Ok(Some(Ok(Event::Outgoing(Outgoing::Publish(_))))) => flushed += 1,
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            let _ = session.try_disconnect();
            tokio::time::sleep(Duration::from_millis(100)).await;
            (sent, flushed)
        }
    }
}
