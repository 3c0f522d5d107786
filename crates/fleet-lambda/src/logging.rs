//! JSON logs through `tracing`, one object per line, as CloudWatch Logs Insights likes them.

/// Installs the JSON subscriber. The level comes from `RUST_LOG` when set (Lambda's advanced
/// logging controls set `AWS_LAMBDA_LOG_LEVEL`, honoured too), else `info`. Safe to call twice.
pub fn init() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".to_string());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time() // Lambda stamps every line itself
        .try_init();
}
