//! Logging set up in one place: JSON lines to stdout, which Lambda sends to CloudWatch.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The JSON subscriber every function uses, writing to `writer`; `RUST_LOG` filters
/// (default `info`). Audit fields sit at the top level of each line, where log queries
/// expect them.
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .without_time()
        .with_writer(writer)
        .finish()
}

/// Installs the JSON subscriber on stdout for the whole process. Safe to call twice.
pub fn init() {
    let _ = tracing::subscriber::set_global_default(json_subscriber(std::io::stdout));
}
