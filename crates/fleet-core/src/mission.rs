//! Mission reports (robot protocol v1, `schemas/mission-report.schema.json`) and their storage keys.
//!
//! The contract is strict: unknown fields are refused at every level (`additionalProperties:
//! false` in the schema). The payload carries a `schema` number, so a new field comes with a new
//! schema number, and a typo such as `endAt` is caught instead of silently dropping `endedAt`.

use std::fmt::Write as _;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::{Date, OffsetDateTime};

use crate::error::{DecodeError, ValidationError};
use crate::ids::{MissionId, RobotId};
use crate::json::{Fields, as_f64_min, as_int, as_str, as_timestamp};
use crate::timefmt::{push_date, push_key_seconds, rfc3339_utc};

/// The only mission report schema this crate understands.
pub const MISSION_SCHEMA_VERSION: u32 = 1;
/// Most entries a report's `errors` list may hold.
pub const MAX_MISSION_ERRORS: usize = 256;
/// Longest error code, in characters.
pub const MAX_ERROR_CODE_LEN: usize = 64;

const TOP_LEVEL_FIELDS: &[&str] = &[
    "schema",
    "robotId",
    "missionId",
    "rev",
    "status",
    "startedAt",
    "endedAt",
    "areaM2",
    "durationS",
    "battery",
    "errors",
];

/// Where a mission stands when the robot sends the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionStatus {
    /// Still cleaning: a progress report, `endedAt` must be absent.
    Running,
    /// Finished normally: `endedAt` is required.
    Completed,
    /// Stopped by the owner.
    Cancelled,
    /// The robot got stuck and gave up.
    Stuck,
    /// Returned to the dock with a low battery.
    BatteryLow,
    /// Ended by a fault.
    Error,
}

impl MissionStatus {
    /// Every status, in contract order.
    pub const ALL: [MissionStatus; 6] = [
        MissionStatus::Running,
        MissionStatus::Completed,
        MissionStatus::Cancelled,
        MissionStatus::Stuck,
        MissionStatus::BatteryLow,
        MissionStatus::Error,
    ];

    /// The wire spelling (`battery_low`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MissionStatus::Running => "running",
            MissionStatus::Completed => "completed",
            MissionStatus::Cancelled => "cancelled",
            MissionStatus::Stuck => "stuck",
            MissionStatus::BatteryLow => "battery_low",
            MissionStatus::Error => "error",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<MissionStatus> {
        MissionStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the mission is over (every status but `running`).
    pub fn is_terminal(self) -> bool {
        self != MissionStatus::Running
    }
}

impl std::fmt::Display for MissionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Battery charge in percent at mission start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Battery {
    /// Percent, 0..=100.
    pub start: u8,
    /// Percent, 0..=100.
    pub end: u8,
}

/// One fault the robot met during the mission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissionError {
    /// Robot error code, such as `stuck` or `brush_jam` (1..=64 characters).
    pub code: String,
    /// When it happened.
    #[serde(with = "rfc3339_utc")]
    pub at: OffsetDateTime,
}

/// A robot's report of one mission, revision `rev`.
///
/// Build one from bytes with [`MissionReport::from_json`], which validates everything; a value built
/// by hand can be checked with [`MissionReport::validate`]. Serialises back to the wire form
/// (camelCase, timestamps in RFC 3339 UTC, `endedAt` omitted when absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissionReport {
    /// Contract version, always [`MISSION_SCHEMA_VERSION`].
    pub schema: u32,
    /// The reporting robot (its thing name).
    pub robot_id: RobotId,
    /// The mission (a ULID minted by the robot).
    pub mission_id: MissionId,
    /// Revision of this report, starting at 1; a higher rev replaces a lower one.
    pub rev: u32,
    /// Mission status at the time of this revision.
    pub status: MissionStatus,
    /// Mission start; never changes between revisions.
    #[serde(with = "rfc3339_utc")]
    pub started_at: OffsetDateTime,
    /// Mission end; absent while running.
    #[serde(
        with = "rfc3339_utc::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub ended_at: Option<OffsetDateTime>,
    /// Area cleaned in square metres.
    pub area_m2: f64,
    /// Time spent cleaning in seconds (pauses excluded, so it may be below `endedAt - startedAt`).
    pub duration_s: u32,
    /// Battery charge at start and end.
    pub battery: Battery,
    /// Faults met during the mission (absent on the wire means none).
    pub errors: Vec<MissionError>,
}

impl<'de> Deserialize<'de> for MissionReport {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        MissionReport::from_value(&v).map_err(serde::de::Error::custom)
    }
}

