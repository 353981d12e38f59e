//! `jobline wait`'s progress display on stderr. A job may report how far it
//! got: its JSON then has `"progress": {"fraction": 0.42, "message": …}`.
//! On a terminal the display is one bar line, redrawn in place whenever it
//! changes; anywhere else (a pipe, a log file) it is one line per change, so
//! a log never holds the same line twice.

use serde_json::Value;
use std::io::{self, IsTerminal, Write};

/// Cells between the bar's brackets.
const BAR_CELLS: usize = 20;
/// The terminal width assumed when `COLUMNS` does not give one.
const DEFAULT_COLUMNS: usize = 80;
/// Back to the start of the line, and erase the line.
const CLEAR_LINE: &str = "\r\x1b[2K";

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A terminal `columns` wide: one bar line, redrawn in place.
    Bar { columns: usize },
    /// Not a terminal: one line per change.
    Lines,
}

impl ProgressStyle {
    /// The style for stderr: a bar if it is a terminal (`COLUMNS` wide, else
    /// 80), else lines.
    pub fn for_stderr() -> Self {
        if !io::stderr().is_terminal() {
            return Self::Lines;
        }
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|columns| columns.parse().ok())
            .filter(|&columns| columns > 0)
            .unwrap_or(DEFAULT_COLUMNS);
        Self::Bar { columns }
    }
}

/// Shows the progress of the job JSONs it is given, each change once.
#[derive(Debug)]
pub struct ProgressDisplay {
    style: ProgressStyle,
    /// The line shown last.
    shown: Option<String>,
}

impl ProgressDisplay {
    pub fn new(style: ProgressStyle) -> Self {
        Self { style, shown: None }
    }

    /// Shows `job`'s progress if it has one that differs from the last shown.
    pub fn show(&mut self, job: &Value, err: &mut dyn Write) -> io::Result<()> {
        let progress = &job["progress"];
        let Some(fraction) = progress["fraction"].as_f64() else {
            return Ok(());
        };
        let message = progress["message"].as_str().unwrap_or("");
        let line = match self.style {
            ProgressStyle::Bar { columns } => bar_line(fraction, message, columns),
            ProgressStyle::Lines => progress_text(fraction, message),
        };
        if self.shown.as_ref() == Some(&line) {
            return Ok(());
        }
        match self.style {
            ProgressStyle::Bar { .. } => write!(err, "{CLEAR_LINE}{line}")?,
            ProgressStyle::Lines => writeln!(err, "{line}")?,
        }
        err.flush()?;
        self.shown = Some(line);
        Ok(())
    }

    /// Ends the display: erases a bar, so that what follows starts on a
    /// clean line (the final job JSON holds the last progress).
    pub fn finish(&mut self, err: &mut dyn Write) -> io::Result<()> {
        if self.shown.take().is_some() && matches!(self.style, ProgressStyle::Bar { .. }) {
            write!(err, "{CLEAR_LINE}")?;
            err.flush()?;
        }
        Ok(())
    }
}

/// `[#########...........]  45% message`, cut to `columns - 1` characters:
/// the last column stays free, so the terminal never wraps the line.
pub fn bar_line(fraction: f64, message: &str, columns: usize) -> String {
    let filled = steps(fraction, BAR_CELLS);
    let line = format!(
        "[{}{}] {}",
        "#".repeat(filled),
        ".".repeat(BAR_CELLS - filled),
        progress_text(fraction, message)
    );
    line.chars().take(columns.saturating_sub(1)).collect()
}

/// ` 45% message`, the percentage padded to three digits so that
/// successive lines align.
pub fn progress_text(fraction: f64, message: &str) -> String {
    let percent = steps(fraction, 100);
    if message.is_empty() {
        format!("{percent:>3}%")
    } else {
        format!("{percent:>3}% {message}")
    }
}

/// `fraction` of `total` steps, rounded, but `total` only once the job says
/// it is done (a fraction of 1 or more), and 0 for a negative fraction.
fn steps(fraction: f64, total: usize) -> usize {
    if fraction >= 1.0 {
        total
    } else {
        ((fraction.max(0.0) * total as f64).round() as usize).min(total - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running(fraction: f64, message: &str) -> Value {
        json!({"status": "running", "progress": {
            "fraction": fraction, "message": message, "updatedAt": "2026-11-29T17:09:54.123Z"
        }})
    }

    fn shown(style: ProgressStyle, jobs: &[Value]) -> String {
        let mut display = ProgressDisplay::new(style);
        let mut err = Vec::new();
        for job in jobs {
            display.show(job, &mut err).unwrap();
        }
        display.finish(&mut err).unwrap();
        String::from_utf8(err).unwrap()
    }

    #[test]
    fn the_bar_fills_with_the_fraction() {
        assert_eq!(bar_line(0.0, "", 80), "[....................]   0%");
        assert_eq!(
            bar_line(0.5, "counted 5 of 10", 80),
            "[##########..........]  50% counted 5 of 10"
        );
        assert_eq!(
            bar_line(1.0, "done", 80),
            "[####################] 100% done"
        );
        assert_eq!(bar_line(0.999, "", 80), "[###################.]  99%");
        assert_eq!(progress_text(0.29, ""), " 29%");
        // Out-of-range fractions are drawn at the nearest end.
        assert_eq!(bar_line(1.5, "", 80), bar_line(1.0, "", 80));
        assert_eq!(bar_line(-0.5, "", 80), bar_line(0.0, "", 80));
    }

    #[test]
    fn long_messages_are_cut_to_the_terminal_width() {
        let message = "é".repeat(200);
        let line = bar_line(0.42, &message, 60);
        assert_eq!(line.chars().count(), 59);
        assert!(line.starts_with("[########............]  42% éé"), "{line}");
        assert_eq!(
            bar_line(0.42, "short", 60),
            "[########............]  42% short"
        );
        assert_eq!(bar_line(0.42, "x", 5), "[###");
    }

    #[test]
    fn off_a_terminal_each_change_is_one_line() {
        let jobs = [
            json!({"status": "queued", "progress": null}),
            running(0.1, "counted 1 of 10"),
            running(0.1, "counted 1 of 10"),
            running(0.5, "counted 5 of 10"),
            running(0.5, "counted 5 of 10"),
            running(0.5, "merging"),
            json!({"status": "succeeded", "progress": {"fraction": 1.0}}),
        ];
        assert_eq!(
            shown(ProgressStyle::Lines, &jobs),
            " 10% counted 1 of 10\n 50% counted 5 of 10\n 50% merging\n100%\n"
        );
    }

    #[test]
    fn on_a_terminal_the_bar_is_redrawn_in_place_and_erased_at_the_end() {
        let jobs = [running(0.5, "half"), running(0.5, "half"), running(1.0, "")];
        assert_eq!(
            shown(ProgressStyle::Bar { columns: 80 }, &jobs),
            "\r\x1b[2K[##########..........]  50% half\
             \r\x1b[2K[####################] 100%\
             \r\x1b[2K"
        );
    }

    #[test]
    fn jobs_without_progress_show_nothing() {
        let jobs = [
            json!({"status": "queued"}),
            json!({"status": "running", "progress": null}),
        ];
        assert_eq!(shown(ProgressStyle::Bar { columns: 80 }, &jobs), "");
        assert_eq!(shown(ProgressStyle::Lines, &jobs), "");
    }
}
