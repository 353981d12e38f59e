//! The OTLP exporter of [`super`]'s spans (the `otlp` feature):
//! OpenTelemetry's own (`opentelemetry-otlp`, HTTP with protobuf bodies),
//! handed Jobline's spans as the SDK's `SpanData` and sent by
//! [`OtlpHttp`], one HTTP/1.1 request a flush over hyper (rustls for an
//! `https` endpoint, trusting the public web's roots as the webhooks do).
//!
//! Jobline builds its spans itself rather than through the SDK's tracer:
//! their ids are made when they start and travel with the job (the stored
//! `traceparent`, the message attribute, the webhook's header), whether or
//! not anything is exported, and the claim's parent is only known once the
//! claim answered. The SDK's batch processor is not used either: it exports
//! from a thread of its own, which Lambda freezes between invocations, so
//! spans are kept here until [`super::flush`], which each invocation awaits.

use super::{AttributeValue, ExportSettings, InstallError, Span, SpanKind, SpanStatus};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use opentelemetry::trace::{self as otel, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// How long one flush may take when `OTEL_EXPORTER_OTLP_TIMEOUT` (or its
/// traces form) does not say: shorter than the specification's 10 s, since
/// a flush holds its invocation's answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The most ended spans kept between two flushes (a worker's batch of 10
/// jobs ends 30); past it, spans are dropped and the drop logged at the flush.
pub const MAX_PENDING: usize = 2048;

/// The most bytes of a collector's answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The installed exporter and the spans waiting for the next flush.
struct Exporting {
    exporter: opentelemetry_otlp::SpanExporter,
    pending: Mutex<Pending>,
    /// One export at a time (the exporter's contract).
    export: tokio::sync::Mutex<()>,
    scope: InstrumentationScope,
}

#[derive(Default)]
struct Pending {
    spans: Vec<SpanData>,
    dropped: usize,
}

static EXPORTING: OnceLock<Exporting> = OnceLock::new();

pub(super) fn installed() -> bool {
    EXPORTING.get().is_some()
}

/// The flush's bound: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else
/// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, as the specification says),
/// else [`DEFAULT_TIMEOUT`].
fn timeout(lookup: impl Fn(&str) -> Option<String>) -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find_map(|name| lookup(name)?.trim().parse().ok())
    .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
}

pub(super) fn install(settings: &ExportSettings) -> Result<(), InstallError> {
    if installed() {
        return Err(InstallError::Installed);
    }
    let timeout = timeout(|name| std::env::var(name).ok());
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpHttp::new(timeout))
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout)
        // One request a flush, within the invocation: a failed one is
        // logged and its spans dropped, not retried into the answer's time.
        .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled());
    if let Some(endpoint) = &settings.traces_endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let mut exporter = builder
        .build()
        .map_err(|error| InstallError::Build(error.to_string()))?;
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|name| !name.is_empty());
    let resource = if named || settings.service_name.is_empty() {
        Resource::builder().build()
    } else {
        Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build()
    };
    exporter.set_resource(&resource);
    let exporting = Exporting {
        exporter,
        pending: Mutex::default(),
        export: tokio::sync::Mutex::new(()),
        scope: InstrumentationScope::builder("jobline")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    };
    EXPORTING
        .set(exporting)
        .map_err(|_| InstallError::Installed)
}

/// Keeps `span`, ended at `ended`, for the next flush.
pub(super) fn record(span: Span, ended: SystemTime) {
    let Some(exporting) = EXPORTING.get() else {
        return;
    };
    let data = span_data(span, ended, exporting.scope.clone());
    let mut pending = exporting
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if pending.spans.len() < MAX_PENDING {
        pending.spans.push(data);
    } else {
        pending.dropped += 1;
    }
}

