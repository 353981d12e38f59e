//! `jobline wait`'s progress display on stderr. A job may report how far it
//! got: its JSON then has `"progress": {"fraction": 0.42, "message": …}`.
//! On a terminal the display is an [indicatif] bar, redrawn in place and
//! fitted to the terminal's width; anywhere else (a pipe, a log file) it is
//! one line per change, so a log never holds the same line twice.

use indicatif::{ProgressBar, ProgressDrawTarget};
use serde_json::Value;
use std::io::{self, IsTerminal, Write};

/// The bar: 20 cells, the percentage, then the job's message, cut to the
/// terminal's width.
const BAR_TEMPLATE: &str = "[{bar:20}] {pos:>3}% {wide_msg}";

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A terminal: one bar line, redrawn in place.
    Bar,
    /// Not a terminal: one line per change.
    Lines,
}

impl ProgressStyle {
    /// The style for stderr: a bar if it is a terminal, else lines.
    pub fn for_stderr() -> Self {
        if io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines
        }
    }
}

/// Shows the progress of the job JSONs it is given, each change once.
#[derive(Debug)]
pub struct ProgressDisplay {
    shown: Shown,
}

#[derive(Debug)]
enum Shown {
    /// The bar (its position is the percentage, its message the job's),
    /// and whether it was drawn yet.
    Bar { bar: ProgressBar, drawn: bool },
    /// The line written last.
    Lines { last: Option<String> },
}

impl ProgressDisplay {
    /// A display in `style`; the bar draws on stderr itself.
    pub fn new(style: ProgressStyle) -> Self {
        match style {
            ProgressStyle::Bar => Self::bar(ProgressDrawTarget::stderr()),
            ProgressStyle::Lines => Self {
                shown: Shown::Lines { last: None },
            },
        }
    }

    /// A bar drawn on `target`.
    fn bar(target: ProgressDrawTarget) -> Self {
        let style = indicatif::ProgressStyle::with_template(BAR_TEMPLATE)
            .expect("the bar's template is valid")
            .progress_chars("#.");
        let bar = ProgressBar::with_draw_target(Some(100), target).with_style(style);
        Self {
            shown: Shown::Bar { bar, drawn: false },
        }
    }

    /// Shows `job`'s progress if it has one that differs from the last shown.
    /// Lines go to `err`; the bar draws on its own target (stderr).
    pub fn show(&mut self, job: &Value, err: &mut dyn Write) -> io::Result<()> {
        let progress = &job["progress"];
        let Some(fraction) = progress["fraction"].as_f64() else {
            return Ok(());
        };
        let message = progress["message"].as_str().unwrap_or("");
        match &mut self.shown {
            Shown::Bar { bar, drawn } => {
                let position = steps(fraction, 100) as u64;
                let new_message = bar.message() != message;
                if *drawn && !new_message && bar.position() == position {
                    return Ok(());
                }
                if new_message {
                    // Sets the message without drawing (a clone is a
                    // handle on the same bar): the bar is drawn once, with
                    // both, by `set_position`.
                    let _ = bar.clone().with_message(message.to_owned());
                }
                bar.set_position(position);
                *drawn = true;
            }
            Shown::Lines { last } => {
                let line = progress_text(fraction, message);
                if last.as_ref() == Some(&line) {
                    return Ok(());
                }
                writeln!(err, "{line}")?;
                err.flush()?;
                *last = Some(line);
            }
        }
        Ok(())
    }

    /// Ends the display: erases a bar, so that what follows starts on a
    /// clean line (the final job JSON holds the last progress).
    pub fn finish(&mut self) {
        match &mut self.shown {
            Shown::Bar { bar, drawn } => {
                if std::mem::take(drawn) {
                    bar.finish_and_clear();
                }
            }
            Shown::Lines { last } => *last = None,
        }
    }
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
    use indicatif::TermLike;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    fn running(fraction: f64, message: &str) -> Value {
        json!({"status": "running", "progress": {
            "fraction": fraction, "message": message, "updatedAt": "2026-11-29T17:09:54.123Z"
        }})
    }

    fn lines(jobs: &[Value]) -> String {
        let mut display = ProgressDisplay::new(ProgressStyle::Lines);
        let mut err = Vec::new();
        for job in jobs {
            display.show(job, &mut err).unwrap();
        }
        display.finish();
        String::from_utf8(err).unwrap()
    }

