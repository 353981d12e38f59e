//! The schedules measurement's figures per path: what one step recorded
//! ([`Recorded`]) divided by its occurrences, with what is billed besides
//! the AWS requests (API Gateway, Lambda, EventBridge Scheduler's fires),
//! the log bytes, computed from the lines' format ([`log`]), and the list
//! price per million occurrences.

use crate::aws_call::RecordedCall;
use crate::measure::calls::{Change, PerSuccessfulJob, PhaseCalls, WriteUnits};
use crate::measure::logs::LogSources;
use crate::pricing::{GB, Prices, SecondaryIndex};
use crate::report::Budget;
use serde::Serialize;

/// What one step of the measurement recorded, in all.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    /// The path's own requests, both proxies'.
    pub own: Vec<RecordedCall>,
    /// Requests seen but not the path's own (see [`PathFigures::apart`]).
    pub apart: Vec<RecordedCall>,
    /// The jobs table's stream records.
    pub changes: Vec<Change>,
    /// The schedules table's write units (it has no stream: priced from
    /// the item before and after each write).
    pub schedule_write_units: f64,
    /// Read units, each read priced on the size of the item it read.
    pub read_units: f64,
}

/// What a path is billed for besides its AWS requests, per occurrence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Invocations {
    pub api_gateway: f64,
    pub lambda: f64,
    /// Lambda compute, modelled: see [`lambda_ms`].
    pub lambda_gb_seconds: f64,
    /// EventBridge Scheduler invocations: a timer's fire.
    pub scheduler: f64,
}

impl Invocations {
    pub fn total(&self) -> f64 {
        self.api_gateway + self.lambda + self.scheduler
    }
}

/// The billed duration modelled for a function whose handler makes
/// `sequential` AWS requests one after another: 1 ms of its own, plus
/// `round_trip_ms` per request, rounded up to the millisecond.
pub fn lambda_ms(sequential: f64, round_trip_ms: f64) -> f64 {
    (1.0 + sequential * round_trip_ms).ceil()
}

/// One path's figures, per occurrence.
#[derive(Debug, Clone, Serialize)]
pub struct PathFigures {
    pub path: String,
    pub occurrences: usize,
    /// The path's own AWS requests by operation: DynamoDB (both tables),
    /// SQS and EventBridge Scheduler.
    pub requests: PhaseCalls,
    /// Requests the proxy saw that are not the path's own: EventBridge
    /// Scheduler's deletion of a fired one-time timer (the service does it
    /// itself, `ActionAfterCompletion` `DELETE`; the local firer through the
    /// API), the local firer's reading of the group (`ListSchedules`,
    /// `GetSchedule`: the service's own work deployed), and the backlog
    /// bound's `GetQueueAttributes` (cached 5 s per warm instance).
    pub apart: PhaseCalls,
    /// The jobs table's write units (the table and each index), from its
    /// stream's item images.
    pub jobs_write_units: WriteUnits,
    /// The schedules table's write units, from its items' sizes.
    pub schedules_write_units: f64,
    /// Read units: strongly consistent, 1 per started 4 KB of the item read.
    pub read_units: f64,
    pub invocations: Invocations,
    /// Log bytes, computed; `None` where this measurement does not compute
    /// them (the worker's: the calls and CPU measurements have them).
    pub log_bytes: Option<LogSources>,
    /// The list price per million occurrences, where the log bytes are known.
    pub usd_per_million: Option<f64>,
}

impl PathFigures {
    /// `recorded` over `occurrences`, billed `invocations` (per occurrence)
    /// and writing `log_bytes` (per occurrence).
    pub(super) fn of(
        path: &str,
        occurrences: usize,
        recorded: &Recorded,
        table_key: &[String],
        indexes: &[SecondaryIndex],
        invocations: Invocations,
        log_bytes: Option<LogSources>,
    ) -> Self {
        let per = 1.0 / occurrences.max(1) as f64;
        let mut jobs_write_units = WriteUnits::default();
        for units in
            WriteUnits::by_phase(&recorded.changes, table_key, indexes, occurrences).values()
        {
            jobs_write_units.table += units.table;
            for (index, written) in &units.indexes {
                *jobs_write_units.indexes.entry(index.clone()).or_default() += written;
            }
            jobs_write_units.total += units.total;
        }
        let mut figures = Self {
            path: path.to_owned(),
            occurrences,
            requests: PhaseCalls::of(&recorded.own, occurrences),
            apart: PhaseCalls::of(&recorded.apart, occurrences),
            jobs_write_units,
            schedules_write_units: recorded.schedule_write_units * per,
            read_units: recorded.read_units * per,
            invocations,
            log_bytes,
            usd_per_million: None,
        };
        figures.usd_per_million = figures.price(&Prices::US_EAST_1);
        figures
    }

