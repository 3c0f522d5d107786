//! Validated identifiers: robot ids (AWS IoT thing names), mission ids (ULIDs), shadow names.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ValidationError;

/// Longest thing name AWS IoT accepts.
pub const ROBOT_ID_MAX_LEN: usize = 128;
/// Longest named-shadow name AWS IoT accepts.
pub const SHADOW_NAME_MAX_LEN: usize = 64;
/// Shadow name reserved for the presence document in the robots index (`<thing>#presence`).
pub const RESERVED_SHADOW_NAME: &str = "presence";

fn is_thing_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

/// A robot's identity: its AWS IoT thing name, `[a-zA-Z0-9:_-]{1,128}`.
///
/// The same string is the MQTT client id, the Kinesis partition key and the DynamoDB partition, so
/// it is validated once, here, and carried as a type afterwards.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RobotId(String);

impl RobotId {
    /// Validates `s` as a thing name.
    pub fn parse(s: &str) -> Result<RobotId, ValidationError> {
        Self::parse_at("robotId", s)
    }

    pub(crate) fn parse_at(field: &str, s: &str) -> Result<RobotId, ValidationError> {
        if s.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if s.len() > ROBOT_ID_MAX_LEN {
            return Err(ValidationError::new(
                field,
                format!(
                    "is {} characters long; a thing name has at most {ROBOT_ID_MAX_LEN}",
                    s.len()
                ),
            ));
        }
        if let Some(c) = s.chars().find(|c| !is_thing_char(*c)) {
            return Err(ValidationError::new(
                field,
                format!("contains {c:?}; a thing name uses only letters, digits, ':', '_' and '-'"),
            ));
        }
        Ok(RobotId(s.to_owned()))
    }

    /// The thing name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RobotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RobotId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RobotId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RobotId::parse(s)
    }
}

impl Serialize for RobotId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RobotId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        RobotId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Crockford base32 as used by ULIDs, upper case only (no I, L, O, U).
fn is_crockford_upper(c: char) -> bool {
    matches!(c, '0'..='9' | 'A'..='H' | 'J' | 'K' | 'M' | 'N' | 'P'..='T' | 'V'..='Z')
}

/// A mission's identity: a ULID in canonical form (26 upper-case Crockford base32 characters).
///
/// Lower case is refused rather than folded: the id is part of the storage key, and two spellings of
/// one mission would become two missions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MissionId(String);

impl MissionId {
    /// Validates `s` as a canonical ULID.
    pub fn parse(s: &str) -> Result<MissionId, ValidationError> {
        Self::parse_at("missionId", s)
    }

    pub(crate) fn parse_at(field: &str, s: &str) -> Result<MissionId, ValidationError> {
        if s.len() != 26 {
            return Err(ValidationError::new(
                field,
                format!(
                    "is {} characters long; a ULID has exactly 26",
                    s.chars().count()
                ),
            ));
        }
        if let Some(c) = s.chars().find(|c| !is_crockford_upper(*c)) {
            return Err(ValidationError::new(
                field,
                format!(
                    "contains {c:?}; a ULID uses upper-case Crockford base32 (0-9, A-Z without I, L, O, U)"
                ),
            ));
        }
        if s.as_bytes()[0] > b'7' {
            return Err(ValidationError::new(
                field,
                "starts above '7', which overflows the 128-bit ULID range",
            ));
        }
        Ok(MissionId(s.to_owned()))
    }

    /// The ULID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MissionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MissionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for MissionId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MissionId::parse(s)
    }
}

impl Serialize for MissionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MissionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        MissionId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Validates a named-shadow name: `[a-zA-Z0-9:_-]{1,64}`, and not the reserved `presence`.
pub fn validate_shadow_name(field: &str, s: &str) -> Result<(), ValidationError> {
    if s.is_empty() || s.len() > SHADOW_NAME_MAX_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {SHADOW_NAME_MAX_LEN} characters long"),
        ));
    }
    if let Some(c) = s.chars().find(|c| !is_thing_char(*c)) {
        return Err(ValidationError::new(
            field,
            format!("contains {c:?}; a shadow name uses only letters, digits, ':', '_' and '-'"),
        ));
    }
    if s == RESERVED_SHADOW_NAME {
        return Err(ValidationError::new(
            field,
            "is `presence`, which is reserved for the robot's presence document; rename the shadow",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robot_id_accepts_thing_name_alphabet() {
        for ok in ["rb-000123", "a", "A:b_c-9", &"x".repeat(128)] {
            let id = RobotId::parse(ok).unwrap();
            assert_eq!(id.as_str(), ok);
            assert_eq!(id.to_string(), ok);
        }
    }

    #[test]
    fn robot_id_rejects_empty_long_and_foreign_chars() {
        assert!(RobotId::parse("").is_err());
        assert!(RobotId::parse(&"x".repeat(129)).is_err());
        for bad in ["rb 1", "rb/1", "rb#1", "rb.1", "rb+", "ü", "rb\n"] {
            let e = RobotId::parse(bad).unwrap_err();
            assert_eq!(e.field, "robotId");
            assert!(e.problem.contains("thing name"), "{e}");
        }
    }

    #[test]
    fn robot_id_deserialize_validates() {
        let ok: RobotId = serde_json::from_str("\"rb-1\"").unwrap();
        assert_eq!(ok.as_str(), "rb-1");
        assert!(serde_json::from_str::<RobotId>("\"rb 1\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"rb-1\"");
    }

    #[test]
    fn mission_id_requires_canonical_ulid() {
        assert!(MissionId::parse("01JD3Z8Q6M9X4V2K7T5R3N1PZA").is_ok());
        assert!(MissionId::parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ").is_ok());
        assert!(MissionId::parse("8ZZZZZZZZZZZZZZZZZZZZZZZZZ").is_err());
        assert!(MissionId::parse("01jd3z8q6m9x4v2k7t5r3n1pza").is_err());
        assert!(MissionId::parse("01JD3Z8Q6M9X4V2K7T5R3N1PZ").is_err());
        assert!(MissionId::parse("01JD3Z8Q6M9X4V2K7T5R3N1PZIL").is_err());
        assert!(MissionId::parse("01JD3Z8Q6M9X4V2K7T5R3N1PZU").is_err());
        assert!(MissionId::parse("").is_err());
    }

    #[test]
    fn shadow_name_rules() {
        assert!(validate_shadow_name("shadowName", "schedule").is_ok());
        assert!(validate_shadow_name("shadowName", "").is_err());
        assert!(validate_shadow_name("shadowName", &"s".repeat(65)).is_err());
        assert!(validate_shadow_name("shadowName", "a/b").is_err());
        assert!(validate_shadow_name("shadowName", "presence").is_err());
    }
}
