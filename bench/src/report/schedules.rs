//! The schedules measurement's tables: each path per occurrence, and each
//! delayed or fired job's whole life against the budget of a successful job.

use super::tables::table;
use crate::measure::calls::PhaseCalls;
use crate::measure::schedules::ScheduleFigures;
use std::fmt::Write as _;

/// `calls` as `Operation n.nn` items (refused ones said), or `-`.
fn operations(calls: &PhaseCalls) -> String {
    if calls.per_operation.is_empty() {
        return "-".to_owned();
    }
    calls
        .per_operation
        .iter()
        .map(|(operation, rate)| {
            if rate.failed > 0.0 {
                format!("{operation} {:.2} ({:.2} refused)", rate.calls, rate.failed)
            } else {
                format!("{operation} {:.2}", rate.calls)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tables of `figures`.
pub fn render(figures: &ScheduleFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Delayed jobs and schedules, per occurrence ({} each; the real API and the local firer through \
         recording proxies to moto, on a moved clock). Write units: the jobs table's from its stream, \
         the schedules table's from its items' sizes (it has no stream); read units strongly consistent, \
         1 per started 4 KB; log bytes computed from the lines' format (SystemLogLevel {}); Lambda \
         billed 1 ms + {} ms per sequential AWS request (modelled)",
        figures.occurrences, figures.system_log_level, figures.assumed_aws_round_trip_ms
    );
    out += &table(
        &[
            "path",
            "AWS requests",
            "apart (not the path's)",
            "WU jobs table",
            "WU schedules table",
            "RRU",
            "billed requests",
            "log B",
            "USD per 1M",
        ],
        figures.paths.iter().map(|path| {
            vec![
                path.path.clone(),
                format!("{:.2}: {}", path.aws_requests(), operations(&path.requests)),
                operations(&path.apart),
                format!("{:.2}", path.jobs_write_units.total),
                format!("{:.2}", path.schedules_write_units),
                format!("{:.2}", path.read_units),
                format!(
                    "{:.2} (+ {:.2} invocations)",
                    path.billed_requests(),
                    path.invocations.total()
                ),
                path.log_bytes
                    .map_or_else(|| "-".to_owned(), |logs| format!("{:.0}", logs.total())),
                path.usd_per_million
                    .map_or_else(|| "-".to_owned(), |usd| format!("${usd:.3}")),
            ]
        }),
    );
    out += "A job's whole life, against the budget of a successful job (AWS requests: DynamoDB, SQS and \
            EventBridge Scheduler's API)\n";
    out += &table(
        &[
            "life",
            "WU",
            "RRU",
            "AWS requests",
            "over the budget",
            "paths",
        ],
        figures.lives.iter().map(|life| {
            vec![
                life.life.clone(),
                format!("{:.2}", life.per_job.write_units),
                format!("{:.2}", life.per_job.read_units),
                format!("{:.2}", life.per_job.aws_requests),
                match &life.over_budget {
                    None => "(no budget read)".to_owned(),
                    Some(over) if over.is_empty() => "within".to_owned(),
                    Some(over) => over.join("; "),
                },
                life.parts.join(" + "),
            ]
        }),
    );
    let _ = writeln!(
        out,
        "SQS held {} delayed messages right after the {} short delays' submissions; largest schedule item {} B, \
         largest job item {} B\n",
        figures.delayed_messages,
        figures.occurrences,
        figures.largest_schedule_item_bytes,
        figures.largest_job_item_bytes
    );
    out
}
