//! Logs through `tracing`, in one of two line formats chosen at start:
//!
//! - **text**, for a person at a terminal: `2026-11-29T17:09:54.123Z INFO  job finished
//!   jobId=0193… state=succeeded` (time, level, message, then `key=value`; a value with a
//!   space or quote is quoted). The level is coloured unless `NO_COLOR` is set.
//! - **json**, for CloudWatch Logs: one flat object per line,
//!   `{"timestamp":"2026-11-29T17:09:54.123Z","level":"INFO","msg":"job finished","jobId":"0193…",…}`.
//!   `timestamp` and `level` are the keys Lambda's log-level filtering reads from a custom
//!   runtime's JSON lines (with an RFC 3339 timestamp, or Lambda treats the line as INFO); they
//!   are what lets the template's `ApplicationLogLevel` drop lines below it.
//!
//! Both carry the event's own fields first, then the fields of its enclosing spans, each key
//! once (the innermost value wins; a span's own come in name order), with no span names or
//! list, no target, no thread: a job's line costs what its fields cost, which matters because
//! CloudWatch Logs ingestion is billed per byte (see BENCHMARKS.md). The Lambda runtime's span
//! adds `requestId` (the id of the invocation's `platform.report` record); its `xrayTraceId` is
//! left out (about 80 bytes a line, and a job's trace is not X-Ray's: its lines carry the W3C
//! trace id as `traceId`, [`crate::trace_context`]). Values logged with `%`
//! read as their `Display` form, so a state is `succeeded`, not `"succeeded"` or `Succeeded`.
//! Timestamps are RFC 3339 UTC with milliseconds, always 24 characters.
//!
//! Settings, read once by [`init`]:
//!
//! | variable | values | default |
//! | --- | --- | --- |
//! | `LOG_FORMAT` | `text`, `json` | `text` when stderr is a terminal, else `json` (so always `json` on Lambda) |
//! | `RUST_LOG` | an `EnvFilter` directive, e.g. `info,jobline_worker=debug` | unset |
//! | `AWS_LAMBDA_LOG_LEVEL` | set by Lambda from `LoggingConfig.ApplicationLogLevel` | used when `RUST_LOG` is unset; `FATAL` means `error` |
//! | `NO_COLOR` | any | colours in text lines |
//! | `JOBLINE_EMF` | `stdout`, `off` | see [`crate::metrics::EmfOutput`] |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | an OTLP/HTTP endpoint, e.g. `http://localhost:4318` | unset: no span exporter is built ([`crate::spans`]) |
//!
//! With neither `RUST_LOG` nor `AWS_LAMBDA_LOG_LEVEL` the level is `info`. An invalid value is
//! reported in a warning line and its default used: logging never stops a function from
//! starting. Logs go to stderr; stdout carries only EMF metric documents.

use crate::error::ConfigError;
use crate::job::rfc3339_millis;
use crate::metrics::EmfOutput;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::str::FromStr;
use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Span fields that are not written: the runtime's X-Ray trace header.
const OMITTED_SPAN_FIELDS: [&str; 1] = ["xrayTraceId"];

/// The line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `time level message key=value…`, for a terminal.
    Text,
    /// One flat JSON object per line, for CloudWatch Logs.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.eq_ignore_ascii_case("text") {
            Ok(Self::Text)
        } else if value.eq_ignore_ascii_case("json") {
            Ok(Self::Json)
        } else {
            Err("expected text or json".into())
        }
    }
}

/// How [`init`] sets up logging, and the problems found on the way.
#[derive(Debug)]
pub struct Settings {
    pub format: LogFormat,
    /// Colour the level (text lines on a terminal only).
    pub ansi: bool,
    /// The `EnvFilter` directive.
    pub filter: String,
    /// Invalid variables, each replaced by its default.
    pub problems: Vec<ConfigError>,
}

