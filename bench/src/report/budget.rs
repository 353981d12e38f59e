//! The budget per successful job: the block of BENCHMARKS.md that bounds
//! the calls measurement's figures ([`Budget`], read and checked before
//! anything is measured), and those figures against it ([`BudgetCheck`]),
//! which fails the run when one is over.

use super::tables::table;
use crate::measure::calls::PerSuccessfulJob;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// The line that opens the budget block of BENCHMARKS.md.
pub const BUDGET_BEGIN: &str = "<!-- budget:begin -->";
/// The line that closes it.
pub const BUDGET_END: &str = "<!-- budget:end -->";
/// The header of the budget's table.
pub const BUDGET_HEADER: [&str; 2] = ["per successful job", "budget"];
/// How far a measured figure may pass its budget before it counts as over
/// (figures per job are quotients: 104 / 20 must meet a budget of 5.2).
const BUDGET_TOLERANCE: f64 = 1e-9;

/// A figure the budget bounds; what each counts is [`PerSuccessfulJob`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BudgetItem {
    /// `| DynamoDB write units | … |`: the table's and every secondary
    /// index's write units, refused conditional writes included
    /// ([`PerSuccessfulJob::write_units`]).
    WriteUnits,
    /// `| DynamoDB read units | … |`: read requests of the submission and
    /// the worker, 1 unit each ([`PerSuccessfulJob::read_units`]).
    ReadUnits,
    /// `| AWS requests | … |`: every DynamoDB and SQS request of the
    /// submission, the event source mapping's receive and delete shares,
    /// the claim and the completion ([`PerSuccessfulJob::aws_requests`]).
    AwsRequests,
}

impl BudgetItem {
    pub const ALL: [Self; 3] = [Self::WriteUnits, Self::ReadUnits, Self::AwsRequests];

    /// The row's first cell.
    pub fn label(self) -> &'static str {
        match self {
            Self::WriteUnits => "DynamoDB write units",
            Self::ReadUnits => "DynamoDB read units",
            Self::AwsRequests => "AWS requests",
        }
    }

    /// This figure of `measured`.
    pub fn of(self, measured: &PerSuccessfulJob) -> f64 {
        match self {
            Self::WriteUnits => measured.write_units,
            Self::ReadUnits => measured.read_units,
            Self::AwsRequests => measured.aws_requests,
        }
    }
}

/// Why the budget could not be read: the file, and the line when there is
/// one to name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|line| format!(":{line}")).unwrap_or_default())]
pub struct BudgetError {
    pub file: String,
    /// 1-based.
    pub line: Option<usize>,
    pub message: String,
}

/// The most a successful job may cost, per [`BudgetItem`]: the Markdown
/// table between the lines [`BUDGET_BEGIN`] and [`BUDGET_END`] of a file
/// (BENCHMARKS.md), with the header [`BUDGET_HEADER`] and one row for each
/// item, by its [`label`](BudgetItem::label), with a number ≥ 0:
///
/// ```text
/// <!-- budget:begin -->
/// | per successful job | budget |
/// | --- | --- |
/// | DynamoDB write units | 6 |
/// | DynamoDB read units | 0 |
/// | AWS requests | 5.2 |
/// <!-- budget:end -->
/// ```
///
/// Blank lines may stand in the block; anything else but the table, an
/// unknown, repeated or missing row, or a value that is not a number is an
/// error naming the file and the line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    pub file: String,
    pub limits: Vec<BudgetLimit>,
}

/// One row of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BudgetLimit {
    pub item: BudgetItem,
    pub budget: f64,
    /// Where it is, 1-based.
    pub line: usize,
}

