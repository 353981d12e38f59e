//! One delivery attempt: a signed event POSTed to a checked callback URL.
//!
//! [`Deliverer::deliver`] resolves the URL once ([`CallbackUrl::resolve`],
//! which refuses any address that is not public), opens a TCP connection to
//! that very address, runs TLS over it with the URL's host as the server
//! name, and sends one HTTP/1.1 POST: no second DNS lookup, no connection
//! pool, no redirects (a 3xx is a status like any other non-2xx). All of
//! it, from the lookup to the response's head, runs within one timeout
//! ([`Deliverer::DEFAULT_TIMEOUT`] unless set); at most
//! [`MAX_RESPONSE_BYTES`] of the response's body are read, within what is
//! left of it, and the rest is dropped with the connection.
//!
//! Receivers are the callers' servers on the public web, not AWS endpoints,
//! so TLS trusts the public web's roots (the `webpki-roots` crate, Mozilla's
//! list compiled in, the same in a Lambda function and on a laptop), not the
//! machine's store nor the AWS clients' roots; [`Deliverer::with_extra_roots_pem`]
//! adds roots, for a receiver behind a private CA in tests or a local run.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use jobline_core::trace_context::{self, TraceContext};

use super::signing::WebhookHeaders;
use super::target::{CallbackError, CallbackUrl, Host, Scheme};

/// The most bytes of a response's body read before the connection is
/// dropped: receivers answer with a status, their bodies are not used.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024;

const USER_AGENT_VALUE: &str = concat!("Jobline-Webhooks/", env!("CARGO_PKG_VERSION"));

/// A delivery the receiver accepted (a 2xx status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
}