pub(super) async fn flush() {
    let Some(exporting) = EXPORTING.get() else {
        return;
    };
    let _one_at_a_time = exporting.export.lock().await;
    let Pending { spans, dropped } = std::mem::take(
        &mut *exporting
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if dropped > 0 {
        tracing::warn!(dropped, "spans dropped: too many ended between two flushes");
    }
    if spans.is_empty() {
        return;
    }
    let count = spans.len();
    if let Err(error) = exporting.exporter.export(spans).await {
        tracing::warn!(%error, spans = count, "could not export spans; they are dropped");
    }
}

/// `span` as the SDK's exporters take it.
fn span_data(span: Span, ended: SystemTime, scope: InstrumentationScope) -> SpanData {
    let context = span.context();
    let span_context = otel::SpanContext::new(
        otel::TraceId::from_bytes(context.trace_id().to_bytes()),
        otel::SpanId::from_bytes(context.span_id().to_bytes()),
        TraceFlags::new(context.flags()),
        false,
        TraceState::default(),
    );
    let attributes = span
        .attributes()
        .iter()
        .map(|(key, value)| match value {
            AttributeValue::Text(text) => KeyValue::new(*key, text.clone()),
            AttributeValue::Int(number) => KeyValue::new(*key, *number),
        })
        .collect();
    SpanData {
        span_context,
        parent_span_id: span.parent().map_or(otel::SpanId::INVALID, |parent| {
            otel::SpanId::from_bytes(parent.to_bytes())
        }),
        // Every parent came from elsewhere: a caller's header, or the job's
        // record or message, written by another function.
        parent_span_is_remote: span.parent().is_some(),
        span_kind: match span.kind() {
            SpanKind::Server => otel::SpanKind::Server,
            SpanKind::Internal => otel::SpanKind::Internal,
            SpanKind::Client => otel::SpanKind::Client,
            SpanKind::Consumer => otel::SpanKind::Consumer,
        },
        name: Cow::Borrowed(span.name()),
        start_time: span.started(),
        end_time: ended.max(span.started()),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match span.status_of() {
            SpanStatus::Unset => otel::Status::Unset,
            SpanStatus::Ok => otel::Status::Ok,
            SpanStatus::Error(description) => otel::Status::error(description.clone()),
        },
        instrumentation_scope: scope,
    }
}

/// The exporter's HTTP client: one HTTP/1.1 exchange a call, on a new
/// connection (a flush is one request an invocation, and a pooled
/// connection would not survive Lambda's freeze), within its timeout.
#[derive(Debug, Clone)]
pub struct OtlpHttp {
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl OtlpHttp {
    pub fn new(timeout: Duration) -> Self {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            tls: Arc::new(tls),
            timeout,
        }
    }

    async fn exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let uri = request.uri().clone();
        let host = uri
            .host()
            .ok_or("the OTLP endpoint has no host")?
            .to_owned();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => {
                return Err(format!("the OTLP endpoint's scheme {other:?} is not http(s)").into());
            }
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        // IPv6 literals come bracketed in a URI, not in a socket address.
        let address = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = TcpStream::connect((address.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        let (mut parts, body) = request.into_parts();
        parts.uri = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), ToString::to_string)
            .parse()?;
        let authority = uri.authority().map_or(host.clone(), ToString::to_string);
        parts.headers.insert(http::header::HOST, authority.parse()?);
        let request = Request::from_parts(parts, Full::new(body));
        if https {
            let name = ServerName::try_from(address)?;
            let tls = TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await?;
            send(tls, request).await
        } else {
            send(tcp, request).await
        }
    }
}

/// Sends `request` over `stream`, and reads the answer (its body up to
/// [`MAX_ANSWER_BYTES`]).
async fn send<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Response<Bytes>, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await?
        .to_bytes();
    connection.abort();
    Ok(Response::from_parts(parts, body))
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| format!("no answer from the OTLP endpoint within {:?}", self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobId;
    use crate::trace_context::TraceContext;

    #[test]
    fn the_flush_bound_comes_from_the_standard_variables() {
        assert_eq!(timeout(|_| None), DEFAULT_TIMEOUT);
        assert_eq!(
            timeout(|name| (name == "OTEL_EXPORTER_OTLP_TIMEOUT").then(|| "500".into())),
            Duration::from_millis(500)
        );
        assert_eq!(
            timeout(|name| match name {
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" => Some("250".into()),
                _ => Some("9000".into()),
            }),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn a_span_becomes_span_data_with_its_ids_parent_and_attributes() {
        let parent: TraceContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap();
        let id = JobId::random();
        let mut span =
            Span::start("webhook", SpanKind::Client, Some(&parent)).for_job(id, "primes");
        span.int("status", 204);
        span.status(SpanStatus::Error("the receiver answered 500".into()));
        let own = span.context();
        let started = span.started();
        let data = span_data(span, started, InstrumentationScope::builder("t").build());
        assert_eq!(
            data.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            data.span_context.span_id().to_string(),
            own.span_id().to_string()
        );
        assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(data.parent_span_is_remote && data.span_context.is_sampled());
        assert_eq!(data.span_kind, otel::SpanKind::Client);
        assert_eq!(data.name, "webhook");
        assert!(
            data.attributes
                .contains(&KeyValue::new("jobId", id.to_string()))
        );
        assert!(data.attributes.contains(&KeyValue::new("status", 204_i64)));
        assert!(matches!(data.status, otel::Status::Error { .. }));
        let root = Span::start("submit", SpanKind::Server, None);
        let started = root.started();
        let data = span_data(root, started, InstrumentationScope::builder("t").build());
        assert_eq!(data.parent_span_id, otel::SpanId::INVALID);
        assert!(!data.parent_span_is_remote);
    }
}
