//! Jobs on files (issue 23): what Jobline's streams cost over the raw
//! reads and writes they are made of, side by side in one run against the
//! bench's moto, in this process (no Lambda build), and what a file costs
//! in S3 requests per GB.
//!
//! Setup, not measured: a CSV of `megabytes` MiB (eight numeric columns) is
//! generated as a stream into a scratch file, uploaded from it by a
//! multipart upload, one part of the file in memory at a time, and described
//! by a `HeadObject` (`UploadFiles::head`, as the API does at submission)
//! into the [`InputFile`] a job would carry.
//!
//! Then four runs through one [`S3Bucket`], each baseline first (if moto
//! slows as it fills up, that counts against Jobline):
//! 1. **raw read**: `JobFiles::read` from byte 0 and its chunks to the end,
//!    nothing done with them;
//! 2. **csv-stats**: the real handler, [`CsvStats`] through
//!    [`JobHandler::run`], in a [`JobContext`] with the bucket and the
//!    upload, parsing it line by line (its progress and checkpoints
//!    included); the result's rows and bytes are checked;
//! 3. **raw multipart**: the same number of bytes written by the SDK as
//!    one multipart upload in parts of [`PART_BYTES`], one at a time, each
//!    built in a buffer of its own size;
//! 4. **OutputWriter**: the same bytes handed to
//!    [`JobContext::create_output`]'s writer 64 KiB at a time, then
//!    `finish`; the object's size is checked.
//!
//! Each run is timed (MiB/s, MiB = 2^20 bytes) with this process's CPU
//! time and, when its process is known, moto's. Its memory: the peak RSS
//! is reset (`5` to `/proc/self/clear_refs`) and `VmRSS` read just before
//! it, `VmHWM` after; the figure is the difference, what the run added.
//! Memory the allocator kept from an earlier run can be reused without
//! showing, so `scripts/bench` runs the harness with glibc's mmap
//! threshold fixed (every block over 128 KiB mapped on its own and
//! returned when freed): see [`GLIBC_TUNABLES`].
//!
//! moto is one Python process: where it is the busy one (the writes), the
//! absolute MiB/s are its ceiling on this machine, not S3's. The ratios are
//! what Jobline's code costs on top of the raw calls: for `csv-stats`, its
//! parsing, which is bound by this process's CPU.

mod costs;
mod transfers;

pub use costs::{CostLine, costs};

use crate::error::BenchError;
use crate::pricing::{S3_PRICES_CHECKED, S3Prices};
use crate::process::{ProcessUsage, USER_HZ, status_kib, usage_of};
use crate::sdk_clients;
use jobline_core::files::{
    InputFile, JobFiles, PART_BYTES, UploadFiles, UploadId, output_key, upload_key,
};
use jobline_core::job_types::{JobContext, JobError, JobHandler};
use jobline_core::{Clock, JobId};
use jobline_jobs::CsvStats;
use jobline_jobs::csv_stats::MAX_LINE_BYTES;
use jobline_s3::S3Bucket;
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use transfers::{OUTPUT_NAME, Scratch};

/// The CSV's size unless `--files-mb` says otherwise, MiB.
pub const DEFAULT_MEGABYTES: u64 = 256;

/// What `scripts/bench` sets for this measurement, so that memory freed by
/// one run is not reused unseen by the next.
pub const GLIBC_TUNABLES: &str = "glibc.malloc.mmap_threshold=131072";

const MIB: u64 = 1024 * 1024;

/// The caller the upload belongs to.
const OWNER: &str = "jobline-bench";

/// One run's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunFigures {
    pub seconds: f64,
    pub mib_per_second: f64,
    /// This process's CPU time over the run: the SDK, the HTTP client and
    /// (Jobline's runs) the handler and the streams.
    pub cpu_seconds: f64,
    /// moto's CPU time over the run's wall time, in % of one core.
    pub emulator_cpu_percent: Option<f64>,
    /// `VmRSS` just before the run, MiB.
    pub rss_before_mib: f64,
    /// `VmHWM` after the run (reset at its start) less `rss_before_mib`.
    pub peak_added_mib: f64,
}

/// A baseline and Jobline's run of the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideBySide {
    pub baseline: RunFigures,
    pub jobline: RunFigures,
    /// Jobline's MiB/s over the baseline's.
    pub ratio: f64,
    /// What Jobline's run should hold at most, besides what the baseline
    /// holds too.
    pub bound: String,
}

impl SideBySide {
    fn of(baseline: RunFigures, jobline: RunFigures, bound: String) -> Self {
        Self {
            ratio: jobline.mib_per_second / baseline.mib_per_second,
            baseline,
            jobline,
            bound,
        }
    }
}

