//! The start time and the maintenance windows: send now, or wait.

use fleet_core::window::Windows;

/// How far ahead the next window is looked for.
pub const HORIZON_SECS: i64 = 8 * 86_400;

/// What the job may do at a moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Send; stop sending at `until` (unix seconds) when a window closes then.
    Open { until: Option<i64> },
    /// Do not send for `seconds`, because of `reason`.
    Wait { seconds: i64, reason: String },
}

/// The gate at `now` (unix seconds) for a job that starts at `start_at` and sends only inside
/// `windows` (none: any time).
pub fn gate(start_at: Option<i64>, windows: &Windows, now: i64) -> Gate {
    if let Some(start) = start_at.filter(|s| *s > now) {
        return Gate::Wait {
            seconds: start - now,
            reason: "the job's start time has not come".into(),
        };
    }
    if windows.is_empty() {
        return Gate::Open { until: None };
    }
    if let Some((_, end)) = windows.open_at(now) {
        return Gate::Open { until: Some(end) };
    }
    match windows.next_open(now, HORIZON_SECS) {
        Some(next) => Gate::Wait {
            seconds: next - now,
            reason: "outside the job's maintenance windows".into(),
        },
        None => Gate::Wait {
            seconds: 3_600,
            reason: "no maintenance window opens in the next 8 days".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_waits_for_its_start_then_for_its_window() {
        let w: Windows = "daily 02:00-04:00 UTC".parse().expect("windows");
        let day = 1_796_083_200; // 2026-12-01T00:00:00Z
        assert_eq!(
            gate(Some(day + 600), &w, day),
            Gate::Wait {
                seconds: 600,
                reason: "the job's start time has not come".into()
            }
        );
        assert!(matches!(
            gate(None, &w, day + 3_600),
            Gate::Wait { seconds: 3_600, .. }
        ));
        assert_eq!(
            gate(None, &w, day + 2 * 3_600),
            Gate::Open {
                until: Some(day + 4 * 3_600)
            }
        );
        assert_eq!(
            gate(None, &Windows::default(), day),
            Gate::Open { until: None }
        );
    }
}
