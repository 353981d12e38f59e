//! CloudWatch metrics as Embedded Metric Format (EMF) lines on stdout.
//!
//! Lambda ships stdout to CloudWatch Logs, which turns EMF documents into
//! metrics: no `PutMetricData` call, no added latency, no extra cost per
//! call. Each invocation collects its figures in [`Metrics`] and writes them
//! once. A document carries one `JobType` value, so an invocation writes one
//! document per job type it saw (one in the usual single-type batch), and
//! splits a metric of more than 100 values, EMF's cap, over more documents.
//!
//! Documents are ingested and billed as log bytes like any line, so they are
//! kept short: a whole value is written as an integer (`1`, not `1.0`) and a
//! duration is rounded to the microsecond.
//!
//! Where they go ([`EmfOutput`]): on Lambda they must be on stdout, where
//! CloudWatch Logs finds them. On a developer's terminal they would only
//! interleave with the log lines, so they are dropped there: with
//! `JOBLINE_EMF` unset, documents go to stdout when `AWS_LAMBDA_FUNCTION_NAME`
//! is set (under Lambda) or stdout is not a terminal (redirected to a file or
//! a pipe, which is how to keep them locally), and nowhere otherwise.
//! `JOBLINE_EMF=stdout` writes them to stdout always, `JOBLINE_EMF=off` never.
//!
//! Locally nothing turns EMF lines into metrics, so the local runner can
//! have each invocation's figures forwarded ([`forward_to`]) and put into the
//! emulator's CloudWatch itself
//! (`CloudWatchHistory::ingest`, feature `cloudwatch`).

use crate::error::ConfigError;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::str::FromStr;
use std::sync::OnceLock;

/// The CloudWatch namespace of every Jobline metric.
pub const NAMESPACE: &str = "Jobline";

/// EMF's cap on values of one metric in one document.
pub const MAX_VALUES_PER_METRIC: usize = 100;

/// The metrics Jobline publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    JobsAccepted,
    JobsSucceeded,
    JobsFailed,
    JobsRetried,
    JobsDeadLettered,
    DuplicateDeliveries,
    /// New submissions the API refused because the queue's backlog was full.
    JobsRefused,
    /// Jobs the sweeper failed because they outlived their time bound.
    JobsSwept,
    /// Jobs cancelled by their clients (queued ones by the API, running
    /// ones by their worker).
    JobsCancelled,
    /// Times a handler yielded and its job went on in a new invocation.
    JobsContinued,
    /// Webhook events their receivers accepted (2xx).
    WebhooksDelivered,
    /// Webhook events given up on (refused URL, 4xx, or retries spent).
    WebhooksFailed,
    /// Submission to the start of the first attempt.
    QueueTimeMs,
    /// One attempt's run time.
    JobDurationMs,
    /// Schedule fires that created their job (the fire function).
    ScheduleFires,
    /// Schedule fires skipped by the overlap policy `skip`.
    ScheduleFiresSkipped,
    /// Schedule fires that created no job (refused by the backlog bound, a
    /// job type gone, the store or the queue unavailable).
    ScheduleFireFailures,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Self::JobsAccepted => "JobsAccepted",
            Self::JobsSucceeded => "JobsSucceeded",
            Self::JobsFailed => "JobsFailed",
            Self::JobsRetried => "JobsRetried",
            Self::JobsDeadLettered => "JobsDeadLettered",
            Self::DuplicateDeliveries => "DuplicateDeliveries",
            Self::JobsRefused => "JobsRefused",
            Self::JobsSwept => "JobsSwept",
            Self::JobsCancelled => "JobsCancelled",
            Self::JobsContinued => "JobsContinued",
            Self::WebhooksDelivered => "WebhooksDelivered",
            Self::WebhooksFailed => "WebhooksFailed",
            Self::QueueTimeMs => "QueueTimeMs",
            Self::JobDurationMs => "JobDurationMs",
            Self::ScheduleFires => "ScheduleFires",
            Self::ScheduleFiresSkipped => "ScheduleFiresSkipped",
            Self::ScheduleFireFailures => "ScheduleFireFailures",
        }
    }

    /// The EMF value of one figure: whole numbers as integers, durations to
    /// the microsecond.
    fn value(self, value: f64) -> Value {
        let value = if self.is_count() {
            value
        } else {
            (value * 1000.0).round() / 1000.0
        };
        // Whole and exactly representable (below 2^53): written as an integer.
        if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
            json!(value as i64)
        } else {
            json!(value)
        }
    }

    /// Its CloudWatch unit: `Count` or `Milliseconds`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::QueueTimeMs | Self::JobDurationMs => "Milliseconds",
            _ => "Count",
        }
    }

    fn is_count(self) -> bool {
        self.unit() == "Count"
    }
}

