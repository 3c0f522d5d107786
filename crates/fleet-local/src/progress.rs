//! The live progress of `robofleet dev` and its closing summary.
//!
//! The line itself is fleet-console's ([`ProgressLine`]): a spinner redrawn every second on a
//! terminal, otherwise (CI, a pipe, a log file) a plain line every few seconds. The text comes
//! from pure functions ([`progress_line`], [`summary_text`]) so it is unit-tested.

use std::time::Duration;

use fleet_console::{Progress, ProgressLine, Rate};

use crate::dev::StackStats;
use crate::report::{DevReport, DevSummary};

/// Redraws the progress line of `robofleet dev`.
pub struct ProgressView {
    line: ProgressLine,
    rate: Rate,
}

impl ProgressView {
    /// A view: a spinner on a terminal (unless `plain`), plain lines otherwise.
    pub fn new(plain: bool) -> Self {
        Self {
            line: ProgressLine::new(Progress::detect(plain)),
            // Messages per second over the last five seconds: robots publish in bursts.
            rate: Rate::new(Duration::from_secs(5)),
        }
    }

    /// Shows `stats` (call about once a second).
    pub fn update(&mut self, stats: &StackStats) {
        let rate = self.rate.sample(stats.elapsed_s, stats.messages_in);
        self.line.update(progress_line(stats, rate));
    }

    /// Prints a line above the progress line.
    pub fn println(&self, text: &str) {
        self.line.println(text);
    }

    /// Removes the progress line.
    pub fn finish(&mut self) {
        self.line.finish();
    }
}

/// One progress line: rate, counters, backlog per stream, store counts.
pub fn progress_line(s: &StackStats, rate: f64) -> String {
    let mut streams: Vec<String> = Vec::new();
    for m in s.mappings.values() {
        streams.push(format!(
            "{} {} ({} ms)",
            short_stream(&m.stream),
            m.records_behind,
            m.millis_behind_latest.max(0)
        ));
    }
    let on_failure: u64 = s.mappings.values().map(|m| m.sent_to_on_failure).sum();
    let failed_batches: u64 = s.stores.buckets.values().sum();
    let opt = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |n| n.to_string());
    let missions = (!s.stores.tables.is_empty()).then(|| s.stores.tables.values().sum::<u64>());
    format!(
        "{rate:.1} msg/s | in {} | backlog {} [{}] | invocations {} | item failures {} | on-failure {} rec / {} obj | rejects {} | missions {} | robots {}",
        s.messages_in,
        s.backlog,
        streams.join(", "),
        s.invocations,
        s.item_failures,
        on_failure,
        failed_batches,
        opt(s.rejects_queued),
        opt(missions),
        opt(s.stores.robots_indexed),
    )
}

fn short_stream(name: &str) -> &str {
    name.rsplit_once('-').map_or(name, |(_, tail)| tail)
}