impl Budget {
    /// The budget in the file at `path`.
    pub fn read(path: &Path) -> Result<Self, BudgetError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| BudgetError {
            file: file.clone(),
            line: None,
            message: format!("cannot read the budget: {error}"),
        })?;
        Self::parse(&file, &text)
    }

    /// The budget in `text`, the contents of `file`.
    pub fn parse(file: &str, text: &str) -> Result<Self, BudgetError> {
        let error = |line: Option<usize>, message: String| BudgetError {
            file: file.to_owned(),
            line,
            message,
        };
        // 1-based line numbers from here on.
        let lines: Vec<(usize, &str)> = text.lines().zip(1..).map(|(l, n)| (n, l.trim())).collect();
        let marked = |marker: &str| -> Vec<usize> {
            lines
                .iter()
                .filter(|(_, line)| *line == marker)
                .map(|(n, _)| *n)
                .collect()
        };
        let (begins, ends) = (marked(BUDGET_BEGIN), marked(BUDGET_END));
        let begin = match begins.as_slice() {
            [] => {
                return Err(error(
                    None,
                    format!("no budget block: no line is `{BUDGET_BEGIN}`"),
                ));
            }
            [begin] => *begin,
            [first, second, ..] => {
                return Err(error(
                    Some(*second),
                    format!("a second budget block (the first begins at line {first})"),
                ));
            }
        };
        if let Some(early) = ends.iter().find(|&&end| end < begin) {
            return Err(error(
                Some(*early),
                format!("`{BUDGET_END}` before the budget block begins (line {begin})"),
            ));
        }
        let end = match ends.as_slice() {
            [] => {
                return Err(error(
                    Some(begin),
                    format!("the budget block has no `{BUDGET_END}` after it"),
                ));
            }
            [end] => *end,
            [_, second, ..] => {
                return Err(error(Some(*second), format!("a second `{BUDGET_END}`")));
            }
        };
        let mut rows = lines[begin..end - 1]
            .iter()
            .filter(|(_, line)| !line.is_empty())
            .map(|&(n, line)| match table_cells(line) {
                Some(cells) => Ok((n, cells)),
                None => Err(error(
                    Some(n),
                    format!("only the budget's table may stand in the block, not `{line}`"),
                )),
            });
        let expected_header = format!("`| {} |`", BUDGET_HEADER.join(" | "));
        match rows.next().transpose()? {
            Some((_, header)) if header == BUDGET_HEADER => {}
            Some((n, _)) => {
                return Err(error(
                    Some(n),
                    format!("the budget's header must be {expected_header}"),
                ));
            }
            None => {
                return Err(error(
                    Some(begin),
                    format!("the budget block holds no table (header {expected_header})"),
                ));
            }
        }
        match rows.next().transpose()? {
            Some((_, cells))
                if cells.len() == 2
                    && cells.iter().all(|cell| {
                        let dashes = cell.trim_start_matches(':').trim_end_matches(':');
                        !dashes.is_empty() && dashes.chars().all(|c| c == '-')
                    }) => {}
            Some((n, _)) => {
                return Err(error(
                    Some(n),
                    "the budget's header must be followed by `| --- | --- |`".into(),
                ));
            }
            None => {
                return Err(error(Some(end), "the budget's table has no rows".into()));
            }
        }
        let known = || {
            BudgetItem::ALL
                .map(|item| format!("`{}`", item.label()))
                .join(", ")
        };
        let mut limits: Vec<BudgetLimit> = Vec::new();
        for row in rows {
            let (n, cells) = row?;
            let [label, value] = cells.as_slice() else {
                return Err(error(
                    Some(n),
                    format!("a budget row has two cells, this one {}", cells.len()),
                ));
            };
            let item = BudgetItem::ALL
                .into_iter()
                .find(|item| item.label() == label)
                .ok_or_else(|| {
                    error(
                        Some(n),
                        format!("unknown budget row `{label}`: the rows are {}", known()),
                    )
                })?;
            if let Some(first) = limits.iter().find(|limit| limit.item == item) {
                return Err(error(
                    Some(n),
                    format!(
                        "a second row for `{label}` (the first is at line {})",
                        first.line
                    ),
                ));
            }
            let budget = value
                .parse::<f64>()
                .ok()
                .filter(|budget| budget.is_finite() && *budget >= 0.0)
                .ok_or_else(|| {
                    error(
                        Some(n),
                        format!("the budget of `{label}` must be a number ≥ 0, not `{value}`"),
                    )
                })?;
            limits.push(BudgetLimit {
                item,
                budget,
                line: n,
            });
        }
        if let Some(missing) = BudgetItem::ALL
            .into_iter()
            .find(|item| !limits.iter().any(|limit| limit.item == *item))
        {
            return Err(error(
                Some(begin),
                format!(
                    "the budget has no row `{}` (it needs {})",
                    missing.label(),
                    known()
                ),
            ));
        }
        Ok(Self {
            file: file.to_owned(),
            limits,
        })
    }

    /// `measured` against each limit.
    pub fn check(&self, measured: &PerSuccessfulJob) -> BudgetCheck {
        BudgetCheck {
            file: self.file.clone(),
            lines: self
                .limits
                .iter()
                .map(|limit| {
                    let measured = limit.item.of(measured);
                    BudgetLine {
                        item: limit.item,
                        measured,
                        budget: limit.budget,
                        over_by: (measured > limit.budget + BUDGET_TOLERANCE)
                            .then_some(measured - limit.budget),
                    }
                })
                .collect(),
        }
    }
}

