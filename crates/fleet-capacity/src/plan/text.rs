//! The plan as a readable report.

use std::fmt::Write;

use super::Plan;

/// `1234567.8` as `1,234,568`.
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn usd(v: f64) -> String {
    let cents = (v * 100.0).round() as i64;
    format!(
        "${}.{:02}",
        thousands((cents / 100) as f64),
        (cents % 100).abs()
    )
}

impl Plan {
    /// The report `robofleet plan` prints.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let f = &self.input.fleet;
        let _ = writeln!(
            s,
            "Capacity plan for {} robots (prices as of {}; days in {} local time)\n",
            thousands(f.robots),
            self.prices_as_of,
            f.schedule.time_zones[0].0
        );
        let _ = writeln!(
            s,
            "{:<22} {:>11} {:>26} {:>26} {:>12} {:>11}",
            "day",
            "robot msgs",
            "missions stream peak",
            "shadows stream peak",
            "publishes/s",
            "connects/s"
        );
        for d in &self.days {
            let peak = |x: &super::StreamDay| {
                format!(
                    "{:.2} MiB/s {:>6}/s {}",
                    x.peak_mibps,
                    thousands(x.peak_records_per_sec),
                    x.peak_at
                )
            };
            let _ = writeln!(
                s,
                "{:<22} {:>9.1} M {:>26} {:>26} {:>12} {:>11}",
                format!("{:?} {}", d.kind, d.date).to_lowercase(),
                d.robot_messages / 1e6,
                peak(&d.missions),
                peak(&d.shadows),
                thousands(d.peak_publishes_per_sec),
                thousands(d.peak_connects_per_sec)
            );
        }
        let _ = writeln!(
            s,
            "\nReplay: the stream-scaler's policy with the pre-warm rules below, minute by minute (capacity in shard-equivalent hours; 1 shard = 1 MiB/s = 1,000 records/s)"
        );
        let _ = writeln!(
            s,
            "{:<22} {:<9} {:>9} {:>8} {:>8} {:>6} {:>6} {:>11} {:>15} {:>15}",
            "day",
            "stream",
            "min over",
            "cap-h",
            "oracle",
            "ratio",
            "calls",
            "fixed peak",
            "on-demand std",
            "advantage"
        );
        for d in &self.days {
            for (name, x) in [("missions", &d.missions), ("shadows", &d.shadows)] {
                let r = &x.replay;
                let _ = writeln!(
                    s,
                    "{:<22} {:<9} {:>9} {:>8.0} {:>8.0} {:>6.2} {:>6} {:>11.0} {:>15} {:>15}",
                    format!("{:?} {}", d.kind, d.date).to_lowercase(),
                    name,
                    r.policy.minutes_over,
                    r.policy.capacity_hours,
                    r.oracle_hours,
                    r.policy_over_oracle(),
                    r.policy.calls_24h,
                    r.fixed_peak.capacity_hours,
                    format!(
                        "{} min, {:.0} h",
                        r.on_demand_standard.minutes_over, r.on_demand_standard.capacity_hours
                    ),
                    format!(
                        "{} min, {:.0} h",
                        r.on_demand_advantage.minutes_over, r.on_demand_advantage.capacity_hours
                    ),
                );
            }
        }
        let _ = writeln!(
            s,
            "\nProvisioned shards over the day with the policy (local time, {}):",
            f.schedule.time_zones[0].0
        );
        for d in &self.days {
            for (name, x) in [("missions", &d.missions), ("shadows", &d.shadows)] {
                let steps: Vec<String> = x
                    .replay
                    .policy
                    .steps()
                    .iter()
                    .map(|(m, c)| format!("{:02}:{:02} {c:.0}", m / 60, m % 60))
                    .collect();
                let _ = writeln!(
                    s,
                    "  {:<22} {:<9} {}",
                    format!("{:?} {}", d.kind, d.date).to_lowercase(),
                    name,
                    steps.join(", ")
                );
            }
        }
        let _ = writeln!(
            s,
            "\nStream modes, a normal month of Kinesis (cheapest first):"
        );
        for (i, m) in self.stream_modes.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {:<30} {:>12}{}",
                m.component,
                usd(m.usd),
                if i == 0 { "   <- cheapest" } else { "" }
            );
            for line in &m.arithmetic {
                let _ = writeln!(s, "      {line}");
            }
        }
        let _ = writeln!(s, "\nLambda concurrency (shards x parallelization factor):");
        for l in &self.lambda {
            let _ = writeln!(
                s,
                "  {:<16} {:>4.0} shards x {} = {:>5.0} concurrent at peak ({})",
                l.function, l.peak_shards, l.parallelization_factor, l.peak_concurrency, l.when
            );
        }
        let dd = &self.dynamodb;
        let _ = writeln!(
            s,
            "\nDynamoDB missions table: {} WCU per report; peak {} WCU on a normal day, {} on Christmas (table and byDay index each); on-demand default warm throughput {} WCU",
            dd.write_units_per_item,
            thousands(dd.peak_wcu_normal),
            thousands(dd.peak_wcu_christmas),
            thousands(dd.default_warm_wcu)
        );
        if dd.prewarm_wcu > 0.0 {
            let _ = writeln!(
                s,
                "  pre-warm both to {} WCU: {} once (raise-only)",
                thousands(dd.prewarm_wcu),
                usd(dd.prewarm_cost_usd)
            );
        }
        let _ = writeln!(s, "\nQuotas (defaults; all adjustable on request):");
        for q in &self.quotas {
            let _ = writeln!(
                s,
                "  {:<44} peak {:>8} of {:>8}  {}",
                q.quota,
                thousands(q.peak),
                thousands(q.limit),
                if q.ok {
                    "ok".to_string()
                } else {
                    format!("OVER on {}: request an increase", q.when)
                }
            );
        }
        let _ = writeln!(
            s,
            "\nPre-warm rules for the stream-scaler (template parameters):"
        );
        let _ = writeln!(
            s,
            "  MissionsPrewarmRules=\"{}\"",
            self.prewarm.missions_stream
        );
        let _ = writeln!(
            s,
            "  ShadowsPrewarmRules=\"{}\"",
            self.prewarm.shadows_stream
        );
        let _ = writeln!(
            s,
            "  MissionsTableWarmRules=\"{}\"",
            self.prewarm.missions_table
        );
        let _ = writeln!(s, "\nMonthly cost by component:");
        for c in &self.monthly {
            let _ = writeln!(s, "  {:<46} {:>12}", c.component, usd(c.usd));
            for line in &c.arithmetic {
                let _ = writeln!(s, "      {line}");
            }
        }
        let _ = writeln!(
            s,
            "  {:<46} {:>12}  = {} per million robot messages ({:.0} M a month)",
            "total",
            usd(self.monthly_total_usd),
            usd(self.usd_per_million_messages),
            self.robot_messages_per_month / 1e6
        );
        if !self.unverified_prices.is_empty() {
            let _ = writeln!(
                s,
                "\nUnverified prices (check before relying on the plan): {}",
                self.unverified_prices.join(", ")
            );
        }
        s
    }
}
