//! Records of the shadows stream: shadow update documents and presence events, and how each
//! becomes one document of the robots index.
//!
//! Both come from AWS IoT Core, not from firmware, so unknown fields are accepted (AWS adds fields
//! over time) while the fields we use are checked. See `schemas/shadow-documents.schema.json` and
//! `schemas/presence-event.schema.json`.
//!
//! ## External versions
//!
//! The robots index is written with `version_type=external`, so a stale or duplicate record loses
//! (OpenSearch answers 409, which the indexer counts as success).
//!
//! - Shadow documents: a shadow's `version` orders its updates, but it restarts at 0 when the
//!   shadow is deleted and re-created more than 48 h later. The external version is therefore
//!   `(timestamp / 48 h) << 48 | min(version, 2^48 - 1)`: the 48-hour *epoch* of the update's
//!   `timestamp`, then the shadow version. A re-created shadow is at least one epoch later, so it
//!   wins over everything its predecessor wrote; within one life, `version` alone decides (the
//!   timestamp only moves forward with it), so clock jitter inside IoT Core never reorders two
//!   updates of one life except across an epoch boundary.
//! - Presence events: `timestamp` (ms) * 2, plus 1 for `connected`. A later event wins; when a
//!   connect and a disconnect carry the same millisecond, the connect wins, because that is what a
//!   reconnect looks like (the old session's `DUPLICATE_CLIENTID` disconnect and the new session's
//!   connect), and a robot that really went away will have a later disconnect or none at all.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use crate::error::DecodeError;
use crate::ids::{RobotId, validate_shadow_name};
use crate::json::{Fields, as_int, as_str, type_name};
use crate::mission::{check_partition_key, check_size};
use crate::timefmt::{format_rfc3339, from_unix_millis, from_unix_seconds};

/// Seconds in one shadow-version epoch (48 h, the time after which IoT Core restarts a
/// re-created shadow's version at 0).
pub const SHADOW_EPOCH_SECONDS: i64 = 48 * 3600;
/// Bits of the external version that hold the shadow version.
pub const SHADOW_VERSION_BITS: u32 = 48;
/// Largest accepted shadow `timestamp` (exclusive): 2^32 s, the year 2106.
pub const MAX_SHADOW_TIMESTAMP: i64 = 1 << 32;
/// Largest accepted presence `timestamp` in ms (exclusive): 2^53, JSON's exact integer range.
pub const MAX_PRESENCE_TIMESTAMP_MS: i64 = 1 << 53;
/// Largest accepted shadow `version` and presence `versionNumber`: 2^53 - 1, the largest integer
/// every JSON implementation (and JSON Schema validator) represents exactly.
pub const MAX_JSON_INTEGER: u64 = (1 << 53) - 1;
/// Suffix of the presence document id.
pub const PRESENCE_DOC_SUFFIX: &str = "presence";

/// The desired, reported and delta sections of a shadow. Each is a JSON object when present.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ShadowState {
    /// What the cloud asks the robot to be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Value>,
    /// What the robot says it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<Value>,
    /// Difference between the two (rare in documents messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Value>,
}

/// One side (`previous` or `current`) of a shadow update documents message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowDoc {
    /// The shadow state.
    #[serde(default)]
    pub state: ShadowState,
    /// Per-field update timestamps, as IoT Core sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The shadow version: grows by one per update, restarts at 0 for a shadow re-created after
    /// 48 h.
    pub version: u64,
}

/// A shadow update documents message, with the `thingName` (and `shadowName` for a named
/// shadow) that the shadows IoT rule adds from the topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowDocuments {
    /// The shadow before the update; absent on a shadow's first update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<ShadowDoc>,
    /// The shadow after the update.
    pub current: ShadowDoc,
    /// When IoT Core applied the update, Unix seconds.
    pub timestamp: i64,
    /// The client token of the update request, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// The robot (added by the rule: `topic(3) AS thingName`).
    pub thing_name: RobotId,
    /// The named shadow (added by the rule: `topic(6) AS shadowName`); `None` for the classic
    /// shadow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_name: Option<String>,
}

/// Connected or disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceKind {
    /// The robot opened an MQTT session.
    Connected,
    /// The robot's MQTT session ended.
    Disconnected,
}

impl PresenceKind {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceKind::Connected => "connected",
            PresenceKind::Disconnected => "disconnected",
        }
    }
}

/// An IoT Core lifecycle (presence) event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEvent {
    /// The MQTT client id, which is the thing name.
    pub client_id: RobotId,
    /// When it happened, Unix milliseconds.
    #[serde(rename = "timestamp")]
    pub timestamp_ms: i64,
    /// Connected or disconnected.
    pub event_type: PresenceKind,
    /// The MQTT session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_identifier: Option<String>,
    /// IoT Core's per-client lifecycle counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_number: Option<u64>,
    /// Why the session ended (`CONNECTION_LOST`, `DUPLICATE_CLIENTID`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// The certificate or principal that connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_identifier: Option<String>,
    /// The client's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