/// The cells of a Markdown table row (`| a | b |`), or `None` if `line` is
/// not one.
fn table_cells(line: &str) -> Option<Vec<String>> {
    let inner = line.strip_prefix('|')?;
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    Some(
        inner
            .split('|')
            .map(|cell| cell.trim().to_owned())
            .collect(),
    )
}

/// One budgeted figure, measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BudgetLine {
    pub item: BudgetItem,
    pub measured: f64,
    pub budget: f64,
    /// How much the measurement exceeds the budget, if it does.
    pub over_by: Option<f64>,
}

impl BudgetLine {
    /// What is over and by how much, for people.
    pub fn overrun(&self) -> Option<String> {
        let over_by = self.over_by?;
        let relative = if self.budget > 0.0 {
            format!(", +{:.0} %", over_by / self.budget * 100.0)
        } else {
            String::new()
        };
        Some(format!(
            "{} per successful job: measured {:.2}, budget {}: over by {over_by:.2}{relative}",
            self.item.label(),
            self.measured,
            self.budget
        ))
    }
}

/// The measurements against the budget of `file`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetCheck {
    pub file: String,
    pub lines: Vec<BudgetLine>,
}

impl BudgetCheck {
    /// Whether every figure is within its budget.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|line| line.over_by.is_none())
    }

    /// The figures over budget, each with by how much.
    pub fn overruns(&self) -> Vec<String> {
        self.lines.iter().filter_map(BudgetLine::overrun).collect()
    }

    pub(super) fn render(&self) -> String {
        let mut out = format!("Budget per successful job ({})\n", self.file);
        out += &table(
            &["per successful job", "measured", "budget", "over by"],
            self.lines.iter().map(|line| {
                vec![
                    line.item.label().to_owned(),
                    format!("{:.2}", line.measured),
                    line.budget.to_string(),
                    line.over_by
                        .map_or_else(|| "-".to_owned(), |over| format!("{over:.2}")),
                ]
            }),
        );
        for overrun in self.overruns() {
            let _ = writeln!(out, "OVER BUDGET: {overrun}");
        }
        if self.passed() {
            out += "Within budget.\n";
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{BenchReport, JSON_PREFIX, Machine};

    const BLOCK: &str = "# Benchmarks\n\
        \n\
        ## Budget per successful job (the bench fails above it)\n\
        \n\
        Some words.\n\
        \n\
        <!-- budget:begin -->\n\
        | per successful job | budget |\n\
        | --- | ---: |\n\
        | DynamoDB write units | 6 |\n\
        |   DynamoDB read units   |   0   |\n\
        \n\
        | AWS requests | 5.2 |\n\
        <!-- budget:end -->\n\
        \n\
        After.\n";

    /// `BLOCK` with its line `old` replaced by `new` (which may be empty).
    fn edited(old: &str, new: &str) -> String {
        assert!(BLOCK.contains(old), "{old}");
        BLOCK.replacen(old, new, 1)
    }

    fn parse_error(text: &str) -> (Option<usize>, String) {
        let error = Budget::parse("BENCHMARKS.md", text).unwrap_err();
        assert_eq!(error.file, "BENCHMARKS.md");
        (error.line, error.message)
    }

    #[test]
    fn the_budget_block_is_read_row_by_row() {
        let budget = Budget::parse("BENCHMARKS.md", BLOCK).unwrap();
        let limits: Vec<_> = budget
            .limits
            .iter()
            .map(|limit| (limit.item, limit.budget, limit.line))
            .collect();
        assert_eq!(
            limits,
            [
                (BudgetItem::WriteUnits, 6.0, 10),
                (BudgetItem::ReadUnits, 0.0, 11),
                (BudgetItem::AwsRequests, 5.2, 13),
            ]
        );
    }

    #[test]
    fn a_missing_or_malformed_budget_names_the_file_and_the_line() {
        let error = Budget::parse("x.md", "# nothing here\n").unwrap_err();
        assert_eq!(error.line, None);
        assert_eq!(
            error.to_string(),
            "x.md: no budget block: no line is `<!-- budget:begin -->`"
        );
        let (line, message) = parse_error(&edited("<!-- budget:end -->\n", ""));
        assert_eq!(line, Some(7));
        assert!(message.contains("no `<!-- budget:end -->`"), "{message}");
        let (line, message) = parse_error(&format!("{BLOCK}<!-- budget:begin -->\n"));
        assert_eq!(line, Some(17));
        assert!(message.contains("first begins at line 7"), "{message}");
        let (line, _) = parse_error(&format!("<!-- budget:end -->\n{BLOCK}"));
        assert_eq!(line, Some(1));

        let (line, message) = parse_error(&edited(
            "| DynamoDB write units | 6 |",
            "| DynamoDB write units | six |",
        ));
        assert_eq!(line, Some(10));
        assert!(
            message.contains("must be a number ≥ 0, not `six`"),
            "{message}"
        );
        let (line, _) = parse_error(&edited("|   0   |", "| -1 |"));
        assert_eq!(line, Some(11));
        let (line, message) =
            parse_error(&edited("| AWS requests | 5.2 |", "| Lambda requests | 1 |"));
        assert_eq!(line, Some(13));
        assert!(
            message.contains("unknown budget row `Lambda requests`"),
            "{message}"
        );
        let (line, message) = parse_error(&edited(
            "| AWS requests | 5.2 |",
            "| DynamoDB write units | 7 |",
        ));
        assert_eq!(line, Some(13));
        assert!(message.contains("first is at line 10"), "{message}");
        let (line, message) = parse_error(&edited("| AWS requests | 5.2 |\n", ""));
        assert_eq!(line, Some(7));
        assert!(message.contains("no row `AWS requests`"), "{message}");
        let (line, message) = parse_error(&edited(
            "| AWS requests | 5.2 |",
            "| AWS requests | 5.2 | 6 |",
        ));
        assert_eq!(line, Some(13));
        assert!(message.contains("two cells"), "{message}");
        let (line, message) = parse_error(&edited(
            "| per successful job | budget |",
            "| per job | budget |",
        ));
        assert_eq!(line, Some(8));
        assert!(
            message.contains("header must be `| per successful job | budget |`"),
            "{message}"
        );
        let (line, _) = parse_error(&edited("| --- | ---: |", "| DynamoDB read units | 0 |"));
        assert_eq!(line, Some(9));
        let (line, message) = parse_error(&edited("\n| AWS", "Prose.\n| AWS"));
        assert_eq!(line, Some(12));
        assert!(message.contains("only the budget's table"), "{message}");
    }

    #[test]
    fn only_figures_above_their_budget_fail_and_say_by_how_much() {
        let budget = Budget::parse("BENCHMARKS.md", BLOCK).unwrap();
        let within = budget.check(&PerSuccessfulJob {
            write_units: 6.0,
            read_units: 0.0,
            // 104 requests over 20 jobs: equal to the budget despite rounding.
            aws_requests: 104.0 / 20.0,
        });
        assert!(within.passed(), "{within:?}");
        assert!(within.overruns().is_empty());
        assert!(within.render().contains("Within budget."));

        let over = budget.check(&PerSuccessfulJob {
            write_units: 13.0,
            read_units: 0.5,
            aws_requests: 5.2,
        });
        assert!(!over.passed());
        assert_eq!(
            over.lines
                .iter()
                .map(|line| line.over_by)
                .collect::<Vec<_>>(),
            [Some(7.0), Some(0.5), None]
        );
        assert_eq!(
            over.overruns(),
            [
                "DynamoDB write units per successful job: measured 13.00, budget 6: over by 7.00, +117 %",
                "DynamoDB read units per successful job: measured 0.50, budget 0: over by 0.50",
            ]
        );
        let text = over.render();
        assert!(text.contains("OVER BUDGET: DynamoDB write units"), "{text}");
        assert!(!text.contains("Within budget."));
    }

    #[test]
    fn the_report_shows_the_budget_and_its_json_holds_it() {
        let mut report = BenchReport::new(Machine {
            cores: 2,
            load_average_start: [0.0; 3],
            load_average_end: [0.0; 3],
        });
        let budget = Budget::parse("BENCHMARKS.md", BLOCK).unwrap();
        report.budget = Some(budget.check(&PerSuccessfulJob {
            write_units: 13.0,
            read_units: 0.0,
            aws_requests: 5.2,
        }));
        assert!(report.render().contains("OVER BUDGET"));
        let line = report.json_line().unwrap();
        let json: serde_json::Value = serde_json::from_str(&line[JSON_PREFIX.len()..]).unwrap();
        assert_eq!(json["budget"]["lines"][0]["item"], "WriteUnits");
        assert_eq!(json["budget"]["lines"][0]["over_by"], 7.0);
    }
}
