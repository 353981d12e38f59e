//! The stop signal that `serve` hands to the HTTP server and to every poller.
//!
//! A `watch` channel rather than a future: each part asks "stop requested?"
//! many times (the server at each accept, a poller at each receive), and a
//! stop that arrives while a part is busy must still be seen when it gets
//! back to waiting.

use tokio::sync::watch;

/// Requests the stop.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Tells whether, and waits until, the stop is requested. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new stop signal.
pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger(sender), Shutdown(receiver))
}

impl Trigger {
    /// Requests the stop; every [`Shutdown`] sees it.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// A signal that never fires.
    pub fn never() -> Self {
        channel().1
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the stop is requested (at once if it already is).
    /// Cancel-safe, so it can sit in a `select!` loop.
    pub async fn requested(&mut self) {
        if self.0.wait_for(|stopped| *stopped).await.is_err() {
            // The trigger is gone without a stop: none will come.
            std::future::pending::<()>().await;
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, what `kill`, `docker stop` and
/// service managers send.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops");
                drop(tokio::signal::ctrl_c().await);
            }
        }
    }
    #[cfg(not(unix))]
    drop(tokio::signal::ctrl_c().await);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_is_seen_by_every_clone_even_after_it_happened() {
        let (trigger, mut shutdown) = channel();
        let mut late = shutdown.clone();
        assert!(!shutdown.is_requested());
        let waiting = tokio::spawn(async move { shutdown.requested().await });
        trigger.stop();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the waiter wakes")
            .unwrap();
        assert!(late.is_requested());
        tokio::time::timeout(Duration::from_secs(1), late.requested())
            .await
            .expect("a stop requested earlier completes at once");
    }

    #[tokio::test]
    async fn never_does_not_fire() {
        let mut never = Shutdown::never();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), never.requested())
                .await
                .is_err()
        );
    }
}