/// One record of the shadows stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ShadowRecord {
    /// A shadow update documents message (classic or named).
    Documents(ShadowDocuments),
    /// A connected/disconnected event.
    Presence(PresenceEvent),
}

impl<'de> Deserialize<'de> for ShadowRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        ShadowRecord::from_value(&v).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ShadowDocuments {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        ShadowDocuments::from_value(&v).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for PresenceEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        PresenceEvent::from_value(&v).map_err(serde::de::Error::custom)
    }
}

fn optional_string(f: &Fields<'_>, key: &str) -> Result<Option<String>, DecodeError> {
    match f.optional_non_null(key) {
        None => Ok(None),
        Some(v) => Ok(Some(as_str(v, &f.path(key))?.to_owned())),
    }
}

fn optional_object(f: &Fields<'_>, key: &str) -> Result<Option<Value>, DecodeError> {
    match f.optional_non_null(key) {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(v) => Err(DecodeError::invalid(
            f.path(key),
            format!("must be a json object, found {}", type_name(v)),
        )),
    }
}

impl ShadowDoc {
    fn from_value(v: &Value, path: &str) -> Result<ShadowDoc, DecodeError> {
        let f = Fields::of(v, path)?;
        let version = as_int(
            f.required("version")?,
            &f.path("version"),
            0,
            i128::from(MAX_JSON_INTEGER),
        )? as u64;
        let state = match f.optional_non_null("state") {
            None => ShadowState::default(),
            Some(s) => {
                let sf = Fields::of(s, &f.path("state"))?;
                ShadowState {
                    desired: optional_object(&sf, "desired")?,
                    reported: optional_object(&sf, "reported")?,
                    delta: optional_object(&sf, "delta")?,
                }
            }
        };
        Ok(ShadowDoc {
            state,
            metadata: optional_object(&f, "metadata")?,
            version,
        })
    }
}

impl ShadowDocuments {
    /// Validates an already parsed documents message.
    pub fn from_value(v: &Value) -> Result<ShadowDocuments, DecodeError> {
        let f = Fields::of(v, "$")?;
        let current = ShadowDoc::from_value(f.required("current")?, "current")?;
        let previous = match f.optional_non_null("previous") {
            None => None,
            Some(p) => Some(ShadowDoc::from_value(p, "previous")?),
        };
        let timestamp = as_int(
            f.required("timestamp")?,
            "timestamp",
            0,
            i128::from(MAX_SHADOW_TIMESTAMP - 1),
        )? as i64;
        let thing_name =
            RobotId::parse_at("thingName", as_str(f.required("thingName")?, "thingName")?)?;
        let shadow_name = optional_string(&f, "shadowName")?;
        if let Some(name) = &shadow_name {
            validate_shadow_name("shadowName", name)?;
        }
        Ok(ShadowDocuments {
            previous,
            current,
            timestamp,
            client_token: optional_string(&f, "clientToken")?,
            thing_name,
            shadow_name,
        })
    }

    /// The external version (see the module docs).
    pub fn external_version(&self) -> u64 {
        shadow_external_version(self.timestamp, self.current.version)
    }
}

/// `(timestamp / 48 h) << 48 | min(version, 2^48 - 1)`; negative timestamps count as 0.
pub fn shadow_external_version(timestamp: i64, version: u64) -> u64 {
    let epoch = (timestamp.max(0) / SHADOW_EPOCH_SECONDS) as u64;
    let cap = (1u64 << SHADOW_VERSION_BITS) - 1;
    (epoch << SHADOW_VERSION_BITS) | version.min(cap)
}

/// `timestamp_ms * 2 + (connected as u64)`; negative timestamps count as 0.
pub fn presence_external_version(timestamp_ms: i64, kind: PresenceKind) -> u64 {
    (timestamp_ms.max(0) as u64) * 2 + u64::from(kind == PresenceKind::Connected)
}

impl PresenceEvent {
    /// Validates an already parsed presence event.
    pub fn from_value(v: &Value) -> Result<PresenceEvent, DecodeError> {
        let f = Fields::of(v, "$")?;
        let event_type_text = as_str(f.required("eventType")?, "eventType")?;
        let event_type = match event_type_text {
            "connected" => PresenceKind::Connected,
            "disconnected" => PresenceKind::Disconnected,
            other => {
                return Err(DecodeError::invalid(
                    "eventType",
                    format!("is {other:?}; a presence event is \"connected\" or \"disconnected\""),
                ));
            }
        };
        let client_id =
            RobotId::parse_at("clientId", as_str(f.required("clientId")?, "clientId")?)?;
        let timestamp_ms = as_int(
            f.required("timestamp")?,
            "timestamp",
            0,
            i128::from(MAX_PRESENCE_TIMESTAMP_MS - 1),
        )? as i64;
        let version_number = match f.optional_non_null("versionNumber") {
            None => None,
            Some(n) => Some(as_int(n, "versionNumber", 0, i128::from(MAX_JSON_INTEGER))? as u64),
        };
        // Only present for exclusive-thing clients; the client id is what names the robot, but a
        // malformed value is still a malformed event.
        optional_string(&f, "thingName")?;
        Ok(PresenceEvent {
            client_id,
            timestamp_ms,
            event_type,
            session_identifier: optional_string(&f, "sessionIdentifier")?,
            version_number,
            disconnect_reason: optional_string(&f, "disconnectReason")?,
            principal_identifier: optional_string(&f, "principalIdentifier")?,
            ip_address: optional_string(&f, "ipAddress")?,
        })
    }