/// The figures of one invocation, by job type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    by_type: BTreeMap<String, BTreeMap<Metric, Vec<f64>>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to a count.
    pub fn count(&mut self, job_type: &str, metric: Metric) {
        self.record(job_type, metric, 1.0);
    }

    /// Records one value (a count of 1, or a duration).
    pub fn record(&mut self, job_type: &str, metric: Metric, value: f64) {
        self.by_type
            .entry(job_type.to_owned())
            .or_default()
            .entry(metric)
            .or_default()
            .push(value);
    }

    /// Adds another invocation part's figures to these.
    pub fn merge(&mut self, other: Metrics) {
        for (job_type, metrics) in other.by_type {
            let mine = self.by_type.entry(job_type).or_default();
            for (metric, values) in metrics {
                mine.entry(metric).or_default().extend(values);
            }
        }
    }

    /// The sum of a metric over all job types.
    pub fn total(&self, metric: Metric) -> f64 {
        self.by_type
            .values()
            .filter_map(|m| m.get(&metric))
            .flatten()
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    /// The EMF documents, each under `JobType` and with no dimension (the
    /// fleet-wide figure alarms watch). Counts are summed into one value.
    pub fn documents(&self, namespace: &str, timestamp_ms: i64) -> Vec<Value> {
        let mut documents = Vec::new();
        for (job_type, metrics) in &self.by_type {
            let chunks: Vec<Vec<(Metric, Value)>> = {
                let mut chunks: Vec<Vec<(Metric, Value)>> = vec![Vec::new()];
                for (metric, values) in metrics {
                    if metric.is_count() {
                        chunks[0].push((*metric, metric.value(values.iter().sum())));
                        continue;
                    }
                    for (i, part) in values.chunks(MAX_VALUES_PER_METRIC).enumerate() {
                        if chunks.len() <= i {
                            chunks.push(Vec::new());
                        }
                        let part: Vec<Value> = part.iter().map(|v| metric.value(*v)).collect();
                        chunks[i].push((*metric, Value::Array(part)));
                    }
                }
                chunks
            };
            for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
                let mut document = Map::new();
                let definitions: Vec<Value> = chunk
                    .iter()
                    .map(|(m, _)| json!({"Name": m.name(), "Unit": m.unit()}))
                    .collect();
                document.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": namespace,
                            "Dimensions": [["JobType"], []],
                            "Metrics": definitions,
                        }],
                    }),
                );
                document.insert("JobType".into(), json!(job_type));
                for (metric, value) in chunk {
                    document.insert(metric.name().into(), value);
                }
                documents.push(Value::Object(document));
            }
        }
        documents
    }

    /// Each job type's figures: `(job type, metric, values)`.
    pub fn figures(&self) -> impl Iterator<Item = (&str, Metric, &[f64])> {
        self.by_type.iter().flat_map(|(job_type, metrics)| {
            metrics
                .iter()
                .map(move |(metric, values)| (job_type.as_str(), *metric, values.as_slice()))
        })
    }

    /// Writes the documents to stdout, one line each, for CloudWatch Logs,
    /// unless [`EmfOutput::current`] drops them; and hands the figures to
    /// this process's [`forward_to`] channel, if it has one.
    pub fn emit(&self) {
        if let Some(forward) = FORWARD.get() {
            if !self.is_empty() && forward.try_send(self.clone()).is_err() {
                tracing::warn!(
                    "metrics forwarding is behind or stopped; dropping one invocation's figures"
                );
            }
        }
        if EmfOutput::current() == EmfOutput::Off {
            return;
        }
        // EMF timestamps are the log lines' own, on the wall clock: CloudWatch
        // refuses metrics more than two hours ahead of it.
        for document in self.documents(NAMESPACE, crate::clock::Clock::system().now_ms()) {
            println!("{document}");
        }
    }
}

