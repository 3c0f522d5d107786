//! The live progress line of a long-running tool, and rates for it.
//!
//! [`Progress`] is how a run shows itself: a spinner redrawn in place on a terminal
//! ([`Progress::Bar`]), a plain line every few seconds otherwise ([`Progress::Log`]), or nothing
//! while another tool shows its own ([`Progress::Silent`], e.g. the simulator inside
//! `robofleet dev`). [`ProgressLine`] draws it; the text of each line is the caller's, built by
//! a pure function that is unit-tested on its own.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A live line on the terminal (indicatif, on stderr).
    Bar,
    /// A plain line on stderr every few seconds (no terminal, CI, logs).
    Log,
    /// Nothing until the end.
    Silent,
}

impl Progress {
    /// [`Progress::Bar`] when stderr is a terminal and `plain` is not asked for, else
    /// [`Progress::Log`].
    pub fn detect(plain: bool) -> Self {
        if !plain && std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Log
        }
    }

    /// Prints a line meant for people (a plan, a summary) on stdout, unless silent, when it goes
    /// to the debug log instead.
    pub fn say(&self, text: &str) {
        match self {
            Progress::Bar | Progress::Log => println!("{text}"),
            Progress::Silent => tracing::debug!("{text}"),
        }
    }
}

/// The progress line itself.
pub struct ProgressLine {
    mode: Progress,
    bar: Option<ProgressBar>,
    started: Instant,
    log_every: Duration,
    last_log: Option<Instant>,
}

impl ProgressLine {
    /// A line in `mode`; [`Progress::Log`] prints at most every five seconds.
    pub fn new(mode: Progress) -> Self {
        let bar = (mode == Progress::Bar).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {elapsed_precise} {wide_msg}")
            {
                b.set_style(style);
            }
            b
        });
        Self {
            mode,
            bar,
            started: Instant::now(),
            log_every: Duration::from_secs(5),
            last_log: None,
        }
    }

    /// Changes how often [`Progress::Log`] prints.
    pub fn log_every(mut self, every: Duration) -> Self {
        self.log_every = every;
        self
    }

    /// How the line shows itself.
    pub fn mode(&self) -> Progress {
        self.mode
    }

    /// Shows `line` (call about once a second): redrawn on a terminal, printed with the elapsed
    /// seconds when a plain line is due.
    pub fn update(&mut self, line: impl Into<String>) {
        match (&self.bar, self.mode) {
            (Some(b), _) => {
                b.set_message(line.into());
                b.tick();
            }
            (None, Progress::Log) => {
                if self.last_log.is_none_or(|t| t.elapsed() >= self.log_every) {
                    eprintln!(
                        "[{:>6.0}s] {}",
                        self.started.elapsed().as_secs_f64(),
                        line.into()
                    );
                    self.last_log = Some(Instant::now());
                }
            }
            (None, _) => {}
        }
    }

    /// Prints a line for people above the progress line (stdout when there is no bar).
    pub fn println(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => self.mode.say(text),
        }
    }

    /// Removes the progress line.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Events per second over a sliding window of (seconds, running count) samples: robots publish
/// in bursts, so the rate of the last tick alone jumps around.
#[derive(Debug, Clone)]
pub struct Rate {
    window: f64,
    samples: VecDeque<(f64, u64)>,
}

impl Rate {
    /// A rate over the last `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window: window.as_secs_f64(),
            samples: VecDeque::new(),
        }
    }

    /// Adds the running `count` at `at_s` seconds and returns the rate over the window.
    pub fn sample(&mut self, at_s: f64, count: u64) -> f64 {
        self.samples.push_back((at_s, count));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| at_s - t > self.window)
        {
            self.samples.pop_front();
        }
        match self.samples.front() {
            Some((t, n)) if at_s > *t => count.saturating_sub(*n) as f64 / (at_s - t),
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_covers_the_window_only() {
        let mut r = Rate::new(Duration::from_secs(5));
        assert_eq!(r.sample(0.0, 0), 0.0);
        assert_eq!(r.sample(1.0, 100), 100.0);
        assert_eq!(r.sample(2.0, 200), 100.0);
        // A burst, then quiet: after the window the burst no longer counts.
        r.sample(3.0, 1200);
        assert_eq!(r.sample(9.0, 1200), 0.0);
        assert!((r.sample(10.0, 1300) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_silent_line_draws_nothing_and_finishes() {
        let mut l = ProgressLine::new(Progress::Silent);
        l.update("x");
        l.finish();
        assert_eq!(l.mode(), Progress::Silent);
    }
}