impl Settings {
    /// Reads the settings through `lookup`, given whether stderr is a
    /// terminal, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, stderr_is_terminal: bool) -> Self {
        let lookup = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let mut problems = Vec::new();
        let detected = if stderr_is_terminal {
            LogFormat::Text
        } else {
            LogFormat::Json
        };
        let format = match lookup("LOG_FORMAT").map(|value| (value.parse(), value)) {
            None => detected,
            Some((Ok(format), _)) => format,
            Some((Err(reason), value)) => {
                problems.push(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    value,
                    reason,
                });
                detected
            }
        };
        let filter = match (lookup("RUST_LOG"), lookup("AWS_LAMBDA_LOG_LEVEL")) {
            (Some(directive), _) => match EnvFilter::try_new(&directive) {
                Ok(_) => directive,
                Err(error) => {
                    problems.push(ConfigError::Invalid {
                        name: "RUST_LOG",
                        value: directive,
                        reason: error.to_string(),
                    });
                    "info".to_owned()
                }
            },
            (None, Some(level)) => match lambda_level(&level) {
                Some(level) => level.to_owned(),
                None => {
                    problems.push(ConfigError::Invalid {
                        name: "AWS_LAMBDA_LOG_LEVEL",
                        value: level,
                        reason: "expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL".into(),
                    });
                    "info".to_owned()
                }
            },
            (None, None) => "info".to_owned(),
        };
        Self {
            format,
            ansi: format == LogFormat::Text && stderr_is_terminal && lookup("NO_COLOR").is_none(),
            filter,
            problems,
        }
    }
}

/// Lambda's application log level as a `tracing` level (which has no FATAL).
fn lambda_level(level: &str) -> Option<&'static str> {
    ["trace", "debug", "info", "warn", "error"]
        .into_iter()
        .find(|name| level.eq_ignore_ascii_case(name))
        .or_else(|| level.eq_ignore_ascii_case("fatal").then_some("error"))
}

/// Installs the subscriber on stderr as the process environment says (see
/// the module doc), logs any invalid setting, and decides where EMF goes.
pub fn init() {
    let settings = Settings::from_lookup(
        |name| std::env::var(name).ok(),
        std::io::stderr().is_terminal(),
    );
    // Already set (a second init in one process) is fine: the first stands.
    drop(tracing::subscriber::set_global_default(subscriber(
        &settings,
        std::io::stderr,
        crate::clock::Clock::log_time,
    )));
    for problem in &settings.problems {
        tracing::warn!(%problem, "ignoring a logging setting");
    }
    EmfOutput::current();
    install_span_exporter();
}

/// Installs the OTLP exporter of the jobs' spans ([`crate::spans`]) when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
/// is set, and builds nothing when it is not. The spans' `service.name` is
/// `OTEL_SERVICE_NAME`, else the Lambda function's name, else the binary's.
fn install_span_exporter() {
    if !crate::spans::endpoint_configured(|name| std::env::var(name).ok()) {
        return;
    }
    let service_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.file_stem()?.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "jobline".to_owned());
    let settings = crate::spans::ExportSettings {
        traces_endpoint: None,
        service_name,
    };
    match crate::spans::install(&settings) {
        Ok(()) => tracing::debug!("spans are exported over OTLP"),
        // A binary that records no spans (the sweeper, the fire function,
        // the CLI) shares the variable with those that do.
        Err(error @ crate::spans::InstallError::Unsupported) => {
            tracing::debug!(%error, "spans are not exported");
        }
        Err(error) => tracing::warn!(%error, "spans are not exported"),
    }
}

/// The subscriber of `settings`, writing to `writer`, with `now` as its clock.
fn subscriber<W>(
    settings: &Settings,
    writer: W,
    now: fn() -> OffsetDateTime,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(&settings.filter))
        .fmt_fields(JsonFields::new())
        .event_format(Lines {
            format: settings.format,
            ansi: settings.ansi,
            now,
        })
        .with_writer(writer)
        .finish()
}

/// The event formatter of both formats.
#[derive(Debug, Clone, Copy)]
struct Lines {
    format: LogFormat,
    ansi: bool,
    now: fn() -> OffsetDateTime,
}

/// A field's value as the line shows it.
#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    Text(String),
    /// A number or boolean, written as it is in both formats.
    Literal(String),
}

/// An event's message and fields, in the order they were given.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    fields: Vec<(String, FieldValue)>,
}