/// Why a delivery attempt failed. [`DeliveryError::is_retryable`] says
/// whether another attempt may succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The URL, or an address its host resolved to, is not allowed.
    #[error("callback refused: {0}")]
    Refused(#[source] CallbackError),
    /// The host could not be resolved.
    #[error("{0}")]
    Resolve(#[source] CallbackError),
    /// The headers could not be written into a request (a webhook id with
    /// a control character, say): another attempt would fail the same way.
    #[error("the request could not be built: {0}")]
    Request(#[source] http::Error),
    #[error("could not connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with {host} failed: {source}")]
    Tls {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
    #[error("no answer within {limit:?} ({stage})")]
    Timeout {
        /// What was under way: "resolve", "connect", "tls" or "response".
        stage: &'static str,
        limit: Duration,
    },
    /// The receiver answered with a status other than 2xx.
    #[error("the receiver answered {0}")]
    Status(u16),
}

impl DeliveryError {
    /// Whether to try again later: everything is retryable but a refused
    /// URL, a request that cannot be built, and a 4xx status other than 408
    /// (Request Timeout) and 429 (Too Many Requests). A 3xx, which is not
    /// followed, and a 5xx are retryable, as are network, TLS and timeout
    /// errors. (The notifier also retries a 401 or 403 that a key rotation
    /// explains, which only it can tell: see `functions/notifier`.)
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Refused(_) | Self::Request(_) => false,
            Self::Status(status) => !(400..500).contains(status) || matches!(status, 408 | 429),
            Self::Resolve(_)
            | Self::Connect { .. }
            | Self::Tls { .. }
            | Self::Http(_)
            | Self::Timeout { .. } => true,
        }
    }
}

impl From<CallbackError> for DeliveryError {
    fn from(error: CallbackError) -> Self {
        if error.is_refusal() {
            Self::Refused(error)
        } else {
            Self::Resolve(error)
        }
    }
}

/// Why extra PEM roots were refused.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("the PEM roots could not be read: {0}")]
    Pem(String),
    #[error("the PEM holds no certificate")]
    Empty,
    #[error("a PEM certificate is not a usable root: {0}")]
    Root(#[source] rustls::Error),
}

/// Sends webhook events, one attempt per call. Cheap to clone; holds no
/// connection between calls.
#[derive(Debug, Clone)]
pub struct Deliverer {
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl Default for Deliverer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deliverer {
    /// The time an attempt may take, from the lookup to the response's head.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A deliverer that trusts the public web's roots.
    pub fn new() -> Self {
        Self::with_roots(public_roots())
    }

    /// A deliverer that trusts the public web's roots and every certificate
    /// of `pem` (for a receiver behind a private CA: tests, local runs).
    pub fn with_extra_roots_pem(pem: &[u8]) -> Result<Self, RootsError> {
        let mut roots = public_roots();
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|error| RootsError::Pem(error.to_string()))?;
            roots.add(certificate).map_err(RootsError::Root)?;
            added += 1;
        }
        if added == 0 {
            return Err(RootsError::Empty);
        }
        Ok(Self::with_roots(roots))
    }

    /// The same deliverer with another timeout per attempt.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time an attempt may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn with_roots(roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            tls: Arc::new(config),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// One attempt: POSTs `body` (JSON) with the three webhook headers to
    /// `url`, at the address its host resolves to now if that is allowed.
    /// A 2xx status is [`Delivered`]; anything else is an error, retryable
    /// or not ([`DeliveryError::is_retryable`]).
    pub async fn deliver(
        &self,
        url: &CallbackUrl,
        headers: &WebhookHeaders,
        body: &[u8],
    ) -> Result<Delivered, DeliveryError> {
        self.deliver_traced(url, headers, body, None).await
    }

    /// [`deliver`](Self::deliver), with a W3C `traceparent` header of
    /// `trace` (the delivery's span in the job's trace) when there is one,
    /// so a receiver that traces continues the job's trace.
    pub async fn deliver_traced(
        &self,
        url: &CallbackUrl,
        headers: &WebhookHeaders,
        body: &[u8],
        trace: Option<&TraceContext>,
    ) -> Result<Delivered, DeliveryError> {
        let deadline = Instant::now() + self.timeout;
        let request = build_request(url, headers, body, trace)?;
        let addr = self.in_time(deadline, "resolve", url.resolve()).await??;
        let tcp = self
            .in_time(deadline, "connect", TcpStream::connect(addr))
            .await?
            .map_err(|source| DeliveryError::Connect { addr, source })?;
        // Headers and a small body: send them as soon as they are written.
        let _ = tcp.set_nodelay(true);
        let status = match url.scheme() {
            Scheme::Http => self.exchange(deadline, tcp, request).await?,
            Scheme::Https => {
                let name = server_name(url.host());
                let tls = self
                    .in_time(
                        deadline,
                        "tls",
                        TlsConnector::from(Arc::clone(&self.tls)).connect(name, tcp),
                    )
                    .await?
                    .map_err(|source| DeliveryError::Tls {
                        host: url.host().to_string(),
                        source,
                    })?;
                self.exchange(deadline, tls, request).await?
            }
        };
        if (200..300).contains(&status) {
            Ok(Delivered { status })
        } else {
            Err(DeliveryError::Status(status))
        }
    }

    async fn in_time<T>(
        &self,
        deadline: Instant,
        stage: &'static str,
        future: impl Future<Output = T>,
    ) -> Result<T, DeliveryError> {
        timeout_at(deadline, future)
            .await
            .map_err(|_| DeliveryError::Timeout {
                stage,
                limit: self.timeout,
            })
    }

    /// Sends the request over `stream` and returns the response's status,
    /// after reading at most [`MAX_RESPONSE_BYTES`] of its body (for what is
    /// left of the time: a slow body does not turn an answer into a timeout).
    async fn exchange<S>(
        &self,
        deadline: Instant,
        stream: S,
        request: Request<Full<Bytes>>,
    ) -> Result<u16, DeliveryError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(DeliveryError::Http)?;
        let mut connection = std::pin::pin!(connection);
        let response = async {
            let response = self
                .in_time(deadline, "response", sender.send_request(request))
                .await?
                .map_err(DeliveryError::Http)?;
            let status = response.status().as_u16();
            let _ = timeout_at(deadline, read_some(response.into_body())).await;
            Ok(status)
        };
        let mut response = std::pin::pin!(response);
        // The connection does the reading and writing; the response comes
        // through it. Should it end first, the response (if any) is already
        // queued or its future fails at once.
        tokio::select! {
            biased;
            result = &mut response => result,
            _ = &mut connection => response.await,
        }
    }
}

fn public_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn server_name(host: &Host) -> ServerName<'static> {
    match host {
        Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        Host::Name(name) => ServerName::try_from(name.clone())
            .expect("a callback URL's host name is a valid DNS name"),
    }
}

