//! The report's tables for people: one per measurement taken, then the
//! goals and the budget ([`BenchReport::render`]), and the Markdown table
//! they are all drawn with ([`table`]).

use super::BenchReport;
use crate::measure::calls::{CallFigures, PhaseCalls, WritePhase, WriteUnits};
use crate::pricing::IndexProjection;
use std::fmt::Write as _;

impl BenchReport {
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
                "Init: process start to first /next ({runs} runs each, {})",
                host_arch()
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
            out += &render_write_units(calls);
        }
        if let Some(cpu) = &self.cpu {
            let _ = writeln!(
                out,
                "CPU and memory per invocation (release {} binaries, canned AWS endpoint)",
                host_arch()
            );
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
            let mut rows: Vec<(String, String, f64)> = [
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
                    "DynamoDB write units: the table (measured, refused writes included)",
                    format!("{:.2}", usage.dynamodb_wru),
                    per_million.dynamodb_writes,
                ),
            ]
            .map(|(item, used, usd)| (item.to_owned(), used, usd))
            .into();
            for (index, units) in &usage.dynamodb_index_wru {
                rows.push((
                    format!("DynamoDB write units: index {index} (measured)"),
                    format!("{units:.2}"),
                    per_million
                        .dynamodb_index_writes
                        .get(index)
                        .copied()
                        .unwrap_or_default(),
                ));
            }
            rows.extend(
                [
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
                ]
                .map(|(item, used, usd)| (item.to_owned(), used, usd)),
            );
            out += &table(
                &["item", "per job", "USD per 1M jobs"],
                rows.into_iter()
                    .map(|(item, used, usd)| vec![item, used, format!("${usd:.3}")]),
            );
        }
        if let Some(schedules) = &self.schedules {
            out += &super::schedules::render(schedules);
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
        if let Some(files) = &self.files {
            out += &super::files::render(files);
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
        if let Some(budget) = &self.budget {
            out += &budget.render();
        }
        out
    }
}