    /// The external version (see the module docs).
    pub fn external_version(&self) -> u64 {
        presence_external_version(self.timestamp_ms, self.event_type)
    }
}

impl ShadowRecord {
    /// Parses and validates one record of the shadows stream. A JSON object with `eventType` is
    /// a presence event; one with `current` is a documents message.
    pub fn from_json(bytes: &[u8]) -> Result<ShadowRecord, DecodeError> {
        check_size(bytes)?;
        let keep = fast::Keep {
            previous: true,
            metadata: true,
        };
        if let Some(docs) = fast::documents(bytes, keep) {
            return Ok(ShadowRecord::Documents(docs));
        }
        // Off the fast path (presence events, escaped keys, `version: 5.0`, …): the
        // field-by-field walk, which also names the field of anything it refuses.
        ShadowRecord::from_json_walk(bytes)
    }

    /// [`ShadowRecord::from_json`] without the typed fast path: parses into a `Value` and walks
    /// it. The reference the fast path is tested against.
    #[doc(hidden)]
    pub fn from_json_walk(bytes: &[u8]) -> Result<ShadowRecord, DecodeError> {
        check_size(bytes)?;
        let v: Value = serde_json::from_slice(bytes).map_err(DecodeError::Json)?;
        ShadowRecord::from_value(&v)
    }

    /// [`ShadowRecord::from_json`], then checks that the record's robot is the partition key.
    pub fn from_record(bytes: &[u8], partition_key: &str) -> Result<ShadowRecord, DecodeError> {
        let record = ShadowRecord::from_json(bytes)?;
        check_partition_key(record.robot_id(), partition_key)?;
        Ok(record)
    }

    /// [`ShadowRecord::from_record`] for a consumer of the current state only (the indexer):
    /// `previous` and `current.metadata` are validated as usual but come back as `None`, and on
    /// the fast path they are never built.
    pub fn from_record_current(
        bytes: &[u8],
        partition_key: &str,
    ) -> Result<ShadowRecord, DecodeError> {
        check_size(bytes)?;
        let keep = fast::Keep {
            previous: false,
            metadata: false,
        };
        let record = match fast::documents(bytes, keep) {
            Some(docs) => ShadowRecord::Documents(docs),
            None => {
                let mut record = ShadowRecord::from_json_walk(bytes)?;
                if let ShadowRecord::Documents(d) = &mut record {
                    d.previous = None;
                    d.current.metadata = None;
                }
                record
            }
        };
        check_partition_key(record.robot_id(), partition_key)?;
        Ok(record)
    }

    /// Validates an already parsed JSON value.
    pub fn from_value(v: &Value) -> Result<ShadowRecord, DecodeError> {
        let f = Fields::of(v, "$")?;
        if f.has("eventType") {
            PresenceEvent::from_value(v).map(ShadowRecord::Presence)
        } else if f.has("current") {
            ShadowDocuments::from_value(v).map(ShadowRecord::Documents)
        } else {
            Err(DecodeError::MissingField {
                field: "current".to_owned(),
            })
        }
    }

    /// The robot the record is about.
    pub fn robot_id(&self) -> &RobotId {
        match self {
            ShadowRecord::Documents(d) => &d.thing_name,
            ShadowRecord::Presence(p) => &p.client_id,
        }
    }

    /// Id of the robots-index document: `<thing>` (classic shadow), `<thing>#<name>` (named
    /// shadow), `<thing>#presence` (presence). `#` cannot occur in thing or shadow names, and the
    /// shadow name `presence` is refused, so ids never collide.
    pub fn doc_id(&self) -> String {
        match self {
            ShadowRecord::Documents(d) => match &d.shadow_name {
                None => d.thing_name.as_str().to_owned(),
                Some(name) => format!("{}#{name}", d.thing_name),
            },
            ShadowRecord::Presence(p) => format!("{}#{PRESENCE_DOC_SUFFIX}", p.client_id),
        }
    }

    /// The external version for `version_type=external` (see the module docs).
    pub fn external_version(&self) -> u64 {
        match self {
            ShadowRecord::Documents(d) => d.external_version(),
            ShadowRecord::Presence(p) => p.external_version(),
        }
    }