/// The endpoints block printed at start-up, with the exports that point standard clients at
/// the stack.
pub fn endpoints_text(report: &DevReport, notes: &[String]) -> String {
    let e = &report.endpoints;
    let mut out = format!(
        "robofleet dev: stack `{}` is up (functions {})\n  mqtt        {}\n  aws (moto)  {}\n  opensearch  {}\n  iot data    {}\n",
        report.stack_name, report.invoke, e.mqtt, e.aws, e.opensearch, e.iot_data
    );
    if let Some(l) = &e.lambda {
        out.push_str(&format!("  lambda      {l}\n"));
    }
    for (api, url) in &e.apis {
        out.push_str(&format!(
            "  http api    {url} ({api}; requests signed for execute-api, docs/api.md)\n"
        ));
    }
    out.push_str(&format!(
        "  robots alias {} (index {})\n",
        report.resources.opensearch.alias, report.resources.opensearch.index
    ));
    if let Some(q) = &report.resources.rejects_queue_url {
        out.push_str(&format!("  rejects     {q}\n"));
    }
    out.push_str(&format!(
        "point clients at it:\n  export AWS_ENDPOINT_URL={} AWS_ENDPOINT_URL_IOT_DATA_PLANE={} AWS_REGION={} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n",
        e.aws, e.iot_data, report.region
    ));
    if let Some((host, port)) = e
        .mqtt
        .strip_prefix("mqtt://")
        .and_then(|hp| hp.rsplit_once(':'))
    {
        out.push_str(&format!(
            "  mosquitto_pub -h {host} -p {port} -t '$aws/rules/mission_reports/robots/rb-000001/missions' -m '{{...}}'\n"
        ));
    }
    out.push_str(&format!(
        "  curl {}/{}/_search\n",
        e.opensearch, report.resources.opensearch.alias
    ));
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The closing summary, for people.
pub fn summary_text(s: &DevSummary) -> String {
    let mut out = format!(
        "robofleet dev summary ({:.0} s)\n  messages in      {}\n  records put      {}\n  invocations      {} ({} failed as a whole)\n  item failures    {}\n  missions stored  {}\n  robots indexed   {}\n  rejects queued   {}\n",
        s.duration_s,
        s.messages_in,
        s.records_put,
        s.invocations,
        s.invocation_errors,
        s.item_failures,
        s.missions_stored,
        s.robots_indexed,
        s.rejects_queued
    );
    for (stream, st) in &s.streams {
        out.push_str(&format!(
            "  stream {stream}: {} processed, {} to on-failure, {} still in flight\n",
            st.records_processed, st.records_to_on_failure, st.backlog
        ));
    }
    for (queue, n) in s.queues.iter().filter(|(_, n)| **n > 0) {
        out.push_str(&format!("  queue {queue}: {n} message(s) waiting\n"));
    }
    for (bucket, n) in s.bucket_objects.iter().filter(|(_, n)| **n > 0) {
        out.push_str(&format!(
            "  bucket {bucket}: {n} object(s) (failed batches: inspect and replay)\n"
        ));
    }
    for sch in &s.schedules {
        out.push_str(&format!(
            "  schedule {} ({}) -> {}: fired {}, failed {}\n",
            sch.name, sch.expression, sch.function, sch.fired, sch.failed
        ));
    }
    if s.rule_errors > 0 {
        out.push_str(&format!(
            "  rule errors      {} (sent to the rule's error action)\n",
            s.rule_errors
        ));
    }
    out.push_str(&format!("  backlog at exit  {}\n", s.backlog));
    out.push_str(&format!(
        "  records lost     {}{}\n",
        s.records_lost,
        if s.records_lost == 0 {
            ""
        } else {
            "  <-- see the warnings and the stand-in logs"
        }
    ));
    for w in &s.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    if s.rejects_queued > 0 {
        out.push_str("  inspect rejects: robofleet rejects list; replay after a fix: robofleet rejects replay --kind <kind>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::MappingStats;

    #[test]
    fn the_progress_line_shows_every_counter() {
        let mut s = StackStats {
            messages_in: 120,
            backlog: 3,
            invocations: 9,
            item_failures: 1,
            ..StackStats::default()
        };
        s.mappings.insert(
            "M".into(),
            MappingStats {
                stream: "st-missions".into(),
                records_behind: 2,
                millis_behind_latest: 150,
                sent_to_on_failure: 4,
                ..MappingStats::default()
            },
        );
        s.stores.tables.insert("MissionsTable".into(), 17);
        s.stores.robots_indexed = Some(5);
        let line = progress_line(&s, 12.5);
        for part in [
            "12.5 msg/s",
            "in 120",
            "backlog 3 [missions 2 (150 ms)]",
            "invocations 9",
            "item failures 1",
            "on-failure 4 rec",
            "missions 17",
            "robots 5",
        ] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
    }

    #[test]
    fn unknown_store_counts_show_as_question_marks() {
        let line = progress_line(&StackStats::default(), 0.0);
        assert!(line.contains("missions ?"), "{line}");
        assert!(line.contains("robots ?"), "{line}");
    }

    #[test]
    fn the_summary_flags_lost_records() {
        let ok = summary_text(&DevSummary::default());
        assert!(ok.contains("records lost     0\n"), "{ok}");
        let bad = summary_text(&DevSummary {
            records_lost: 2,
            ..DevSummary::default()
        });
        assert!(bad.contains("records lost     2  <--"), "{bad}");
    }
}