    /// DynamoDB write units, both tables and every index.
    pub fn write_units(&self) -> f64 {
        self.jobs_write_units.total + self.schedules_write_units
    }

    /// AWS requests as the budget counts them (DynamoDB, SQS, and here
    /// EventBridge Scheduler's API).
    pub fn aws_requests(&self) -> f64 {
        self.requests.total()
    }

    /// Every billed request: the AWS requests, API Gateway's, Lambda's
    /// invocations and the scheduler's fires.
    pub fn billed_requests(&self) -> f64 {
        self.aws_requests() + self.invocations.total()
    }

    /// The list price per million occurrences at `prices`, if the log
    /// bytes are known. EventBridge Scheduler's API calls are not billed.
    pub fn price(&self, prices: &Prices) -> Option<f64> {
        let logs = self.log_bytes?;
        let sqs = self
            .requests
            .per_operation
            .iter()
            .filter(|(operation, _)| operation.starts_with("SQS."))
            .map(|(_, rate)| rate.calls)
            .sum::<f64>();
        Some(
            self.write_units() * prices.dynamodb_wru_per_million
                + self.read_units * prices.dynamodb_rru_per_million
                + sqs * prices.sqs_requests_per_million
                + self.invocations.api_gateway * prices.api_gateway_http_per_million
                + self.invocations.lambda * prices.lambda_requests_per_million
                + self.invocations.lambda_gb_seconds * prices.lambda_arm64_per_gb_second * 1e6
                + self.invocations.scheduler * prices.scheduler_invocations_per_million
                + logs.total() / GB * prices.cloudwatch_logs_per_gb * 1e6,
        )
    }
}

/// A job's whole life, from its submission (or its schedule's fire) to its
/// success, summed from its paths, against the budget of a successful job.
#[derive(Debug, Clone, Serialize)]
pub struct LifeFigures {
    pub life: String,
    /// The paths it adds up.
    pub parts: Vec<String>,
    /// As the budget counts them, with EventBridge Scheduler's API requests
    /// among the AWS requests.
    pub per_job: PerSuccessfulJob,
    /// What is over the budget, if a budget was read (`Some(empty)`: none).
    pub over_budget: Option<Vec<String>>,
}

impl LifeFigures {
    pub(super) fn of(life: &str, parts: &[&PathFigures], budget: Option<&Budget>) -> Self {
        let sum = |figure: fn(&PathFigures) -> f64| parts.iter().map(|p| figure(p)).sum::<f64>();
        let per_job = PerSuccessfulJob {
            write_units: sum(PathFigures::write_units),
            read_units: sum(|p| p.read_units),
            aws_requests: sum(PathFigures::aws_requests),
        };
        let over_budget = budget.map(|budget| {
            budget
                .limits
                .iter()
                .filter(|limit| limit.item.of(&per_job) > limit.budget + 1e-9)
                .map(|limit| {
                    format!(
                        "{} {:.2} > {}",
                        limit.item.label(),
                        limit.item.of(&per_job),
                        limit.budget
                    )
                })
                .collect()
        });
        Self {
            life: life.to_owned(),
            parts: parts.iter().map(|p| p.path.clone()).collect(),
            per_job,
            over_budget,
        }
    }
}

/// The log lines' bytes, computed from their format (core/src/telemetry.rs,
/// JSON on Lambda): `{"timestamp":"…","level":"INFO","msg":…,<fields>}`
/// and a newline, the Lambda runtime's span adding `requestId` (a UUID)
/// last; and the EMF documents of core/src/metrics.rs, one line each.
pub mod log {
    use jobline_core::Metrics;
    use jobline_core::metrics::NAMESPACE;
    use serde_json::Value;