impl Fields {
    fn push(&mut self, name: &str, value: FieldValue) {
        if name == "message" {
            self.message = match value {
                FieldValue::Text(text) | FieldValue::Literal(text) => text,
            };
        } else if !self.fields.iter().any(|(known, _)| known == name) {
            self.fields.push((name.to_owned(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), FieldValue::Text(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field.name(), FieldValue::Literal(value.to_string()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field.name(), FieldValue::Literal(value.to_string()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = if value.is_finite() {
            FieldValue::Literal(value.to_string())
        } else {
            FieldValue::Text(value.to_string())
        };
        self.push(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field.name(), FieldValue::Literal(value.to_string()));
    }

    /// An error with its sources: `outer: inner: root`.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.push(field.name(), FieldValue::Text(text));
    }

    /// `%value` arrives here too, and its `Debug` is its `Display`.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field.name(), FieldValue::Text(format!("{value:?}")));
    }
}

impl<S> FormatEvent<S, JsonFields> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Innermost span first, so that its value of a repeated key wins.
        for span in ctx.event_scope().into_iter().flatten() {
            let extensions = span.extensions();
            let Some(stored) = extensions.get::<FormattedFields<JsonFields>>() else {
                continue;
            };
            let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&stored.fields) else {
                continue;
            };
            for (name, value) in map {
                if OMITTED_SPAN_FIELDS.contains(&name.as_str()) {
                    continue;
                }
                let value = match value {
                    serde_json::Value::String(text) => FieldValue::Text(text),
                    other => FieldValue::Literal(other.to_string()),
                };
                fields.push(&name, value);
            }
        }
        let line = Line {
            timestamp: rfc3339_millis((self.now)()),
            level: *event.metadata().level(),
            fields,
        };
        match self.format {
            LogFormat::Json => line.write_json(&mut writer),
            LogFormat::Text => line.write_text(&mut writer, self.ansi),
        }
    }
}

/// One event, ready to write.
#[derive(Debug)]
struct Line {
    timestamp: String,
    level: Level,
    fields: Fields,
}

impl Line {
    fn write_json(&self, out: &mut impl fmt::Write) -> fmt::Result {
        write!(
            out,
            "{{\"timestamp\":\"{}\",\"level\":\"{}\",\"msg\":{}",
            self.timestamp,
            self.level,
            json_string(&self.fields.message)
        )?;
        for (name, value) in &self.fields.fields {
            let value = match value {
                FieldValue::Text(text) => json_string(text),
                FieldValue::Literal(literal) => literal.clone(),
            };
            write!(out, ",{}:{value}", json_string(name))?;
        }
        writeln!(out, "}}")
    }

    fn write_text(&self, out: &mut impl fmt::Write, ansi: bool) -> fmt::Result {
        let level = format!("{:<5}", self.level.as_str());
        let level = if ansi {
            let colour = match self.level {
                Level::ERROR => "31",
                Level::WARN => "33",
                Level::INFO => "32",
                Level::DEBUG => "34",
                Level::TRACE => "35",
            };
            format!("\x1b[{colour}m{level}\x1b[0m")
        } else {
            level
        };
        write!(out, "{} {level} {}", self.timestamp, self.fields.message)?;
        for (name, value) in &self.fields.fields {
            match value {
                FieldValue::Text(text) if needs_quotes(text) => write!(out, " {name}={text:?}")?,
                FieldValue::Text(text) | FieldValue::Literal(text) => {
                    write!(out, " {name}={text}")?;
                }
            }
        }
        writeln!(out)
    }
}

fn json_string(text: &str) -> String {
    // Serializing a string cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}

/// A text value is quoted when it would not read as one `key=value` token.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// A `MakeWriter` into a shared buffer.
    #[derive(Debug, Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Self;

        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    fn fixed_time() -> OffsetDateTime {
        // 2026-11-29T17:09:54.007Z
        OffsetDateTime::from_unix_timestamp_nanos(1_795_972_194_007_000_000).unwrap()
    }

    fn settings(variables: &[(&str, &str)], terminal: bool) -> Settings {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| variables.get(name).cloned(), terminal)
    }

    #[derive(Debug, Clone, Copy)]
    enum State {
        Succeeded,
    }

