//! A fault-injecting proxy between the AWS SDK and the emulator.
//!
//! Jobline's promises ("202 means it will finish", "a duplicate never runs a
//! finished job again") must hold when AWS misbehaves the way it really does:
//! a 500, a throttle, a connection reset before the request reached the
//! service, a reset *after* the service acted (the caller sees an error for a
//! write that landed), a slow answer, or no answer at all (a call that hangs
//! until the caller's own timeout gives up on it). The proxy forwards every
//! request to moto over a real connection and injects those faults at set
//! rates, per operation, in each service's own wire format (awsJson1_0 for
//! DynamoDB and SQS, with SQS's `x-amzn-query-error` header), so the SDK's
//! own retry classifiers see what they would see from AWS.
//!
//! Each proxy has a label (the function whose clients use it) and records
//! every call: which operations a function made is what its IAM policy in
//! `template.yaml` must allow.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A fault the proxy can inject into one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The service answers 500 (an internal error), without acting.
    ServerError,
    /// The service answers with its throttling error, without acting.
    Throttle,
    /// The connection closes before the request is forwarded.
    ResetBefore,
    /// The request is forwarded and acted on, then the connection closes
    /// before the answer reaches the caller.
    ResetAfter,
    /// The request is forwarded after a delay.
    Delay,
    /// The call hangs: the request is read, then neither forwarded nor
    /// answered for the stall ([`FaultRates::stall`]), after which the
    /// connection is closed, still without an answer. Nothing the call asked
    /// for happens. This is a hung AWS call: its answer never comes in time,
    /// so only the caller's own timeouts (the SDK's attempt and operation
    /// timeouts) end it sooner; a caller without them waits out the whole
    /// stall, then sees a dropped connection (which the SDK retries).
    /// Closing rather than forwarding keeps it apart from [`Fault::Delay`]
    /// (a slow answer) and [`Fault::ResetAfter`] (a write whose answer was
    /// lost): a stalled write never lands, early or late.
    Stall,
}

impl Fault {
    /// Every kind, in the order rates are drawn.
    pub const ALL: [Self; 6] = [
        Self::ServerError,
        Self::Throttle,
        Self::ResetBefore,
        Self::ResetAfter,
        Self::Delay,
        Self::Stall,
    ];

    /// Every kind but [`Fault::Stall`]: the faults that end within a call's
    /// ordinary time, which [`FaultRates::each`] injects.
    pub const QUICK: [Self; 5] = [
        Self::ServerError,
        Self::Throttle,
        Self::ResetBefore,
        Self::ResetAfter,
        Self::Delay,
    ];
}

/// How long a stalled call hangs unless [`FaultRates::with_stall`] says
/// otherwise: 30 s, longer than a heartbeat's lease and than any answer a
/// caller should wait for.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

/// The chance of each fault on one call, how long a delay lasts, and how
/// long a stalled call hangs.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    pub rates: BTreeMap<Fault, f64>,
    pub delay: Range<Duration>,
    pub stall: Range<Duration>,
}

impl FaultRates {
    /// No faults.
    pub fn none() -> Self {
        Self {
            rates: BTreeMap::new(),
            delay: Duration::ZERO..Duration::from_millis(1),
            stall: DEFAULT_STALL..DEFAULT_STALL,
        }
    }

    /// Every quick kind of fault ([`Fault::QUICK`]) at `rate` (0.03 is 3 %
    /// of calls each); no stalls unless added with [`with`](Self::with).
    pub fn each(rate: f64) -> Self {
        Self {
            rates: Fault::QUICK.iter().map(|f| (*f, rate)).collect(),
            delay: Duration::from_millis(50)..Duration::from_millis(400),
            stall: DEFAULT_STALL..DEFAULT_STALL,
        }
    }

    /// These rates, with `fault` at `rate`.
    pub fn with(mut self, fault: Fault, rate: f64) -> Self {
        self.rates.insert(fault, rate);
        self
    }

    /// These rates, with delays drawn from `delay`.
    pub fn with_delay(mut self, delay: Range<Duration>) -> Self {
        self.delay = delay;
        self
    }

    /// These rates, with stalls drawn from `stall` (`d..d`: always `d`).
    pub fn with_stall(mut self, stall: Range<Duration>) -> Self {
        self.stall = stall;
        self
    }

    /// Draws the fault of one call, if any.
    fn draw(&self) -> Option<Fault> {
        let mut roll = fastrand::f64();
        for (fault, rate) in &self.rates {
            if roll < *rate {
                return Some(*fault);
            }
            roll -= rate;
        }
        None
    }
}