/// Where [`Metrics::emit`] also hands each invocation's figures.
static FORWARD: OnceLock<tokio::sync::mpsc::Sender<Metrics>> = OnceLock::new();

/// Makes [`Metrics::emit`] also send every invocation's figures to
/// `sender` (dropping them while its bounded channel is full), for the
/// rest of the process: what the local runner uses to put them into the
/// emulator's CloudWatch, where nothing ingests EMF lines. Only the first
/// call takes effect; it says whether this one did.
pub fn forward_to(sender: tokio::sync::mpsc::Sender<Metrics>) -> bool {
    FORWARD.set(sender).is_ok()
}

/// Where [`Metrics::emit`] writes EMF documents (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmfOutput {
    Stdout,
    /// Dropped.
    Off,
}

impl FromStr for EmfOutput {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.eq_ignore_ascii_case("stdout") {
            Ok(Self::Stdout)
        } else if value.eq_ignore_ascii_case("off") {
            Ok(Self::Off)
        } else {
            Err("expected stdout or off".into())
        }
    }
}

impl EmfOutput {
    /// `JOBLINE_EMF` if valid, else stdout under Lambda or when stdout is not
    /// a terminal, and off on a terminal. An invalid `JOBLINE_EMF` is
    /// returned as the error beside the choice made without it.
    pub fn choose(
        lookup: impl Fn(&str) -> Option<String>,
        stdout_is_terminal: bool,
    ) -> (Self, Option<ConfigError>) {
        let lookup = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let detected = if lookup("AWS_LAMBDA_FUNCTION_NAME").is_some() || !stdout_is_terminal {
            Self::Stdout
        } else {
            Self::Off
        };
        match lookup("JOBLINE_EMF").map(|value| (value.parse(), value)) {
            None => (detected, None),
            Some((Ok(output), _)) => (output, None),
            Some((Err(reason), value)) => (
                detected,
                Some(ConfigError::Invalid {
                    name: "JOBLINE_EMF",
                    value,
                    reason,
                }),
            ),
        }
    }

