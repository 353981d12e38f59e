//! The local stand-in for Lambda's DynamoDB Streams event source mapping:
//! reads the jobs table's stream ([`StreamReader`]) and invokes the
//! notifier with each batch, as Lambda would. A batch the notifier reports
//! a failure in is read again (after a pause), as the mapping retries it;
//! the notifier's relay is idempotent (a second message of a delivered
//! event sends nothing), so retrying the whole batch is safe.

use crate::shutdown::Shutdown;
use crate::stream::{StreamError, StreamReader};
use jobline_notifier::Notifier;
use std::sync::Arc;
use std::time::Duration;

/// How often an idle stream is read again (Lambda reads each shard about
/// four times a second).
pub const STREAM_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What one read of the stream did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// No shard had a new record.
    Idle,
    /// A batch of this many records was relayed and moved past.
    Records(usize),
    /// The notifier failed the batch; it comes again.
    Failed,
}

/// Feeds the notifier from the jobs table's stream.
#[derive(Debug)]
pub struct StreamRelay {
    reader: StreamReader,
    notifier: Arc<Notifier>,
}

impl StreamRelay {
    pub fn new(reader: StreamReader, notifier: Arc<Notifier>) -> Self {
        Self { reader, notifier }
    }

    /// Relays the next batch, if there is one, and moves past it only if
    /// the notifier reported no failure.
    pub async fn relay_once(&mut self) -> Result<Relayed, StreamError> {
        let Some(event) = self.reader.next_batch().await? else {
            return Ok(Relayed::Idle);
        };
        let records = event["Records"].as_array().map_or(0, Vec::len);
        let answer = self.notifier.handle(event).await;
        if answer["batchItemFailures"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            tracing::warn!("the notifier failed a stream batch; reading it again");
            return Ok(Relayed::Failed);
        }
        self.reader.advance();
        Ok(Relayed::Records(records))
    }

    /// Relays until `stop`; errors are logged and retried.
    pub async fn run(mut self, mut stop: Shutdown) {
        while !stop.is_requested() {
            let pause = match self.relay_once().await {
                Ok(Relayed::Idle) => STREAM_POLL_INTERVAL,
                Ok(Relayed::Records(_)) => Duration::ZERO,
                Ok(Relayed::Failed) => Duration::from_secs(1),
                Err(error) => {
                    tracing::warn!(%error, "reading the stream failed; retrying in 1 s");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = stop.requested() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