/// Which faults to inject: default rates, and rates for named operations
/// (`"PutItem"`, `"SendMessage"`, ...), optionally only the first few.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    pub default: FaultRates,
    pub operations: HashMap<String, FaultRates>,
    /// How many faults are left to inject; `None`: no limit.
    pub remaining: Option<usize>,
}

impl FaultPlan {
    /// The same rates on every operation.
    pub fn uniform(rates: FaultRates) -> Self {
        Self {
            default: rates,
            operations: HashMap::new(),
            remaining: None,
        }
    }

    /// This plan, injecting at most `faults` faults; later calls pass
    /// untouched (e.g. a write whose answer is lost, then the SDK's retry).
    pub fn at_most(mut self, faults: usize) -> Self {
        self.remaining = Some(faults);
        self
    }

    /// This plan, with `rates` for `operation` alone.
    pub fn with_operation(mut self, operation: &str, rates: FaultRates) -> Self {
        self.operations.insert(operation.to_owned(), rates);
        self
    }

    fn rates(&self, operation: &str) -> &FaultRates {
        self.operations.get(operation).unwrap_or(&self.default)
    }
}

/// One call through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `dynamodb`, `sqs`, or `unknown`.
    pub service: String,
    /// The API operation, e.g. `PutItem`.
    pub operation: String,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
}

/// A running proxy; it stops when dropped, with every call in flight.
#[derive(Debug)]
pub struct FaultProxy {
    label: String,
    addr: SocketAddr,
    plan: Arc<Mutex<FaultPlan>>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// SDK clients whose every call goes through `proxy`, with the SDK's
/// defaults otherwise (its retries among them), as the functions build theirs.
pub async fn clients_behind(proxy: &FaultProxy) -> jobline_local::Clients {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .load()
        .await;
    jobline_local::Clients::from_sdk_config(&sdk)
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream`
    /// (an `http://host:port` URL, moto's).
    pub async fn start(label: &str, upstream: &str, plan: FaultPlan) -> std::io::Result<Self> {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let plan = Arc::new(Mutex::new(plan));
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(accept_loop(listener, upstream, plan.clone(), state.clone()));
        Ok(Self {
            label: label.to_owned(),
            addr,
            plan,
            state,
            task,
        })
    }

    /// The URL to give the SDK as its endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Replaces the plan, e.g. to stop injecting faults before a final check.
    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.plan) = plan;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    /// How many faults of each kind were injected.
    pub fn injected(&self) -> BTreeMap<Fault, usize> {
        let mut counts = BTreeMap::new();
        for fault in lock(&self.state).calls.iter().filter_map(|c| c.fault) {
            *counts.entry(fault).or_default() += 1;
        }
        counts
    }

