//! AWS's numbers for Kinesis Data Streams, in one place.
//!
//! Sources: "Quotas and limits" in the Kinesis Data Streams developer guide, and the
//! UpdateShardCount API reference, which lists its limits: no more than ten scaling operations
//! per rolling 24 hours per stream, no more than double the current shard count, no less than
//! half, no more than 10,000 shards per stream, and no more than the account's shard quota.

/// Write throughput of one shard: 1 MB/s, which Kinesis counts as 1 MiB/s.
pub const SHARD_BYTES_PER_SEC: f64 = 1_048_576.0;
/// Records per second one shard accepts.
pub const SHARD_RECORDS_PER_SEC: f64 = 1_000.0;
/// Shards one UpdateShardCount may reach.
pub const MAX_SHARDS_PER_STREAM: u32 = 10_000;
/// UpdateShardCount calls per stream in any rolling 24 hours.
pub const CALLS_PER_24H: u32 = 10;
/// The rolling window of the call budget, in seconds.
pub const BUDGET_WINDOW_SECS: i64 = 24 * 3600;
/// Bytes in a MiB.
pub const MIB: f64 = 1_048_576.0;

/// The largest target one UpdateShardCount call accepts from `current` open shards.
pub fn max_up(current: u32) -> u32 {
    current.saturating_mul(2).min(MAX_SHARDS_PER_STREAM)
}

/// The smallest target one UpdateShardCount call accepts from `current` open shards: half,
/// rounded up (from 5 shards, 3; a call to 2 is refused).
pub fn min_down(current: u32) -> u32 {
    current.div_ceil(2).max(1)
}

/// Whether AWS accepts one UpdateShardCount call from `current` to `target` (the per-call rules;
/// the 24 h budget and the account quota are checked elsewhere).
pub fn call_allowed(current: u32, target: u32) -> bool {
    target >= 1 && target != current && target <= max_up(current) && target >= min_down(current)
}

/// Calls needed to go from `current` to `target` shards, doubling or halving each time.
pub fn calls_between(current: u32, target: u32) -> u32 {
    let (mut at, mut calls) = (current.max(1), 0);
    while at != target {
        at = if target > at {
            max_up(at).min(target)
        } else {
            min_down(at).max(target)
        };
        calls += 1;
        if calls > 64 {
            break;
        }
    }
    calls
}

/// Shards for a demand in shard-equivalents (the larger of MiB/s and thousands of records/s),
/// run at `target_use` of the per-shard limits.
pub fn shards_for(shard_equivalents: f64, target_use: f64) -> u32 {
    if shard_equivalents.is_nan() || shard_equivalents <= 0.0 {
        return 1;
    }
    let shards = (shard_equivalents / target_use.clamp(0.05, 1.0)).ceil();
    if shards >= f64::from(MAX_SHARDS_PER_STREAM) {
        MAX_SHARDS_PER_STREAM
    } else {
        (shards as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_at_most_doubles_and_at_least_halves_rounding_up() {
        assert_eq!((max_up(2), min_down(2)), (4, 1));
        assert_eq!((max_up(5), min_down(5)), (10, 3));
        assert!(
            call_allowed(2, 4) && !call_allowed(2, 8) && !call_allowed(5, 2) && call_allowed(5, 3)
        );
        assert!(
            !call_allowed(4, 4),
            "a call that changes nothing is not a call"
        );
        assert_eq!(max_up(6_000), MAX_SHARDS_PER_STREAM);
    }

    #[test]
    fn calls_between_counts_doublings_and_halvings() {
        assert_eq!(calls_between(4, 64), 4); // 8, 16, 32, 64
        assert_eq!(calls_between(4, 65), 5);
        assert_eq!(calls_between(64, 4), 4);
        assert_eq!(calls_between(5, 2), 2); // 3, 2
        assert_eq!(calls_between(7, 7), 0);
    }

    #[test]
    fn shards_for_a_demand_at_a_target_use() {
        assert_eq!(shards_for(0.0, 0.7), 1);
        assert_eq!(shards_for(7.0, 0.7), 10);
        assert_eq!(shards_for(7.01, 0.7), 11);
        assert_eq!(shards_for(1e9, 0.7), MAX_SHARDS_PER_STREAM);
    }
}
