//! The breaker as a consumer function uses it: before a batch, [`Breaker::admit`] (at most one
//! read of the shared state, cached for `cache_ttl`); after each call to the downstream,
//! [`Breaker::record`]. The call that trips a rule opens the breaker (a conditional write: one
//! winner) and pauses the mappings that feed this function; while the breaker is open, every
//! invocation that still arrives (in flight when it opened) pauses them again, idempotently,
//! and defers its records without calling the downstream.
//!
//! If the breaker table cannot be read or written, the breaker **fails open**: calls go
//! through, as if there were no breaker, with a `BreakerUnavailable` metric (and its alarm).
//! Failing closed would let an outage of the breaker's own table stop a healthy pipeline; a
//! failing downstream without a breaker still costs nothing but invocations, because the
//! records wait in the stream.

use std::sync::Mutex;
use std::time::Instant;

use crate::counter::{CallOutcome, Counter};
use crate::policy::Policy;
use crate::state::{State, Status};
use crate::store::StateStore;
use crate::switch::MappingSwitch;

pub use fleet_core::timefmt::now_unix_ms as now_ms;

/// Whether a batch may call the downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Closed (or the breaker table is unavailable: fail open).
    Admit,
    /// Open or half-open: defer the records, do not call the downstream.
    Deny {
        /// Why it is open.
        cause: String,
    },
}

#[derive(Debug)]
struct Inner {
    counter: Counter,
    cached: Option<(Instant, State)>,
    /// The version of the opening this function already paused its mappings for.
    paused_for: Option<u64>,
}

impl Inner {
    /// Open as last seen (a read or a trip); a failed read caches a closed, fail-open state.
    fn open(&self) -> bool {
        self.cached.as_ref().is_some_and(|(_, s)| !s.admits())
    }
}

/// A downstream's breaker, for one function (one execution environment).
#[derive(Debug)]
pub struct Breaker<S, W> {
    downstream: String,
    functions: Vec<String>,
    policy: Policy,
    store: S,
    switch: W,
    origin: Instant,
    inner: Mutex<Inner>,
}

impl<S: StateStore, W: MappingSwitch> Breaker<S, W> {
    /// The breaker of `downstream`, pausing the mappings of `functions` when it opens.
    pub fn new(
        downstream: impl Into<String>,
        functions: Vec<String>,
        policy: Policy,
        store: S,
        switch: W,
    ) -> Self {
        Breaker {
            downstream: downstream.into(),
            functions,
            policy,
            store,
            switch,
            origin: Instant::now(),
            inner: Mutex::new(Inner {
                counter: Counter::new(),
                cached: None,
                paused_for: None,
            }),
        }
    }

