//! Running a template function locally.
//!
//! The event source mapping's [`Invoker`] port is the one door through which the pollers and the
//! scheduler call a function. Two implementations run the same handler code:
//! [`InProcessInvoker`] calls the function crates' `Handler::handle` directly (the default,
//! `--invoke in-process`), and [`crate::HttpInvoker`] POSTs the event to
//! `cargo lambda watch`'s Lambda Invoke API (`--invoke watch`, behind a [`RenamingInvoker`] that
//! maps logical ids to binary names). [`CountingInvoker`] wraps either and counts invocations and
//! batch item failures for the progress display.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::InvokeError;
use crate::{InvokeOutcome, Invoker};

/// One in-process handler: a boxed closure over a function crate's `Handler`.
pub type HandlerFn =
    Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, InvokeError>> + Send + Sync>;

/// Invokes handlers that live in this process, keyed by function name. Each name may be
/// registered under several aliases (logical id and binary name) pointing at the same handler.
#[derive(Default, Clone)]
pub struct InProcessInvoker {
    handlers: BTreeMap<String, HandlerFn>,
}

impl InProcessInvoker {
    /// An invoker with no functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` under `name`.
    pub fn register(&mut self, name: impl Into<String>, handler: HandlerFn) {
        self.handlers.insert(name.into(), handler);
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

impl Invoker for InProcessInvoker {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
        Box::pin(async move {
            let handler = self
                .handlers
                .get(function)
                .ok_or_else(|| InvokeError::UnknownFunction(function.to_string()))?
                .clone();
            handler(event).await.map(InvokeOutcome::ok)
        })
    }
}

/// Renames functions on the way to another invoker: callers use template logical ids, while
/// `cargo lambda watch` knows binary names.
pub struct RenamingInvoker {
    inner: Arc<dyn Invoker>,
    names: BTreeMap<String, String>,
}

impl RenamingInvoker {
    /// Wraps `inner`; names missing from `names` pass through unchanged.
    pub fn new(inner: Arc<dyn Invoker>, names: BTreeMap<String, String>) -> Self {
        Self { inner, names }
    }
}

impl Invoker for RenamingInvoker {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
        let name = self.names.get(function).map_or(function, String::as_str);
        self.inner.invoke(name, event)
    }
}

/// Counts of what went through an invoker.
#[derive(Debug, Default)]
pub struct InvokeCounters {
    /// Invocations started.
    pub invocations: AtomicU64,
    /// Invocations that failed as a whole.
    pub errors: AtomicU64,
    /// Batch item failures reported in partial batch responses.
    pub item_failures: AtomicU64,
}

impl InvokeCounters {
    /// A snapshot: (invocations, errors, item failures).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.invocations.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.item_failures.load(Ordering::Relaxed),
        )
    }
}

/// Wraps an invoker and counts invocations, whole-invocation errors and batch item failures.
pub struct CountingInvoker {
    inner: Arc<dyn Invoker>,
    counters: Arc<InvokeCounters>,
}

impl CountingInvoker {
    /// Wraps `inner`, counting into `counters`.
    pub fn new(inner: Arc<dyn Invoker>, counters: Arc<InvokeCounters>) -> Self {
        Self { inner, counters }
    }
}

impl Invoker for CountingInvoker {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
        Box::pin(async move {
            self.counters.invocations.fetch_add(1, Ordering::Relaxed);
            let result = self.inner.invoke(function, event).await;
            match &result {
                Ok(o) if o.function_error.is_some() => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
                Ok(o) => {
                    let failures = batch_item_failures(&o.payload);
                    self.counters
                        .item_failures
                        .fetch_add(failures as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            result
        })
    }
}

/// Number of entries in a partial batch response's `batchItemFailures` (0 for any other shape).
pub fn batch_item_failures(response: &Value) -> usize {
    response
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn echo() -> HandlerFn {
        Arc::new(|event: Value| {
            Box::pin(async move { Ok(json!({"batchItemFailures": event["fail"].clone()})) })
        })
    }

    #[tokio::test]
    async fn in_process_invoker_routes_by_name_and_rejects_unknown_names() {
        let mut inv = InProcessInvoker::new();
        inv.register("MissionIngestFunction", echo());
        inv.register("mission-ingest", echo());
        let out = inv
            .invoke("mission-ingest", json!({"fail": []}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.payload, json!({"batchItemFailures": []}));
        assert!(matches!(
            inv.invoke("nope", json!({})).await,
            Err(InvokeError::UnknownFunction(n)) if n == "nope"
        ));
    }

    #[tokio::test]
    async fn counting_invoker_counts_item_failures_and_errors() {
        let mut inv = InProcessInvoker::new();
        inv.register("f", echo());
        let counters = Arc::new(InvokeCounters::default());
        let counting = CountingInvoker::new(Arc::new(inv), counters.clone());
        let _ = counting
            .invoke(
                "f",
                json!({"fail": [{"itemIdentifier": "1"}, {"itemIdentifier": "2"}]}),
            )
            .await;
        let _ = counting.invoke("missing", json!({})).await;
        assert_eq!(counters.snapshot(), (2, 1, 2));
    }
}
