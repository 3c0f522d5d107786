//! Every transition is a metric (EMF, namespace `Robofleet`, dimension `Downstream`) and a log
//! line with its cause: `BreakerOpened`, `BreakerPaused`, `BreakerHalfOpened`,
//! `BreakerProbeFailed`, `BreakerClosed`, `BreakerResumed`, `BreakerUnavailable`.

/// Writes one count of `metric` for `downstream`.
pub fn emit(metric: &str, downstream: &str) {
    fleet_lambda::metrics::emit_doc(&fleet_lambda::metrics::count(
        metric,
        1,
        &[("Downstream", downstream)],
    ));
}
