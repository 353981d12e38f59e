//! `jobline-bench`: measures Jobline and prints a table and one
//! `BENCH_JSON {…}` line. `scripts/bench` builds everything it needs, starts
//! a fresh moto, and runs it; see BENCHMARKS.md.
//!
//! Exit status: 0 when every measurement was taken and the calls
//! measurement (if taken) is within the budget of BENCHMARKS.md; 1 when a
//! measurement could not be taken or the budget could not be read;
//! [`OVER_BUDGET`] when a figure exceeds its budget (the whole report is
//! printed, and written, first).

use clap::Parser;
use jobline_bench::REGION;
use jobline_bench::harness::{self, Phase, Settings};
use jobline_bench::measure::cost::{DurationModel, TrafficModel};
use jobline_bench::measure::logs::DEFAULT_SYSTEM_LOG_LEVEL;
use jobline_bench::measure::sizes::LambdaDir;
use jobline_bench::measure::throughput::Load;
use jobline_bench::process::LambdaFunction;
use jobline_bench::report::Budget;
use jobline_core::WorkerConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// The exit status of a run whose measurements exceed the budget.
const OVER_BUDGET: u8 = 3;

/// The budget's file unless `--budget` names another: BENCHMARKS.md at the
/// root of the workspace this binary was built in.
fn default_budget_file() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    bench
        .parent()
        .map_or_else(|| bench.clone(), PathBuf::from)
        .join("BENCHMARKS.md")
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Measure Jobline: sizes, init, AWS calls and cost per job, CPU and memory, throughput, jobs on files"
)]
struct Cli {
    /// Measurements to take, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', default_values = ["sizes", "init", "cpu", "calls", "schedules", "files", "throughput"])]
    only: Vec<Phase>,
    /// The release `bootstrap` of jobline-api, runnable here.
    #[arg(long)]
    api_bin: Option<PathBuf>,
    /// The release `bootstrap` of jobline-worker, runnable here.
    #[arg(long)]
    worker_bin: Option<PathBuf>,
    /// The release `bootstrap` of jobline-notifier, runnable here.
    #[arg(long)]
    notifier_bin: Option<PathBuf>,
    /// The release `bootstrap` of jobline-sweeper, runnable here.
    #[arg(long)]
    sweeper_bin: Option<PathBuf>,
    /// The release `bootstrap` of jobline-fire, runnable here.
    #[arg(long)]
    fire_bin: Option<PathBuf>,
    /// The release `bootstrap` of hello-lambda, the init baseline.
    #[arg(long)]
    hello_bin: Option<PathBuf>,
    /// `ARCH=DIR`: a `cargo lambda build --lambda-dir` output (repeatable).
    #[arg(long = "lambda-dir")]
    lambda_dirs: Vec<LambdaDir>,
    /// The emulator (moto) for the calls and throughput measurements.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    emulator: Option<String>,
    /// The emulator's process id, to report how busy it was.
    #[arg(long)]
    emulator_pid: Option<u32>,
    /// Jobs in each throughput run.
    #[arg(long, default_value_t = 2000)]
    jobs: usize,
    /// Concurrent submitters in the throughput runs.
    #[arg(long, default_value_t = 8)]
    submitters: usize,
    /// Concurrent pollers (worker invocations at once) in the throughput runs;
    /// `jobline-local serve` runs 2.
    #[arg(long, default_value_t = 2)]
    pollers: usize,
    /// Size of the files measurement's CSV and of its output, MiB.
    #[arg(long, default_value_t = jobline_bench::measure::files::DEFAULT_MEGABYTES)]
    files_mb: u64,
    /// Where the files measurement writes its CSV (removed after).
    #[arg(long, default_value = "target/bench")]
    scratch: PathBuf,
    /// Time limit of each throughput run, seconds.
    #[arg(long, default_value_t = 600)]
    throughput_timeout_secs: u64,
    /// Starts of each function for the init measurement.
    #[arg(long, default_value_t = 20)]
    init_runs: usize,
    /// Measured submissions for the API's CPU figures.
    #[arg(long, default_value_t = 1000)]
    api_invocations: usize,
    /// Measured batches of 10 for the worker's CPU figures.
    #[arg(long, default_value_t = 300)]
    batch_invocations: usize,
    /// Jobs whose AWS calls are counted.
    #[arg(long, default_value_t = 20)]
    calls_jobs: usize,
    /// Occurrences of each path of the schedules measurement.
    #[arg(long, default_value_t = jobline_bench::measure::schedules::DEFAULT_OCCURRENCES)]
    schedule_occurrences: usize,
    /// Assumed in-region DynamoDB/SQS round trip, for billed Lambda time.
    #[arg(long, default_value_t = 10.0)]
    aws_round_trip_ms: f64,
    /// Status polls (`GET /jobs/{id}`) per job, for the cost table.
    #[arg(long, default_value_t = 1.0)]
    polls_per_job: f64,
    /// The functions' SystemLogLevel (template.yaml), for Lambda's own logs.
    #[arg(long, default_value = DEFAULT_SYSTEM_LOG_LEVEL)]
    system_log_level: String,
    /// The API function's MemorySize (template.yaml).
    #[arg(long, default_value_t = 256)]
    api_memory_mb: u32,
    /// The worker function's MemorySize (template.yaml).
    #[arg(long, default_value_t = 512)]
    worker_memory_mb: u32,
    /// The notifier function's MemorySize (template.yaml).
    #[arg(long, default_value_t = 256)]
    notifier_memory_mb: u32,
    /// The sweeper function's MemorySize (template.yaml).
    #[arg(long, default_value_t = 128)]
    sweeper_memory_mb: u32,
    /// The fire function's MemorySize (template.yaml).
    #[arg(long, default_value_t = 256)]
    fire_memory_mb: u32,
    /// Where the functions' stderr logs go.
    #[arg(long, default_value = "target/bench/logs")]
    logs: PathBuf,
    /// Also write the table and the JSON line to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The Markdown file whose budget block (`<!-- budget:begin -->` …
    /// `<!-- budget:end -->`) bounds the calls measurement's figures per
    /// successful job; the run fails (exit status 3) above it. Default:
    /// BENCHMARKS.md at the workspace root.
    #[arg(long, value_name = "PATH", conflicts_with = "no_budget")]
    budget: Option<PathBuf>,
    /// Do not read or check the budget.
    #[arg(long)]
    no_budget: bool,
}