impl MissionReport {
    /// Parses and validates one mission report payload (the bytes of one stream record).
    pub fn from_json(bytes: &[u8]) -> Result<MissionReport, DecodeError> {
        check_size(bytes)?;
        if let Some(report) = fast::report(bytes) {
            return Ok(report);
        }
        // Off the fast path: the field-by-field walk accepts the rest of the contract (`rev:
        // 3.0`, escaped strings, …) and names the field of anything it refuses.
        MissionReport::from_json_walk(bytes)
    }

    /// [`MissionReport::from_json`] without the typed fast path: parses into a `Value` and walks
    /// it. The reference the fast path is tested against.
    #[doc(hidden)]
    pub fn from_json_walk(bytes: &[u8]) -> Result<MissionReport, DecodeError> {
        check_size(bytes)?;
        let v: Value = serde_json::from_slice(bytes).map_err(DecodeError::Json)?;
        MissionReport::from_value(&v)
    }

    /// [`MissionReport::from_json`], then checks that the payload's robot is the record's
    /// partition key (the thing name the IoT rule took from the topic).
    pub fn from_record(bytes: &[u8], partition_key: &str) -> Result<MissionReport, DecodeError> {
        let report = MissionReport::from_json(bytes)?;
        check_partition_key(&report.robot_id, partition_key)?;
        Ok(report)
    }

    /// Validates an already parsed JSON value.
    pub fn from_value(v: &Value) -> Result<MissionReport, DecodeError> {
        let f = Fields::of(v, "$")?;

        // The schema number first: a report from a newer firmware should say so, not fail on
        // whichever new field comes first.
        let schema = as_int(f.required("schema")?, "schema", i128::MIN, i128::MAX)?;
        if schema != i128::from(MISSION_SCHEMA_VERSION) {
            return Err(DecodeError::invalid(
                "schema",
                format!(
                    "is {schema}, but this consumer understands schema {MISSION_SCHEMA_VERSION} only; \
                     send schema {MISSION_SCHEMA_VERSION} or upgrade the consumer"
                ),
            ));
        }
        f.deny_unknown(TOP_LEVEL_FIELDS)?;

        let robot_id = RobotId::parse_at("robotId", as_str(f.required("robotId")?, "robotId")?)?;
        let mission_id =
            MissionId::parse_at("missionId", as_str(f.required("missionId")?, "missionId")?)?;
        let rev = as_int(f.required("rev")?, "rev", 1, i128::from(u32::MAX))?;
        let status_text = as_str(f.required("status")?, "status")?;
        let status = MissionStatus::parse(status_text).ok_or_else(|| {
            ValidationError::new(
                "status",
                format!(
                    "is {status_text:?}; must be one of {}",
                    MissionStatus::ALL.map(MissionStatus::as_str).join(", ")
                ),
            )
        })?;
        let started_at = as_timestamp(f.required("startedAt")?, "startedAt")?;
        let ended_at = match f.optional("endedAt") {
            Some(v) => Some(as_timestamp(v, "endedAt")?),
            None => None,
        };
        let area_m2 = as_f64_min(f.required("areaM2")?, "areaM2", 0.0)?;
        let duration_s = as_int(
            f.required("durationS")?,
            "durationS",
            0,
            i128::from(u32::MAX),
        )?;

        let battery_value = f.required("battery")?;
        let b = Fields::of(battery_value, "battery")?;
        b.deny_unknown(&["start", "end"])?;
        let battery = Battery {
            start: as_int(b.required("start")?, &b.path("start"), 0, 100)? as u8,
            end: as_int(b.required("end")?, &b.path("end"), 0, 100)? as u8,
        };

        let mut errors = Vec::new();
        if let Some(list) = f.optional("errors") {
            let items = list.as_array().ok_or_else(|| {
                ValidationError::new(
                    "errors",
                    format!("must be an array, found {}", crate::json::type_name(list)),
                )
            })?;
            if items.len() > MAX_MISSION_ERRORS {
                return Err(DecodeError::invalid(
                    "errors",
                    format!(
                        "has {} entries; at most {MAX_MISSION_ERRORS} are allowed",
                        items.len()
                    ),
                ));
            }
            errors.reserve(items.len());
            for (i, item) in items.iter().enumerate() {
                // Fast path without building JSON paths (a report can carry hundreds of
                // entries); anything off goes through the checks below, which name the path.
                if let Some(entry) = error_entry_fast(item) {
                    errors.push(entry);
                    continue;
                }
                let path = format!("errors[{i}]");
                let e = Fields::of(item, &path)?;
                e.deny_unknown(&["code", "at"])?;
                let code = as_str(e.required("code")?, &e.path("code"))?.to_owned();
                let at = as_timestamp(e.required("at")?, &e.path("at"))?;
                errors.push(MissionError { code, at });
            }
        }

        let report = MissionReport {
            schema: MISSION_SCHEMA_VERSION,
            robot_id,
            mission_id,
            rev: rev as u32,
            status,
            started_at,
            ended_at,
            area_m2,
            duration_s: duration_s as u32,
            battery,
            errors,
        };
        report.validate()?;
        Ok(report)
    }