    impl fmt::Display for State {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Self::Succeeded => "succeeded",
            })
        }
    }

    /// What a worker logs for one job, inside the runtime's span.
    fn log_a_job(settings: &Settings) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(settings, buffer.clone(), fixed_time);
        tracing::subscriber::with_default(subscriber, || {
            let invoke = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "req-1",
                xrayTraceId = "Root=1-abc;Parent=def;Sampled=0"
            );
            let _invoke = invoke.enter();
            let record = tracing::info_span!("record", messageId = "msg-1", jobId = "outer");
            let _record = record.enter();
            tracing::debug!("not at info");
            tracing::info!(
                jobId = "job-1",
                jobType = "primes",
                state = %State::Succeeded,
                attempt = 2,
                "job finished"
            );
            tracing::warn!(error = "the table said \"no\"", "could not complete");
        });
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_are_flat_with_lambdas_level_and_timestamp_keys() {
        let output = log_a_job(&settings(&[], false));
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 2, "{output}");
        assert_eq!(
            lines[0],
            r#"{"timestamp":"2026-11-29T17:09:54.007Z","level":"INFO","msg":"job finished","jobId":"job-1","jobType":"primes","state":"succeeded","attempt":2,"messageId":"msg-1","requestId":"req-1"}"#
        );
        let warning: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(warning["level"], "WARN");
        assert_eq!(warning["error"], "the table said \"no\"");
        assert_eq!(warning["jobId"], "outer");
        assert!(warning.get("xrayTraceId").is_none());
    }

    #[test]
    fn text_lines_read_as_time_level_message_and_fields() {
        let output = log_a_job(&settings(&[("LOG_FORMAT", "text")], false));
        assert_eq!(
            output,
            "2026-11-29T17:09:54.007Z INFO  job finished jobId=job-1 jobType=primes \
             state=succeeded attempt=2 messageId=msg-1 requestId=req-1\n\
             2026-11-29T17:09:54.007Z WARN  could not complete error=\"the table said \\\"no\\\"\" \
             jobId=outer messageId=msg-1 requestId=req-1\n"
        );
    }

    #[test]
    fn a_terminal_gets_coloured_text_unless_told_otherwise() {
        let terminal = settings(&[], true);
        assert_eq!((terminal.format, terminal.ansi), (LogFormat::Text, true));
        assert!(log_a_job(&terminal).contains("\x1b[32mINFO \x1b[0m job finished"));
        let no_colour = settings(&[("NO_COLOR", "1")], true);
        assert_eq!((no_colour.format, no_colour.ansi), (LogFormat::Text, false));
        let json = settings(&[("LOG_FORMAT", "JSON")], true);
        assert_eq!((json.format, json.ansi), (LogFormat::Json, false));
        let piped = settings(&[], false);
        assert_eq!((piped.format, piped.ansi), (LogFormat::Json, false));
        assert!(piped.problems.is_empty());
    }

    #[test]
    fn the_level_comes_from_rust_log_then_lambdas_application_log_level() {
        assert_eq!(settings(&[], false).filter, "info");
        let lambda = |level| settings(&[("AWS_LAMBDA_LOG_LEVEL", level)], false).filter;
        assert_eq!(lambda("DEBUG"), "debug");
        assert_eq!(lambda("WARN"), "warn");
        assert_eq!(lambda("FATAL"), "error");
        let both = settings(
            &[
                ("RUST_LOG", "warn,jobline_worker=debug"),
                ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ],
            false,
        );
        assert_eq!(both.filter, "warn,jobline_worker=debug");
        let at_warn = settings(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")], false);
        let output = log_a_job(&at_warn);
        assert_eq!(output.lines().count(), 1, "{output}");
        assert!(output.contains(r#""level":"WARN""#));
    }

    #[test]
    fn invalid_settings_fall_back_and_are_reported() {
        let bad = settings(
            &[("LOG_FORMAT", "pretty"), ("AWS_LAMBDA_LOG_LEVEL", "LOUD")],
            true,
        );
        assert_eq!(bad.format, LogFormat::Text);
        assert_eq!(bad.filter, "info");
        let names: Vec<&str> = bad
            .problems
            .iter()
            .map(|problem| match problem {
                ConfigError::Invalid { name, .. } => *name,
                ConfigError::Missing(name) => name,
            })
            .collect();
        assert_eq!(names, ["LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL"]);
        let bad_filter = settings(&[("RUST_LOG", "info,=nonsense=[")], false);
        assert_eq!(bad_filter.filter, "info");
        assert_eq!(bad_filter.problems.len(), 1);
    }

    #[test]
    fn timestamps_have_one_fixed_length() {
        assert_eq!(rfc3339_millis(fixed_time()), "2026-11-29T17:09:54.007Z");
        let whole_second = OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(rfc3339_millis(whole_second), "1970-01-01T00:00:00.000Z");
        let offset = fixed_time().to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(rfc3339_millis(offset), "2026-11-29T17:09:54.007Z");
    }
}