fn build_request(
    url: &CallbackUrl,
    headers: &WebhookHeaders,
    body: &[u8],
    trace: Option<&TraceContext>,
) -> Result<Request<Full<Bytes>>, DeliveryError> {
    let mut request = Request::builder();
    if let Some(trace) = trace {
        request = request.header(trace_context::HEADER, trace.to_string());
    }
    request
        .method(Method::POST)
        .uri(url.path_and_query())
        .header(HOST, url.host_header())
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CONTENT_TYPE, "application/json")
        .header("webhook-id", &headers.id)
        .header("webhook-timestamp", headers.timestamp.to_string())
        .header("webhook-signature", &headers.signature)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(DeliveryError::Request)
}

/// Reads the body until it ends, fails, or [`MAX_RESPONSE_BYTES`] came.
async fn read_some(mut body: Incoming) {
    let mut read = 0;
    while read < MAX_RESPONSE_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) | None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use http::{HeaderMap, Response};
    use http_body_util::combinators::BoxBody;
    use hyper::body::{Body, Frame};
    use hyper::service::service_fn;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;
    use crate::signing::{WebhookSecret, sign};
    use crate::target::{CallbackPolicy, Forbidden};

    const BODY: &[u8] = br#"{"type":"job.succeeded","data":{"job_id":"j-1"}}"#;

    /// A CA made for one test, and a certificate it issued for 127.0.0.1
    /// and localhost, with its key.
    struct TestPki {
        ca_pem: String,
        server: ServerConfig,
    }

    fn test_pki() -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Jobline webhook test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        TestPki {
            ca_pem: ca.pem(),
            server,
        }
    }

    /// What the receiver answers to its n-th request (from 0).
    #[derive(Debug, Clone)]
    enum Answer {
        Status(u16),
        Redirect(String),
        Slow(Duration),
        Endless,
    }

    #[derive(Debug)]
    struct Received {
        method: Method,
        target: String,
        headers: HeaderMap,
        body: Bytes,
    }

    struct Receiver {
        addr: SocketAddr,
        requests: Arc<Mutex<Vec<Received>>>,
    }

    impl Receiver {
        fn count(&self) -> usize {
            self.requests.lock().unwrap().len()
        }
    }

    /// A body that never ends.
    struct Endless;

    impl Body for Endless {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[b'x'; 1024])))))
        }
    }

    /// An HTTP/1.1 receiver on 127.0.0.1, over TLS with `tls`, plain
    /// without; `answer` says what to answer to each request.
    async fn receiver(
        tls: Option<ServerConfig>,
        answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let acceptor = tls.map(|config| TlsAcceptor::from(Arc::new(config)));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen, answer) =
                    (acceptor.clone(), Arc::clone(&seen), Arc::clone(&answer));
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let n = {
                                let mut seen = seen.lock().unwrap();
                                seen.push(Received {
                                    method: parts.method,
                                    target: parts.uri.to_string(),
                                    headers: parts.headers,
                                    body,
                                });
                                seen.len() - 1
                            };
                            let empty = || Full::new(Bytes::new()).boxed();
                            let response: Response<BoxBody<Bytes, Infallible>> = match answer(n) {
                                Answer::Status(status) => {
                                    Response::builder().status(status).body(empty()).unwrap()
                                }
                                Answer::Redirect(location) => Response::builder()
                                    .status(302)
                                    .header("location", location)
                                    .body(empty())
                                    .unwrap(),
                                Answer::Slow(delay) => {
                                    tokio::time::sleep(delay).await;
                                    Response::new(empty())
                                }
                                Answer::Endless => Response::new(Endless.boxed()),
                            };
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Receiver { addr, requests }
    }

    fn loopback() -> CallbackPolicy {
        CallbackPolicy {
            allow_loopback: true,
            allow_http_loopback: false,
        }
    }

    fn url(receiver: &Receiver, path: &str) -> CallbackUrl {
        let text = format!("https://127.0.0.1:{}{path}", receiver.addr.port());
        CallbackUrl::parse(&text, loopback()).unwrap()
    }

    fn secret() -> WebhookSecret {
        WebhookSecret::from_bytes([5u8; 32]).unwrap()
    }

    fn headers(id: &str) -> WebhookHeaders {
        WebhookHeaders::signed(&[secret()], id, 1_700_000_000, BODY)
    }

    #[tokio::test]
    async fn webhook_delivery_posts_the_signed_event_over_tls_to_a_trusted_receiver() {
        let pki = test_pki();
        let receiver = receiver(Some(pki.server), |_| Answer::Status(204)).await;
        let deliverer = Deliverer::with_extra_roots_pem(pki.ca_pem.as_bytes()).unwrap();

        let sent = headers("msg_1");
        let delivered = deliverer
            .deliver(&url(&receiver, "/hooks/jobs?tenant=a"), &sent, BODY)
            .await
            .unwrap();
        assert_eq!(delivered, Delivered { status: 204 });

        let requests = receiver.requests.lock().unwrap();
        let [request] = requests.as_slice() else {
            panic!("{requests:?}");
        };
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.target, "/hooks/jobs?tenant=a");
        assert_eq!(request.body, BODY);
        let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("content-length"), BODY.len().to_string());
        assert_eq!(
            header("host"),
            format!("127.0.0.1:{}", receiver.addr.port())
        );
        assert_eq!(header("webhook-id"), "msg_1");
        assert_eq!(header("webhook-timestamp"), "1700000000");
        // What a receiver checks: the signature of what it received.
        assert_eq!(
            header("webhook-signature"),
            sign(&secret(), "msg_1", 1_700_000_000, &request.body)
        );
        assert!(header("user-agent").starts_with("Jobline-Webhooks/"));
        assert!(
            !request.headers.contains_key("traceparent"),
            "no trace, no header"
        );
    }

    #[tokio::test]
    async fn a_traced_delivery_sends_its_traceparent() {
        let pki = test_pki();
        let receiver = receiver(Some(pki.server), |_| Answer::Status(200)).await;
        let deliverer = Deliverer::with_extra_roots_pem(pki.ca_pem.as_bytes()).unwrap();
        let trace = TraceContext::new_root();
        deliverer
            .deliver_traced(&url(&receiver, "/"), &headers("msg_2"), BODY, Some(&trace))
            .await
            .unwrap();
        let requests = receiver.requests.lock().unwrap();
        assert_eq!(
            requests[0].headers["traceparent"].to_str().unwrap(),
            trace.to_string()
        );
    }

    #[tokio::test]
    async fn webhook_delivery_refuses_loopback_by_default() {
        let pki = test_pki();
        let receiver = receiver(Some(pki.server), |_| Answer::Status(200)).await;
        let deliverer = Deliverer::with_extra_roots_pem(pki.ca_pem.as_bytes()).unwrap();
        let port = receiver.addr.port();

        let literal = format!("https://127.0.0.1:{port}/");
        assert!(matches!(
            CallbackUrl::parse(&literal, CallbackPolicy::default()),
            Err(CallbackError::Forbidden {
                class: Forbidden::Loopback,
                ..
            })
        ));
        // A name is refused once resolved, before any connection.
        let named = format!("https://localhost:{port}/");
        let url = CallbackUrl::parse(&named, CallbackPolicy::default()).unwrap();
        let error = deliverer
            .deliver(&url, &headers("msg_1"), BODY)
            .await
            .unwrap_err();
        assert!(matches!(error, DeliveryError::Refused(_)), "{error}");
        assert!(!error.is_retryable());
        assert_eq!(receiver.count(), 0);
    }

    #[tokio::test]
    async fn webhook_delivery_trusts_only_the_public_roots_by_default() {
        let pki = test_pki();
        let receiver = receiver(Some(pki.server), |_| Answer::Status(200)).await;
        let error = Deliverer::new()
            .deliver(&url(&receiver, "/"), &headers("msg_1"), BODY)
            .await
            .unwrap_err();
        assert!(matches!(error, DeliveryError::Tls { .. }), "{error}");
        assert!(error.is_retryable());
        assert_eq!(receiver.count(), 0);
    }

    #[tokio::test]
    async fn webhook_delivery_reports_a_500_then_delivers_on_the_next_attempt() {
        let pki = test_pki();
        let receiver = receiver(Some(pki.server), |n| {
            Answer::Status(if n == 0 { 500 } else { 200 })
        })
        .await;
        let deliverer = Deliverer::with_extra_roots_pem(pki.ca_pem.as_bytes()).unwrap();
        let url = url(&receiver, "/hook");

        let error = deliverer
            .deliver(&url, &headers("msg_1"), BODY)
            .await
            .unwrap_err();
        assert!(matches!(error, DeliveryError::Status(500)), "{error}");
        assert!(error.is_retryable());
        let delivered = deliverer
            .deliver(&url, &headers("msg_1"), BODY)
            .await
            .unwrap();
        assert_eq!(delivered.status, 200);

        let requests = receiver.requests.lock().unwrap();
        assert_eq!(requests.len(), 2);
        assert!(requests.iter().all(|r| r.headers["webhook-id"] == "msg_1"));
    }

    #[tokio::test]
    async fn webhook_delivery_does_not_follow_a_redirect() {
        let pki = test_pki();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let receiver = receiver(Some(pki.server), move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Answer::Redirect("/elsewhere".to_owned())
        })
        .await;
        let deliverer = Deliverer::with_extra_roots_pem(pki.ca_pem.as_bytes()).unwrap();

        let error = deliverer
            .deliver(&url(&receiver, "/hook"), &headers("msg_1"), BODY)
            .await
            .unwrap_err();
        assert!(matches!(error, DeliveryError::Status(302)), "{error}");
        assert!(error.is_retryable());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let requests = receiver.requests.lock().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].target, "/hook");
    }

    #[tokio::test]
    async fn webhook_delivery_times_out_on_a_slow_receiver() {
        let pki = test_pki();
        let receiver = receiver(Some(pki.server), |_| Answer::Slow(Duration::from_secs(30))).await;
        let deliverer = Deliverer::with_extra_roots_pem(pki.ca_pem.as_bytes())
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        assert_eq!(deliverer.timeout(), Duration::from_millis(300));
        assert_eq!(Deliverer::new().timeout(), Duration::from_secs(10));

        let started = std::time::Instant::now();
        let error = deliverer
            .deliver(&url(&receiver, "/"), &headers("msg_1"), BODY)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(
                error,
                DeliveryError::Timeout {
                    stage: "response",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.is_retryable());
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn webhook_delivery_reads_only_the_start_of_an_endless_answer() {
        let pki = test_pki();
        let receiver = receiver(Some(pki.server), |_| Answer::Endless).await;
        let deliverer = Deliverer::with_extra_roots_pem(pki.ca_pem.as_bytes())
            .unwrap()
            .with_timeout(Duration::from_secs(5));

        let started = std::time::Instant::now();
        let delivered = deliverer
            .deliver(&url(&receiver, "/"), &headers("msg_1"), BODY)
            .await
            .unwrap();
        assert_eq!(delivered.status, 200);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn webhook_delivery_over_plain_http_to_loopback_under_the_local_policy() {
        let receiver = receiver(None, |_| Answer::Status(200)).await;
        let text = format!("http://127.0.0.1:{}/local", receiver.addr.port());
        let url = CallbackUrl::parse(&text, CallbackPolicy::LOCAL).unwrap();
        let delivered = Deliverer::new()
            .deliver(&url, &headers("msg_1"), BODY)
            .await
            .unwrap();
        assert_eq!(delivered.status, 200);
        assert_eq!(receiver.requests.lock().unwrap()[0].target, "/local");
    }

    #[tokio::test]
    async fn webhook_delivery_connection_refused_is_retryable() {
        // A port that was free a moment ago: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let text = format!("https://127.0.0.1:{port}/");
        let url = CallbackUrl::parse(&text, loopback()).unwrap();
        let error = Deliverer::new()
            .deliver(&url, &headers("msg_1"), BODY)
            .await
            .unwrap_err();
        assert!(matches!(error, DeliveryError::Connect { .. }), "{error}");
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn webhook_delivery_refuses_headers_that_cannot_be_sent() {
        let receiver = receiver(None, |_| Answer::Status(200)).await;
        let text = format!("http://127.0.0.1:{}/", receiver.addr.port());
        let url = CallbackUrl::parse(&text, CallbackPolicy::LOCAL).unwrap();
        let error = Deliverer::new()
            .deliver(&url, &headers("msg\n1"), BODY)
            .await
            .unwrap_err();
        assert!(matches!(error, DeliveryError::Request(_)), "{error}");
        assert!(!error.is_retryable());
        assert_eq!(receiver.count(), 0);
    }

    #[test]
    fn webhook_delivery_statuses_retryable_or_not() {
        for status in [300, 302, 308, 408, 429, 500, 502, 503, 504] {
            assert!(DeliveryError::Status(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 405, 410, 413, 422, 499] {
            assert!(!DeliveryError::Status(status).is_retryable(), "{status}");
        }
    }

    #[test]
    fn webhook_delivery_extra_roots_must_hold_certificates() {
        assert!(matches!(
            Deliverer::with_extra_roots_pem(b""),
            Err(RootsError::Empty)
        ));
        assert!(matches!(
            Deliverer::with_extra_roots_pem(b"not a certificate"),
            Err(RootsError::Empty)
        ));
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(Deliverer::with_extra_roots_pem(broken).is_err());
    }
}