    /// [`ShadowRecord::index_source`], consuming the record so the state objects move into the
    /// document instead of being copied (the indexer's hot path).
    pub fn into_index_source(mut self) -> Value {
        let (reported, desired) = match &mut self {
            ShadowRecord::Documents(d) => (
                d.current.state.reported.take(),
                d.current.state.desired.take(),
            ),
            ShadowRecord::Presence(_) => (None, None),
        };
        let mut doc = self.index_source();
        if let Value::Object(map) = &mut doc {
            if let Some(r) = reported {
                map.insert("reported".into(), r);
            }
            if let Some(d) = desired {
                map.insert("desired".into(), d);
            }
        }
        doc
    }

    /// The body of the robots-index document (field names match
    /// `opensearch/robots-template.json`).
    ///
    /// Shadow: `docType: "shadow"`, `robotId`, `shadowName` (named shadows only), `version`,
    /// `shadowTimestamp` (Unix seconds), `updatedAt` (RFC 3339), `reported`, `desired` (when
    /// present). Presence: `docType: "presence"`, `robotId`, `connected`, `lastSeenAt` (RFC 3339),
    /// `eventTimestampMs`, `sessionIdentifier`, `disconnectReason` (when present).
    pub fn index_source(&self) -> Value {
        let mut doc = Map::new();
        match self {
            ShadowRecord::Documents(d) => {
                doc.insert("docType".into(), json!("shadow"));
                doc.insert("robotId".into(), json!(d.thing_name.as_str()));
                if let Some(name) = &d.shadow_name {
                    doc.insert("shadowName".into(), json!(name));
                }
                doc.insert("version".into(), json!(d.current.version));
                doc.insert("shadowTimestamp".into(), json!(d.timestamp));
                if let Some(t) = from_unix_seconds(d.timestamp) {
                    doc.insert("updatedAt".into(), json!(format_rfc3339(t)));
                }
                if let Some(r) = &d.current.state.reported {
                    doc.insert("reported".into(), r.clone());
                }
                if let Some(r) = &d.current.state.desired {
                    doc.insert("desired".into(), r.clone());
                }
            }
            ShadowRecord::Presence(p) => {
                doc.insert("docType".into(), json!("presence"));
                doc.insert("robotId".into(), json!(p.client_id.as_str()));
                doc.insert(
                    "connected".into(),
                    json!(p.event_type == PresenceKind::Connected),
                );
                if let Some(t) = from_unix_millis(p.timestamp_ms) {
                    doc.insert("lastSeenAt".into(), json!(format_rfc3339(t)));
                }
                doc.insert("eventTimestampMs".into(), json!(p.timestamp_ms));
                if let Some(s) = &p.session_identifier {
                    doc.insert("sessionIdentifier".into(), json!(s));
                }
                if let Some(s) = &p.disconnect_reason {
                    doc.insert("disconnectReason".into(), json!(s));
                }
            }
        }
        Value::Object(doc)
    }
}

/// The typed fast path of the shadow decoders, for documents messages: one pass over the bytes
/// with borrowed strings. Only the sections asked for are built as `Value`s (the indexer needs
/// `current.state`, not `previous` or `metadata`); the rest is still parsed and checked exactly
/// as the `Value` parser would (same number, string and nesting rules), without allocating.
/// It accepts a strict subset of what the `Value`-based walk accepts and builds the same value
/// for it; anything else (a presence event, a repeated or escaped key, a wrong type, a value
/// out of range, …) returns `None`, and the caller runs the walk, which names the field and the
/// problem.
mod fast {
    use std::fmt;

    use serde::Deserialize as _;
    use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    use super::{MAX_JSON_INTEGER, MAX_SHADOW_TIMESTAMP, ShadowDoc, ShadowDocuments, ShadowState};
    use crate::ids::{RobotId, validate_shadow_name};

    /// Why the fast path gave up; never shown (the walk produces the real error).
    fn bail<E: de::Error>() -> E {
        E::custom("not on the fast path")
    }

