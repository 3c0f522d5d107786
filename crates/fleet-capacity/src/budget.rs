//! The resharding budget: UpdateShardCount calls in the last rolling 24 hours.
//!
//! AWS allows ten calls per stream per rolling 24 hours. The policy keeps `reserve` of them
//! for emergencies (throttling): scale-ups it plans (pre-warm, rising traffic) and scale-downs
//! may use only `limit - reserve`. The history is the stream-scaler's, persisted in DynamoDB,
//! plus any call it did not make itself (an operator's, a deploy's), which it records when the
//! shard count changes under it: AWS counts those too.

use serde::{Deserialize, Serialize};

use crate::limits::{BUDGET_WINDOW_SECS, CALLS_PER_24H};

/// Why a call was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallKind {
    /// Throttling: may use the reserve.
    Emergency,
    /// A pre-warm rule's window is coming.
    Prewarm,
    /// Traffic rose above the target use.
    ScaleUp,
    /// Sustained low use.
    ScaleDown,
    /// Seen, not made: the shard count changed under the scaler.
    External,
}

/// One call, as the budget counts it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Unix seconds.
    pub at: i64,
    pub from: u32,
    pub to: u32,
    pub kind: CallKind,
}

/// The budget's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Calls per rolling 24 h (AWS: 10).
    pub limit: u32,
    /// Calls only an emergency may use.
    pub reserve: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            limit: CALLS_PER_24H,
            reserve: 2,
        }
    }
}

impl Budget {
    /// Calls counted at time `t`: those made in `(t - 24 h, t]`.
    pub fn used(history: &[Call], t: i64) -> u32 {
        history
            .iter()
            .filter(|c| c.at > t - BUDGET_WINDOW_SECS && c.at <= t)
            .count() as u32
    }

    /// Calls a call of `kind` may still use at `now`.
    pub fn available(&self, history: &[Call], now: i64, kind: CallKind) -> u32 {
        let cap = if kind == CallKind::Emergency {
            self.limit
        } else {
            self.limit.saturating_sub(self.reserve)
        };
        cap.saturating_sub(Self::used(history, now))
    }

    /// When the oldest counted call leaves the window (a slot frees), if any is counted.
    pub fn next_free_at(history: &[Call], now: i64) -> Option<i64> {
        history
            .iter()
            .filter(|c| c.at > now - BUDGET_WINDOW_SECS && c.at <= now)
            .map(|c| c.at + BUDGET_WINDOW_SECS)
            .min()
    }

    /// The history without calls older than the window (what is worth persisting).
    pub fn trimmed(history: &[Call], now: i64) -> Vec<Call> {
        history
            .iter()
            .copied()
            .filter(|c| c.at > now - BUDGET_WINDOW_SECS)
            .collect()
    }

    /// The most calls in any rolling 24 h of the history.
    pub fn max_in_any_window(history: &[Call]) -> u32 {
        history
            .iter()
            .map(|c| Self::used(history, c.at))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at: i64) -> Call {
        Call {
            at,
            from: 1,
            to: 2,
            kind: CallKind::ScaleUp,
        }
    }

    #[test]
    fn calls_leave_the_budget_24_hours_after_they_were_made() {
        let b = Budget::default();
        let h: Vec<Call> = (0..8).map(|i| call(i * 600)).collect();
        let now = 7 * 600;
        assert_eq!(Budget::used(&h, now), 8);
        assert_eq!(
            b.available(&h, now, CallKind::ScaleUp),
            0,
            "the last two are the reserve"
        );
        assert_eq!(b.available(&h, now, CallKind::Emergency), 2);
        assert_eq!(Budget::next_free_at(&h, now), Some(86_400));
        assert_eq!(
            Budget::used(&h, 86_400),
            7,
            "the first call leaves at exactly 24 h"
        );
        assert_eq!(Budget::trimmed(&h, 86_400).len(), 7);
        assert_eq!(Budget::max_in_any_window(&h), 8);
    }
}
