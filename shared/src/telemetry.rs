//! Logging set up in one place: JSON lines to stdout, which Lambda sends to CloudWatch.

/// Installs the JSON subscriber. `RUST_LOG` filters (default `info`). Safe to call twice.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        // Audit fields at the top level of each line, where log queries expect them.
        .flatten_event(true)
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .without_time()
        .try_init();
}
