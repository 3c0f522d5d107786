//! What the policy sees of a stream: its per-minute metrics and its capacity.

use serde::{Deserialize, Serialize};

use crate::limits::{MIB, SHARD_RECORDS_PER_SEC};

/// One minute of a stream's CloudWatch metrics (AWS/Kinesis, stream level, period 60 s).
/// A minute CloudWatch has no datapoint for is a minute without traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// The minute's start, unix seconds (a multiple of 60).
    pub start: i64,
    /// IncomingBytes, Sum: bytes the stream accepted.
    pub bytes: f64,
    /// IncomingRecords, Sum: records the stream accepted.
    pub records: f64,
    /// WriteProvisionedThroughputExceeded, Sum: records refused by throttling.
    pub throttled: f64,
    /// GetRecords.IteratorAgeMilliseconds, Maximum: how far behind the consumers are.
    pub iterator_age_ms: f64,
}

impl Minute {
    /// The accepted traffic in shard-equivalents: the larger of MiB/s and thousands of records/s.
    pub fn shard_equivalents(&self) -> f64 {
        (self.bytes / 60.0 / MIB).max(self.records / 60.0 / SHARD_RECORDS_PER_SEC)
    }

    /// The traffic that was offered, accepted plus throttled, in shard-equivalents. Throttled
    /// records are counted at the minute's average accepted record size.
    pub fn offered_shard_equivalents(&self) -> f64 {
        if self.throttled <= 0.0 {
            return self.shard_equivalents();
        }
        let avg = if self.records > 0.0 {
            self.bytes / self.records
        } else {
            0.0
        };
        let records = self.records + self.throttled;
        ((self.bytes + self.throttled * avg) / 60.0 / MIB)
            .max(records / 60.0 / SHARD_RECORDS_PER_SEC)
    }
}

/// The stream's capacity mode. The template owns it; the policy never changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamMode {
    /// Provisioned: capacity is the open shard count, changed with UpdateShardCount.
    Provisioned,
    /// On-demand in an account in Standard mode: scales by itself, no pre-warm API.
    OnDemandStandard,
    /// On-demand in an account with a minimum throughput billing commitment (On-demand
    /// Advantage): warm throughput pre-scales the stream (UpdateStreamWarmThroughput).
    OnDemandAdvantage,
}

/// A stream's current capacity, from DescribeStreamSummary and DescribeAccountSettings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StreamCapacity {
    pub mode: StreamMode,
    /// Open shards (provisioned; on-demand streams have them too, informational).
    pub open_shards: u32,
    /// The warm throughput target, MiB/s (On-demand Advantage), 0 when none is set.
    pub warm_mibps: u32,
    /// Whether the stream is ACTIVE (UpdateShardCount is refused while it is UPDATING).
    pub active: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_records_count_at_the_average_record_size() {
        let m = Minute {
            start: 0,
            bytes: 60.0 * MIB,
            records: 60_000.0,
            throttled: 60_000.0,
            iterator_age_ms: 0.0,
        };
        assert_eq!(m.shard_equivalents(), 1.0);
        assert_eq!(m.offered_shard_equivalents(), 2.0);
        let small = Minute {
            records: 60_000.0,
            bytes: 6_000_000.0,
            ..Default::default()
        };
        assert_eq!(
            small.shard_equivalents(),
            1.0,
            "1,000 records/s of 100 bytes fill a shard"
        );
    }
}
