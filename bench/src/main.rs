//! `jobline-bench`: measures Jobline and prints a table and one
//! `BENCH_JSON {…}` line. `scripts/bench` builds everything it needs, starts
//! a fresh moto, and runs it; see BENCHMARKS.md.

use clap::Parser;
use jobline_bench::harness::{self, Phase, Settings};
use jobline_bench::measure::cost::{DurationModel, TrafficModel};
use jobline_bench::measure::logs::DEFAULT_SYSTEM_LOG_LEVEL;
use jobline_bench::measure::sizes::LambdaDir;
use jobline_bench::measure::throughput::Load;
use jobline_bench::process::LambdaFunction;
use jobline_core::WorkerConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Measure Jobline: sizes, init, AWS calls and cost per job, CPU and memory, throughput"
)]
struct Cli {
    /// Measurements to take, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', default_values = ["sizes", "init", "cpu", "calls", "throughput"])]
    only: Vec<Phase>,
    /// The release `bootstrap` of jobline-api, runnable here.
    #[arg(long)]
    api_bin: Option<PathBuf>,
    /// The release `bootstrap` of jobline-worker, runnable here.
    #[arg(long)]
    worker_bin: Option<PathBuf>,
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
    /// Where the functions' stderr logs go.
    #[arg(long, default_value = "target/bench/logs")]
    logs: PathBuf,
    /// Also write the table and the JSON line to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

impl Cli {
    fn settings(self) -> Settings {
        let function = |name: &str, binary: Option<PathBuf>, memory_mb| {
            binary.map(|binary| LambdaFunction::new(name, binary, memory_mb))
        };
        Settings {
            phases: self.only,
            api: function("jobline-api", self.api_bin, self.api_memory_mb),
            worker: function("jobline-worker", self.worker_bin, self.worker_memory_mb),
            hello: function("hello-lambda", self.hello_bin, self.worker_memory_mb),
            lambda_dirs: self.lambda_dirs,
            emulator: self.emulator,
            emulator_pid: self.emulator_pid,
            init_runs: self.init_runs,
            api_invocations: self.api_invocations,
            batch_invocations: self.batch_invocations,
            calls_jobs: self.calls_jobs,
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
                worker_concurrency: WorkerConfig::default().concurrency,
            },
            traffic: TrafficModel {
                polls_per_job: self.polls_per_job,
                system_log_level: self.system_log_level,
            },
            logs: self.logs,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let report_file = cli.report.clone();
    let report = match harness::run(&cli.settings()).await {
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
    ExitCode::SUCCESS
}
