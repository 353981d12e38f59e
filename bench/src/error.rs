//! The harness's errors. A measurement that cannot be taken fails the run
//! with the reason, rather than reporting a figure that means nothing.

/// Why a measurement could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("{0}")]
    Unexpected(String),
    #[error("AWS call failed: {0}")]
    Aws(String),
}

impl BenchError {
    /// An I/O error, with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A failed AWS call or job-store operation, with its cause chain.
    pub fn aws(error: impl std::error::Error) -> Self {
        Self::Aws(aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string())
    }
}

/// Waits for `future` at most `seconds`, naming `what` on a timeout.
pub async fn within<T>(
    seconds: u64,
    what: &str,
    future: impl Future<Output = T>,
) -> Result<T, BenchError> {
    tokio::time::timeout(std::time::Duration::from_secs(seconds), future)
        .await
        .map_err(|_| BenchError::Timeout {
            what: what.to_owned(),
            seconds,
        })
}
