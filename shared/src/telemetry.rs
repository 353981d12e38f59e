//! Structured logs: JSON lines through `tracing`, one object per event with
//! the fields of its spans (`jobId`, `messageId`, the Lambda `requestId`), so
//! CloudWatch Logs Insights can filter on them.

/// Installs the JSON subscriber on stderr, filtered by `RUST_LOG` (default
/// `info`). Stdout stays free for EMF metric documents.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}
