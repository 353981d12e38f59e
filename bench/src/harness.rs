//! Runs the chosen measurements in order and assembles the report.
//!
//! The order keeps them from disturbing each other: the process-level
//! measurements (sizes, init, CPU) come before anything loads moto, and the
//! throughput runs come last, after the files measurement (which removes
//! its bucket when done).

use crate::error::BenchError;
use crate::measure::cost::{self, DurationModel, TrafficModel};
use crate::measure::cpu::{self, Workload};
use crate::measure::files;
use crate::measure::sizes::{self, LambdaDir};
use crate::measure::throughput::{self, Load};
use crate::measure::{BATCH_SIZE, calls, init, schedules};
use crate::process::LambdaFunction;
use crate::report::{BenchReport, Budget, Machine};
use std::path::PathBuf;

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Sizes,
    Init,
    Calls,
    Cpu,
    /// Delayed jobs and recurring schedules (issue 22).
    Schedules,
    Throughput,
    /// Jobs on files (issue 23): streamed reads and writes, and their cost.
    Files,
}

/// What to measure, and with what.
#[derive(Debug, Clone)]
pub struct Settings {
    pub phases: Vec<Phase>,
    pub api: Option<LambdaFunction>,
    pub worker: Option<LambdaFunction>,
    pub notifier: Option<LambdaFunction>,
    pub sweeper: Option<LambdaFunction>,
    pub fire: Option<LambdaFunction>,
    pub hello: Option<LambdaFunction>,
    pub lambda_dirs: Vec<LambdaDir>,
    /// The emulator's URL, for the calls and throughput measurements.
    pub emulator: Option<String>,
    /// The emulator's process, to tell how busy it was.
    pub emulator_pid: Option<u32>,
    pub init_runs: usize,
    pub api_invocations: usize,
    pub batch_invocations: usize,
    pub calls_jobs: usize,
    /// Occurrences of each path of the schedules measurement.
    pub schedule_occurrences: usize,
    pub load: Load,
    /// The files measurement's CSV and output, MiB.
    pub files_mb: u64,
    /// Where the files measurement writes its CSV (removed after).
    pub scratch: PathBuf,
    pub duration_model: DurationModel,
    pub traffic: TrafficModel,
    /// Where the functions' logs go.
    pub logs: PathBuf,
    /// The budget per successful job the calls measurement is checked
    /// against (`None`: not checked).
    pub budget: Option<Budget>,
}

impl Settings {
    fn wants(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

fn required<'a, T>(value: &'a Option<T>, what: &str) -> Result<&'a T, BenchError> {
    value
        .as_ref()
        .ok_or_else(|| BenchError::Unexpected(format!("this measurement needs {what}")))
}

/// Says what is being measured, on stderr.
fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Runs the measurements of `settings`.
pub async fn run(settings: &Settings) -> Result<BenchReport, BenchError> {
    std::fs::create_dir_all(&settings.logs).map_err(BenchError::io(format!(
        "creating {}",
        settings.logs.display()
    )))?;
    let load_average_start = Machine::load_average();
    let mut report = BenchReport::new(Machine {
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        load_average_start,
        load_average_end: load_average_start,
    });

    if settings.wants(Phase::Sizes) {
        step("artefact sizes");
        report.sizes = Some(sizes::measure(
            &settings.lambda_dirs,
            &[
                "jobline-api",
                "jobline-worker",
                "jobline-notifier",
                "jobline-sweeper",
                "jobline-fire",
                "hello-lambda",
            ],
            &["hello-lambda"],
        )?);
    }
    if settings.wants(Phase::Init) {
        step(&format!(
            "init time, {} runs per function",
            settings.init_runs
        ));
        let api = required(&settings.api, "--api-bin")?;
        // A diagnostic variant: the API trusting the system's CA store, as
        // the SDK's default HTTPS client does, to show what reading that
        // store at client construction would cost during init.
        let functions = [
            api.clone(),
            required(&settings.worker, "--worker-bin")?.clone(),
            required(&settings.notifier, "--notifier-bin")?.clone(),
            required(&settings.sweeper, "--sweeper-bin")?.clone(),
            required(&settings.fire, "--fire-bin")?.clone(),
            api.variant("TLS_TRUST_ROOTS=system", "TLS_TRUST_ROOTS", "system"),
        ];
        let hello = required(&settings.hello, "--hello-bin")?;
        report.init =
            Some(init::measure(&functions, hello, settings.init_runs, &settings.logs).await?);
    }
    if settings.wants(Phase::Cpu) {
        step("CPU and memory per invocation");
        let api = required(&settings.api, "--api-bin")?;
        let worker = required(&settings.worker, "--worker-bin")?;
        report.cpu = Some(vec![
            cpu::measure(
                api,
                Workload::Submit,
                settings.api_invocations,
                &settings.logs,
            )
            .await?,
            cpu::measure(
                worker,
                Workload::Batch(BATCH_SIZE),
                settings.batch_invocations,
                &settings.logs,
            )
            .await?,
        ]);
    }
    if settings.wants(Phase::Calls) {
        step(&format!("AWS calls per job, {} jobs", settings.calls_jobs));
        let emulator = required(&settings.emulator, "--emulator (or AWS_ENDPOINT_URL)")?;
        let calls = calls::measure(emulator, settings.calls_jobs).await?;
        report.budget = settings
            .budget
            .as_ref()
            .map(|budget| budget.check(&calls.per_successful_job));
        report.calls = Some(calls);
    }
    if let (Some(calls), Some([api, worker])) = (&report.calls, report.cpu.as_deref()) {
        report.cost = Some(cost::estimate(
            calls,
            api,
            worker,
            &settings.duration_model,
            &settings.traffic,
        )?);
    }
    if settings.wants(Phase::Schedules) {
        step(&format!(
            "delayed jobs and schedules, {} occurrences of each path",
            settings.schedule_occurrences
        ));
        let emulator = required(&settings.emulator, "--emulator (or AWS_ENDPOINT_URL)")?;
        report.schedules = Some(
            schedules::measure(
                emulator,
                settings.schedule_occurrences,
                &settings.duration_model,
                &settings.traffic.system_log_level,
                settings.budget.as_ref(),
            )
            .await?,
        );
    }
    if settings.wants(Phase::Files) {
        step(&format!(
            "jobs on files, {} MiB: raw read, csv-stats, raw multipart, OutputWriter",
            settings.files_mb
        ));
        let emulator = required(&settings.emulator, "--emulator (or AWS_ENDPOINT_URL)")?;
        report.files = Some(
            files::measure(
                emulator,
                settings.emulator_pid,
                settings.files_mb,
                &settings.scratch,
            )
            .await?,
        );
    }
    if settings.wants(Phase::Throughput) {
        step(&format!(
            "throughput, {} jobs: emulator only, then Jobline",
            settings.load.jobs
        ));
        let emulator = required(&settings.emulator, "--emulator (or AWS_ENDPOINT_URL)")?;
        report.throughput =
            Some(throughput::measure(emulator, settings.emulator_pid, settings.load).await?);
    }
    report.machine.load_average_end = Machine::load_average();
    report.evaluate_goals();
    Ok(report)
}