    /// An RFC 3339 timestamp with milliseconds, as every line has.
    const TIMESTAMP: &str = "2026-12-07T09:00:01.123Z";
    /// An invocation's request id.
    const REQUEST_ID: &str = "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa";

    /// One JSON line at INFO with `message` and `fields`, in order.
    pub fn line_bytes(message: &str, fields: &[(&str, Value)]) -> usize {
        let mut line = format!(
            "{{\"timestamp\":\"{TIMESTAMP}\",\"level\":\"INFO\",\"msg\":{}",
            Value::from(message)
        );
        for (name, value) in fields
            .iter()
            .chain([&("requestId", Value::from(REQUEST_ID))])
        {
            line.push_str(&format!(",{}:{value}", Value::from(*name)));
        }
        line.len() + "}\n".len()
    }

    /// The bytes of `metrics`' EMF documents, a line each.
    pub fn emf_bytes(metrics: &Metrics) -> usize {
        metrics
            .documents(NAMESPACE, 1_796_634_001_123)
            .iter()
            .map(|document| document.to_string().len() + 1)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_call::Operation;
    use serde_json::json;
    use std::time::Instant;

    fn call(operation: Operation) -> RecordedCall {
        RecordedCall {
            operation,
            started: Instant::now(),
            finished: Instant::now(),
            status: 200,
        }
    }

    #[test]
    fn log_lines_are_sized_as_the_json_format_writes_them() {
        let line = r#"{"timestamp":"2026-12-07T09:00:01.123Z","level":"INFO","msg":"request","status":202,"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa"}"#;
        assert_eq!(
            log::line_bytes("request", &[("status", json!(202))]),
            line.len() + 1
        );
        let mut metrics = jobline_core::Metrics::new();
        assert_eq!(log::emf_bytes(&metrics), 0);
        metrics.count("primes", jobline_core::Metric::JobsAccepted);
        assert!((150..400).contains(&log::emf_bytes(&metrics)));
    }

    #[test]
    fn a_path_is_priced_per_occurrence_and_lives_add_up_against_the_budget() {
        let recorded = Recorded {
            own: vec![
                call(Operation::dynamodb("GetItem")),
                call(Operation::dynamodb("GetItem")),
                call(Operation::sqs("SendMessage")),
                call(Operation::sqs("SendMessage")),
            ],
            apart: vec![call(Operation::scheduler("DeleteSchedule"))],
            changes: Vec::new(),
            schedule_write_units: 2.0,
            read_units: 2.0,
        };
        let invocations = Invocations {
            lambda: 1.0,
            scheduler: 1.0,
            ..Invocations::default()
        };
        let logs = LogSources {
            function_lines: 0.0,
            ..LogSources::default()
        };
        let fire = PathFigures::of("fire", 2, &recorded, &[], &[], invocations, Some(logs));
        assert_eq!(fire.aws_requests(), 2.0);
        assert_eq!(fire.apart.total(), 0.5);
        assert_eq!((fire.write_units(), fire.read_units), (1.0, 1.0));
        assert_eq!(fire.billed_requests(), 4.0);
        // 1 WU 0.625 + 1 RRU 0.125 + 1 SQS 0.40 + 1 Lambda 0.20 + 1 fire 1.00.
        let usd = fire.usd_per_million.unwrap();
        assert!((usd - 2.35).abs() < 1e-9, "{usd}");
        let unpriced = PathFigures::of("work", 2, &recorded, &[], &[], invocations, None);
        assert_eq!(unpriced.usd_per_million, None);

        let budget = Budget::parse(
            "b.md",
            "<!-- budget:begin -->\n| per successful job | budget |\n| --- | --- |\n\
             | DynamoDB write units | 6 |\n| DynamoDB read units | 0 |\n| AWS requests | 4.8 |\n\
             <!-- budget:end -->\n",
        )
        .unwrap();
        let life = LifeFigures::of("a life", &[&fire, &unpriced], Some(&budget));
        assert_eq!(life.parts, ["fire", "work"]);
        assert_eq!(life.per_job.write_units, 2.0);
        assert_eq!(life.over_budget.unwrap(), ["DynamoDB read units 2.00 > 0"]);
        assert_eq!(lambda_ms(4.0, 10.0), 41.0);
    }
}