    /// Checks the rules a well-typed value can still break (for reports built in code, such as
    /// the simulator's). [`MissionReport::from_json`] runs this too.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.schema != MISSION_SCHEMA_VERSION {
            return Err(ValidationError::new(
                "schema",
                format!("must be {MISSION_SCHEMA_VERSION}, found {}", self.schema),
            ));
        }
        if self.rev < 1 {
            return Err(ValidationError::new("rev", "must be at least 1, found 0"));
        }
        if !self.area_m2.is_finite() || self.area_m2 < 0.0 {
            return Err(ValidationError::new(
                "areaM2",
                format!("must be a finite number >= 0, found {}", self.area_m2),
            ));
        }
        for (name, pct) in [
            ("battery.start", self.battery.start),
            ("battery.end", self.battery.end),
        ] {
            if pct > 100 {
                return Err(ValidationError::new(
                    name,
                    format!("must be between 0 and 100, found {pct}"),
                ));
            }
        }
        match (self.status, self.ended_at) {
            (MissionStatus::Running, Some(_)) => {
                return Err(ValidationError::new(
                    "endedAt",
                    "must be absent while status is running; send the final status with endedAt",
                ));
            }
            (MissionStatus::Completed, None) => {
                return Err(ValidationError::new(
                    "endedAt",
                    "is required when status is completed",
                ));
            }
            _ => {}
        }
        if let Some(end) = self.ended_at
            && end < self.started_at
        {
            return Err(ValidationError::new(
                "endedAt",
                format!(
                    "is before startedAt ({} < {}); check the robot's clock",
                    crate::timefmt::format_rfc3339(end),
                    crate::timefmt::format_rfc3339(self.started_at)
                ),
            ));
        }
        if self.errors.len() > MAX_MISSION_ERRORS {
            return Err(ValidationError::new(
                "errors",
                format!(
                    "has {} entries; at most {MAX_MISSION_ERRORS} are allowed",
                    self.errors.len()
                ),
            ));
        }
        for (i, e) in self.errors.iter().enumerate() {
            let len = e.code.chars().count();
            if len == 0 || len > MAX_ERROR_CODE_LEN {
                return Err(ValidationError::new(
                    format!("errors[{i}].code"),
                    format!("must be 1 to {MAX_ERROR_CODE_LEN} characters long, found {len}"),
                ));
            }
        }
        Ok(())
    }

    /// DynamoDB partition key: `ROBOT#<robotId>`.
    pub fn pk(&self) -> String {
        robot_partition_key(&self.robot_id)
    }

    /// DynamoDB sort key: `MISSION#<startedAt>#<missionId>`, `startedAt` in whole-second UTC
    /// (`2026-11-23T15:00:04Z`) so keys sort by time; sub-second digits are dropped from the key
    /// (the item keeps the full `startedAt`), and the mission id keeps keys unique.
    pub fn sk(&self) -> String {
        let id = self.mission_id.as_str();
        let mut key = String::with_capacity(29 + id.len());
        key.push_str("MISSION#");
        push_key_seconds(&mut key, self.started_at);
        key.push('#');
        key.push_str(id);
        key
    }

    /// The UTC calendar day the mission started.
    pub fn day(&self) -> Date {
        self.started_at.to_offset(time::UtcOffset::UTC).date()
    }

    /// Write-sharded GSI partition key `DAY#<yyyy-mm-dd>#<n>`, with `n` =
    /// [`day_shard`]`(robotId, shards)`. A robot always lands on the same shard of a day; a
    /// fleet-wide day query reads shards `0..shards` (see [`day_partition_key`]).
    pub fn day_shard_key(&self, shards: u32) -> String {
        day_partition_key(self.day(), day_shard(&self.robot_id, shards))
    }

    /// Checks that this report belongs to the record's partition key.
    pub fn check_partition_key(&self, partition_key: &str) -> Result<(), DecodeError> {
        check_partition_key(&self.robot_id, partition_key)
    }
}

/// An `errors[]` entry that is exactly `{code: string, at: RFC 3339}`, or `None` so that the
/// caller's field-by-field checks report what is wrong.
fn error_entry_fast(item: &Value) -> Option<MissionError> {
    let map = item.as_object()?;
    if map.len() != 2 {
        return None;
    }
    let code = map.get("code")?.as_str()?;
    let at = crate::timefmt::parse_rfc3339(map.get("at")?.as_str()?).ok()?;
    Some(MissionError {
        code: code.to_owned(),
        at,
    })
}

