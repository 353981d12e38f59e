//! The report: a table for people and one `BENCH_JSON {…}` line for
//! machines, with each goal compared against its measurement (reported,
//! never asserted). Measurements not taken in a run (`--only`) are absent.

use crate::measure::calls::{CallFigures, PhaseCalls};
use crate::measure::cost::CostFigures;
use crate::measure::cpu::CpuFigures;
use crate::measure::init::InitFigures;
use crate::measure::sizes::ArtifactSize;
use crate::measure::throughput::ThroughputFigures;
use serde::Serialize;
use std::fmt::Write as _;

/// The prefix of the machine-readable line.
pub const JSON_PREFIX: &str = "BENCH_JSON ";

/// Init time of a function over the hello-world baseline's, at most.
pub const INIT_RATIO_GOAL: f64 = 1.5;
/// Jobline's end-to-end jobs/s over the emulator's, at least.
pub const THROUGHPUT_RATIO_GOAL: f64 = 0.8;

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    /// 1, 5 and 15 minute load averages when the run started and ended.
    pub load_average_start: [f64; 3],
    pub load_average_end: [f64; 3],
}

impl Machine {
    /// The load averages of `/proc/loadavg` (zeros where unreadable).
    pub fn load_average() -> [f64; 3] {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let mut values = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
        [(); 3].map(|()| values.next().unwrap_or(0.0))
    }
}

/// A goal and how the run measured against it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub machine: Machine,
    pub sizes: Option<Vec<ArtifactSize>>,
    pub init: Option<Vec<InitFigures>>,
    pub calls: Option<CallFigures>,
    pub cpu: Option<Vec<CpuFigures>>,
    pub cost: Option<CostFigures>,
    pub throughput: Option<ThroughputFigures>,
    pub goals: Vec<Goal>,
}

impl BenchReport {
    /// A report of `machine` with nothing measured yet.
    pub fn new(machine: Machine) -> Self {
        Self {
            machine,
            sizes: None,
            init: None,
            calls: None,
            cpu: None,
            cost: None,
            throughput: None,
            goals: Vec::new(),
        }
    }

    /// Compares every measured figure with its goal.
    pub fn evaluate_goals(&mut self) {
        let mut goals = Vec::new();
        for init in self.init.iter().flatten() {
            if init.variant.is_none() && init.function.starts_with("jobline-") {
                goals.push(Goal {
                    goal: format!(
                        "{} init ≤ {INIT_RATIO_GOAL}× hello-world (median)",
                        init.function
                    ),
                    measured: format!("{:.2}×", init.median_ratio_to_baseline),
                    met: init.median_ratio_to_baseline <= INIT_RATIO_GOAL,
                });
                goals.push(Goal {
                    goal: format!("{} makes no AWS connection during init", init.function),
                    measured: format!("{} connections", init.connections_during_init),
                    met: init.connections_during_init == 0,
                });
            }
        }
        if let Some(calls) = &self.calls {
            let submit = &calls.submit;
            goals.push(Goal {
                goal: "submit = 1 PutItem, then 1 SendMessage".into(),
                measured: format!(
                    "{} PutItem + {} SendMessage of {} calls/job; write before send in {}/{}",
                    submit.rate("DynamoDB.PutItem").calls,
                    submit.rate("SQS.SendMessage").calls,
                    submit.total(),
                    calls.ordered_submits,
                    calls.jobs
                ),
                met: submit.rate("DynamoDB.PutItem").calls == 1.0
                    && submit.rate("SQS.SendMessage").calls == 1.0
                    && submit.total() == 2.0
                    && calls.ordered_submits == calls.jobs,
            });
            let worker = &calls.worker;
            // Since long jobs, the claim also hides the message for the
            // lease (one ChangeMessageVisibility), so a crashed worker's job
            // comes back within two heartbeats, not the queue's timeout.
            goals.push(Goal {
                goal: "worker = 2 UpdateItem (claim, completion) + 1 ChangeMessageVisibility \
                       (the claim's lease), 0 reads per job"
                    .into(),
                measured: format!(
                    "{} UpdateItem, {} ChangeMessageVisibility, {} reads, {} calls/job",
                    worker.rate("DynamoDB.UpdateItem").calls,
                    worker.rate("SQS.ChangeMessageVisibility").calls,
                    worker.dynamodb_reads,
                    worker.total()
                ),
                met: worker.rate("DynamoDB.UpdateItem").calls == 2.0
                    && worker.rate("DynamoDB.UpdateItem").failed == 0.0
                    && worker.rate("SQS.ChangeMessageVisibility").calls == 1.0
                    && worker.dynamodb_reads == 0.0
                    && worker.total() == 3.0,
            });
            let duplicate = &calls.duplicate_delivery;
            let refused = duplicate.rate("DynamoDB.UpdateItem");
            goals.push(Goal {
                goal: "duplicate delivery = 1 refused conditional UpdateItem, 0 reads".into(),
                measured: format!(
                    "{} UpdateItem ({} refused), {} reads per job",
                    refused.calls, refused.failed, duplicate.dynamodb_reads
                ),
                met: refused.calls == 1.0
                    && refused.failed == 1.0
                    && duplicate.dynamodb_reads == 0.0
                    && duplicate.dynamodb_writes == 1.0,
            });
        }
        if let Some(throughput) = &self.throughput {
            goals.push(Goal {
                goal: format!("end-to-end ≥ {THROUGHPUT_RATIO_GOAL}× the emulator's ceiling"),
                measured: format!(
                    "{:.2}× ({:.1} vs {:.1} jobs/s)",
                    throughput.ratio,
                    throughput.jobline.jobs_per_second,
                    throughput.emulator.jobs_per_second
                ),
                met: throughput.ratio >= THROUGHPUT_RATIO_GOAL,
            });
        }
        self.goals = goals;
    }

