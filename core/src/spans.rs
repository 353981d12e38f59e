//! The spans of a job's trace, and their export over OTLP when an endpoint
//! is configured.
//!
//! Each part of a job's path records one span a step, all in the trace of
//! the job's [`TraceContext`] (`crate::trace_context`): `submit` (the API,
//! a child of the caller's `traceparent`, or the root of a new trace; its
//! context is what the job's record stores, so every later span is its
//! child), `claim`, `run` and `finish` (the worker, one each a delivery),
//! and `webhook` (the notifier, whose context is the webhook's
//! `traceparent` header). A schedule's fire (by its timer, or a trigger)
//! records `fire` in `submit`'s place: a child of a trigger's
//! `traceparent`, or the root of a trace of the job's own (a timer's fire
//! carries none); a delayed job's timer records a `fire` under its job's
//! `submit`. Each carries the `jobId` and `jobType` attributes.
//!
//! A [`Span`] is Jobline's own small record (a name, its ids, its start,
//! its attributes): its ids exist whether or not anything is exported,
//! since they travel with the job. Only [`Span::end`] hands it on, and only
//! when an exporter is installed and the trace is sampled; otherwise it
//! costs a few allocations and nothing else.
//!
//! **Export** (the `otlp` feature, `spans/otlp.rs`): [`install`] is called once
//! per process by [`crate::telemetry::init`] when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and by nothing
//! otherwise: a function without the variable builds no exporter at all.
//! Ended spans are kept in memory until [`flush`], which each Lambda main
//! awaits at the end of every invocation, before its answer: Lambda may
//! freeze the process as soon as the answer is posted, so nothing may be
//! left to a background task. The flush is one OTLP/HTTP request (protobuf)
//! to the endpoint, bounded by `OTEL_EXPORTER_OTLP_TIMEOUT` (2 s here when
//! unset: it holds the invocation); a failed one drops its spans, logged at
//! `warn`. With the AWS Distro for OpenTelemetry layer the endpoint is its
//! collector on `http://localhost:4318`, a millisecond away.

use crate::job::JobId;
use crate::trace_context::{SpanId, TraceContext};
use std::time::SystemTime;

#[cfg(feature = "otlp")]
pub mod otlp;

/// What a span stands for, as OTLP's `SpanKind` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Handling a request from a caller: `submit`.
    Server,
    /// A step of a job's processing: `claim`, `run`, `finish`.
    Internal,
    /// A request to another party: `webhook`.
    Client,
    /// An event another service delivered: `fire` (EventBridge
    /// Scheduler's invocation of the fire function).
    Consumer,
}

/// How a span ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    /// Failed, with why.
    Error(String),
}

/// One step of a job's trace; see the module's documentation.
#[derive(Debug, Clone)]
pub struct Span {
    name: &'static str,
    kind: SpanKind,
    /// This span's trace, its own id and its flags.
    context: TraceContext,
    /// The span it is a child of, if any (a root has none).
    parent: Option<SpanId>,
    started: SystemTime,
    attributes: Vec<(&'static str, AttributeValue)>,
    status: SpanStatus,
}

/// A span attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Text(String),
    Int(i64),
}

impl Span {
    /// A span named `name` starting now, a child of `parent`, or the root
    /// of a new (sampled) trace when there is none.
    pub fn start(name: &'static str, kind: SpanKind, parent: Option<&TraceContext>) -> Self {
        let (context, parent) = match parent {
            Some(parent) => (parent.child(), Some(parent.span_id())),
            None => (TraceContext::new_root(), None),
        };
        Self {
            name,
            kind,
            context,
            parent,
            started: wall_time(),
            attributes: Vec::new(),
            status: SpanStatus::Unset,
        }
    }

    /// Moves the span under `parent` (learnt after it started: the claim's
    /// parent, when the message carried none and the job's record does):
    /// its own id stays, its trace becomes `parent`'s.
    pub fn reparent(&mut self, parent: &TraceContext) {
        let own = self.context.span_id();
        self.context = TraceContext::new(parent.trace_id(), own, parent.flags());
        self.parent = Some(parent.span_id());
    }

    /// Adds the `jobId` and `jobType` attributes.
    #[must_use]
    pub fn for_job(mut self, id: JobId, job_type: &str) -> Self {
        self.set_job(id, job_type);
        self
    }

    /// Sets the `jobId` and `jobType` attributes.
    pub fn set_job(&mut self, id: JobId, job_type: &str) {
        self.set("jobId", AttributeValue::Text(id.to_string()));
        self.set("jobType", AttributeValue::Text(job_type.to_owned()));
    }

    /// Sets attribute `key` (replacing an earlier value).
    pub fn set(&mut self, key: &'static str, value: AttributeValue) {
        match self.attributes.iter_mut().find(|(known, _)| *known == key) {
            Some((_, old)) => *old = value,
            None => self.attributes.push((key, value)),
        }
    }

    /// Sets a text attribute.
    pub fn text(&mut self, key: &'static str, value: impl Into<String>) {
        self.set(key, AttributeValue::Text(value.into()));
    }

    /// Sets an integer attribute.
    pub fn int(&mut self, key: &'static str, value: i64) {
        self.set(key, AttributeValue::Int(value));
    }

