//! A job's states, the actions that move it, its counters and the abort rule.
//!
//! ```text
//! scheduled --start--> running --finish--> succeeded
//!     |                 |  ^  \--fail----> failed      (the input cannot be read)
//!     |               pause resume
//!     |                 v  |
//!     |                paused
//!     +-----cancel / abort (from scheduled, running or paused)----> aborted
//! ```
//!
//! `aborted` is both an operator's cancel and the abort rule firing; the job item says which
//! in its reason. Finished states never change again.

use serde::{Deserialize, Serialize};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Scheduled,
    Running,
    Paused,
    Aborted,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Aborted => "aborted",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    /// Whether the job is over.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobState::Aborted | JobState::Succeeded | JobState::Failed
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "scheduled" => JobState::Scheduled,
            "running" => JobState::Running,
            "paused" => JobState::Paused,
            "aborted" => JobState::Aborted,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            _ => return Err(format!("unknown job state {s:?}")),
        })
    }
}

/// What moves a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// The worker's first chunk.
    Start,
    Pause,
    Resume,
    /// An operator's cancel.
    Cancel,
    /// The abort rule fired.
    Abort,
    /// The last line is done.
    Finish,
    /// The input cannot be read (gone, changed under the job, not the format).
    Fail,
}

/// An action the state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} job cannot {action}")]
pub struct TransitionError {
    pub from: JobState,
    pub action: &'static str,
}

impl JobAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobAction::Start => "start",
            JobAction::Pause => "pause",
            JobAction::Resume => "resume",
            JobAction::Cancel => "cancel",
            JobAction::Abort => "abort",
            JobAction::Finish => "finish",
            JobAction::Fail => "fail",
        }
    }

    /// The state after this action, or why it is not allowed.
    pub fn apply(self, from: JobState) -> Result<JobState, TransitionError> {
        use JobAction as A;
        use JobState as S;
        let to = match (self, from) {
            (A::Start, S::Scheduled | S::Running) => S::Running,
            (A::Pause, S::Scheduled | S::Running | S::Paused) => S::Paused,
            (A::Resume, S::Paused | S::Running) => S::Running,
            (A::Cancel | A::Abort, S::Scheduled | S::Running | S::Paused) => S::Aborted,
            (A::Finish, S::Running) => S::Succeeded,
            (A::Fail, S::Scheduled | S::Running | S::Paused) => S::Failed,
            _ => {
                return Err(TransitionError {
                    from,
                    action: self.as_str(),
                });
            }
        };
        Ok(to)
    }
}

/// What a job has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    /// The shadow update was accepted.
    pub succeeded: u64,
    /// The update was refused or kept failing: reported with its reason.
    pub failed: u64,
    /// Lines that name no robot or whose command does not pass the schema: reported.
    pub bad_lines: u64,
    /// Lines an earlier attempt had already claimed and finished: not sent again.
    pub skipped: u64,
    /// Lines an earlier attempt claimed but never finished (it stopped between the claim and the
    /// answer): not sent again, so whether the robot got the command is unknown.
    pub in_doubt: u64,
}

impl Counters {
    /// Robots the job has tried: what the abort rule's percentage is of.
    pub fn executed(&self) -> u64 {
        self.succeeded + self.failed + self.bad_lines
    }

    pub fn add(&mut self, other: &Counters) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.bad_lines += other.bad_lines;
        self.skipped += other.skipped;
        self.in_doubt += other.in_doubt;
    }

    /// What these counters have beyond `earlier` (counters only grow).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            succeeded: self.succeeded.saturating_sub(earlier.succeeded),
            failed: self.failed.saturating_sub(earlier.failed),
            bad_lines: self.bad_lines.saturating_sub(earlier.bad_lines),
            skipped: self.skipped.saturating_sub(earlier.skipped),
            in_doubt: self.in_doubt.saturating_sub(earlier.in_doubt),
        }
    }
}

/// IoT Jobs' abort criterion (`failureType` ALL, `action` CANCEL): once at least
/// `minNumberOfExecutedThings` robots have been tried, abort when failures (failed and bad
/// lines) reach `thresholdPercentage` of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbortRule {
    pub threshold_percentage: f64,
    pub min_number_of_executed_things: u64,
}

impl AbortRule {
    /// Whether the job must stop.
    pub fn triggered(&self, c: &Counters) -> bool {
        let executed = c.executed();
        executed >= self.min_number_of_executed_things.max(1)
            && ((c.failed + c.bad_lines) as f64) * 100.0
                >= self.threshold_percentage * executed as f64
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.threshold_percentage > 0.0 && self.threshold_percentage <= 100.0) {
            return Err(format!(
                "abort.thresholdPercentage {} must be within (0, 100]",
                self.threshold_percentage
            ));
        }
        if self.min_number_of_executed_things == 0 {
            return Err("abort.minNumberOfExecutedThings must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abort_rule_fires_at_its_threshold_and_not_before() {
        let rule = AbortRule {
            threshold_percentage: 10.0,
            min_number_of_executed_things: 100,
        };
        let c = |succeeded, failed| Counters {
            succeeded,
            failed,
            ..Counters::default()
        };
        assert!(!rule.triggered(&c(0, 99)), "below the minimum count");
        assert!(rule.triggered(&c(0, 100)));
        assert!(!rule.triggered(&c(91, 9)), "9%");
        assert!(rule.triggered(&c(90, 10)), "10% exactly");
        let bad = Counters {
            succeeded: 90,
            bad_lines: 10,
            ..Counters::default()
        };
        assert!(rule.triggered(&bad), "bad lines count as failures");
        let skipped = Counters {
            succeeded: 90,
            failed: 9,
            skipped: 1000,
            ..Counters::default()
        };
        assert!(!rule.triggered(&skipped), "skipped lines are not executed");
    }

    #[test]
    fn finished_jobs_do_not_move_and_pause_resume_cancel_do() {
        use JobAction as A;
        use JobState as S;
        assert_eq!(A::Pause.apply(S::Running), Ok(S::Paused));
        assert_eq!(A::Resume.apply(S::Paused), Ok(S::Running));
        assert_eq!(A::Cancel.apply(S::Paused), Ok(S::Aborted));
        assert_eq!(A::Finish.apply(S::Running), Ok(S::Succeeded));
        for done in [S::Aborted, S::Succeeded, S::Failed] {
            for a in [
                A::Start,
                A::Pause,
                A::Resume,
                A::Cancel,
                A::Abort,
                A::Finish,
                A::Fail,
            ] {
                assert!(a.apply(done).is_err(), "{a:?} on {done}");
            }
        }
        assert_eq!(
            A::Finish.apply(S::Paused).expect_err("paused").to_string(),
            "a paused job cannot finish"
        );
    }
}
