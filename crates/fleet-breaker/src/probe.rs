//! The half-open probes, run by the scheduled `breaker-probe` function while the mappings stay
//! paused: for each downstream, [`run`] takes the half-open lease (one prober), tests the
//! downstream itself (a [`Probe`]), and closes the breaker and resumes the mappings only after
//! `probes_to_close` successes in a row; a failure opens it again for longer.
//!
//! Every run also keeps the mappings in line with the state: paused while open (a `sam deploy`
//! that touches a mapping sends `Enabled: true` and would resume it mid-outage), running while
//! closed; and it applies the pause cap (`max_pause`).

use std::future::Future;
use std::time::Duration;

use crate::breaker::now_ms;
use crate::policy::Policy;
use crate::state::{State, Status};
use crate::store::StateStore;
use crate::switch::MappingSwitch;

/// A health test of a downstream: `Err` says why it is still sick.
pub trait Probe: Send + Sync {
    /// One test, within `timeout`.
    fn check(&self, timeout: Duration) -> impl Future<Output = Result<(), String>> + Send;
}

/// What one run did for one downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRun {
    /// The downstream.
    pub downstream: String,
    /// Its status before and after the run.
    pub before: Status,
    /// After.
    pub after: Status,
    /// Probes made (successful and failed).
    pub probes: u32,
    /// Mappings switched (paused or resumed).
    pub switched: usize,
    /// What happened, in a sentence.
    pub note: String,
}

/// Pause between two probes of one run.
const BETWEEN_PROBES: Duration = Duration::from_secs(1);

/// One run for `downstream`, whose consumers are `functions`: `holder` names this prober
/// (its request id); `budget` bounds the probes.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: StateStore, W: MappingSwitch, P: Probe>(
    store: &S,
    switch: &W,
    policy: &Policy,
    downstream: &str,
    functions: &[String],
    probe: &P,
    holder: &str,
    budget: Duration,
) -> Result<ProbeRun, String> {
    let started = std::time::Instant::now();
    let state = store.load(downstream).await.map_err(|e| e.to_string())?;
    let mut run = ProbeRun {
        downstream: downstream.to_string(),
        before: state.status,
        after: state.status,
        probes: 0,
        switched: 0,
        note: String::new(),
    };
    // The pause cap comes first: an open breaker that has held its records for `max_pause`
    // resumes them, so they age out to the on-failure destination instead of being trimmed.
    if let Some(next) = state.pause_expired(now_ms(), policy) {
        if store.save(&next).await.map_err(|e| e.to_string())? {
            run.switched = resume(switch, functions, downstream, &next.cause).await?;
            run.after = Status::Closed;
            run.note = next.cause;
        } else {
            run.note = "another writer changed the state; next run".into();
        }
        return Ok(run);
    }
    if state.status == Status::Closed {
        // Keep the mappings running (a pause whose breaker closed meanwhile).
        run.switched = switch
            .set_enabled(functions, true)
            .await
            .map_err(|e| e.to_string())?;
        run.note = if run.switched > 0 {
            "closed: resumed mappings that were still paused".into()
        } else {
            "closed".into()
        };
        return Ok(run);
    }
    // Open or half-open: the mappings stay paused (a deploy may have resumed them).
    run.switched = switch
        .set_enabled(functions, false)
        .await
        .map_err(|e| e.to_string())?;
    let mut current = match state.acquire(holder, now_ms(), policy) {
        Some(next) if store.save(&next).await.map_err(|e| e.to_string())? => {
            tracing::info!(downstream, holder, "circuit breaker half-open: probing");
            crate::metrics::emit("BreakerHalfOpened", downstream);
            next
        }
        Some(_) => {
            run.note = "another prober took the lease".into();
            return Ok(run);
        }
        None => {
            run.note = if state.forced_by.is_some() {
                format!("held open by {}", state.forced_by.as_deref().unwrap_or(""))
            } else {
                format!(
                    "open; first probe in {} s",
                    state.open_until_ms.saturating_sub(now_ms()).div_ceil(1000)
                )
            };
            return Ok(run);
        }
    };
    run.after = Status::HalfOpen;
    loop {
        let left = budget.saturating_sub(started.elapsed());
        if left < Duration::from_secs(2) {
            run.note = format!(
                "{} of {} probes succeeded; out of time, next run continues",
                current.successes, policy.probes_to_close
            );
            return Ok(run);
        }
        run.probes += 1;
        let result = probe.check(left.min(Duration::from_secs(10))).await;
        let now = now_ms();
        let next = match &result {
            Ok(()) => current.probe_succeeded(holder, now, policy),
            Err(why) => current.probe_failed(holder, now, why, policy, rand::random::<f64>()),
        };
        let Some(next) = next else {
            run.note = "the lease lapsed during the probe; the next run probes again".into();
            return Ok(run);
        };
        if !store.save(&next).await.map_err(|e| e.to_string())? {
            run.note = "another writer changed the state during the probe".into();
            return Ok(run);
        }
        run.after = next.status;
        match (&result, next.status) {
            (Err(why), _) => {
                tracing::warn!(downstream, cause = %why, openings = next.openings,
                    probe_after_s = next.open_until_ms.saturating_sub(now) / 1000,
                    "circuit breaker probe failed: open again");
                crate::metrics::emit("BreakerProbeFailed", downstream);
                run.note = next.cause;
                return Ok(run);
            }
            (Ok(()), Status::Closed) => {
                run.switched += resume(switch, functions, downstream, &next.cause).await?;
                run.note = next.cause;
                return Ok(run);
            }
            (Ok(()), _) => {
                current = next;
                tokio::time::sleep(BETWEEN_PROBES).await;
            }
        }
    }
}

