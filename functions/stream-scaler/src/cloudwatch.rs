//! A stream's per-minute metrics from CloudWatch (AWS/Kinesis, stream level, free, 1 minute).

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::DateTime;
use fleet_capacity::observe::Minute;

/// The metrics the policy reads, as (query id, metric name, statistic).
pub const QUERIES: [(&str, &str, &str); 4] = [
    ("bytes", "IncomingBytes", "Sum"),
    ("records", "IncomingRecords", "Sum"),
    ("throttled", "WriteProvisionedThroughputExceeded", "Sum"),
    ("age", "GetRecords.IteratorAgeMilliseconds", "Maximum"),
];

/// The minutes of `stream` in `[from, to)` (unix seconds, aligned down to the minute), in
/// order; a minute without any datapoint is left out (no traffic).
pub async fn minutes(
    client: &aws_sdk_cloudwatch::Client,
    stream: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Minute>, String> {
    let queries: Vec<MetricDataQuery> = QUERIES
        .iter()
        .map(|(id, name, stat)| {
            let metric = Metric::builder()
                .namespace("AWS/Kinesis")
                .metric_name(*name)
                .dimensions(
                    Dimension::builder()
                        .name("StreamName")
                        .value(stream)
                        .build(),
                )
                .build();
            MetricDataQuery::builder()
                .id(*id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric)
                        .period(60)
                        .stat(*stat)
                        .build(),
                )
                .return_data(true)
                .build()
        })
        .collect();
    let mut by_minute: BTreeMap<i64, Minute> = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .get_metric_data()
            .set_metric_data_queries(Some(queries.clone()))
            .start_time(DateTime::from_secs(from - from.rem_euclid(60)))
            .end_time(DateTime::from_secs(to - to.rem_euclid(60)))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GetMetricData for {stream}: {}",
                    fleet_aws::error::chain(&e)
                )
            })?;
        for result in out.metric_data_results() {
            let id = result.id().unwrap_or_default();
            for (t, v) in result.timestamps().iter().zip(result.values()) {
                let start = t.secs() - t.secs().rem_euclid(60);
                let m = by_minute.entry(start).or_insert(Minute {
                    start,
                    ..Minute::default()
                });
                match id {
                    "bytes" => m.bytes += v,
                    "records" => m.records += v,
                    "throttled" => m.throttled += v,
                    "age" => m.iterator_age_ms = m.iterator_age_ms.max(*v),
                    _ => {}
                }
            }
        }
        token = out.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    Ok(by_minute.into_values().collect())
}