/// The typed fast path of [`MissionReport::from_json`]: one pass over the bytes with borrowed
/// strings, straight into a [`MissionReport`]. It accepts a strict subset of what the
/// `Value`-based walk accepts and builds the same value for it; anything else (an unknown or
/// repeated field, a wrong type, a value out of range, an escaped key or id, `rev: 3.0`, …)
/// returns `None`, and the caller runs the walk, which names the field and the problem.
mod fast {
    use std::fmt;

    use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};
    use time::OffsetDateTime;

    use super::{Battery, MAX_MISSION_ERRORS, MissionError, MissionReport, MissionStatus};
    use crate::ids::{MissionId, RobotId};
    use crate::timefmt::parse_rfc3339;

    /// Why the fast path gave up; never shown (the walk produces the real error).
    fn bail<E: de::Error>() -> E {
        E::custom("not on the fast path")
    }

    pub(super) fn report(bytes: &[u8]) -> Option<MissionReport> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        let report = (&mut de).deserialize_map(ReportVisitor).ok()?;
        de.end().ok()?;
        Some(report)
    }

    fn timestamp<E: de::Error>(s: &str) -> Result<OffsetDateTime, E> {
        parse_rfc3339(s).map_err(|_| bail())
    }

    /// Sets `slot` once; a repeated key gives up (the walk keeps the last one).
    fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
        if slot.replace(value).is_some() {
            return Err(bail());
        }
        Ok(())
    }

    struct ReportVisitor;

    impl<'de> Visitor<'de> for ReportVisitor {
        type Value = MissionReport;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mission report object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MissionReport, A::Error> {
            let mut schema: Option<u32> = None;
            let mut robot_id: Option<RobotId> = None;
            let mut mission_id: Option<MissionId> = None;
            let mut rev: Option<u32> = None;
            let mut status: Option<MissionStatus> = None;
            let mut started_at: Option<OffsetDateTime> = None;
            let mut ended_at: Option<OffsetDateTime> = None;
            let mut area_m2: Option<f64> = None;
            let mut duration_s: Option<u32> = None;
            let mut battery: Option<Battery> = None;
            let mut errors: Option<Vec<MissionError>> = None;
            while let Some(key) = map.next_key::<&'de str>()? {
                match key {
                    "schema" => once(&mut schema, map.next_value()?)?,
                    "robotId" => {
                        let s: &str = map.next_value()?;
                        once(
                            &mut robot_id,
                            RobotId::parse_at("robotId", s).map_err(|_| bail())?,
                        )?
                    }
                    "missionId" => {
                        let s: &str = map.next_value()?;
                        once(
                            &mut mission_id,
                            MissionId::parse_at("missionId", s).map_err(|_| bail())?,
                        )?
                    }
                    "rev" => once(&mut rev, map.next_value()?)?,
                    "status" => {
                        let s: &str = map.next_value()?;
                        once(&mut status, MissionStatus::parse(s).ok_or_else(bail)?)?
                    }
                    "startedAt" => once(&mut started_at, timestamp(map.next_value()?)?)?,
                    "endedAt" => once(&mut ended_at, timestamp(map.next_value()?)?)?,
                    "areaM2" => once(&mut area_m2, map.next_value()?)?,
                    "durationS" => once(&mut duration_s, map.next_value()?)?,
                    "battery" => once(&mut battery, map.next_value::<FastBattery>()?.0)?,
                    "errors" => once(&mut errors, map.next_value::<FastErrors>()?.0)?,
                    // An unknown field: the walk names it.
                    _ => return Err(bail()),
                }
            }
            let report = MissionReport {
                schema: schema.ok_or_else(bail)?,
                robot_id: robot_id.ok_or_else(bail)?,
                mission_id: mission_id.ok_or_else(bail)?,
                rev: rev.ok_or_else(bail)?,
                status: status.ok_or_else(bail)?,
                started_at: started_at.ok_or_else(bail)?,
                ended_at,
                area_m2: area_m2.ok_or_else(bail)?,
                duration_s: duration_s.ok_or_else(bail)?,
                battery: battery.ok_or_else(bail)?,
                errors: errors.unwrap_or_default(),
            };
            // The remaining rules (schema number, rev >= 1, area >= 0, code lengths, status and
            // endedAt, endedAt after startedAt, …); a breach goes to the walk for its message.
            report.validate().map_err(|_| bail())?;
            Ok(report)
        }
    }

    /// `{start, end}`, each an integer in 0..=100, nothing else.
    struct FastBattery(Battery);

    impl<'de> de::Deserialize<'de> for FastBattery {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(BatteryVisitor)
        }
    }

    struct BatteryVisitor;

    impl<'de> Visitor<'de> for BatteryVisitor {
        type Value = FastBattery;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a battery object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastBattery, A::Error> {
            let (mut start, mut end): (Option<u8>, Option<u8>) = (None, None);
            while let Some(key) = map.next_key::<&'de str>()? {
                match key {
                    "start" => once(&mut start, map.next_value()?)?,
                    "end" => once(&mut end, map.next_value()?)?,
                    _ => return Err(bail()),
                }
            }
            let pct = |p: Option<u8>| p.filter(|p| *p <= 100).ok_or_else(bail::<A::Error>);
            Ok(FastBattery(Battery {
                start: pct(start)?,
                end: pct(end)?,
            }))
        }
    }

    /// The `errors` array: at most [`MAX_MISSION_ERRORS`] entries of exactly `{code, at}`.
    struct FastErrors(Vec<MissionError>);

    impl<'de> de::Deserialize<'de> for FastErrors {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_seq(ErrorsVisitor)
        }
    }

    struct ErrorsVisitor;

    impl<'de> Visitor<'de> for ErrorsVisitor {
        type Value = FastErrors;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an errors array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FastErrors, A::Error> {
            let mut errors = Vec::with_capacity(16);
            while let Some(entry) = seq.next_element::<FastEntry>()? {
                if errors.len() == MAX_MISSION_ERRORS {
                    return Err(bail());
                }
                errors.push(entry.0);
            }
            Ok(FastErrors(errors))
        }
    }

    struct FastEntry(MissionError);

    impl<'de> de::Deserialize<'de> for FastEntry {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(EntryVisitor)
        }
    }

    struct EntryVisitor;

    impl<'de> Visitor<'de> for EntryVisitor {
        type Value = FastEntry;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an error entry")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastEntry, A::Error> {
            let (mut code, mut at): (Option<&'de str>, Option<OffsetDateTime>) = (None, None);
            while let Some(key) = map.next_key::<&'de str>()? {
                match key {
                    "code" => once(&mut code, map.next_value()?)?,
                    "at" => once(&mut at, timestamp(map.next_value()?)?)?,
                    _ => return Err(bail()),
                }
            }
            // The code's length is checked by `validate`.
            Ok(FastEntry(MissionError {
                code: code.ok_or_else(bail)?.to_owned(),
                at: at.ok_or_else(bail)?,
            }))
        }
    }
}