/// The write units per job of the calls measurement, by phase, table and
/// index, and the figures the budget bounds.
fn render_write_units(calls: &CallFigures) -> String {
    let mut out = String::new();
    let units = &calls.write_units;
    let indexes: Vec<String> = units
        .indexes
        .iter()
        .map(|index| {
            let projection = match &index.projection {
                IndexProjection::KeysOnly => "keys only".to_owned(),
                IndexProjection::Include(attributes) => format!("+ {}", attributes.join(", ")),
                IndexProjection::All => "all".to_owned(),
            };
            format!(
                "{} ({}; {projection})",
                index.name,
                index.key_attributes.join(", ")
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "DynamoDB write units per job, from the item images of the table's stream ({} records; \
         table key {}; indexes from DescribeTable: {}). Phases by the job's state before and after; \
         refused conditional writes from the proxy, billed as the largest job item",
        units.records,
        units.table_key.join(", "),
        if indexes.is_empty() {
            "none".to_owned()
        } else {
            indexes.join("; ")
        }
    );
    let mut headers = vec!["phase", "table"];
    headers.extend(units.indexes.iter().map(|index| index.name.as_str()));
    headers.push("total");
    let row = |phase: String, figures: &WriteUnits| {
        let mut row = vec![phase, format!("{:.2}", figures.table)];
        row.extend(units.indexes.iter().map(|index| {
            format!(
                "{:.2}",
                figures
                    .indexes
                    .get(&index.name)
                    .copied()
                    .unwrap_or_default()
            )
        }));
        row.push(format!("{:.2}", figures.total));
        row
    };
    let mut rows: Vec<Vec<String>> = WritePhase::ALL
        .iter()
        .filter_map(|phase| {
            let figures = units.by_phase.get(phase)?;
            Some(row(phase.label().to_owned(), figures))
        })
        .collect();
    rows.push(row(
        format!("refused conditional writes ({:.2})", units.refused_writes),
        &units.refused,
    ));
    rows.push(row("per successful job".to_owned(), &units.per_job));
    rows.push(row(
        format!(
            "duplicate delivery, apart ({} records)",
            units.duplicate_delivery_records
        ),
        &units.duplicate_delivery,
    ));
    out += &table(&headers, rows);
    let budgeted = &calls.per_successful_job;
    let _ = writeln!(
        out,
        "Per successful job: {:.2} DynamoDB write units, {:.2} read units, {:.2} AWS requests \
         (submit {:.2} + event source mapping {:.2} + worker {:.2})\n",
        budgeted.write_units,
        budgeted.read_units,
        budgeted.aws_requests,
        calls.submit.total(),
        calls.event_source_mapping.total(),
        calls.worker.total()
    );
    out
}

/// This machine's architecture as Lambda names it (`x86_64`, `arm64`): the
/// init and CPU measurements run the functions' builds for it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        arch => arch,
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
    use crate::measure::calls::PerSuccessfulJob;
    use crate::report::Machine;

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let text = table(&["a", "bb"], [vec!["long".to_owned(), "x".to_owned()]]);
        assert_eq!(text, "| a    | bb |\n| ---- | -- |\n| long | x  |\n\n");
    }

    #[test]
    fn write_units_and_their_cost_are_shown_per_index() {
        use crate::measure::calls::WriteUnitFigures;
        use crate::measure::cost::CostFigures;
        use crate::pricing::{
            CostPerMillionJobs, PRICES_CHECKED, Prices, SecondaryIndex, UsagePerJob,
        };
        use std::collections::BTreeMap;

        let units = |table: f64, due: f64| WriteUnits {
            table,
            indexes: BTreeMap::from([("due".to_owned(), due)]),
            total: table + due,
        };
        let write_units = WriteUnitFigures {
            table_key: vec!["jobId".into()],
            indexes: vec![SecondaryIndex {
                name: "due".into(),
                key_attributes: vec!["pending".into(), "dueAt".into()],
                projection: IndexProjection::KeysOnly,
            }],
            records: 3,
            by_phase: BTreeMap::from([
                (WritePhase::Submission, units(1.0, 1.0)),
                (WritePhase::Claim, units(1.0, 2.0)),
                (WritePhase::Completion, units(1.0, 1.0)),
                (WritePhase::Other, units(0.0, 0.0)),
            ]),
            per_job: units(3.0, 4.0),
            ..WriteUnitFigures::default()
        };
        let calls = CallFigures {
            jobs: 1,
            submit: PhaseCalls::default(),
            ordered_submits: 1,
            worker: PhaseCalls::default(),
            event_source_mapping: PhaseCalls::default(),
            worker_invocations: 1,
            duplicate_delivery: PhaseCalls::default(),
            largest_item_bytes: 300,
            write_units,
            per_successful_job: PerSuccessfulJob {
                write_units: 7.0,
                read_units: 0.0,
                aws_requests: 5.2,
            },
        };
        let usage = UsagePerJob {
            dynamodb_wru: 3.0,
            dynamodb_index_wru: BTreeMap::from([("due".to_owned(), 4.0)]),
            ..UsagePerJob::default()
        };
        let prices = Prices::US_EAST_1;
        let cost = CostFigures {
            per_million_jobs: CostPerMillionJobs::of(&usage, &prices),
            usage_per_job: usage,
            billed_api_invocation_ms: 11.0,
            billed_worker_invocation_ms: 44.0,
            assumed_aws_round_trip_ms: 10.0,
            polls_per_job: 0.0,
            system_log_level: "WARN".into(),
            platform_bytes_per_invocation: 0.0,
            access_log_bytes_per_request: 0.0,
            prices,
            prices_checked: PRICES_CHECKED,
        };
        let mut report = BenchReport::new(Machine {
            cores: 2,
            load_average_start: [0.0; 3],
            load_average_end: [0.0; 3],
        });
        report.calls = Some(calls);
        report.cost = Some(cost);
        let text = report.render();
        assert!(text.contains("| phase "), "{text}");
        assert!(text.contains("due (pending, dueAt; keys only)"), "{text}");
        let claim = text
            .lines()
            .find(|line| line.starts_with("| claim "))
            .unwrap();
        assert_eq!(
            claim.split('|').map(str::trim).collect::<Vec<_>>(),
            ["", "claim", "1.00", "2.00", "3.00", ""]
        );
        assert!(
            text.contains("Per successful job: 7.00 DynamoDB write units"),
            "{text}"
        );
        let index_line = text
            .lines()
            .find(|line| line.contains("DynamoDB write units: index due (measured)"))
            .unwrap();
        assert!(
            index_line.contains("| 4.00 ") && index_line.contains("$2.500"),
            "{index_line}"
        );
        assert!(text.contains("DynamoDB write units: the table"), "{text}");
        // The total counts the index: 3 + 4 units at $0.625 per million.
        assert!(text.contains("$4.375"), "{text}");
    }
}