    /// This process's choice, made from its environment on first use (which
    /// `telemetry::init` makes at start, so that an invalid setting is
    /// logged then).
    pub fn current() -> Self {
        static CURRENT: OnceLock<EmfOutput> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let (output, problem) = Self::choose(
                |name| std::env::var(name).ok(),
                std::io::stdout().is_terminal(),
            );
            if let Some(problem) = problem {
                tracing::warn!(%problem, "ignoring a metrics setting");
            }
            output
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_document_per_job_type_with_summed_counts() {
        let mut metrics = Metrics::new();
        metrics.count("primes", Metric::JobsSucceeded);
        metrics.count("primes", Metric::JobsSucceeded);
        metrics.record("primes", Metric::JobDurationMs, 12.0);
        let mut other = Metrics::new();
        other.count("csv-stats", Metric::JobsFailed);
        metrics.merge(other);
        let docs = metrics.documents("Test", 1000);
        assert_eq!(docs.len(), 2);
        let primes = docs.iter().find(|d| d["JobType"] == "primes").unwrap();
        assert_eq!(primes["JobsSucceeded"], 2.0);
        assert_eq!(primes["JobDurationMs"], json!([12]));
        assert_eq!(primes["_aws"]["Timestamp"], 1000);
        let directive = &primes["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Test");
        assert_eq!(directive["Dimensions"], json!([["JobType"], []]));
        assert_eq!(directive["Metrics"].as_array().unwrap().len(), 2);
        assert_eq!(metrics.total(Metric::JobsSucceeded), 2.0);
        assert_eq!(metrics.total(Metric::JobsFailed), 1.0);
    }

    #[test]
    fn splits_more_than_100_values() {
        let mut metrics = Metrics::new();
        for i in 0..250 {
            metrics.record("primes", Metric::QueueTimeMs, f64::from(i));
        }
        metrics.count("primes", Metric::JobsSucceeded);
        let docs = metrics.documents(NAMESPACE, 0);
        assert_eq!(docs.len(), 3);
        let sizes: Vec<usize> = docs
            .iter()
            .map(|d| d["QueueTimeMs"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(docs[0]["JobsSucceeded"], 1.0);
        assert!(docs[1].get("JobsSucceeded").is_none());
    }

    #[test]
    fn values_are_written_short() {
        let mut metrics = Metrics::new();
        metrics.count("primes", Metric::JobsSucceeded);
        metrics.record("primes", Metric::JobDurationMs, 0.123_456_789);
        metrics.record("primes", Metric::JobDurationMs, 41.999_999_9);
        metrics.record("primes", Metric::QueueTimeMs, 1500.0);
        let line = metrics.documents(NAMESPACE, 1000)[0].to_string();
        assert!(line.contains(r#""JobsSucceeded":1"#), "{line}");
        assert!(line.contains(r#""JobDurationMs":[0.123,42]"#), "{line}");
        assert!(line.contains(r#""QueueTimeMs":[1500]"#), "{line}");
    }

    #[test]
    fn emf_stays_off_a_terminal_unless_under_lambda_or_asked_for() {
        let choose = |variables: &[(&str, &str)], terminal| {
            let variables: Vec<(String, String)> = variables
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            EmfOutput::choose(
                |name| {
                    variables
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                },
                terminal,
            )
        };
        let lambda = [("AWS_LAMBDA_FUNCTION_NAME", "jobline-api")];
        assert_eq!(choose(&[], true).0, EmfOutput::Off);
        assert_eq!(choose(&[], false).0, EmfOutput::Stdout);
        assert_eq!(choose(&lambda, true).0, EmfOutput::Stdout);
        assert_eq!(
            choose(&[("JOBLINE_EMF", "stdout")], true).0,
            EmfOutput::Stdout
        );
        assert_eq!(choose(&[("JOBLINE_EMF", "OFF")], false).0, EmfOutput::Off);
        let (output, problem) = choose(&[("JOBLINE_EMF", "file")], true);
        assert_eq!(output, EmfOutput::Off);
        assert!(
            matches!(
                problem,
                Some(ConfigError::Invalid {
                    name: "JOBLINE_EMF",
                    ..
                })
            ),
            "{problem:?}"
        );
    }

    #[tokio::test]
    async fn emitted_figures_are_forwarded_once_a_channel_is_set() {
        let (forward, mut forwarded) = tokio::sync::mpsc::channel(64);
        assert!(forward_to(forward), "the first channel is taken");
        let (other, _) = tokio::sync::mpsc::channel(1);
        assert!(!forward_to(other), "later ones are not");
        let mut metrics = Metrics::default();
        metrics.count("forwarded-type", Metric::JobsSucceeded);
        metrics.emit();
        // Other tests may emit too: ours is among what arrived.
        let mut seen = Vec::new();
        while let Ok(received) = forwarded.try_recv() {
            seen.push(received);
        }
        assert!(seen.contains(&metrics), "{seen:?}");
        let figures: Vec<_> = metrics.figures().collect();
        assert_eq!(
            figures,
            [("forwarded-type", Metric::JobsSucceeded, &[1.0][..])]
        );
    }
}
