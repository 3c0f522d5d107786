//! Metrics as CloudWatch Embedded Metric Format lines on stdout: CloudWatch extracts them from
//! the log stream, so a batch costs no metrics API call.

use serde_json::{Value, json};

use crate::batch::BatchReport;

/// The CloudWatch namespace of every Robofleet metric.
pub const NAMESPACE: &str = "Robofleet";

/// The variable Lambda sets to the version that runs (`$LATEST`, or `3` behind an alias).
pub const VERSION_VAR: &str = "AWS_LAMBDA_FUNCTION_VERSION";

/// The EMF document for one batch: `Records`, `Succeeded`, `Duplicates`, `Rejected`, `Retried`,
/// `Deferred` (Count) and `BatchDuration` (Milliseconds), per `Function` and per `Function` and `Version`.
///
/// The per-version series is what the deployment's canary alarm watches: during a gradual
/// deploy old and new versions run side by side, and only the new one's `Retried / Records`
/// says whether the release is broken.
pub fn emf(report: &BatchReport, version: &str) -> Value {
    let timestamp = fleet_core::timefmt::now_unix_ms();
    json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"], ["Function", "Version"]],
                "Metrics": [
                    {"Name": "Records", "Unit": "Count"},
                    {"Name": "Succeeded", "Unit": "Count"},
                    {"Name": "Duplicates", "Unit": "Count"},
                    {"Name": "Rejected", "Unit": "Count"},
                    {"Name": "Retried", "Unit": "Count"},
                    {"Name": "Deferred", "Unit": "Count"},
                    {"Name": "BatchDuration", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Function": report.function,
        "Version": version,
        "Records": report.records,
        "Succeeded": report.succeeded,
        "Duplicates": report.duplicates,
        "Rejected": report.rejected,
        "Retried": report.retried,
        "Deferred": report.deferred,
        "BatchDuration": report.duration_ms,
    })
}

/// Set by [`disable`]: the local stack runs handlers in its own process, where it cannot set
/// `ROBOFLEET_METRICS` (changing the environment of a running process is `unsafe`).
static DISABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns EMF output off for this whole process (the local stack's in-process mode).
pub fn disable() {
    DISABLED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether EMF output is on (not `ROBOFLEET_METRICS=off`, which the local stack sets to keep its
/// console readable, and not [`disable`]d).
fn enabled() -> bool {
    !(DISABLED.load(std::sync::atomic::Ordering::Relaxed)
        || std::env::var("ROBOFLEET_METRICS").is_ok_and(|v| v == "off"))
}

/// Writes the EMF line for one batch to stdout.
pub fn emit(report: &BatchReport) {
    if !enabled() {
        return;
    }
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let version =
        VERSION.get_or_init(|| std::env::var(VERSION_VAR).unwrap_or_else(|_| "$LATEST".into()));
    println!("{}", emf(report, version));
}

/// The EMF document of one count, `metric` = `value` (Count) in [`NAMESPACE`] with one
/// dimension set `[(name, value), ...]`: what other parts of a function (the circuit breaker)
/// report.
pub fn count(metric: &str, value: u64, dimensions: &[(&str, &str)]) -> Value {
    values(&[(metric, value as f64, "Count")], dimensions)
}

/// The EMF document of several values `(metric, value, unit)` in [`NAMESPACE`] with one
/// dimension set `[(name, value), ...]` (the stream-scaler's decision).
pub fn values(metrics: &[(&str, f64, &str)], dimensions: &[(&str, &str)]) -> Value {
    let timestamp = fleet_core::timefmt::now_unix_ms();
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let declared: Vec<Value> = metrics
        .iter()
        .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": declared
            }]
        },
    });
    for (name, value, _) in metrics {
        // A count stays an integer in the log line (`"Retried": 1`, not `1.0`).
        doc[*name] = if value.fract() == 0.0 && value.abs() < 9.0e15 {
            json!(*value as i64)
        } else {
            json!(value)
        };
    }
    for (k, v) in dimensions {
        doc[*k] = json!(v);
    }
    doc
}

/// Writes an EMF document (from [`count`] or [`values`]) to stdout.
pub fn emit_doc(doc: &Value) {
    if enabled() {
        println!("{doc}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_has_a_value() {
        let report = BatchReport {
            function: "mission-ingest".into(),
            records: 10,
            succeeded: 6,
            duplicates: 2,
            rejected: 1,
            retried: 1,
            duration_ms: 12,
            ..Default::default()
        };
        let doc = emf(&report, "7");
        let metrics = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "metric {name} has no value");
        }
        assert_eq!(doc["Records"], 10);
        assert_eq!(doc["Function"], "mission-ingest");
        // Per function, and per function and version (the canary alarm's series).
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"], ["Function", "Version"]])
        );
        assert_eq!(doc["Version"], "7");
    }

    #[test]
    fn a_count_names_its_dimensions() {
        let doc = count("BreakerOpened", 1, &[("Downstream", "robots-index")]);
        assert_eq!(doc["BreakerOpened"], 1);
        assert_eq!(doc["Downstream"], "robots-index");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Downstream"]])
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "BreakerOpened"
        );
    }
}