/// The measurement's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileFigures {
    pub csv_bytes: u64,
    pub csv_rows: u64,
    pub output_bytes: u64,
    pub part_bytes: usize,
    /// The chunks of the raw read, as S3's connection handed them over.
    pub read_chunks: u64,
    pub largest_chunk_bytes: u64,
    /// `GLIBC_TUNABLES` as the harness ran with it.
    pub glibc_tunables: Option<String>,
    /// Raw read, then csv-stats.
    pub reading: SideBySide,
    /// Raw multipart upload, then `OutputWriter`.
    pub writing: SideBySide,
    pub costs: Vec<CostLine>,
    pub prices: S3Prices,
    pub prices_checked: &'static str,
}

/// Takes the measurement against the emulator at `emulator` (its process
/// `emulator_pid`, if known), with a CSV of `megabytes` MiB written under
/// `scratch` (and removed after).
pub async fn measure(
    emulator: &str,
    emulator_pid: Option<u32>,
    megabytes: u64,
    scratch: &Path,
) -> Result<FileFigures, BenchError> {
    let clients = sdk_clients(emulator).await;
    let bucket_name = format!("jobline-bench-files-{}", uuid::Uuid::new_v4().simple());
    jobline_local::provision::create_bucket(&clients.s3, &bucket_name, 30)
        .await
        .map_err(BenchError::aws)?;
    let bucket = Arc::new(S3Bucket::from_sdk(&clients.sdk, &bucket_name));
    let measured = measure_in(
        &clients.s3,
        &bucket,
        &bucket_name,
        emulator_pid,
        megabytes,
        scratch,
    )
    .await;
    let emptied = transfers::empty_bucket(&clients.s3, &bucket_name).await;
    let figures = measured?;
    emptied?;
    Ok(figures)
}

async fn measure_in(
    s3: &aws_sdk_s3::Client,
    bucket: &Arc<S3Bucket>,
    bucket_name: &str,
    emulator_pid: Option<u32>,
    megabytes: u64,
    scratch: &Path,
) -> Result<FileFigures, BenchError> {
    std::fs::create_dir_all(scratch)
        .map_err(BenchError::io(format!("creating {}", scratch.display())))?;
    let file = Scratch(scratch.join(format!("files-{}.csv", uuid::Uuid::new_v4().simple())));
    let (csv_bytes, csv_rows) = transfers::generate(&file.0, megabytes * MIB)?;
    let upload_id = UploadId::new(Clock::system().now_ms());
    let key = upload_key(OWNER, upload_id);
    transfers::upload(s3, bucket_name, &key, &file.0, csv_bytes).await?;
    drop(file);
    let stored = UploadFiles::head(bucket.as_ref(), &key)
        .await
        .map_err(BenchError::aws)?
        .ok_or_else(|| BenchError::Unexpected(format!("{key} is not there after its upload")))?;
    let input = InputFile {
        upload_id,
        key: key.clone(),
        etag: stored.etag,
        size: stored.size,
        content_type: "text/csv".to_owned(),
        // Checked by the API at submission; the reader does not look at it.
        sha256: String::new(),
    };
    if input.size != csv_bytes {
        return Err(BenchError::Unexpected(format!(
            "{key} holds {} bytes, {csv_bytes} were sent",
            input.size
        )));
    }

    step("raw read (JobFiles::read)");
    let probe = Probe::start(emulator_pid)?;
    let read = transfers::raw_read(bucket.as_ref(), &input).await?;
    let raw_read_figures = probe.finish(read.bytes)?;
    check_size("the raw read", read.bytes, csv_bytes)?;

    step("csv-stats (JobHandler::run)");
    let ctx = context(bucket, vec![input.clone()]);
    let payload = json!({"input": {"upload": upload_id.to_string()}});
    let probe = Probe::start(emulator_pid)?;
    let result = CsvStats
        .run(&ctx, payload)
        .await
        .map_err(job_error("csv-stats"))?;
    let csv_stats_figures = probe.finish(csv_bytes)?;
    if result["rows"] != json!(csv_rows) || result["bytes"] != json!(csv_bytes) {
        return Err(BenchError::Unexpected(format!(
            "csv-stats read {} rows and {} bytes, the file has {csv_rows} and {csv_bytes}",
            result["rows"], result["bytes"]
        )));
    }
    let reading = SideBySide::of(
        raw_read_figures,
        csv_stats_figures,
        format!(
            "one line ≤ {} MiB + the reader's chunks",
            MAX_LINE_BYTES as u64 / MIB
        ),
    );

    let output_bytes = megabytes * MIB;
    let block = transfers::block();
    step("raw multipart upload (SDK)");
    let raw_key = output_key(JobId::random(), 1, "raw.csv");
    let probe = Probe::start(emulator_pid)?;
    transfers::raw_write(s3, bucket_name, &raw_key, output_bytes, &block).await?;
    let raw_write_figures = probe.finish(output_bytes)?;
    check_object(bucket, &raw_key, output_bytes).await?;

    step("OutputWriter (JobContext::create_output)");
    let ctx = context(bucket, Vec::new());
    let probe = Probe::start(emulator_pid)?;
    let written = transfers::write_output(&ctx, output_bytes, &block).await?;
    let output_writer_figures = probe.finish(output_bytes)?;
    check_size("the output writer", written, output_bytes)?;
    check_object(
        bucket,
        &output_key(ctx.job_id, ctx.attempt, OUTPUT_NAME),
        output_bytes,
    )
    .await?;
    let writing = SideBySide::of(
        raw_write_figures,
        output_writer_figures,
        format!(
            "one {} MiB part + the SDK's buffers",
            PART_BYTES as u64 / MIB
        ),
    );

    let prices = S3Prices::US_EAST_1;
    Ok(FileFigures {
        csv_bytes,
        csv_rows,
        output_bytes,
        part_bytes: PART_BYTES,
        read_chunks: read.chunks,
        largest_chunk_bytes: read.largest_chunk,
        glibc_tunables: std::env::var("GLIBC_TUNABLES").ok(),
        reading,
        writing,
        costs: costs(&prices),
        prices,
        prices_checked: S3_PRICES_CHECKED,
    })
}

