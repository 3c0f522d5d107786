//! DynamoDB warm throughput for the missions table and its byDay index.
//!
//! An on-demand table serves up to twice its previous peak within 30 minutes; beyond that it
//! throttles, which at 10:00 and on Christmas morning means mission reports retried in the
//! stream. Warm throughput (UpdateTable `WarmThroughput`, per table and per global secondary
//! index) makes a table ready for a throughput at once. It can only be raised, never lowered,
//! and each raise is billed, so the policy raises it to the largest need the rules announce
//! within a look-ahead, once, ahead of time, and reports the cost. A new on-demand table starts
//! at 4,000 write and 12,000 read units per second, at no charge.

use serde::Serialize;

use crate::rules::Rules;

/// Warm throughput of a table or an index, units per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Warm {
    pub read: u64,
    pub write: u64,
}

/// A new on-demand table's (or index's) warm throughput.
pub const ON_DEMAND_DEFAULT: Warm = Warm {
    read: 12_000,
    write: 4_000,
};

/// The warm throughput of the table and each of its global secondary indexes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableWarm {
    pub table: Warm,
    /// (index name, its warm throughput)
    pub indexes: Vec<(String, Warm)>,
}

/// One UpdateTable to make: the table itself (`index: None`) or one index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Raise {
    pub index: Option<String>,
    pub from: Warm,
    pub to: Warm,
    /// Its cost, USD (see [`WarmPrice`]).
    pub cost_usd: f64,
}

/// How a raise is billed: per unit per second of increase, for reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WarmPrice {
    pub per_write_unit: f64,
    pub per_read_unit: f64,
}

impl WarmPrice {
    pub fn cost(&self, from: Warm, to: Warm) -> f64 {
        to.write.saturating_sub(from.write) as f64 * self.per_write_unit
            + to.read.saturating_sub(from.read) as f64 * self.per_read_unit
    }
}

/// The raises to make now: the table and every index up to the largest need the rules announce
/// in `[now, now + lookahead)`. Never lower; nothing when every value already suffices.
pub fn raises(
    rules: &Rules,
    now: i64,
    lookahead_secs: i64,
    current: &TableWarm,
    price: &WarmPrice,
) -> Vec<Raise> {
    let need = rules.need_between(now, now + lookahead_secs.max(1));
    let want = |w: Warm| Warm {
        read: w.read.max(need.rcu.ceil() as u64),
        write: w.write.max(need.wcu.ceil() as u64),
    };
    let mut out = Vec::new();
    let mut push = |index: Option<String>, from: Warm| {
        let to = want(from);
        if to != from {
            out.push(Raise {
                index,
                from,
                to,
                cost_usd: price.cost(from, to),
            });
        }
    };
    push(None, current.table);
    for (name, w) in &current.indexes {
        push(Some(name.clone()), *w);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().expect("ts").as_second()
    }

    #[test]
    fn raises_only_up_to_the_largest_need_ahead_and_prices_the_increase() {
        let rules: Rules = "12-25 05:00-12:00 America/New_York 9000wcu; daily 09:40-11:00 America/New_York 3000wcu".parse().expect("rules");
        let price = WarmPrice {
            per_write_unit: 0.001,
            per_read_unit: 0.0,
        };
        let current = TableWarm {
            table: ON_DEMAND_DEFAULT,
            indexes: vec![(
                "byDay".into(),
                Warm {
                    read: 12_000,
                    write: 10_000,
                },
            )],
        };
        // Two days ahead of Christmas: a 48 h look-ahead sees it.
        let r = raises(
            &rules,
            at("2026-12-23T12:00:00Z"),
            48 * 3600,
            &current,
            &price,
        );
        assert_eq!(r.len(), 1, "the index is already above the need: {r:?}");
        assert_eq!(
            (r[0].index.clone(), r[0].to.write, r[0].to.read),
            (None, 9_000, 12_000)
        );
        assert!((r[0].cost_usd - 5.0).abs() < 1e-9);
        // A week before, nothing: the daily 3,000 is under the default 4,000.
        assert!(
            raises(
                &rules,
                at("2026-12-18T12:00:00Z"),
                48 * 3600,
                &current,
                &price
            )
            .is_empty()
        );
    }
}