impl Cli {
    fn settings(self, budget: Option<Budget>) -> Settings {
        let function = |name: &str, binary: Option<PathBuf>, memory_mb| {
            binary.map(|binary| LambdaFunction::new(name, binary, memory_mb))
        };
        // The notifier's and the sweeper's own variables in template.yaml
        // (NotifierFunction, SweeperFunction): the notifier exits at init
        // without NOTIFY_QUEUE_URL and WEBHOOK_SECRET_ID, and the sweeper
        // builds its notify queue's client there when NOTIFY_QUEUE_URL is
        // set, as deployed. Nothing is called during init, so the values
        // need only be what `!Ref` gives: a queue URL and a secret's ARN.
        let notify_queue_url =
            format!("https://sqs.{REGION}.amazonaws.com/123456789012/jobline-bench-notify");
        let webhook_secret_id =
            format!("arn:aws:secretsmanager:{REGION}:123456789012:secret:jobline-bench-webhooks");
        // Delayed jobs and schedules (issue 22): the schedules table and the
        // schedule group, as `!Ref` names them; the API's timers also name
        // what they invoke and as whom, and where failed fires go.
        let (schedules_table, schedule_group) = ("jobline-bench-schedules", "jobline-bench-jobs");
        let fire_function_arn =
            format!("arn:aws:lambda:{REGION}:123456789012:function:jobline-bench-fire");
        let scheduler_role_arn = "arn:aws:iam::123456789012:role/jobline-bench-scheduler";
        let fire_failures_arn =
            format!("arn:aws:sqs:{REGION}:123456789012:jobline-bench-fire-failures");
        Settings {
            phases: self.only,
            // The API's own variables in template.yaml (ApiFunction): the
            // backlog bound at its default, webhooks on, and schedules on
            // (it builds their store's and the scheduler's clients at init).
            // The bench's jobs are `primes`, a demonstration type
            // (EnableDemoJobTypes).
            api: function("jobline-api", self.api_bin, self.api_memory_mb).map(|api| {
                api.with_env("MAX_BACKLOG", "100000")
                    .with_env("WEBHOOK_SECRET_ID", &webhook_secret_id)
                    .with_env("DEMO_JOB_TYPES", "true")
                    .with_env("SCHEDULES_TABLE", schedules_table)
                    .with_env("SCHEDULE_GROUP", schedule_group)
                    .with_env("FIRE_FUNCTION_ARN", &fire_function_arn)
                    .with_env("SCHEDULER_ROLE_ARN", scheduler_role_arn)
                    .with_env("FIRE_FAILURES_QUEUE_ARN", &fire_failures_arn)
            }),
            worker: function("jobline-worker", self.worker_bin, self.worker_memory_mb)
                .map(|worker| worker.with_env("DEMO_JOB_TYPES", "true")),
            notifier: function(
                "jobline-notifier",
                self.notifier_bin,
                self.notifier_memory_mb,
            )
            .map(|notifier| {
                notifier
                    .with_env("NOTIFY_QUEUE_URL", &notify_queue_url)
                    // NotifyQueue's redrive maxReceiveCount, as in the template.
                    .with_env("NOTIFY_MAX_RECEIVE_COUNT", "8")
                    .with_env("WEBHOOK_SECRET_ID", &webhook_secret_id)
            }),
            sweeper: function("jobline-sweeper", self.sweeper_bin, self.sweeper_memory_mb)
                .map(|sweeper| sweeper.with_env("NOTIFY_QUEUE_URL", &notify_queue_url)),
            // The fire function's own variables in template.yaml
            // (FireFunction): a fire is a submission, with the API's backlog
            // bound and job types; its Config fails at init without
            // SCHEDULES_TABLE and SCHEDULE_GROUP (`!Ref` gives their names).
            fire: function("jobline-fire", self.fire_bin, self.fire_memory_mb).map(|fire| {
                fire.with_env("MAX_BACKLOG", "100000")
                    .with_env("DEMO_JOB_TYPES", "true")
                    .with_env("SCHEDULES_TABLE", schedules_table)
                    .with_env("SCHEDULE_GROUP", schedule_group)
            }),
            hello: function("hello-lambda", self.hello_bin, self.worker_memory_mb),
            files_mb: self.files_mb,
            scratch: self.scratch,
            lambda_dirs: self.lambda_dirs,
            emulator: self.emulator,
            emulator_pid: self.emulator_pid,
            init_runs: self.init_runs,
            api_invocations: self.api_invocations,
            batch_invocations: self.batch_invocations,
            calls_jobs: self.calls_jobs,
            schedule_occurrences: self.schedule_occurrences,
            load: Load {
                jobs: self.jobs,
                submitters: self.submitters,
                pollers: self.pollers,
                timeout_secs: self.throughput_timeout_secs,
            },
            duration_model: DurationModel {
                aws_round_trip_ms: self.aws_round_trip_ms,
                api_memory_mb: self.api_memory_mb,
                worker_memory_mb: self.worker_memory_mb,
                fire_memory_mb: self.fire_memory_mb,
                worker_concurrency: WorkerConfig::default().concurrency,
            },
            traffic: TrafficModel {
                polls_per_job: self.polls_per_job,
                system_log_level: self.system_log_level,
            },
            logs: self.logs,
            budget,
        }
    }

