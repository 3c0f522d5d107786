//! The dated price table the planner reads (`prices.toml` beside this crate's manifest,
//! compiled in; `robofleet plan --prices FILE` reads another with the same keys).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The table shipped with the repository.
pub const BUNDLED: &str = include_str!("../prices.toml");

/// One price and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub value: f64,
    pub unit: String,
    pub source: String,
    /// "aws", "secondary" or "unverified".
    pub confidence: String,
}

/// A price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub region: String,
    pub currency: String,
    /// The date the table was last checked (YYYY-MM-DD).
    pub as_of: String,
    pub prices: BTreeMap<String, Price>,
}

/// The keys the planner needs; a table missing one is refused.
pub const KEYS: &[&str] = &[
    "iot.messaging.tier1",
    "iot.messaging.tier2",
    "iot.messaging.tier3",
    "iot.connectivity",
    "iot.rules_triggered",
    "iot.actions_applied",
    "iot.shadow_operations",
    "kinesis.provisioned.shard_hour",
    "kinesis.provisioned.put_unit",
    "kinesis.provisioned.extended_retention_shard_hour",
    "kinesis.standard.stream_hour",
    "kinesis.standard.gb_in",
    "kinesis.standard.gb_out",
    "kinesis.standard.retention_gb_month",
    "kinesis.advantage.gb_in",
    "kinesis.advantage.gb_out",
    "kinesis.advantage.retention_gb_month",
    "kinesis.advantage.commitment_mibps",
    "kinesis.advantage.warm_mibps_hour",
    "lambda.arm64.requests",
    "lambda.arm64.gb_second",
    "dynamodb.ondemand.write_request_unit",
    "dynamodb.ondemand.read_request_unit",
    "dynamodb.storage_gb_month",
    "dynamodb.warm.write_unit",
    "dynamodb.warm.read_unit",
    "cloudwatch.get_metric_data",
    "cloudwatch.custom_metric_month",
];

impl Prices {
    /// The bundled table.
    pub fn bundled() -> Prices {
        Prices::parse(BUNDLED).unwrap_or_else(|e| panic!("the bundled prices.toml is invalid: {e}"))
    }

    /// Parses a table, refusing one that lacks a key, has an unknown one, or a negative price.
    pub fn parse(text: &str) -> Result<Prices, String> {
        let prices: Prices = toml::from_str(text).map_err(|e| format!("price table: {e}"))?;
        for key in KEYS {
            if !prices.prices.contains_key(*key) {
                return Err(format!("price table: missing [prices.\"{key}\"]"));
            }
        }
        for (key, p) in &prices.prices {
            if !KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "price table: unknown price {key:?} (known: {})",
                    KEYS.join(", ")
                ));
            }
            if !(p.value.is_finite() && p.value >= 0.0) {
                return Err(format!("price table: {key} = {} is not a price", p.value));
            }
            if !matches!(p.confidence.as_str(), "aws" | "secondary" | "unverified") {
                return Err(format!(
                    "price table: {key}: confidence {:?} is not aws, secondary or unverified",
                    p.confidence
                ));
            }
        }
        Ok(prices)
    }

    /// A price by key. Keys are checked at parse time, so a typo here is a bug: it panics in tests.
    pub fn get(&self, key: &str) -> f64 {
        match self.prices.get(key) {
            Some(p) => p.value,
            None => panic!("price {key:?} is not in the table's KEYS"),
        }
    }

    /// The keys whose confidence is "unverified".
    pub fn unverified(&self) -> Vec<&str> {
        self.prices
            .iter()
            .filter(|(_, p)| p.confidence == "unverified")
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_table_has_every_key_with_a_source() {
        let p = Prices::bundled();
        assert_eq!(p.prices.len(), KEYS.len());
        assert!(
            p.prices
                .values()
                .all(|p| p.source.len() > 10 && !p.unit.is_empty())
        );
        assert_eq!(p.get("kinesis.provisioned.shard_hour"), 0.015);
    }

    #[test]
    fn a_table_missing_a_key_or_with_a_bad_value_is_refused() {
        let missing = BUNDLED.replace(
            "[prices.\"iot.connectivity\"]",
            "[prices.\"iot.connectivty\"]",
        );
        assert!(
            Prices::parse(&missing)
                .expect_err("missing")
                .contains("missing [prices.\"iot.connectivity\"]")
        );
        let negative = BUNDLED.replace("value = 0.015\n", "value = -0.015\n");
        assert!(
            Prices::parse(&negative)
                .expect_err("negative")
                .contains("is not a price")
        );
    }
}