    /// The machine-readable line.
    pub fn json_line(&self) -> Result<String, serde_json::Error> {
        Ok(format!("{JSON_PREFIX}{}", serde_json::to_string(self)?))
    }

    /// The human-readable tables.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let [s1, ..] = self.machine.load_average_start;
        let [e1, ..] = self.machine.load_average_end;
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "Jobline benchmarks: {} cores, 1-min load average {s1:.2} at start, {e1:.2} at end\n",
            self.machine.cores
        );
        if let Some(sizes) = &self.sizes {
            out += "Artefacts (cargo lambda build --release; zip = --output-format zip)\n";
            out += &table(
                &["function", "arch", "bootstrap", "zip"],
                sizes.iter().map(|s| {
                    vec![
                        s.function.clone(),
                        s.arch.clone(),
                        mib(s.bootstrap_bytes),
                        mib(s.zip_bytes),
                    ]
                }),
            );
        }
        if let Some(init) = &self.init {
            let runs = init.first().map_or(0, |i| i.init_ms.count);
            let _ = writeln!(
                out,
                "Init: process start to first /next ({runs} runs each, x86_64)"
            );
            out += &table(
                &[
                    "function",
                    "median ms",
                    "p90 ms",
                    "× hello median",
                    "× hello p90",
                    "AWS conns in init",
                ],
                init.iter().map(|i| {
                    vec![
                        match &i.variant {
                            Some(variant) => format!("{} ({variant})", i.function),
                            None => i.function.clone(),
                        },
                        format!("{:.2}", i.init_ms.median),
                        format!("{:.2}", i.init_ms.p90),
                        format!("{:.2}", i.median_ratio_to_baseline),
                        format!("{:.2}", i.p90_ratio_to_baseline),
                        i.connections_during_init.to_string(),
                    ]
                }),
            );
        }
        if let Some(calls) = &self.calls {
            let _ = writeln!(
                out,
                "AWS calls per job ({} jobs through a recording proxy to moto; {} worker invocations)",
                calls.jobs, calls.worker_invocations
            );
            let phases: [(&str, &PhaseCalls); 4] = [
                ("submit (API)", &calls.submit),
                ("worker", &calls.worker),
                ("event source mapping", &calls.event_source_mapping),
                ("duplicate delivery", &calls.duplicate_delivery),
            ];
            out += &table(
                &["phase", "operation", "calls/job", "refused/job"],
                phases.iter().flat_map(|(phase, calls)| {
                    calls.per_operation.iter().map(|(operation, rate)| {
                        vec![
                            (*phase).to_owned(),
                            operation.clone(),
                            format!("{:.2}", rate.calls),
                            format!("{:.2}", rate.failed),
                        ]
                    })
                }),
            );
            let _ = writeln!(
                out,
                "PutItem answered before SendMessage was sent in {}/{} submissions; largest job item {} B\n",
                calls.ordered_submits, calls.jobs, calls.largest_item_bytes
            );
        }
        if let Some(cpu) = &self.cpu {
            out += "CPU and memory per invocation (release x86_64 binaries, canned AWS endpoint)\n";
            out += &table(
                &[
                    "function",
                    "jobs/inv",
                    "invocations",
                    "CPU ms/inv",
                    "CPU ms/job",
                    "1st inv ms",
                    "warm inv ms (median)",
                    "RSS after init MiB",
                    "peak RSS MiB",
                    "log B/job",
                    "EMF B/job",
                ],
                cpu.iter().map(|c| {
                    vec![
                        c.function.clone(),
                        c.jobs_per_invocation.to_string(),
                        c.invocations.to_string(),
                        format!("{:.3}", c.cpu_ms_per_invocation),
                        format!("{:.3}", c.cpu_ms_per_job),
                        format!("{:.2}", c.first_invocation_ms),
                        format!("{:.3}", c.invocation_ms.median),
                        format!("{:.1}", c.rss_after_init_mib),
                        format!("{:.1}", c.peak_rss_mib),
                        format!("{:.0}", c.log_bytes_per_job),
                        format!("{:.0}", c.emf_bytes_per_job),
                    ]
                }),
            );
        }
        if let Some(cost) = &self.cost {
            let usage = &cost.usage_per_job;
            let per_million = &cost.per_million_jobs;
            let _ = writeln!(
                out,
                "List price per million jobs (us-east-1, checked {}; {} polls per job; Lambda billed {} ms \
                 per submission or poll and {} ms per batch, assuming {} ms per AWS round trip; \
                 SystemLogLevel {}: {} B of platform records per invocation; {} B per access log line)",
                cost.prices_checked,
                cost.polls_per_job,
                cost.billed_api_invocation_ms,
                cost.billed_worker_invocation_ms,
                cost.assumed_aws_round_trip_ms,
                cost.system_log_level,
                cost.platform_bytes_per_invocation,
                cost.access_log_bytes_per_request
            );
            let logs = &usage.log_bytes;
            let logs_usd = &per_million.cloudwatch_logs_by_source;
            let rows = [
                (
                    "API Gateway HTTP API requests",
                    format!("{}", usage.api_gateway_requests),
                    per_million.api_gateway,
                ),
                (
                    "Lambda requests",
                    format!("{:.2}", usage.lambda_invocations),
                    per_million.lambda_requests,
                ),
                (
                    "Lambda arm64 GB-s",
                    format!("{:.6}", usage.lambda_gb_seconds),
                    per_million.lambda_compute,
                ),
                (
                    "DynamoDB write request units",
                    format!("{:.2}", usage.dynamodb_wru),
                    per_million.dynamodb_writes,
                ),
                (
                    "DynamoDB read request units",
                    format!("{:.2}", usage.dynamodb_rru),
                    per_million.dynamodb_reads,
                ),
                (
                    "SQS requests",
                    format!("{:.2}", usage.sqs_requests),
                    per_million.sqs,
                ),
                (
                    "CloudWatch Logs: functions' lines, bytes",
                    format!("{:.0}", logs.function_lines),
                    logs_usd.function_lines,
                ),
                (
                    "CloudWatch Logs: EMF documents, bytes",
                    format!("{:.0}", logs.emf),
                    logs_usd.emf,
                ),
                (
                    "CloudWatch Logs: Lambda platform records, bytes",
                    format!("{:.0}", logs.platform),
                    logs_usd.platform,
                ),
                (
                    "CloudWatch Logs: API access log, bytes",
                    format!("{:.0}", logs.access_log),
                    logs_usd.access_log,
                ),
                ("total", String::new(), per_million.total),
            ];
            out += &table(
                &["item", "per job", "USD per 1M jobs"],
                rows.into_iter()
                    .map(|(item, used, usd)| vec![item.to_owned(), used, format!("${usd:.3}")]),
            );
        }
        if let Some(throughput) = &self.throughput {
            let _ = writeln!(
                out,
                "Throughput on the local stack ({} jobs, {} submitters, {} pollers, moto)",
                throughput.jobs, throughput.submitters, throughput.pollers
            );
            out += &table(
                &[
                    "run",
                    "seconds",
                    "jobs/s",
                    "all submitted at s",
                    "retries",
                    "moto CPU % of a core",
                ],
                [
                    ("emulator only", &throughput.emulator),
                    ("Jobline", &throughput.jobline),
                ]
                .into_iter()
                .map(|(run, figures)| {
                    vec![
                        run.to_owned(),
                        format!("{:.2}", figures.seconds),
                        format!("{:.1}", figures.jobs_per_second),
                        format!("{:.2}", figures.submit_seconds),
                        figures.retries.to_string(),
                        figures
                            .emulator_cpu_percent
                            .map_or_else(|| "-".to_owned(), |p| format!("{p:.0}")),
                    ]
                }),
            );
        }
        if !self.goals.is_empty() {
            out += "Goals\n";
            out += &table(
                &["goal", "measured", "met"],
                self.goals.iter().map(|g| {
                    vec![
                        g.goal.clone(),
                        g.measured.clone(),
                        if g.met { "yes" } else { "NO" }.to_owned(),
                    ]
                }),
            );
        }
        out
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB ({bytes} B)", bytes as f64 / 1024.0 / 1024.0)
}

/// A Markdown table with padded columns, and a blank line after it.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .filter_map(|row| row.get(i))
                .map(|cell| cell.chars().count())
                .chain([headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(headers.iter().map(|h| (*h).to_owned()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        out += &line(row);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let text = table(&["a", "bb"], [vec!["long".to_owned(), "x".to_owned()]]);
        assert_eq!(text, "| a    | bb |\n| ---- | -- |\n| long | x  |\n\n");
    }

    #[test]
    fn an_empty_report_has_no_goals_and_one_json_line() {
        let mut report = BenchReport::new(Machine {
            cores: 2,
            load_average_start: [0.5, 0.4, 0.3],
            load_average_end: [1.0, 0.5, 0.3],
        });
        report.evaluate_goals();
        assert!(report.goals.is_empty());
        let line = report.json_line().unwrap();
        assert!(line.starts_with(JSON_PREFIX) && !line.contains('\n'));
        let json: serde_json::Value = serde_json::from_str(&line[JSON_PREFIX.len()..]).unwrap();
        assert_eq!(json["machine"]["cores"], 2);
        assert!(report.render().contains("2 cores"));
    }
}