/// Says which run is next, on stderr.
fn step(what: &str) {
    eprintln!("    {what}");
}

fn job_error(what: &'static str) -> impl FnOnce(JobError) -> BenchError {
    move |error| BenchError::Unexpected(format!("{what} failed: {error}"))
}

fn check_size(what: &str, bytes: u64, expected: u64) -> Result<(), BenchError> {
    if bytes == expected {
        Ok(())
    } else {
        Err(BenchError::Unexpected(format!(
            "{what} moved {bytes} bytes of {expected}"
        )))
    }
}

/// Checks that `key` holds `size` bytes.
async fn check_object(bucket: &S3Bucket, key: &str, size: u64) -> Result<(), BenchError> {
    let stored = UploadFiles::head(bucket, key)
        .await
        .map_err(BenchError::aws)?;
    check_size(key, stored.map_or(0, |object| object.size), size)
}

/// A job's context with `bucket` and `inputs`, as the worker builds it.
fn context(bucket: &Arc<S3Bucket>, inputs: Vec<InputFile>) -> JobContext {
    let files: Arc<dyn JobFiles> = Arc::clone(bucket) as Arc<dyn JobFiles>;
    let deadline = Clock::system().now_ms() + 3_600_000;
    JobContext::new(JobId::random(), 1, deadline, CancellationToken::new())
        .with_files(files, inputs)
}

/// A run being observed: its start, the CPU time so far, and `VmRSS` when
/// the peak was reset.
struct Probe {
    started: Instant,
    rss_before_kib: u64,
    cpu_ticks: u64,
    emulator: Option<(u32, ProcessUsage)>,
}

/// A value of this process's `/proc/self/status`, KiB.
fn own_status_kib(key: &str) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(BenchError::io("reading /proc/self/status"))?;
    status_kib(&status, key)
        .ok_or_else(|| BenchError::Unexpected(format!("no {key} in /proc/self/status")))
}

impl Probe {
    fn start(emulator_pid: Option<u32>) -> Result<Self, BenchError> {
        let emulator = emulator_pid
            .map(|pid| usage_of(pid).map(|usage| (pid, usage)))
            .transpose()?;
        // 5: reset the peak RSS (VmHWM) to the current RSS.
        std::fs::write("/proc/self/clear_refs", "5").map_err(BenchError::io(
            "resetting the peak RSS (/proc/self/clear_refs)",
        ))?;
        let rss_before_kib = own_status_kib("VmRSS")?;
        let cpu_ticks = usage_of(std::process::id())?.cpu_ticks;
        Ok(Self {
            started: Instant::now(),
            rss_before_kib,
            cpu_ticks,
            emulator,
        })
    }

    /// The run's figures, `bytes` moved.
    fn finish(self, bytes: u64) -> Result<RunFigures, BenchError> {
        let seconds = self.started.elapsed().as_secs_f64();
        let peak_kib = own_status_kib("VmHWM")?;
        let cpu_ticks = usage_of(std::process::id())?.cpu_ticks;
        let emulator_cpu_percent = match self.emulator {
            Some((pid, before)) => Some(usage_of(pid)?.cpu_ms_since(&before) / 10.0 / seconds),
            None => None,
        };
        let kib = |kib: u64| kib as f64 / 1024.0;
        Ok(RunFigures {
            seconds,
            mib_per_second: bytes as f64 / MIB as f64 / seconds,
            cpu_seconds: cpu_ticks.saturating_sub(self.cpu_ticks) as f64 / USER_HZ as f64,
            emulator_cpu_percent,
            rss_before_mib: kib(self.rss_before_kib),
            peak_added_mib: kib(peak_kib.saturating_sub(self.rss_before_kib)),
        })
    }
}