/// Refuses payloads over [`crate::MAX_PAYLOAD_BYTES`].
pub(crate) fn check_size(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > crate::MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: crate::MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

/// Checks that `robot_id` (from a payload) equals `partition_key` (the thing name the IoT rule
/// used as the Kinesis partition key).
pub fn check_partition_key(robot_id: &RobotId, partition_key: &str) -> Result<(), DecodeError> {
    if robot_id.as_str() == partition_key {
        Ok(())
    } else {
        Err(DecodeError::RobotMismatch {
            robot_id: robot_id.as_str().to_owned(),
            partition_key: partition_key.to_owned(),
        })
    }
}

/// `ROBOT#<robotId>`.
pub fn robot_partition_key(robot_id: &RobotId) -> String {
    let mut key = String::with_capacity(6 + robot_id.as_str().len());
    key.push_str("ROBOT#");
    key.push_str(robot_id.as_str());
    key
}

/// `DAY#<yyyy-mm-dd>#<shard>`.
pub fn day_partition_key(day: Date, shard: u32) -> String {
    let mut key = String::with_capacity(26);
    key.push_str("DAY#");
    push_date(&mut key, day);
    key.push('#');
    let _ = write!(key, "{shard}");
    key
}

/// The day shard of a robot: 64-bit FNV-1a of the robot id, modulo `shards` (0 counts as 1).
/// Stable across processes, platforms and releases, unlike std's randomised hasher.
pub fn day_shard(robot_id: &RobotId, shards: u32) -> u32 {
    let shards = u64::from(shards.max(1));
    (fnv1a64(robot_id.as_str().as_bytes()) % shards) as u32
}

/// 64-bit FNV-1a.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::RejectKind;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "schema": 1, "robotId": "rb-000123", "missionId": "01JD3Z8Q6M9X4V2K7T5R3N1PZA",
            "rev": 2, "status": "completed", "startedAt": "2026-11-23T15:00:04Z",
            "endedAt": "2026-11-23T15:41:10Z", "areaM2": 42.5, "durationS": 2466,
            "battery": { "start": 100, "end": 37 },
            "errors": [ { "code": "stuck", "at": "2026-11-23T15:20:00Z" } ]
        })
    }

    fn decode(v: &Value) -> Result<MissionReport, DecodeError> {
        MissionReport::from_json(&serde_json::to_vec(v).unwrap())
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Result<MissionReport, DecodeError> {
        let mut v = valid();
        edit(&mut v);
        decode(&v)
    }

    fn assert_invalid(r: Result<MissionReport, DecodeError>, kind: RejectKind, field: &str) {
        let e = r.expect_err("must be rejected");
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(e.field(), Some(field), "{e}");
        assert!(e.to_string().contains(field), "{e}");
    }

    #[test]
    fn parses_the_design_example() {
        let r = decode(&valid()).unwrap();
        assert_eq!(r.robot_id.as_str(), "rb-000123");
        assert_eq!(r.rev, 2);
        assert_eq!(r.status, MissionStatus::Completed);
        assert_eq!(
            r.battery,
            Battery {
                start: 100,
                end: 37
            }
        );
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.duration_s, 2466);
    }

    #[test]
    fn the_fast_path_takes_well_formed_reports() {
        for v in [
            valid(),
            json!({
                "schema": 1, "robotId": "rb-1", "missionId": "01JD3Z8Q6M9X4V2K7T5R3N1PZA",
                "rev": 1, "status": "running", "startedAt": "2026-11-23T17:00:04.5+02:00",
                "areaM2": 0, "durationS": 0, "battery": { "end": 0, "start": 0 }
            }),
        ] {
            let bytes = serde_json::to_vec_pretty(&v).unwrap();
            let fast = fast::report(&bytes).expect("on the fast path");
            assert_eq!(fast, MissionReport::from_json_walk(&bytes).unwrap());
        }
        // What it does not take goes to the walk, which accepts this one.
        let mut v = valid();
        v["rev"] = json!(2.0);
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(fast::report(&bytes).is_none());
        assert_eq!(MissionReport::from_json(&bytes).unwrap().rev, 2);
    }

    #[test]
    fn serialises_back_to_the_wire_form() {
        let r = decode(&valid()).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), valid());
        let again: MissionReport = serde_json::from_value(valid()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn timestamps_are_normalised_to_utc() {
        let r = with(|v| v["startedAt"] = json!("2026-11-23T17:00:04+02:00")).unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap()["startedAt"],
            "2026-11-23T15:00:04Z"
        );
    }

    #[test]
    fn errors_list_is_optional() {
        let r = with(|v| {
            v.as_object_mut().unwrap().remove("errors");
        })
        .unwrap();
        assert!(r.errors.is_empty());
    }

    #[test]
    fn rejects_other_schema_versions() {
        assert_invalid(
            with(|v| v["schema"] = json!(2)),
            RejectKind::SchemaViolation,
            "schema",
        );
        assert_invalid(
            with(|v| v["schema"] = json!("1")),
            RejectKind::SchemaViolation,
            "schema",
        );
    }

    #[test]
    fn rejects_missing_required_fields() {
        for field in [
            "schema",
            "robotId",
            "missionId",
            "rev",
            "status",
            "startedAt",
            "areaM2",
            "durationS",
            "battery",
        ] {
            assert_invalid(
                with(|v| {
                    v.as_object_mut().unwrap().remove(field);
                }),
                RejectKind::MissingField,
                field,
            );
        }
        assert_invalid(
            with(|v| {
                v["battery"].as_object_mut().unwrap().remove("end");
            }),
            RejectKind::MissingField,
            "battery.end",
        );
        assert_invalid(
            with(|v| {
                v["errors"][0].as_object_mut().unwrap().remove("at");
            }),
            RejectKind::MissingField,
            "errors[0].at",
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        assert_invalid(
            with(|v| v["endAt"] = json!("x")),
            RejectKind::SchemaViolation,
            "endAt",
        );
        assert_invalid(
            with(|v| v["battery"]["mid"] = json!(50)),
            RejectKind::SchemaViolation,
            "battery.mid",
        );
        assert_invalid(
            with(|v| v["errors"][0]["detail"] = json!("x")),
            RejectKind::SchemaViolation,
            "errors[0].detail",
        );
    }

    #[test]
    fn rejects_bad_ids() {
        assert_invalid(
            with(|v| v["robotId"] = json!("rb 1")),
            RejectKind::SchemaViolation,
            "robotId",
        );
        assert_invalid(
            with(|v| v["robotId"] = json!(7)),
            RejectKind::SchemaViolation,
            "robotId",
        );
        assert_invalid(
            with(|v| v["missionId"] = json!("not-a-ulid")),
            RejectKind::SchemaViolation,
            "missionId",
        );
    }

    #[test]
    fn rejects_rev_below_one_and_non_integers() {
        assert_invalid(
            with(|v| v["rev"] = json!(0)),
            RejectKind::SchemaViolation,
            "rev",
        );
        assert_invalid(
            with(|v| v["rev"] = json!(-3)),
            RejectKind::SchemaViolation,
            "rev",
        );
        assert_invalid(
            with(|v| v["rev"] = json!(1.5)),
            RejectKind::SchemaViolation,
            "rev",
        );
        assert_invalid(
            with(|v| v["rev"] = json!(4_294_967_296_u64)),
            RejectKind::SchemaViolation,
            "rev",
        );
        assert_eq!(with(|v| v["rev"] = json!(3.0)).unwrap().rev, 3);
    }

    #[test]
    fn rejects_unknown_status() {
        assert_invalid(
            with(|v| v["status"] = json!("done")),
            RejectKind::SchemaViolation,
            "status",
        );
        for st in MissionStatus::ALL {
            let r = with(|v| {
                v["status"] = json!(st.as_str());
                if st == MissionStatus::Running {
                    v.as_object_mut().unwrap().remove("endedAt");
                }
            })
            .unwrap();
            assert_eq!(r.status, st);
        }
    }

    #[test]
    fn rejects_bad_timestamps() {
        assert_invalid(
            with(|v| v["startedAt"] = json!("2026-11-23 15:00:04")),
            RejectKind::SchemaViolation,
            "startedAt",
        );
        assert_invalid(
            with(|v| v["endedAt"] = json!(1732374000)),
            RejectKind::SchemaViolation,
            "endedAt",
        );
        assert_invalid(
            with(|v| v["endedAt"] = json!(null)),
            RejectKind::SchemaViolation,
            "endedAt",
        );
        assert_invalid(
            with(|v| v["errors"][0]["at"] = json!("noon")),
            RejectKind::SchemaViolation,
            "errors[0].at",
        );
    }

    #[test]
    fn rejects_end_before_start() {
        assert_invalid(
            with(|v| v["endedAt"] = json!("2026-11-23T14:59:59Z")),
            RejectKind::SchemaViolation,
            "endedAt",
        );
        // Equal is fine: a mission cancelled at once.
        assert!(with(|v| v["endedAt"] = json!("2026-11-23T15:00:04Z")).is_ok());
    }

    #[test]
    fn status_and_ended_at_must_agree() {
        assert_invalid(
            with(|v| v["status"] = json!("running")),
            RejectKind::SchemaViolation,
            "endedAt",
        );
        assert_invalid(
            with(|v| {
                v.as_object_mut().unwrap().remove("endedAt");
            }),
            RejectKind::SchemaViolation,
            "endedAt",
        );
        // Other terminal statuses may lack endedAt (a robot that lost power).
        assert!(
            with(|v| {
                v["status"] = json!("error");
                v.as_object_mut().unwrap().remove("endedAt");
            })
            .is_ok()
        );
    }

    #[test]
    fn rejects_negative_or_non_numeric_area() {
        assert_invalid(
            with(|v| v["areaM2"] = json!(-0.1)),
            RejectKind::SchemaViolation,
            "areaM2",
        );
        assert_invalid(
            with(|v| v["areaM2"] = json!("42")),
            RejectKind::SchemaViolation,
            "areaM2",
        );
        assert_eq!(with(|v| v["areaM2"] = json!(0)).unwrap().area_m2, 0.0);
    }

    #[test]
    fn rejects_bad_duration() {
        assert_invalid(
            with(|v| v["durationS"] = json!(-1)),
            RejectKind::SchemaViolation,
            "durationS",
        );
        assert_invalid(
            with(|v| v["durationS"] = json!(1.5)),
            RejectKind::SchemaViolation,
            "durationS",
        );
    }

    #[test]
    fn rejects_battery_out_of_range() {
        assert_invalid(
            with(|v| v["battery"]["end"] = json!(101)),
            RejectKind::SchemaViolation,
            "battery.end",
        );
        assert_invalid(
            with(|v| v["battery"]["start"] = json!(-1)),
            RejectKind::SchemaViolation,
            "battery.start",
        );
        assert_invalid(
            with(|v| v["battery"] = json!([100, 37])),
            RejectKind::SchemaViolation,
            "battery",
        );
    }

    #[test]
    fn rejects_bad_error_entries() {
        assert_invalid(
            with(|v| v["errors"] = json!({})),
            RejectKind::SchemaViolation,
            "errors",
        );
        assert_invalid(
            with(|v| v["errors"][0]["code"] = json!("")),
            RejectKind::SchemaViolation,
            "errors[0].code",
        );
        assert_invalid(
            with(|v| v["errors"][0]["code"] = json!("x".repeat(65))),
            RejectKind::SchemaViolation,
            "errors[0].code",
        );
        assert_invalid(
            with(|v| {
                v["errors"] = json!(vec![
                    json!({"code": "e", "at": "2026-11-23T15:20:00Z"});
                    257
                ])
            }),
            RejectKind::SchemaViolation,
            "errors",
        );
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert_eq!(
            MissionReport::from_json(b"[1,2]").unwrap_err().kind(),
            RejectKind::SchemaViolation
        );
        let e = MissionReport::from_json(b"{\"schema\": 1,").unwrap_err();
        assert_eq!(e.kind(), RejectKind::BadJson);
        assert!(e.to_string().contains("line 1"), "{e}");
        assert_eq!(
            MissionReport::from_json(b"").unwrap_err().kind(),
            RejectKind::BadJson
        );
        assert_eq!(
            MissionReport::from_json(&[0xff, 0xfe]).unwrap_err().kind(),
            RejectKind::BadJson
        );
    }

    #[test]
    fn rejects_oversized_payloads_before_parsing() {
        let big = vec![b' '; crate::MAX_PAYLOAD_BYTES + 1];
        let e = MissionReport::from_json(&big).unwrap_err();
        assert_eq!(e.kind(), RejectKind::TooLarge);
        assert!(matches!(e, DecodeError::TooLarge { size, max } if size == max + 1));
    }

    #[test]
    fn from_record_checks_the_partition_key() {
        let bytes = serde_json::to_vec(&valid()).unwrap();
        assert!(MissionReport::from_record(&bytes, "rb-000123").is_ok());
        let e = MissionReport::from_record(&bytes, "rb-000999").unwrap_err();
        assert_eq!(e.kind(), RejectKind::RobotMismatch);
        assert!(e.to_string().contains("rb-000999"));
    }

    #[test]
    fn validate_catches_hand_built_mistakes() {
        let mut r = decode(&valid()).unwrap();
        r.battery.end = 120;
        assert_eq!(r.validate().unwrap_err().field, "battery.end");
        r.battery.end = 37;
        r.rev = 0;
        assert_eq!(r.validate().unwrap_err().field, "rev");
        r.rev = 1;
        r.area_m2 = f64::NAN;
        assert_eq!(r.validate().unwrap_err().field, "areaM2");
    }

    #[test]
    fn storage_keys() {
        let r = decode(&valid()).unwrap();
        assert_eq!(r.pk(), "ROBOT#rb-000123");
        assert_eq!(
            r.sk(),
            "MISSION#2026-11-23T15:00:04Z#01JD3Z8Q6M9X4V2K7T5R3N1PZA"
        );
        // FNV-1a-64("rb-000123") = 0xc2ba_c13b_4614_88e8, and 0x…e8 % 16 = 8.
        assert_eq!(r.day_shard_key(16), "DAY#2026-11-23#8");
    }

    #[test]
    fn sort_key_uses_utc_and_whole_seconds() {
        let r = with(|v| v["startedAt"] = json!("2026-11-23T17:00:04.999+02:00")).unwrap();
        assert_eq!(
            r.sk(),
            "MISSION#2026-11-23T15:00:04Z#01JD3Z8Q6M9X4V2K7T5R3N1PZA"
        );
        // The day is the UTC day: 23:30 at -02:00 is already the next day.
        let r = with(|v| {
            v["startedAt"] = json!("2026-11-23T23:30:00-02:00");
            v["endedAt"] = json!("2026-11-24T23:30:00-02:00");
        })
        .unwrap();
        assert!(r.day_shard_key(1).starts_with("DAY#2026-11-24#0"));
    }

    #[test]
    fn day_shard_is_stable_and_spread() {
        // Pinned values: changing the hash would move every robot to another shard.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        // Computed outside this code (FNV-1a-64 by hand): the GSI keys of stored missions
        // depend on these, so they must never change.
        assert_eq!(fnv1a64(b"rb-000123"), 0xc2ba_c13b_4614_88e8);
        let id = RobotId::parse("rb-000123").unwrap();
        assert_eq!(day_shard(&id, 16), 8);
        let shards: Vec<u32> = (0..5)
            .map(|i| day_shard(&RobotId::parse(&format!("rb-{i:06}")).unwrap(), 8))
            .collect();
        assert_eq!(shards, [0, 3, 6, 1, 4]);
        assert_eq!(day_shard(&id, 0), 0);
        assert_eq!(day_shard(&id, 1), 0);
        let mut seen = [0u32; 8];
        for i in 0..800 {
            let id = RobotId::parse(&format!("rb-{i:06}")).unwrap();
            seen[day_shard(&id, 8) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "uneven spread: {seen:?}");
    }

    #[test]
    fn day_partition_key_format() {
        let d = Date::from_calendar_date(2026, time::Month::January, 5).unwrap();
        assert_eq!(day_partition_key(d, 3), "DAY#2026-01-05#3");
        let d = Date::from_calendar_date(7, time::Month::December, 31).unwrap();
        assert_eq!(
            day_partition_key(d, 4_000_000_000),
            "DAY#0007-12-31#4000000000"
        );
        let d = Date::from_calendar_date(-1, time::Month::December, 31).unwrap();
        assert_eq!(day_partition_key(d, 0), "DAY#-001-12-31#0");
    }
}