    /// The downstream's name.
    pub fn downstream(&self) -> &str {
        &self.downstream
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Known to be open right now (no I/O): checked between calls of one batch, so a batch
    /// stops calling a downstream the moment its breaker opened.
    pub fn is_open(&self) -> bool {
        self.lock().open()
    }

    /// The shared state: the cached copy while fresh, else one read. `None`: the table is
    /// unavailable (counted, and cached too, so a batch costs at most one attempt).
    async fn state(&self) -> Option<State> {
        if let Some((at, s)) = &self.lock().cached
            && at.elapsed() < self.policy.cache_ttl
        {
            return Some(s.clone());
        }
        match self.store.load(&self.downstream).await {
            Ok(s) => {
                let mut inner = self.lock();
                if s.admits() && inner.open() {
                    // Closed again since we last looked: count afresh.
                    inner.counter.reset();
                }
                inner.cached = Some((Instant::now(), s.clone()));
                Some(s)
            }
            Err(e) => {
                self.unavailable(&e.to_string());
                let mut fail_open = State::new(&self.downstream);
                fail_open.cause = format!("breaker table unavailable: {e}");
                self.lock().cached = Some((Instant::now(), fail_open));
                None
            }
        }
    }

    fn unavailable(&self, why: &str) {
        tracing::error!(downstream = %self.downstream, error = %why,
            "circuit breaker table unavailable: failing open (calls go through)");
        crate::metrics::emit("BreakerUnavailable", &self.downstream);
    }

    /// Whether this batch may call the downstream. Open: the mappings are paused (once per
    /// opening) and the batch must defer its records.
    pub async fn admit(&self) -> Admission {
        let Some(state) = self.state().await else {
            return Admission::Admit;
        };
        if state.admits() {
            return Admission::Admit;
        }
        self.pause(&state).await;
        Admission::Deny {
            cause: format!(
                "circuit breaker of {} is {}: {}",
                self.downstream,
                state.status.as_str(),
                state.cause
            ),
        }
    }

    /// Counts one call's outcome; a tripped rule opens the breaker and pauses the mappings.
    pub async fn record(&self, outcome: &CallOutcome) {
        let trip = {
            let mut inner = self.lock();
            if inner.open() {
                return;
            }
            let now = self.origin.elapsed();
            inner.counter.record(outcome, now, &self.policy)
        };
        if let Some(trip) = trip {
            self.trip(&trip.cause).await;
        }
    }

    /// Opens the breaker (if nobody did first) and pauses the mappings.
    async fn trip(&self, cause: &str) {
        for _ in 0..3 {
            let state = match self.store.load(&self.downstream).await {
                Ok(s) => s,
                Err(e) => return self.trip_failed(&e.to_string()),
            };
            let next = match state.trip(now_ms(), cause, &self.policy, rand::random::<f64>()) {
                Some(next) => next,
                None => {
                    // Someone else opened it already.
                    self.remember(state.clone());
                    self.pause(&state).await;
                    return;
                }
            };
            match self.store.save(&next).await {
                Ok(true) => {
                    tracing::warn!(downstream = %self.downstream, cause, openings = next.openings,
                        probe_after_s = next.open_until_ms.saturating_sub(now_ms()) / 1000,
                        "circuit breaker opened: pausing the event source mappings");
                    crate::metrics::emit("BreakerOpened", &self.downstream);
                    self.remember(next.clone());
                    self.pause(&next).await;
                    return;
                }
                Ok(false) => continue,
                Err(e) => return self.trip_failed(&e.to_string()),
            }
        }
    }

    /// The table is unavailable at the moment of a trip: fail open, and count afresh (rather
    /// than try again on every further failure).
    fn trip_failed(&self, why: &str) {
        self.unavailable(why);
        self.lock().counter.reset();
    }

    fn remember(&self, state: State) {
        self.lock().cached = Some((Instant::now(), state));
    }

    /// Pauses this function's mappings, once per opening (the state's version).
    async fn pause(&self, state: &State) {
        if self.lock().paused_for == Some(state.version) {
            return;
        }
        match self.switch.set_enabled(&self.functions, false).await {
            Ok(changed) => {
                self.lock().paused_for = Some(state.version);
                if changed > 0 {
                    tracing::warn!(downstream = %self.downstream, functions = ?self.functions, changed,
                        "event source mappings paused while the circuit breaker is open");
                    crate::metrics::emit("BreakerPaused", &self.downstream);
                }
            }
            Err(e) => tracing::error!(downstream = %self.downstream, error = %e,
                "could not pause the event source mappings; the next invocation tries again"),
        }
    }

    /// The status last seen (for logs and tests).
    pub fn last_status(&self) -> Option<Status> {
        self.lock().cached.as_ref().map(|(_, s)| s.status)
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::store::MemoryStore;
    use crate::switch::MemorySwitch;

    fn breaker() -> Breaker<MemoryStore, MemorySwitch> {
        Breaker::new(
            "robots-index",
            vec!["s-shadow-indexer".into()],
            Policy {
                consecutive_failures: 3,
                cache_ttl: Duration::from_secs(60),
                ..Policy::default()
            },
            MemoryStore::default(),
            MemorySwitch::default(),
        )
    }

    #[tokio::test]
    async fn the_third_failure_opens_it_and_pauses_the_mappings_once() {
        let b = breaker();
        assert_eq!(b.admit().await, Admission::Admit);
        for _ in 0..2 {
            b.record(&CallOutcome::Failure("503".into())).await;
        }
        assert!(!b.is_open());
        assert!(b.switch.is_enabled("s-shadow-indexer"));
        b.record(&CallOutcome::Failure("503".into())).await;
        assert!(b.is_open());
        assert!(!b.switch.is_enabled("s-shadow-indexer"));
        let stored = b.store.load("robots-index").await.unwrap();
        assert_eq!((stored.status, stored.version), (Status::Open, 1));
        assert!(stored.cause.contains("3 consecutive failures"));
        // Further batches are denied, and further failures do not write again.
        assert!(matches!(b.admit().await, Admission::Deny { .. }));
        b.record(&CallOutcome::Failure("503".into())).await;
        assert_eq!(b.store.load("robots-index").await.unwrap().version, 1);
    }

    #[tokio::test]
    async fn a_second_function_sees_the_opening_and_pauses_its_own_mappings() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let p = Policy::default();
        let open = State::new("robots-index")
            .trip(now_ms(), "x", &p, 0.0)
            .unwrap();
        assert!(store.save(&open).await.unwrap());
        let other = Breaker::new(
            "robots-index",
            vec!["s-reindex".into()],
            p,
            ArcStore(store),
            MemorySwitch::default(),
        );
        assert!(matches!(other.admit().await, Admission::Deny { .. }));
        assert!(!other.switch.is_enabled("s-reindex"));
    }

    /// A store shared between breakers.
    struct ArcStore(std::sync::Arc<MemoryStore>);

    impl StateStore for ArcStore {
        async fn load(&self, d: &str) -> Result<State, crate::store::StoreError> {
            self.0.load(d).await
        }
        async fn save(&self, s: &State) -> Result<bool, crate::store::StoreError> {
            self.0.save(s).await
        }
        async fn list(&self) -> Result<Vec<State>, crate::store::StoreError> {
            self.0.list().await
        }
    }

    struct DownStore;

    impl StateStore for DownStore {
        async fn load(&self, _: &str) -> Result<State, crate::store::StoreError> {
            Err(crate::store::StoreError("unreachable".into()))
        }
        async fn save(&self, _: &State) -> Result<bool, crate::store::StoreError> {
            Err(crate::store::StoreError("unreachable".into()))
        }
        async fn list(&self) -> Result<Vec<State>, crate::store::StoreError> {
            Err(crate::store::StoreError("unreachable".into()))
        }
    }

    #[tokio::test]
    async fn an_unavailable_table_fails_open() {
        let b = Breaker::new(
            "missions-table",
            vec!["s-mission-ingest".into()],
            Policy {
                consecutive_failures: 1,
                ..Policy::default()
            },
            DownStore,
            MemorySwitch::default(),
        );
        assert_eq!(b.admit().await, Admission::Admit);
        b.record(&CallOutcome::Failure("503".into())).await;
        assert_eq!(b.admit().await, Admission::Admit, "still admits: fail open");
        assert!(b.switch.is_enabled("s-mission-ingest"), "never paused");
    }

    /// A store that answers until it is switched off.
    struct FlakyStore {
        inner: MemoryStore,
        down: std::sync::atomic::AtomicBool,
    }

    impl StateStore for FlakyStore {
        async fn load(&self, d: &str) -> Result<State, crate::store::StoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return DownStore.load(d).await;
            }
            self.inner.load(d).await
        }
        async fn save(&self, s: &State) -> Result<bool, crate::store::StoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return DownStore.save(s).await;
            }
            self.inner.save(s).await
        }
        async fn list(&self) -> Result<Vec<State>, crate::store::StoreError> {
            self.inner.list().await
        }
    }

    #[tokio::test]
    async fn a_breaker_seen_open_fails_open_when_the_table_goes_away() {
        let b = Breaker::new(
            "missions-table",
            vec!["s-mission-ingest".into()],
            Policy {
                consecutive_failures: 1,
                cache_ttl: Duration::ZERO,
                ..Policy::default()
            },
            FlakyStore {
                inner: MemoryStore::default(),
                down: false.into(),
            },
            MemorySwitch::default(),
        );
        b.record(&CallOutcome::Failure("503".into())).await;
        assert!(b.is_open());
        assert!(matches!(b.admit().await, Admission::Deny { .. }));
        b.store
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Admitted, and not deferred mid-batch either: both answers agree.
        assert_eq!(b.admit().await, Admission::Admit);
        assert!(
            !b.is_open(),
            "a batch admitted on a fail-open read must not be deferred"
        );
    }
}
