//! The report: a table for people and one `BENCH_JSON {…}` line for
//! machines, with each goal compared against its measurement (reported,
//! never asserted). Measurements not taken in a run (`--only`) are absent.
//!
//! The goals are reported; the [`Budget`] is enforced: BENCHMARKS.md holds
//! the most a successful job may cost in write units, read units and AWS
//! requests, and the bench fails when a measured figure exceeds it.
//!
//! This module holds the report and its goals; `budget.rs` reads the
//! budget and checks the calls measurement against it; `tables.rs` renders
//! the tables, `schedules.rs` those of the schedules measurement and
//! `files.rs` those of the files measurement.

mod budget;
mod files;
mod schedules;
mod tables;

pub use budget::{
    BUDGET_BEGIN, BUDGET_END, BUDGET_HEADER, Budget, BudgetCheck, BudgetError, BudgetItem,
    BudgetLimit, BudgetLine,
};
pub use tables::table;

use crate::measure::calls::CallFigures;
use crate::measure::cost::CostFigures;
use crate::measure::cpu::CpuFigures;
use crate::measure::files::FileFigures;
use crate::measure::init::InitFigures;
use crate::measure::schedules::ScheduleFigures;
use crate::measure::sizes::ArtifactSize;
use crate::measure::throughput::ThroughputFigures;
use serde::Serialize;

/// The prefix of the machine-readable line.
pub const JSON_PREFIX: &str = "BENCH_JSON ";