    /// The `(service, operation)` pairs called, e.g. `("dynamodb", "PutItem")`.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        lock(&self.state)
            .calls
            .iter()
            .map(|c| (c.service.clone(), c.operation.clone()))
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    plan: Arc<Mutex<FaultPlan>>,
    state: Arc<Mutex<State>>,
) {
    // The connections' tasks end with this one: a dropped proxy forwards
    // nothing more, as a dead host would (a held call never lands).
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let (plan, state) = (plan.clone(), state.clone());
        connections.spawn(async move {
            let service = service_fn(move |request| {
                proxy_call(request, upstream, plan.clone(), state.clone())
            });
            // A reset fault ends the connection with an error: expected.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Why a call's connection was closed on purpose.
#[derive(Debug, thiserror::Error)]
enum ProxyError {
    #[error("injected connection reset")]
    Reset,
    #[error("injected stall ended: closed without an answer")]
    Stalled,
    #[error("upstream failed: {0}")]
    Upstream(String),
}

/// `(service, operation)` of a request: from `X-Amz-Target` (the JSON
/// protocols), else from a query-protocol form body's `Action`.
pub fn classify(headers: &http::HeaderMap, body: &[u8]) -> (String, String) {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (prefix, operation) = target.split_once('.').unwrap_or((target, ""));
        let service = if prefix.starts_with("DynamoDBStreams") {
            "dynamodbstreams"
        } else if prefix.starts_with("DynamoDB") {
            "dynamodb"
        } else if prefix.starts_with("AmazonSQS") {
            "sqs"
        } else if prefix == "secretsmanager" {
            "secretsmanager"
        } else {
            "unknown"
        };
        return (service.to_owned(), operation.to_owned());
    }
    let form = String::from_utf8_lossy(body);
    let action = form
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown");
    ("unknown".to_owned(), action.to_owned())
}

/// The error answer `service` gives for `fault` (500 or throttling).
fn error_response(service: &str, fault: Fault) -> hyper::Response<Full<Bytes>> {
    let (status, code, sender) = match fault {
        Fault::Throttle if service == "dynamodb" => {
            (400, "ProvisionedThroughputExceededException", "Sender")
        }
        Fault::Throttle => (400, "RequestThrottled", "Sender"),
        _ if service == "dynamodb" => (500, "InternalServerError", "Receiver"),
        _ => (500, "InternalError", "Receiver"),
    };
    let namespace = if service == "dynamodb" {
        "com.amazonaws.dynamodb.v20120810"
    } else {
        "com.amazonaws.sqs"
    };
    let body = serde_json::json!({
        "__type": format!("{namespace}#{code}"),
        "message": "injected by the test proxy",
    });
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-query-error", format!("{code};{sender}"))
        .header("x-amzn-requestid", "injected")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}

async fn proxy_call(
    request: hyper::Request<Incoming>,
    upstream: SocketAddr,
    plan: Arc<Mutex<FaultPlan>>,
    state: Arc<Mutex<State>>,
) -> Result<hyper::Response<Full<Bytes>>, ProxyError> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| ProxyError::Upstream(e.to_string()))?
        .to_bytes();
    let (service, operation) = classify(&parts.headers, &body);
    let (fault, pause) = {
        let mut plan = lock(&plan);
        let rates = plan.rates(&operation);
        let (drawn, delay, stall) = (rates.draw(), within(&rates.delay), within(&rates.stall));
        let fault = match (drawn, plan.remaining) {
            (Some(_), Some(0)) | (None, _) => None,
            (Some(fault), remaining) => {
                plan.remaining = remaining.map(|n| n - 1);
                Some(fault)
            }
        };
        let pause = if fault == Some(Fault::Stall) {
            stall
        } else {
            delay
        };
        (fault, pause)
    };
    lock(&state).calls.push(Call {
        service: service.clone(),
        operation,
        fault,
    });
    match fault {
        Some(Fault::ServerError | Fault::Throttle) => {
            return Ok(error_response(
                &service,
                fault.unwrap_or(Fault::ServerError),
            ));
        }
        Some(Fault::ResetBefore) => return Err(ProxyError::Reset),
        Some(Fault::Stall) => {
            // Read, held, never forwarded; then closed with no answer. A
            // caller that gave up earlier has dropped its end already.
            tokio::time::sleep(pause).await;
            return Err(ProxyError::Stalled);
        }
        Some(Fault::Delay) => tokio::time::sleep(pause).await,
        Some(Fault::ResetAfter) | None => {}
    }
    let response = forward(upstream, parts, body).await?;
    if fault == Some(Fault::ResetAfter) {
        return Err(ProxyError::Reset);
    }
    Ok(response)
}

/// A duration drawn evenly from `range`.
fn within(range: &Range<Duration>) -> Duration {
    let span = range.end.saturating_sub(range.start);
    range.start + span.mul_f64(fastrand::f64())
}

