//! Ending the worker's process once Lambda has a batch's response, when a
//! handler did not stop at its deadline.
//!
//! A handler that ignores its cancellation may keep a blocking thread busy,
//! and nothing in the process can stop a thread: only ending the process
//! does. Lambda then starts a clean execution environment for the next
//! invocation. The process must end *after* the response is posted (ending
//! it before loses the whole batch's answer), and `lambda_runtime` posts the
//! response only after the handler's future returns. So [`ExitAfterResponse`]
//! wraps the runtime's outermost service, whose future ends once the Runtime
//! API has taken the response, and exits there. Exiting at the start of the
//! next invocation instead would be worse: that invocation's batch, already
//! received, would be lost to its visibility timeout and count a receive
//! toward the DLQ.

use lambda_runtime::tower::{Layer, Service};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

/// Set by the handler when the process must end after this response.
#[derive(Debug, Clone, Default)]
pub struct RestartFlag(Arc<AtomicBool>);

impl RestartFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Wraps the runtime's outermost service in [`ExitAfterResponse`]; add it
/// last (`Runtime::layer` puts the last layer outermost).
#[derive(Debug, Clone)]
pub struct ExitAfterResponseLayer {
    flag: RestartFlag,
    exit: fn(),
}

impl ExitAfterResponseLayer {
    pub fn new(flag: RestartFlag) -> Self {
        Self {
            flag,
            exit: exit_process,
        }
    }
}

fn exit_process() {
    tracing::error!(
        "a job's handler did not stop at its deadline; ending the process so Lambda starts a clean one"
    );
    std::process::exit(1);
}

impl<S> Layer<S> for ExitAfterResponseLayer {
    type Service = ExitAfterResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ExitAfterResponse {
            inner,
            flag: self.flag.clone(),
            exit: self.exit,
        }
    }
}

/// A service that ends the process after its inner service's call completes
/// (for the runtime's outermost service: after the response is posted), if
/// the [`RestartFlag`] asks for it.
#[derive(Debug, Clone)]
pub struct ExitAfterResponse<S> {
    inner: S,
    flag: RestartFlag,
    exit: fn(),
}

impl<S, R> Service<R> for ExitAfterResponse<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AfterResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        AfterResponse {
            inner: Box::pin(self.inner.call(request)),
            flag: self.flag.clone(),
            exit: self.exit,
        }
    }
}

/// The future of [`ExitAfterResponse::call`].
pub struct AfterResponse<F> {
    inner: Pin<Box<F>>,
    flag: RestartFlag,
    exit: fn(),
}

impl<F> std::fmt::Debug for AfterResponse<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfterResponse")
            .field("flag", &self.flag)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for AfterResponse<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let output = ready!(this.inner.as_mut().poll(cx));
        if this.flag.is_requested() {
            (this.exit)();
        }
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::service_fn;
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::SeqCst;

    static EXITS: AtomicUsize = AtomicUsize::new(0);
    static POSTED: AtomicUsize = AtomicUsize::new(0);
    static EXITS_AFTER_POST: AtomicUsize = AtomicUsize::new(0);

    fn fake_exit() {
        EXITS.fetch_add(1, SeqCst);
        if POSTED.load(SeqCst) > EXITS.load(SeqCst) - 1 {
            EXITS_AFTER_POST.fetch_add(1, SeqCst);
        }
    }

    #[tokio::test]
    async fn exits_only_when_asked_and_only_after_the_inner_call_completes() {
        let flag = RestartFlag::new();
        let layer = ExitAfterResponseLayer {
            flag: flag.clone(),
            exit: fake_exit,
        };
        // The inner service stands for the runtime's: it "posts the response".
        let mut service = layer.layer(service_fn(|set: Option<RestartFlag>| async move {
            tokio::task::yield_now().await;
            if let Some(flag) = set {
                flag.request();
            }
            POSTED.fetch_add(1, SeqCst);
            Ok::<(), lambda_runtime::Error>(())
        }));
        service.call(None).await.unwrap();
        assert_eq!(EXITS.load(SeqCst), 0, "no restart asked");
        service.call(Some(flag)).await.unwrap();
        assert_eq!(EXITS.load(SeqCst), 1);
        assert_eq!(EXITS_AFTER_POST.load(SeqCst), 1, "after the response");
    }
}