    /// The budget to check against, read before anything is measured so a
    /// broken block fails at once; `None` with `--no-budget`.
    fn budget(&self) -> Result<Option<Budget>, jobline_bench::report::BudgetError> {
        if self.no_budget {
            return Ok(None);
        }
        let file = self.budget.clone().unwrap_or_else(default_budget_file);
        Budget::read(&file).map(Some)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let report_file = cli.report.clone();
    let budget = match cli.budget() {
        Ok(budget) => budget,
        Err(error) => {
            eprintln!("jobline-bench: {error} (--no-budget skips the budget)");
            return ExitCode::FAILURE;
        }
    };
    let checks_budget = budget.is_some();
    let report = match harness::run(&cli.settings(budget)).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("jobline-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let text = match report.json_line() {
        Ok(json) => format!("{}{json}\n", report.render()),
        Err(error) => {
            eprintln!("jobline-bench: could not encode the report: {error}");
            return ExitCode::FAILURE;
        }
    };
    print!("{text}");
    if let Some(path) = report_file
        && let Err(error) = std::fs::write(&path, &text)
    {
        eprintln!("jobline-bench: writing {}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    match &report.budget {
        Some(check) if !check.passed() => {
            for overrun in check.overruns() {
                eprintln!("jobline-bench: over budget ({}): {overrun}", check.file);
            }
            ExitCode::from(OVER_BUDGET)
        }
        Some(_) => ExitCode::SUCCESS,
        None => {
            if checks_budget {
                eprintln!(
                    "jobline-bench: the budget was not checked: it bounds the calls measurement, \
                     which this run did not take"
                );
            }
            ExitCode::SUCCESS
        }
    }
}