    /// Sets how the span ended (by default: unset).
    pub fn status(&mut self, status: SpanStatus) {
        self.status = status;
    }

    /// This span's context: what a `traceparent` it is sent in holds, the
    /// parent of its children.
    pub fn context(&self) -> TraceContext {
        self.context
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn kind(&self) -> SpanKind {
        self.kind
    }

    /// The span it is a child of.
    pub fn parent(&self) -> Option<SpanId> {
        self.parent
    }

    pub fn started(&self) -> SystemTime {
        self.started
    }

    pub fn attributes(&self) -> &[(&'static str, AttributeValue)] {
        &self.attributes
    }

    pub fn status_of(&self) -> &SpanStatus {
        &self.status
    }

    /// Ends the span now: exported at the next [`flush`] when an exporter
    /// is installed and the trace is sampled, else dropped.
    pub fn end(self) {
        #[cfg(feature = "otlp")]
        if self.context.sampled() {
            otlp::record(self, wall_time());
        }
    }
}

/// The wall clock, for spans as for log lines: their own time, never a
/// test's moved clock.
fn wall_time() -> SystemTime {
    SystemTime::from(crate::clock::Clock::log_time())
}

/// Whether an exporter is installed (and so spans are worth ending).
pub fn exporting() -> bool {
    #[cfg(feature = "otlp")]
    {
        otlp::installed()
    }
    #[cfg(not(feature = "otlp"))]
    {
        false
    }
}

/// Exports the spans ended since the last flush, if an exporter is
/// installed; returns at once otherwise. Each Lambda main awaits it at the
/// end of every invocation. Never fails: a failed export is logged.
pub async fn flush() {
    #[cfg(feature = "otlp")]
    otlp::flush().await;
}

/// Why the exporter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// This build has no exporter (the `otlp` feature is off).
    #[error("this build exports no spans (jobline-core's otlp feature is off)")]
    Unsupported,
    /// Another exporter is installed already.
    #[error("an exporter is installed already")]
    Installed,
    /// The exporter refused its configuration (the endpoint, a header).
    #[error("the OTLP exporter could not be built: {0}")]
    Build(String),
}

/// Where [`install`] sends spans.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportSettings {
    /// The traces endpoint's full URL (`…/v1/traces`); `None`: from the
    /// standard variables, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is,
    /// or `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` added.
    pub traces_endpoint: Option<String>,
    /// The `service.name` of the spans' resource, unless `OTEL_SERVICE_NAME`
    /// names it.
    pub service_name: String,
}

/// Installs the process's OTLP exporter; a second call fails
/// ([`InstallError::Installed`]), and so does a build without the `otlp`
/// feature.
pub fn install(settings: &ExportSettings) -> Result<(), InstallError> {
    #[cfg(feature = "otlp")]
    {
        otlp::install(settings)
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = settings;
        Err(InstallError::Unsupported)
    }
}

/// Whether the standard variables configure an OTLP endpoint for traces
/// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`,
/// non-empty), read through `lookup`.
pub fn endpoint_configured(lookup: impl Fn(&str) -> Option<String>) -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .any(|name| lookup(name).is_some_and(|value| !value.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_under_a_parent_is_its_child_and_a_root_starts_a_trace() {
        let parent: TraceContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap();
        let span = Span::start("claim", SpanKind::Internal, Some(&parent))
            .for_job(JobId::random(), "primes");
        assert_eq!(span.context().trace_id(), parent.trace_id());
        assert_eq!(span.parent(), Some(parent.span_id()));
        assert_ne!(span.context().span_id(), parent.span_id());
        assert_eq!(span.attributes().len(), 2);
        let root = Span::start("submit", SpanKind::Server, None);
        assert_eq!(root.parent(), None);
        assert!(root.context().sampled());
        assert_ne!(root.context().trace_id(), parent.trace_id());
    }

    #[test]
    fn a_reparented_span_keeps_its_id_in_its_new_trace() {
        let mut span = Span::start("claim", SpanKind::Internal, None);
        let own = span.context().span_id();
        let parent = TraceContext::new_root();
        span.reparent(&parent);
        assert_eq!(span.context().span_id(), own);
        assert_eq!(span.context().trace_id(), parent.trace_id());
        assert_eq!(span.parent(), Some(parent.span_id()));
    }

    #[test]
    fn attributes_are_set_once_each() {
        let mut span = Span::start("run", SpanKind::Internal, None);
        span.text("outcome", "retrying");
        span.text("outcome", "succeeded");
        span.int("attempt", 2);
        assert_eq!(
            span.attributes(),
            [
                ("outcome", AttributeValue::Text("succeeded".into())),
                ("attempt", AttributeValue::Int(2)),
            ]
        );
    }

    #[test]
    fn the_endpoint_is_configured_by_either_standard_variable() {
        assert!(!endpoint_configured(|_| None));
        assert!(!endpoint_configured(|_| Some(" ".into())));
        assert!(endpoint_configured(|name| {
            (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://localhost:4318".into())
        }));
        assert!(endpoint_configured(|name| {
            (name == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "http://c/v1/traces".into())
        }));
    }
}