    /// A terminal `width` columns wide that records what is written to it.
    #[derive(Debug, Clone)]
    struct Screen {
        width: u16,
        written: Arc<Mutex<Vec<String>>>,
    }

    impl Screen {
        fn new(width: u16) -> Self {
            Self {
                width,
                written: Arc::default(),
            }
        }

        /// The non-blank texts written, trailing blanks trimmed.
        fn texts(&self) -> Vec<String> {
            let written = self.written.lock().unwrap();
            written
                .iter()
                .map(|text| text.trim_end().to_owned())
                .filter(|text| !text.is_empty())
                .collect()
        }

        fn record(&self, text: &str) -> io::Result<()> {
            self.written.lock().unwrap().push(text.to_owned());
            Ok(())
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, text: &str) -> io::Result<()> {
            self.record(text)
        }
        fn write_str(&self, text: &str) -> io::Result<()> {
            self.record(text)
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What a bar on `screen` draws for `jobs` (no rate limit: every
    /// change is drawn).
    fn drawn(screen: &Screen, jobs: &[Value]) -> ProgressDisplay {
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let mut display = ProgressDisplay::bar(target);
        for job in jobs {
            display.show(job, &mut io::sink()).unwrap();
        }
        display
    }

    fn the_bar(display: &ProgressDisplay) -> &ProgressBar {
        match &display.shown {
            Shown::Bar { bar, .. } => bar,
            Shown::Lines { .. } => panic!("not a bar"),
        }
    }

    #[test]
    fn the_bar_follows_the_jobs_progress() {
        let mut display = ProgressDisplay::bar(ProgressDrawTarget::hidden());
        let mut err = Vec::new();
        for (fraction, message, position) in [
            (0.0, "", 0),
            (0.29, "counted 29", 29),
            (0.5, "counted 5 of 10", 50),
            (0.999, "almost", 99),
            (1.0, "done", 100),
            // Out-of-range fractions are drawn at the nearest end.
            (1.5, "done", 100),
            (-0.5, "again", 0),
        ] {
            display.show(&running(fraction, message), &mut err).unwrap();
            let bar = the_bar(&display);
            assert_eq!(bar.position(), position, "{fraction}");
            assert_eq!(bar.message(), message, "{fraction}");
        }
        display.finish();
        assert!(the_bar(&display).is_finished());
        assert!(err.is_empty(), "the bar does not write to err");
    }

    #[test]
    fn on_a_terminal_the_bar_is_drawn_once_a_change_and_erased_at_the_end() {
        let screen = Screen::new(80);
        let jobs = [running(0.5, "half"), running(0.5, "half"), running(1.0, "")];
        let mut display = drawn(&screen, &jobs);
        assert_eq!(
            screen.texts(),
            [
                "[##########..........]  50% half",
                "[####################] 100%"
            ]
        );
        display.finish();
        assert!(the_bar(&display).is_finished());
        assert_eq!(screen.texts().len(), 2, "{:?}", screen.texts());
    }

    #[test]
    fn long_messages_are_cut_to_the_terminal_width() {
        let screen = Screen::new(60);
        drawn(&screen, &[running(0.42, &"é".repeat(200))]);
        let texts = screen.texts();
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert!(texts[0].chars().count() <= 60, "{texts:?}");
        assert!(
            texts[0].starts_with("[########............]  42% éé"),
            "{texts:?}"
        );
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
            lines(&jobs),
            " 10% counted 1 of 10\n 50% counted 5 of 10\n 50% merging\n100%\n"
        );
        assert_eq!(progress_text(0.29, ""), " 29%");
        assert_eq!(progress_text(0.999, "x"), " 99% x");
    }

    #[test]
    fn jobs_without_progress_show_nothing() {
        let jobs = [
            json!({"status": "queued"}),
            json!({"status": "running", "progress": null}),
        ];
        let screen = Screen::new(80);
        let mut display = drawn(&screen, &jobs);
        display.finish();
        assert_eq!(screen.texts(), Vec::<String>::new());
        assert!(!the_bar(&display).is_finished(), "never drawn, not cleared");
        assert_eq!(lines(&jobs), "");
    }
}