/// Init time of a function over the hello-world baseline's, at most.
pub const INIT_RATIO_GOAL: f64 = 1.5;
/// Jobline's end-to-end jobs/s over the emulator's, at least.
pub const THROUGHPUT_RATIO_GOAL: f64 = 0.9;

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
    pub schedules: Option<ScheduleFigures>,
    pub throughput: Option<ThroughputFigures>,
    pub files: Option<FileFigures>,
    pub goals: Vec<Goal>,
    /// The calls measurement against the budget, when both were there.
    pub budget: Option<BudgetCheck>,
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
            schedules: None,
            throughput: None,
            files: None,
            goals: Vec::new(),
            budget: None,
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
            // lease, so a crashed worker's job comes back within two
            // heartbeats, not the queue's timeout. The hides of claims that
            // answer within the worker's coalescing window (10 ms,
            // functions/worker/src/hides.rs) share one
            // ChangeMessageVisibilityBatch, so how many requests a batch takes
            // depends on how close together its claims answer: 1 or 2 per 10
            // records where they run side by side, but 2 to 5 on moto, which
            // answers them one after another. The goal is therefore that the
            // hides are batched (no single ChangeMessageVisibility, fewer
            // requests than jobs), with the rate reported as measured.
            let hides = worker.rate("SQS.ChangeMessageVisibilityBatch").calls;
            let single_hides = worker.rate("SQS.ChangeMessageVisibility").calls;
            goals.push(Goal {
                goal: "worker = 2 UpdateItem (claim, completion), 0 reads per job; the claims' \
                       lease hides batched: 0 ChangeMessageVisibility, < 1 \
                       ChangeMessageVisibilityBatch per job"
                    .into(),
                measured: format!(
                    "{} UpdateItem, {hides:.2} ChangeMessageVisibilityBatch requests/job ({} for \
                     {} jobs), {single_hides} ChangeMessageVisibility, {} reads, {} calls/job",
                    worker.rate("DynamoDB.UpdateItem").calls,
                    (hides * calls.jobs as f64).round(),
                    calls.jobs,
                    worker.dynamodb_reads,
                    worker.total()
                ),
                met: worker.rate("DynamoDB.UpdateItem").calls == 2.0
                    && worker.rate("DynamoDB.UpdateItem").failed == 0.0
                    && hides > 0.0
                    && hides < 1.0
                    && single_hides == 0.0
                    && worker.dynamodb_reads == 0.0
                    && (worker.total() - 2.0 - hides).abs() < 1e-9,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn every_function_has_init_goals_and_the_workers_hides_need_only_be_batched() {
        use crate::measure::calls::{PerJob, PerSuccessfulJob, PhaseCalls, WriteUnitFigures};
        use crate::stats::Summary;

        let init = |function: &str, variant: Option<&str>, ratio: f64| InitFigures {
            function: function.into(),
            variant: variant.map(str::to_owned),
            init_ms: Summary::of(&[2.0]).unwrap(),
            connections_during_init: 0,
            median_ratio_to_baseline: ratio,
            p90_ratio_to_baseline: ratio,
        };
        let worker = |operations: &[(&str, f64)]| PhaseCalls {
            per_operation: operations
                .iter()
                .map(|(operation, calls)| {
                    let rate = PerJob {
                        calls: *calls,
                        failed: 0.0,
                    };
                    ((*operation).to_owned(), rate)
                })
                .collect(),
            ..PhaseCalls::default()
        };
        let calls = |worker: PhaseCalls| CallFigures {
            jobs: 20,
            submit: PhaseCalls::default(),
            ordered_submits: 20,
            worker,
            event_source_mapping: PhaseCalls::default(),
            worker_invocations: 2,
            duplicate_delivery: PhaseCalls::default(),
            largest_item_bytes: 400,
            write_units: WriteUnitFigures::default(),
            per_successful_job: PerSuccessfulJob::default(),
        };
        let empty = || {
            BenchReport::new(Machine {
                cores: 2,
                load_average_start: [0.0; 3],
                load_average_end: [0.0; 3],
            })
        };
        let worker_goal = |worker: PhaseCalls| {
            let mut report = empty();
            report.calls = Some(calls(worker));
            report.evaluate_goals();
            report
                .goals
                .into_iter()
                .find(|goal| goal.goal.starts_with("worker ="))
                .unwrap()
        };

        let mut report = empty();
        report.init = Some(vec![
            init("jobline-api", None, 1.4),
            init("jobline-worker", None, 1.4),
            init("jobline-notifier", None, 1.6),
            init("jobline-sweeper", None, 1.2),
            init("jobline-api", Some("TLS_TRUST_ROOTS=system"), 2.9),
            init("hello-lambda", None, 1.0),
        ]);
        report.evaluate_goals();
        let ratios: Vec<_> = report
            .goals
            .iter()
            .filter(|goal| goal.goal.contains("hello-world"))
            .map(|goal| (goal.goal.split(' ').next().unwrap(), goal.met))
            .collect();
        assert_eq!(
            ratios,
            [
                ("jobline-api", true),
                ("jobline-worker", true),
                ("jobline-notifier", false),
                ("jobline-sweeper", true),
            ]
        );
        assert_eq!(report.goals.len(), 8, "{:?}", report.goals);

        // 11 batch requests for 20 jobs, as on moto: batched, so met.
        let batched = worker_goal(worker(&[
            ("DynamoDB.UpdateItem", 2.0),
            ("SQS.ChangeMessageVisibilityBatch", 0.55),
        ]));
        assert!(batched.met, "{batched:?}");
        assert!(
            batched
                .measured
                .contains("0.55 ChangeMessageVisibilityBatch requests/job (11 for 20 jobs)"),
            "{batched:?}"
        );
        // A request per job is no batching; a single hide is not batched.
        let one_each = worker_goal(worker(&[
            ("DynamoDB.UpdateItem", 2.0),
            ("SQS.ChangeMessageVisibilityBatch", 1.0),
        ]));
        assert!(!one_each.met, "{one_each:?}");
        let single = worker_goal(worker(&[
            ("DynamoDB.UpdateItem", 2.0),
            ("SQS.ChangeMessageVisibilityBatch", 0.5),
            ("SQS.ChangeMessageVisibility", 0.05),
        ]));
        assert!(!single.met, "{single:?}");
    }
}