/// Sends one request to `upstream` on a new connection and reads its answer.
async fn forward(
    upstream: SocketAddr,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<hyper::Response<Full<Bytes>>, ProxyError> {
    let upstream_error = |e: &dyn std::fmt::Display| ProxyError::Upstream(e.to_string());
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| upstream_error(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| upstream_error(&e))?;
    tokio::spawn(connection);
    let request = hyper::Request::from_parts(parts, Full::new(body));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| upstream_error(&e))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| upstream_error(&e))?
        .to_bytes();
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn operations_are_read_from_the_target_header_or_the_form() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amz-target",
            "DynamoDB_20120810.UpdateItem".parse().unwrap(),
        );
        assert_eq!(
            classify(&headers, b""),
            ("dynamodb".into(), "UpdateItem".into())
        );
        headers.insert("x-amz-target", "AmazonSQS.SendMessage".parse().unwrap());
        assert_eq!(
            classify(&headers, b""),
            ("sqs".into(), "SendMessage".into())
        );
        headers.insert(
            "x-amz-target",
            "secretsmanager.GetSecretValue".parse().unwrap(),
        );
        assert_eq!(
            classify(&headers, b""),
            ("secretsmanager".into(), "GetSecretValue".into())
        );
        assert_eq!(
            classify(&http::HeaderMap::new(), b"Action=ReceiveMessage&Version=1"),
            ("unknown".into(), "ReceiveMessage".into())
        );
    }

    #[test]
    fn rates_are_drawn_in_proportion() {
        let rates = FaultRates::each(0.1);
        let mut counts: BTreeMap<Option<Fault>, usize> = BTreeMap::new();
        for _ in 0..20_000 {
            *counts.entry(rates.draw()).or_default() += 1;
        }
        for fault in Fault::QUICK {
            let n = counts.get(&Some(fault)).copied().unwrap_or(0);
            assert!((1_600..2_400).contains(&n), "{fault:?}: {n}");
        }
        assert_eq!(counts.get(&Some(Fault::Stall)), None, "each() never stalls");
        assert!(FaultRates::none().draw().is_none());
        let stalls = (0..20_000)
            .filter(|_| FaultRates::each(0.1).with(Fault::Stall, 0.1).draw() == Some(Fault::Stall))
            .count();
        assert!((1_600..2_400).contains(&stalls), "Stall: {stalls}");
        assert_eq!(Fault::ALL[..5], Fault::QUICK, "ALL is QUICK and Stall");
        assert_eq!(Fault::ALL[5], Fault::Stall);
    }

    /// A stand-in for moto: answers every request `200 {}`, counting them.
    async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&served);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |_request: hyper::Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), served)
    }

    /// One DynamoDB `GetItem`-shaped request through `proxy`: its status,
    /// or why no answer came.
    async fn get_item(proxy: SocketAddr) -> Result<u16, String> {
        let stream = TcpStream::connect(proxy).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::post("/")
            .header("host", proxy.to_string())
            .header("x-amz-target", "DynamoDB_20120810.GetItem")
            .body(Full::new(Bytes::from_static(b"{}")))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
    }

    #[tokio::test]
    async fn a_stalled_call_gets_no_answer_within_its_stall_and_is_never_forwarded() {
        let (upstream, served) = counting_upstream().await;
        let stall = Duration::from_millis(1_500);
        let plan = FaultPlan::uniform(
            FaultRates::none()
                .with(Fault::Stall, 1.0)
                .with_stall(stall..stall),
        );
        let proxy = FaultProxy::start("test", &upstream, plan).await.unwrap();

        // A client that waits 300 ms hears nothing.
        let impatient =
            tokio::time::timeout(Duration::from_millis(300), get_item(proxy.addr)).await;
        assert!(
            impatient.is_err(),
            "an answer within the stall: {impatient:?}"
        );

        // One that waits it out is cut off at its end, still with no answer.
        let started = std::time::Instant::now();
        let patient = get_item(proxy.addr).await;
        let waited = started.elapsed();
        assert!(
            patient.is_err(),
            "the stall ends without an answer: {patient:?}"
        );
        assert!(
            waited >= stall,
            "closed after {waited:?}, before the stall's end"
        );
        assert!(waited < stall * 3, "held {waited:?}, far past the stall");

        assert_eq!(
            served.load(Ordering::SeqCst),
            0,
            "a stalled call is never forwarded"
        );
        assert_eq!(proxy.injected(), BTreeMap::from([(Fault::Stall, 2)]));
        assert_eq!(
            proxy.operations(),
            BTreeSet::from([("dynamodb".to_owned(), "GetItem".to_owned())])
        );

        // The same proxy, stalls off, forwards to the same upstream.
        proxy.set_plan(FaultPlan::uniform(FaultRates::none()));
        assert_eq!(get_item(proxy.addr).await, Ok(200));
        assert_eq!(served.load(Ordering::SeqCst), 1);
    }

    /// What a stall is for: only the SDK's own timeouts end it.
    #[tokio::test]
    async fn the_sdks_attempt_timeout_ends_a_stalled_call() {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        use aws_sdk_dynamodb::error::SdkError;
        use aws_sdk_dynamodb::types::AttributeValue;

        let (upstream, served) = counting_upstream().await;
        // The default stall, 30 s: far past the test's patience.
        let plan = FaultPlan::uniform(FaultRates::none().with(Fault::Stall, 1.0));
        let proxy = FaultProxy::start("test", &upstream, plan).await.unwrap();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(proxy.url())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .load()
            .await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let started = std::time::Instant::now();
        let error = client
            .get_item()
            .table_name("stalled")
            .key("id", AttributeValue::S("a".into()))
            .send()
            .await
            .expect_err("no answer comes");
        let waited = started.elapsed();
        assert!(matches!(error, SdkError::TimeoutError(_)), "{error:?}");
        assert!(
            waited < Duration::from_secs(5),
            "ended by the attempt timeouts, not the 30 s stall: {waited:?}"
        );
        assert_eq!(
            proxy.injected(),
            BTreeMap::from([(Fault::Stall, 2)]),
            "each attempt hung"
        );
        assert_eq!(served.load(Ordering::SeqCst), 0);
    }
}
