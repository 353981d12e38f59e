//! The files measurement's tables: each run side by side with its
//! baseline (MiB/s, CPU, peak memory against the stated bound), and what
//! files cost in S3 per GB.

use super::tables::table;
use crate::measure::files::{FileFigures, GLIBC_TUNABLES, RunFigures};
use std::fmt::Write as _;

const MIB: f64 = 1024.0 * 1024.0;

/// The tables of `figures`.
pub fn render(figures: &FileFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Jobs on files, in this process against moto: a {:.0} MiB CSV of {} rows read, then {:.0} MiB \
         written in parts of {:.0} MiB (MiB = 2^20 B; peak RSS: VmHWM reset before each run, less \
         VmRSS then; GLIBC_TUNABLES {})",
        figures.csv_bytes as f64 / MIB,
        figures.csv_rows,
        figures.output_bytes as f64 / MIB,
        figures.part_bytes as f64 / MIB,
        figures.glibc_tunables.as_deref().map_or_else(
            || format!("unset: memory kept from an earlier run may hide (scripts/bench sets {GLIBC_TUNABLES})"),
            str::to_owned
        ),
    );
    let row = |run: &str, figures: &RunFigures, bound: &str| {
        vec![
            run.to_owned(),
            format!("{:.2}", figures.seconds),
            format!("{:.1}", figures.mib_per_second),
            format!("{:.2}", figures.cpu_seconds),
            figures
                .emulator_cpu_percent
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.0}")),
            format!("{:.1}", figures.rss_before_mib),
            format!("{:.1}", figures.peak_added_mib),
            bound.to_owned(),
        ]
    };
    let (reading, writing) = (&figures.reading, &figures.writing);
    out += &table(
        &[
            "run",
            "seconds",
            "MiB/s",
            "CPU s (this process)",
            "moto CPU % of a core",
            "RSS before MiB",
            "peak RSS added MiB",
            "expected bound",
        ],
        [
            row(
                "read: raw (JobFiles::read chunks)",
                &reading.baseline,
                "the reader's chunks",
            ),
            row(
                "read: csv-stats (JobHandler::run)",
                &reading.jobline,
                &reading.bound,
            ),
            row(
                "write: raw multipart (SDK, sequential)",
                &writing.baseline,
                "one part + the SDK's buffers",
            ),
            row(
                "write: OutputWriter (create_output)",
                &writing.jobline,
                &writing.bound,
            ),
        ],
    );
    let _ = writeln!(
        out,
        "Ratios (Jobline's MiB/s over the baseline's, same run): csv-stats / raw read {:.2}; \
         OutputWriter / raw multipart {:.2}. The raw read came in {} chunks, {:.1} KiB on \
         average, {:.1} KiB at most\n",
        reading.ratio,
        writing.ratio,
        figures.read_chunks,
        figures.csv_bytes as f64 / figures.read_chunks.max(1) as f64 / 1024.0,
        figures.largest_chunk_bytes as f64 / 1024.0
    );
    let _ = writeln!(
        out,
        "What files cost in S3 (S3 Standard, us-east-1, prices of {}; GB = 2^30 B)",
        figures.prices_checked
    );
    out += &table(
        &["item", "billed", "USD", "per", "USD per million"],
        figures.costs.iter().map(|cost| {
            vec![
                cost.item.clone(),
                cost.billed.clone(),
                format!("${}", usd(cost.usd)),
                cost.per.clone(),
                cost.usd_per_million
                    .map_or_else(|| "-".to_owned(), |usd| format!("${usd:.2}")),
            ]
        }),
    );
    out
}

/// A small amount of dollars with its significant digits.
fn usd(amount: f64) -> String {
    if amount == 0.0 {
        return "0".to_owned();
    }
    let text = format!("{amount:.10}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::files::{SideBySide, costs};
    use crate::pricing::{S3_PRICES_CHECKED, S3Prices};

    fn run(mib_per_second: f64, peak_added_mib: f64) -> RunFigures {
        RunFigures {
            seconds: 2.0,
            mib_per_second,
            cpu_seconds: 1.0,
            emulator_cpu_percent: Some(99.0),
            rss_before_mib: 30.0,
            peak_added_mib,
        }
    }

    #[test]
    fn both_pairs_their_ratios_and_the_costs_are_shown() {
        let figures = FileFigures {
            csv_bytes: 256 << 20,
            csv_rows: 5_000_000,
            output_bytes: 256 << 20,
            part_bytes: 8 << 20,
            read_chunks: 4096,
            largest_chunk_bytes: 65536,
            glibc_tunables: None,
            reading: SideBySide {
                baseline: run(200.0, 0.5),
                jobline: run(150.0, 1.5),
                ratio: 0.75,
                bound: "one line ≤ 1 MiB + the reader's chunks".into(),
            },
            writing: SideBySide {
                baseline: run(100.0, 9.0),
                jobline: run(90.0, 17.0),
                ratio: 0.9,
                bound: "one 8 MiB part + the SDK's buffers".into(),
            },
            costs: costs(&S3Prices::US_EAST_1),
            prices: S3Prices::US_EAST_1,
            prices_checked: S3_PRICES_CHECKED,
        };
        let text = render(&figures);
        assert!(text.contains("csv-stats / raw read 0.75"), "{text}");
        assert!(text.contains("OutputWriter / raw multipart 0.90"), "{text}");
        assert!(
            text.contains("4096 chunks, 64.0 KiB on average, 64.0 KiB at most"),
            "{text}"
        );
        assert!(text.contains("unset: memory kept"), "{text}");
        let output = text
            .lines()
            .find(|line| line.starts_with("| a streamed output "))
            .unwrap();
        assert!(
            output.contains("$0.00065 ") && output.contains("$650.00"),
            "{output}"
        );
        let storage = text
            .lines()
            .find(|line| line.starts_with("| keeping "))
            .unwrap();
        let cells: Vec<&str> = storage.split('|').map(str::trim).collect();
        assert_eq!(cells[3..6], ["$0.023", "GB-month", "-"], "{storage}");
        let upload = text
            .lines()
            .find(|line| line.starts_with("| an upload "))
            .unwrap();
        assert!(
            upload.contains("$0.000005 ") && upload.contains("$5.00"),
            "{upload}"
        );
        assert_eq!(usd(0.0), "0");
    }
}