    /// Sets `slot` once; a repeated key gives up (the walk keeps the last one).
    fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
        if slot.replace(value).is_some() {
            return Err(bail());
        }
        Ok(())
    }

    /// Which parts of a documents message to build.
    #[derive(Clone, Copy)]
    pub(super) struct Keep {
        /// `previous` (as a whole).
        pub(super) previous: bool,
        /// `current.metadata` (and `previous.metadata` when `previous` is kept).
        pub(super) metadata: bool,
    }

    pub(super) fn documents(bytes: &[u8], keep: Keep) -> Option<ShadowDocuments> {
        // The `Value` parser refuses invalid UTF-8 anywhere, also in the parts skipped here.
        let text = std::str::from_utf8(bytes).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        let docs = (&mut de).deserialize_map(DocumentsVisitor { keep }).ok()?;
        de.end().ok()?;
        Some(docs)
    }

    struct DocumentsVisitor {
        keep: Keep,
    }

    impl<'de> Visitor<'de> for DocumentsVisitor {
        type Value = ShadowDocuments;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a shadow documents object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ShadowDocuments, A::Error> {
            let keep = self.keep;
            let mut current: Option<ShadowDoc> = None;
            let mut previous: Option<Option<ShadowDoc>> = None;
            let mut timestamp: Option<u64> = None;
            let mut client_token: Option<Option<&'de str>> = None;
            let mut thing_name: Option<RobotId> = None;
            let mut shadow_name: Option<Option<&'de str>> = None;
            while let Some(key) = map.next_key::<&'de str>()? {
                match key {
                    // A presence event: the walk decides.
                    "eventType" => return Err(bail()),
                    "current" => once(
                        &mut current,
                        map.next_value_seed(DocSeed {
                            state: true,
                            metadata: keep.metadata,
                        })?
                        .ok_or_else(bail)?,
                    )?,
                    "previous" => {
                        let seed = DocSeed {
                            state: keep.previous,
                            metadata: keep.previous && keep.metadata,
                        };
                        let doc = map.next_value_seed(seed)?;
                        once(&mut previous, if keep.previous { doc } else { None })?
                    }
                    "timestamp" => once(&mut timestamp, map.next_value()?)?,
                    "clientToken" => once(&mut client_token, map.next_value()?)?,
                    "thingName" => {
                        let s: &str = map.next_value()?;
                        let id = RobotId::parse_at("thingName", s).map_err(|_| bail())?;
                        once(&mut thing_name, id)?
                    }
                    "shadowName" => once(&mut shadow_name, map.next_value()?)?,
                    // Fields AWS may add: accepted, but still well-formed JSON.
                    _ => {
                        map.next_value::<Skip>()?;
                    }
                }
            }
            let timestamp = timestamp
                .filter(|t| *t < MAX_SHADOW_TIMESTAMP as u64)
                .ok_or_else(bail)?;
            let shadow_name = shadow_name.flatten();
            if let Some(name) = shadow_name {
                validate_shadow_name("shadowName", name).map_err(|_| bail())?;
            }
            Ok(ShadowDocuments {
                previous: previous.flatten(),
                current: current.ok_or_else(bail)?,
                timestamp: timestamp as i64,
                client_token: client_token.flatten().map(str::to_owned),
                thing_name: thing_name.ok_or_else(bail)?,
                shadow_name: shadow_name.map(str::to_owned),
            })
        }
    }

    /// A `current` or `previous` document (`null` gives `None`); builds its state sections and
    /// metadata only when asked, and checks them either way.
    #[derive(Clone, Copy)]
    struct DocSeed {
        state: bool,
        metadata: bool,
    }

    impl<'de> DeserializeSeed<'de> for DocSeed {
        type Value = Option<ShadowDoc>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for DocSeed {
        type Value = Option<ShadowDoc>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a shadow document object or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut version: Option<u64> = None;
            let mut state: Option<ShadowState> = None;
            let mut metadata: Option<Option<Value>> = None;
            while let Some(key) = map.next_key::<&'de str>()? {
                match key {
                    "version" => once(&mut version, map.next_value()?)?,
                    "state" => {
                        let s = map.next_value_seed(StateSeed { keep: self.state })?;
                        once(&mut state, s.unwrap_or_default())?
                    }
                    "metadata" => {
                        let m = map.next_value_seed(ObjectSeed {
                            keep: self.metadata,
                        })?;
                        once(&mut metadata, m)?
                    }
                    _ => {
                        map.next_value::<Skip>()?;
                    }
                }
            }
            Ok(Some(ShadowDoc {
                state: state.unwrap_or_default(),
                metadata: metadata.flatten(),
                version: version
                    .filter(|v| *v <= MAX_JSON_INTEGER)
                    .ok_or_else(bail)?,
            }))
        }
    }

    /// `state`: `null` or an object whose `desired`, `reported` and `delta` are objects or null.
    struct StateSeed {
        keep: bool,
    }

    impl<'de> DeserializeSeed<'de> for StateSeed {
        type Value = Option<ShadowState>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for StateSeed {
        type Value = Option<ShadowState>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a shadow state object or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut desired, mut reported, mut delta) = (None, None, None);
            let seed = ObjectSeed { keep: self.keep };
            while let Some(key) = map.next_key::<&'de str>()? {
                match key {
                    "desired" => once(&mut desired, map.next_value_seed(seed)?)?,
                    "reported" => once(&mut reported, map.next_value_seed(seed)?)?,
                    "delta" => once(&mut delta, map.next_value_seed(seed)?)?,
                    _ => {
                        map.next_value::<Skip>()?;
                    }
                }
            }
            Ok(Some(ShadowState {
                desired: desired.flatten(),
                reported: reported.flatten(),
                delta: delta.flatten(),
            }))
        }
    }

    /// A JSON object (built as a `Value` when `keep`) or `null` (`None`); anything else gives up.
    #[derive(Clone, Copy)]
    struct ObjectSeed {
        keep: bool,
    }

    impl<'de> DeserializeSeed<'de> for ObjectSeed {
        type Value = Option<Value>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            if self.keep {
                match Value::deserialize(d)? {
                    Value::Null => Ok(None),
                    v @ Value::Object(_) => Ok(Some(v)),
                    _ => Err(bail()),
                }
            } else {
                match Skip::deserialize(d)?.0 {
                    Kind::Null => Ok(None),
                    Kind::Object => Ok(None),
                    Kind::Other => Err(bail()),
                }
            }
        }
    }

    /// What a skipped value was.
    enum Kind {
        Null,
        Object,
        Other,
    }

    /// Any JSON value, parsed through `deserialize_any` exactly as `Value` parses it (so a number
    /// out of range, a lone surrogate or nesting too deep fails here too) but not kept.
    struct Skip(Kind);

    impl<'de> de::Deserialize<'de> for Skip {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(SkipVisitor)
        }
    }

    struct SkipVisitor;

    impl<'de> Visitor<'de> for SkipVisitor {
        type Value = Skip;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any json value")
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
            Ok(Skip(Kind::Other))
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
            Ok(Skip(Kind::Other))
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
            Ok(Skip(Kind::Other))
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
            Ok(Skip(Kind::Other))
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
            Ok(Skip(Kind::Other))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
            Ok(Skip(Kind::Null))
        }

        fn visit_none<E: de::Error>(self) -> Result<Skip, E> {
            Ok(Skip(Kind::Null))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
            while seq.next_element::<Skip>()?.is_some() {}
            Ok(Skip(Kind::Other))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
            while map.next_key::<Skip>()?.is_some() {
                map.next_value::<Skip>()?;
            }
            Ok(Skip(Kind::Object))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::RejectKind;

    fn classic(version: u64, timestamp: i64) -> Value {
        json!({
            "previous": { "state": { "reported": { "battery": 80 } }, "metadata": {}, "version": version.saturating_sub(1) },
            "current": {
                "state": { "desired": { "mode": "eco" }, "reported": { "battery": 79, "mode": "eco" } },
                "metadata": { "reported": { "battery": { "timestamp": timestamp } } },
                "version": version
            },
            "timestamp": timestamp,
            "clientToken": "tok-1",
            "thingName": "rb-000123"
        })
    }

    fn presence(kind: &str, ts: i64) -> Value {
        json!({
            "clientId": "rb-000123", "timestamp": ts, "eventType": kind,
            "sessionIdentifier": "00000000-0000-0000-0000-000000000000",
            "principalIdentifier": "abc", "ipAddress": "192.0.2.1", "versionNumber": 3,
            "disconnectReason": if kind == "disconnected" { json!("CONNECTION_LOST") } else { json!(null) }
        })
    }

    fn record(v: &Value) -> Result<ShadowRecord, DecodeError> {
        ShadowRecord::from_json(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn parses_classic_shadow_documents() {
        let r = record(&classic(17, 1_732_374_000)).unwrap();
        let ShadowRecord::Documents(d) = &r else {
            panic!("not documents")
        };
        assert_eq!(d.current.version, 17);
        assert_eq!(d.previous.as_ref().unwrap().version, 16);
        assert_eq!(d.client_token.as_deref(), Some("tok-1"));
        assert_eq!(r.robot_id().as_str(), "rb-000123");
        assert_eq!(r.doc_id(), "rb-000123");
    }

    #[test]
    fn the_fast_path_takes_well_formed_documents() {
        let mut named = classic(3, 1_732_374_000);
        named["shadowName"] = json!("schedule");
        named["somethingNew"] = json!({"a": [1, 2.5, "x", null, true]});
        for v in [classic(17, 1_732_374_000), named] {
            let bytes = serde_json::to_vec(&v).unwrap();
            let keep = fast::Keep {
                previous: true,
                metadata: true,
            };
            let docs = fast::documents(&bytes, keep).expect("on the fast path");
            assert_eq!(
                ShadowRecord::Documents(docs),
                ShadowRecord::from_json_walk(&bytes).unwrap()
            );
            let keep = fast::Keep {
                previous: false,
                metadata: false,
            };
            let docs = fast::documents(&bytes, keep).expect("on the fast path");
            assert!(docs.previous.is_none() && docs.current.metadata.is_none());
            assert!(docs.current.state.reported.is_some());
        }
        // Presence events always go to the walk.
        let bytes = serde_json::to_vec(&presence("connected", 5)).unwrap();
        let keep = fast::Keep {
            previous: true,
            metadata: true,
        };
        assert!(fast::documents(&bytes, keep).is_none());
    }

    #[test]
    fn first_update_has_no_previous() {
        let mut v = classic(0, 1_732_374_000);
        v.as_object_mut().unwrap().remove("previous");
        let ShadowRecord::Documents(d) = record(&v).unwrap() else {
            panic!("not documents")
        };
        assert!(d.previous.is_none());
    }

    #[test]
    fn named_shadow_doc_id() {
        let mut v = classic(3, 1_732_374_000);
        v["shadowName"] = json!("schedule");
        let r = record(&v).unwrap();
        assert_eq!(r.doc_id(), "rb-000123#schedule");
        assert_eq!(r.index_source()["shadowName"], "schedule");
    }

    #[test]
    fn shadow_named_presence_is_refused() {
        let mut v = classic(3, 1_732_374_000);
        v["shadowName"] = json!("presence");
        let e = record(&v).unwrap_err();
        assert_eq!(e.kind(), RejectKind::SchemaViolation);
        assert_eq!(e.field(), Some("shadowName"));
    }

    #[test]
    fn documents_validation_rules() {
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Edit, RejectKind, &str)> = vec![
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("thingName");
                }),
                RejectKind::MissingField,
                "thingName",
            ),
            (
                Box::new(|v| v["thingName"] = json!("rb/1")),
                RejectKind::SchemaViolation,
                "thingName",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("timestamp");
                }),
                RejectKind::MissingField,
                "timestamp",
            ),
            (
                Box::new(|v| v["timestamp"] = json!(-1)),
                RejectKind::SchemaViolation,
                "timestamp",
            ),
            (
                Box::new(|v| v["timestamp"] = json!(1_i64 << 32)),
                RejectKind::SchemaViolation,
                "timestamp",
            ),
            (
                Box::new(|v| {
                    v["current"].as_object_mut().unwrap().remove("version");
                }),
                RejectKind::MissingField,
                "current.version",
            ),
            (
                Box::new(|v| v["current"]["version"] = json!(-2)),
                RejectKind::SchemaViolation,
                "current.version",
            ),
            (
                Box::new(|v| v["current"]["state"]["reported"] = json!(5)),
                RejectKind::SchemaViolation,
                "current.state.reported",
            ),
            (
                Box::new(|v| v["current"] = json!("x")),
                RejectKind::SchemaViolation,
                "current",
            ),
            (
                Box::new(|v| v["previous"] = json!([])),
                RejectKind::SchemaViolation,
                "previous",
            ),
            (
                Box::new(|v| v["clientToken"] = json!(5)),
                RejectKind::SchemaViolation,
                "clientToken",
            ),
            (
                Box::new(|v| v["shadowName"] = json!("")),
                RejectKind::SchemaViolation,
                "shadowName",
            ),
        ];
        for (edit, kind, field) in cases {
            let mut v = classic(5, 1_732_374_000);
            edit(&mut v);
            let e = record(&v).unwrap_err();
            assert_eq!(e.kind(), kind, "{field}: {e}");
            assert_eq!(e.field(), Some(field), "{e}");
        }
    }

    #[test]
    fn extra_aws_fields_are_accepted() {
        let mut v = classic(5, 1_732_374_000);
        v["somethingNew"] = json!({"a": 1});
        v["current"]["state"]["unknownSection"] = json!(1);
        assert!(record(&v).is_ok());
    }

    #[test]
    fn parses_presence_events() {
        let r = record(&presence("disconnected", 1_732_374_000_123)).unwrap();
        let ShadowRecord::Presence(p) = &r else {
            panic!("not presence")
        };
        assert_eq!(p.event_type, PresenceKind::Disconnected);
        assert_eq!(p.version_number, Some(3));
        assert_eq!(p.disconnect_reason.as_deref(), Some("CONNECTION_LOST"));
        assert_eq!(r.doc_id(), "rb-000123#presence");
        let src = r.index_source();
        assert_eq!(src["connected"], false);
        assert_eq!(src["lastSeenAt"], "2024-11-23T15:00:00.123Z");
        assert_eq!(src["docType"], "presence");
        assert_eq!(src["disconnectReason"], "CONNECTION_LOST");
    }

    #[test]
    fn presence_validation_rules() {
        let e = record(&json!({"clientId": "rb-1", "timestamp": 1, "eventType": "subscribed"}))
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (RejectKind::SchemaViolation, Some("eventType"))
        );
        let e = record(&json!({"timestamp": 1, "eventType": "connected"})).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (RejectKind::MissingField, Some("clientId"))
        );
        let e = record(&json!({"clientId": "rb-1", "eventType": "connected"})).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (RejectKind::MissingField, Some("timestamp"))
        );
        let e = record(&json!({"clientId": "rb 1", "timestamp": 1, "eventType": "connected"}))
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (RejectKind::SchemaViolation, Some("clientId"))
        );
        let e = record(&json!({"clientId": "rb-1", "timestamp": -5, "eventType": "connected"}))
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (RejectKind::SchemaViolation, Some("timestamp"))
        );
    }

    #[test]
    fn neither_documents_nor_presence() {
        let e = record(&json!({"state": {}})).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (RejectKind::MissingField, Some("current"))
        );
        let e = record(&json!("current")).unwrap_err();
        assert_eq!(e.kind(), RejectKind::SchemaViolation);
        assert_eq!(
            ShadowRecord::from_json(b"{").unwrap_err().kind(),
            RejectKind::BadJson
        );
        let big = vec![b' '; crate::MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            ShadowRecord::from_json(&big).unwrap_err().kind(),
            RejectKind::TooLarge
        );
    }

    #[test]
    fn from_record_checks_partition_key() {
        let bytes = serde_json::to_vec(&classic(1, 1_732_374_000)).unwrap();
        assert!(ShadowRecord::from_record(&bytes, "rb-000123").is_ok());
        assert_eq!(
            ShadowRecord::from_record(&bytes, "rb-9")
                .unwrap_err()
                .kind(),
            RejectKind::RobotMismatch
        );
    }

    #[test]
    fn shadow_index_source() {
        let src = record(&classic(17, 1_732_374_000)).unwrap().index_source();
        assert_eq!(
            src,
            json!({
                "docType": "shadow", "robotId": "rb-000123", "version": 17,
                "shadowTimestamp": 1_732_374_000, "updatedAt": "2024-11-23T15:00:00Z",
                "reported": { "battery": 79, "mode": "eco" }, "desired": { "mode": "eco" }
            })
        );
    }

    #[test]
    fn external_version_grows_with_shadow_version() {
        let t = 1_732_374_000;
        let mut last = 0;
        for (v, dt) in [
            (1, 0),
            (2, 0),
            (3, 5),
            (4, 3600),
            (5, 40 * 3600),
            (6, 47 * 3600),
        ] {
            let ev = record(&classic(v, t + dt)).unwrap().external_version();
            assert!(ev > last, "version {v}");
            last = ev;
        }
        // A replay of the same update has the same version (OpenSearch answers 409).
        assert_eq!(
            record(&classic(6, t + 47 * 3600))
                .unwrap()
                .external_version(),
            last
        );
    }

    #[test]
    fn recreated_shadow_wins_over_its_predecessor() {
        let t = 1_732_374_000;
        let old = shadow_external_version(t, 1_000_000);
        // Re-created at version 0 three days later, and exactly 48 h after the last update.
        assert!(shadow_external_version(t + 3 * 86_400, 0) > old);
        assert!(shadow_external_version(t + SHADOW_EPOCH_SECONDS, 0) > old);
        // Within the same life, an older version never wins even with a later timestamp in the
        // same epoch (jitter between IoT Core hosts).
        let e = (t / SHADOW_EPOCH_SECONDS) * SHADOW_EPOCH_SECONDS;
        assert!(shadow_external_version(e + 10, 5) > shadow_external_version(e + 11, 4));
    }

    #[test]
    fn external_version_fits_in_a_signed_long() {
        let max = shadow_external_version(MAX_SHADOW_TIMESTAMP - 1, u64::MAX);
        assert!(max <= i64::MAX as u64);
        assert!(
            presence_external_version(MAX_PRESENCE_TIMESTAMP_MS - 1, PresenceKind::Connected)
                <= i64::MAX as u64
        );
        assert_eq!(
            shadow_external_version(0, u64::MAX),
            (1 << SHADOW_VERSION_BITS) - 1
        );
    }

    #[test]
    fn presence_later_event_wins_and_connect_wins_ties() {
        let t = 1_732_374_000_000;
        let c = |ts| presence_external_version(ts, PresenceKind::Connected);
        let d = |ts| presence_external_version(ts, PresenceKind::Disconnected);
        assert!(d(t + 1) > c(t));
        assert!(c(t + 1) > d(t));
        assert!(c(t) > d(t));
        assert_eq!(
            record(&presence("connected", t))
                .unwrap()
                .external_version(),
            c(t)
        );
    }

    #[test]
    fn serialises_back() {
        let v = classic(4, 1_732_374_000);
        let r = record(&v).unwrap();
        let back: ShadowRecord = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let ShadowRecord::Documents(d) = &r else {
            panic!("not documents")
        };
        let docs: ShadowDocuments =
            serde_json::from_value(serde_json::to_value(d).unwrap()).unwrap();
        assert_eq!(&docs, d);
        assert!(serde_json::from_value::<ShadowDocuments>(json!({"current": {}})).is_err());
        let p = record(&presence("connected", 5)).unwrap();
        let ShadowRecord::Presence(e) = &p else {
            panic!("not presence")
        };
        let ev: PresenceEvent = serde_json::from_value(serde_json::to_value(e).unwrap()).unwrap();
        assert_eq!(&ev, e);
        let back: ShadowRecord = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
