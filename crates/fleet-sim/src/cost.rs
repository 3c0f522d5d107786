//! The plan printed before a run: connect rate, message volume, and an estimate of the AWS IoT
//! Core bill for it.

use crate::shape::Plan;

/// AWS IoT Core list prices, us-east-1, in US dollars. These are public list prices as of
/// November 2026 and must be checked against the pricing page before trusting an estimate;
/// they are here so the guard rail shows an order of magnitude before anything is spent.
pub mod prices {
    /// Per million connection-minutes.
    pub const CONNECTIVITY_PER_M_MINUTES: f64 = 0.08;
    /// Per million messages (first billion per month; each 5 KB is one message).
    pub const MESSAGING_PER_M: f64 = 1.00;
    /// Message metering unit in bytes.
    pub const MESSAGE_UNIT_BYTES: u64 = 5 * 1024;
    /// Per million Device Shadow operations (each 1 KB is one operation).
    pub const SHADOW_OPS_PER_M: f64 = 1.25;
    /// Shadow metering unit in bytes.
    pub const SHADOW_UNIT_BYTES: u64 = 1024;
    /// Per million rules triggered.
    pub const RULES_TRIGGERED_PER_M: f64 = 0.15;
    /// Per million rule actions executed.
    pub const RULE_ACTIONS_PER_M: f64 = 0.15;
}

/// What a run is expected to send and what it may cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Estimate {
    /// Robots this process connects.
    pub robots: u64,
    /// Planned CONNECTs per second (this process).
    pub connect_rate_per_s: f64,
    /// Seconds the initial connect phase takes at that rate.
    pub connect_phase_s: f64,
    /// Real seconds of the traffic window.
    pub run_s: f64,
    /// Planned publishes (mission reports + shadow updates).
    pub messages: u64,
    /// Of which mission reports (Basic Ingest: no messaging charge).
    pub mission_reports: u64,
    /// Of which shadow updates.
    pub shadow_updates: u64,
    /// Average publishes per second over the window.
    pub messages_per_s: f64,
    /// Connection-minutes.
    pub connection_minutes: f64,
    /// Estimated cost in US dollars.
    pub cost_usd: f64,
}

/// Estimates volume and cost of `plan` (faults add their share on top).
pub fn estimate(plan: &Plan, connect_rate: f64, fault_extra: f64) -> Estimate {
    let robots = plan.robots.len() as u64;
    let base = plan.publishes();
    let mission_reports = plan.mission_reports();
    let messages = ((base as f64) * (1.0 + fault_extra)).round() as u64;
    let mission_reports_f = ((mission_reports as f64) * (1.0 + fault_extra)).round() as u64;
    let shadow_updates = messages.saturating_sub(mission_reports_f);
    let run_s = plan.real_length_s();
    let connect_phase_s = robots as f64 / connect_rate;
    let connection_minutes = robots as f64 * (run_s + connect_phase_s + 10.0) / 60.0;
    // Every shadow update: the publish, its `accepted` answer and its `documents` message are
    // metered messages; the update itself is a shadow operation; the documents rule and the
    // missions rule trigger one Kinesis action each.
    use prices::*;
    let m = 1_000_000.0;
    let cost = connection_minutes / m * CONNECTIVITY_PER_M_MINUTES
        + (shadow_updates as f64 * 3.0) / m * MESSAGING_PER_M
        + shadow_updates as f64 / m * SHADOW_OPS_PER_M
        + (shadow_updates + mission_reports_f) as f64 / m * (RULES_TRIGGERED_PER_M + RULE_ACTIONS_PER_M)
        // Presence events: two per robot (connected, disconnected), each a rule + action.
        + (2 * robots) as f64 / m * (RULES_TRIGGERED_PER_M + RULE_ACTIONS_PER_M);
    Estimate {
        robots,
        connect_rate_per_s: connect_rate,
        connect_phase_s,
        run_s,
        messages,
        mission_reports: mission_reports_f,
        shadow_updates,
        messages_per_s: if run_s > 0.0 {
            messages as f64 / run_s
        } else {
            0.0
        },
        connection_minutes,
        cost_usd: cost,
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "plan: {} robots, connecting at {:.0}/s ({:.1} s), then {:.0} s of traffic",
            self.robots, self.connect_rate_per_s, self.connect_phase_s, self.run_s
        )?;
        writeln!(
            f,
            "      {} messages ({} mission reports, {} shadow updates), {:.1} msg/s on average",
            self.messages, self.mission_reports, self.shadow_updates, self.messages_per_s
        )?;
        write!(
            f,
            "      {:.0} connection-minutes; estimated AWS IoT Core cost ${:.4} (list prices, check them)",
            self.connection_minutes, self.cost_usd
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{Action, Planned, RobotPlan};

    #[test]
    fn a_million_shadow_updates_cost_what_the_price_table_says() {
        let robots = vec![RobotPlan {
            k: 0,
            connect_at_s: 0.0,
            new_robot: false,
            actions: (0..1_000_000)
                .map(|i| Planned {
                    at_s: f64::from(i) * 0.001,
                    action: Action::SteadyShadow,
                })
                .collect(),
            command: None,
        }];
        let plan = Plan {
            start: time::OffsetDateTime::UNIX_EPOCH,
            length_s: 1000.0,
            compression: 1.0,
            robots,
            existing_robots: None,
        };
        let e = estimate(&plan, 100.0, 0.0);
        assert_eq!(e.messages, 1_000_000);
        assert_eq!(e.shadow_updates, 1_000_000);
        // 3 M messages ($3) + 1 M shadow ops ($1.25) + 1 M rules and actions ($0.30), plus
        // a few connection-minutes and presence events.
        assert!((e.cost_usd - 4.55).abs() < 0.01, "{}", e.cost_usd);
        assert!(e.to_string().contains("1000000 messages"));
    }
}