async fn resume<W: MappingSwitch>(
    switch: &W,
    functions: &[String],
    downstream: &str,
    cause: &str,
) -> Result<usize, String> {
    let n = switch
        .set_enabled(functions, true)
        .await
        .map_err(|e| e.to_string())?;
    tracing::warn!(
        downstream,
        cause,
        resumed = n,
        "circuit breaker closed: event source mappings resumed"
    );
    crate::metrics::emit("BreakerClosed", downstream);
    Ok(n)
}

/// An operator's override: forces `downstream` open (pausing `functions`) or closed (resuming
/// them). Returns the new state.
pub async fn force<S: StateStore, W: MappingSwitch>(
    store: &S,
    switch: &W,
    downstream: &str,
    functions: &[String],
    open: bool,
    by: &str,
) -> Result<State, String> {
    for _ in 0..5 {
        let state = store.load(downstream).await.map_err(|e| e.to_string())?;
        let next = if open {
            state.force_open(by, now_ms())
        } else {
            state.force_close(by, now_ms())
        };
        if store.save(&next).await.map_err(|e| e.to_string())? {
            switch
                .set_enabled(functions, !open)
                .await
                .map_err(|e| e.to_string())?;
            tracing::warn!(
                downstream,
                by,
                open,
                "circuit breaker forced by an operator"
            );
            crate::metrics::emit(
                if open {
                    "BreakerOpened"
                } else {
                    "BreakerClosed"
                },
                downstream,
            );
            return Ok(next);
        }
    }
    Err(format!(
        "the state of {downstream} kept changing under the override; try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::switch::MemorySwitch;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails its first `failures` checks.
    struct Flaky {
        failures: u32,
        calls: AtomicU32,
    }

    impl Probe for Flaky {
        async fn check(&self, _: Duration) -> Result<(), String> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.failures {
                Err(format!("check {n} failed"))
            } else {
                Ok(())
            }
        }
    }

    fn p() -> Policy {
        Policy {
            base_ejection: Duration::from_millis(1),
            max_ejection: Duration::from_millis(10),
            jitter: Duration::ZERO,
            probes_to_close: 2,
            ..Policy::default()
        }
    }

    async fn opened(store: &MemoryStore, switch: &MemorySwitch, policy: &Policy) {
        let open = State::new("d")
            .trip(now_ms() - 1000, "x", policy, 0.0)
            .unwrap();
        assert!(store.save(&open).await.unwrap());
        switch.set_enabled(&["f".into()], false).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn two_good_probes_close_it_and_resume_the_mappings() {
        let (store, switch, policy) = (MemoryStore::default(), MemorySwitch::default(), p());
        opened(&store, &switch, &policy).await;
        let probe = Flaky {
            failures: 0,
            calls: AtomicU32::new(0),
        };
        let f = vec!["f".to_string()];
        let run = run(
            &store,
            &switch,
            &policy,
            "d",
            &f,
            &probe,
            "r1",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(
            (run.before, run.after, run.probes),
            (Status::Open, Status::Closed, 2)
        );
        assert!(switch.is_enabled("f"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_keeps_it_open_and_paused() {
        let (store, switch, policy) = (MemoryStore::default(), MemorySwitch::default(), p());
        opened(&store, &switch, &policy).await;
        let probe = Flaky {
            failures: 1,
            calls: AtomicU32::new(0),
        };
        let f = vec!["f".to_string()];
        let r = run(
            &store,
            &switch,
            &policy,
            "d",
            &f,
            &probe,
            "r1",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!((r.after, r.probes), (Status::Open, 1));
        assert!(r.note.contains("check 0 failed"), "{}", r.note);
        assert!(!switch.is_enabled("f"));
        assert_eq!(store.load("d").await.unwrap().openings, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deploy_that_resumed_a_paused_mapping_is_undone() {
        let (store, switch, policy) = (
            MemoryStore::default(),
            MemorySwitch::default(),
            Policy::default(),
        );
        opened(&store, &switch, &policy).await;
        // `sam deploy` touched the mapping: Enabled: true.
        let f = vec!["f".to_string()];
        switch.set_enabled(&f, true).await.unwrap();
        let probe = Flaky {
            failures: 0,
            calls: AtomicU32::new(0),
        };
        let r = run(
            &store,
            &switch,
            &policy,
            "d",
            &f,
            &probe,
            "r1",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(
            (r.after, r.probes, r.switched),
            (Status::Open, 0, 1),
            "{}",
            r.note
        );
        assert!(!switch.is_enabled("f"), "paused again while open");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pause_cap_resumes_the_mappings() {
        let (store, switch) = (MemoryStore::default(), MemorySwitch::default());
        let policy = Policy {
            max_pause: Duration::from_secs(60),
            ..Policy::default()
        };
        let open = State::new("d")
            .trip(now_ms() - 61_000, "x", &policy, 0.0)
            .unwrap();
        assert!(store.save(&open).await.unwrap());
        let f = vec!["f".to_string()];
        switch.set_enabled(&f, false).await.unwrap();
        let probe = Flaky {
            failures: 99,
            calls: AtomicU32::new(0),
        };
        let r = run(
            &store,
            &switch,
            &policy,
            "d",
            &f,
            &probe,
            "r1",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!((r.after, r.probes), (Status::Closed, 0));
        assert!(switch.is_enabled("f"));
        assert!(r.note.contains("on-failure destination"));
    }

    #[tokio::test]
    async fn an_operator_forces_it_either_way() {
        let (store, switch) = (MemoryStore::default(), MemorySwitch::default());
        let f = vec!["f".to_string()];
        let s = force(&store, &switch, "d", &f, true, "ops").await.unwrap();
        assert_eq!(s.status, Status::Open);
        assert!(!switch.is_enabled("f"));
        let probe = Flaky {
            failures: 0,
            calls: AtomicU32::new(0),
        };
        let r = run(
            &store,
            &switch,
            &Policy::default(),
            "d",
            &f,
            &probe,
            "r1",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(r.probes, 0, "no probe reopens a forced breaker: {}", r.note);
        let s = force(&store, &switch, "d", &f, false, "ops").await.unwrap();
        assert_eq!(s.status, Status::Closed);
        assert!(switch.is_enabled("f"));
    }
}
