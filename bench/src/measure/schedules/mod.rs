//! What delayed jobs and recurring schedules cost per occurrence (issue
//! 22), counted as the calls measurement counts a job: the real [`Api`](jobline_api::Api)
//! (built as the fire function and the API build it, backlog bound
//! included) and the local firer ([`Firer`](jobline_local::firer::Firer), EventBridge Scheduler's
//! stand-in) on a moved clock, behind recording proxies in front of moto.
//!
//! Two proxies: one for the jobs table, SQS and EventBridge Scheduler, one
//! for the schedules table, so every DynamoDB call is known by its table.
//! Each step is done for `occurrences` at once and divided by them:
//!
//! 1. schedules created (`POST /schedules`), half `overlap: allow` at
//!    09:00 UTC, half `skip` at 10:00;
//! 2. the allow schedules' fire (one tick at 09:00:01), then their jobs'
//!    work, then the allow schedules deleted (`DELETE /schedules/{id}`);
//! 3. the skip schedules: a first fire (not counted), a fire the next day
//!    while that job is still queued (skipped), the jobs' work (not
//!    counted), and a fire the day after (the previous job finished: one
//!    `GetItem` more than allow); then they are deleted;
//! 4. a short delay (`delaySeconds` 2, the same path as any delay up to
//!    900 s: the message's `DelaySeconds`): the submissions, then the work
//!    once the messages are due;
//! 5. a long delay (`delaySeconds` 3600: a one-time timer): the
//!    submissions, the timers' fire an hour later (moved clock), the work.
//!
//! Write units: the jobs table's from its stream (`NEW_AND_OLD_IMAGES`), as
//! the calls measurement computes them; the schedules table has no stream,
//! so each of its writes is priced from the item before and after it (read
//! straight from moto around the step: 1 unit per started KB of the
//! larger), by the same rules. Read units: each `GetItem` is strongly
//! consistent, 1 unit per started 4 KB of the item; the per-caller bound's
//! `Query` (`Select=COUNT`) reads the owner's schedules already there. Log
//! bytes are computed from the lines' format ([`log`]) with the run's
//! values and EMF documents, not captured.

mod figures;
mod scene;

pub use figures::{Invocations, LifeFigures, PathFigures, lambda_ms, log};

use crate::error::BenchError;
use crate::measure::cost::DurationModel;
use crate::measure::logs::{self, LogSources};
use crate::pricing::gb_seconds;
use crate::report::Budget;
use figures::Recorded;
use jobline_api::fire::Fired;
use jobline_core::{JobId, Metric, Metrics, WorkerConfig};
use scene::{Scene, Step};
use serde::Serialize;
use serde_json::json;

/// Occurrences of each path unless told otherwise.
pub const DEFAULT_OCCURRENCES: usize = 50;

/// How many seconds the short delay waits: any delay up to 900 s takes the
/// same path (`SendMessage` with `DelaySeconds`), so a short one keeps the
/// run short.
const SHORT_DELAY_SECS: u64 = 2;
/// The long delay: past SQS's 15 minutes, so a one-time timer.
const LONG_DELAY_SECS: i64 = 3_600;

/// The schedules measurement's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleFigures {
    pub occurrences: usize,
    pub paths: Vec<PathFigures>,
    pub lives: Vec<LifeFigures>,
    /// Messages SQS held delayed right after the short delays' submissions.
    pub delayed_messages: u64,
    /// The largest schedule item, bytes as DynamoDB sizes it.
    pub largest_schedule_item_bytes: usize,
    /// The largest job item, likewise.
    pub largest_job_item_bytes: usize,
    pub assumed_aws_round_trip_ms: f64,
    pub system_log_level: String,
}

/// Measures every path `occurrences` times against `emulator`.
pub async fn measure(
    emulator: &str,
    occurrences: usize,
    model: &DurationModel,
    system_log_level: &str,
    budget: Option<&Budget>,
) -> Result<ScheduleFigures, BenchError> {
    let n = occurrences.max(1);
    let mut scene = Scene::start(emulator, 2 * n).await?;
    let taken = take(&mut scene, n, model, system_log_level, budget).await;
    scene.finish().await?;
    taken
}

/// Lambda's platform records and API Gateway's access log line, bytes.
struct LogSettings {
    platform: f64,
    access_log: f64,
}

async fn take(
    scene: &mut Scene,
    n: usize,
    model: &DurationModel,
    system_log_level: &str,
    budget: Option<&Budget>,
) -> Result<ScheduleFigures, BenchError> {
    let settings = LogSettings {
        platform: logs::platform_bytes_per_invocation(system_log_level)? as f64,
        access_log: logs::access_log_line_bytes(logs::access_log_format()?)? as f64,
    };
    let rt = model.aws_round_trip_ms;
    let mut paths = Vec::new();

    // 1. Schedules created through the API.
    let allow_body =
        r#"{"expression":"cron(0 9 * * ? *)","type":"primes","payload":{"upTo":1000}}"#;
    let skip_body = r#"{"expression":"cron(0 10 * * ? *)","type":"primes","payload":{"upTo":1000},"overlap":"skip"}"#;
    scene.flush().await?;
    let mut created = scene
        .api_requests("POST", "/schedules", allow_body, n, 201)
        .await?;
    created.merge(
        scene
            .api_requests("POST", "/schedules", skip_body, n, 201)
            .await?,
    );
    let (allow, skip) = created.ids.split_at(n);
    let (allow, skip) = (allow.to_vec(), skip.to_vec());
    let recorded = scene.take(Step::Api).await?;
    paths.push(api_path(
        scene,
        "a schedule's creation (POST /schedules, 201)",
        2 * n,
        &recorded,
        &created,
        model,
        &settings,
    ));

    // 2. The allow schedules' fire, their jobs' work, their deletion.
    scene.move_to_next(9, 0)?;
    let fired = scene.tick(n).await?;
    let recorded = scene.take(Step::Fire).await?;
    let created_logs = fire_logs(
        &Fired::Created {
            job_id: JobId::random(),
        },
        &[Metric::JobsAccepted, Metric::ScheduleFires],
        &settings,
    );
    paths.push(fire_path(
        scene,
        "a schedule's fire, overlap allow",
        fired,
        &recorded,
        created_logs,
        model,
    ));
    let fired_work = work_path(scene, "a fired job's claim and completion", n, model).await?;
    paths.push(fired_work);
    let deleted = scene.delete_schedules(&allow).await?;
    let recorded = scene.take(Step::Api).await?;
    paths.push(api_path(
        scene,
        "a schedule's deletion (DELETE /schedules/{id}, 204)",
        n,
        &recorded,
        &deleted,
        model,
        &settings,
    ));

    // 3. The skip schedules: skipped while the previous job waits, then fired.
    scene.move_to_next(10, 0)?;
    scene.tick(n).await?;
    scene.flush().await?;
    scene.move_to_next(10, 0)?;
    let fired = scene.tick(n).await?;
    let recorded = scene.take(Step::Fire).await?;
    let skipped_logs = fire_logs(&Fired::Skipped, &[Metric::ScheduleFiresSkipped], &settings);
    paths.push(fire_path(
        scene,
        "a schedule's fire, overlap skip, previous job unfinished (skipped)",
        fired,
        &recorded,
        skipped_logs,
        model,
    ));
    scene.drain(n).await?;
    scene.flush().await?;
    scene.move_to_next(10, 0)?;
    let fired = scene.tick(n).await?;
    let recorded = scene.take(Step::Fire).await?;
    paths.push(fire_path(
        scene,
        "a schedule's fire, overlap skip, previous job finished",
        fired,
        &recorded,
        created_logs,
        model,
    ));
    scene.drain(n).await?;
    scene.delete_schedules(&skip).await?;
    scene.flush().await?;

    // 4. A short delay: the message's DelaySeconds.
    let short = format!(
        r#"{{"type":"primes","payload":{{"upTo":1000}},"delaySeconds":{SHORT_DELAY_SECS}}}"#
    );
    let submitted = scene.api_requests("POST", "/jobs", &short, n, 202).await?;
    let delayed_messages = scene.delayed_messages().await?;
    let recorded = scene.take(Step::Api).await?;
    let short_submission = api_path(
        scene,
        "a short delayed job's submission (delaySeconds ≤ 900, 202)",
        n,
        &recorded,
        &submitted,
        model,
        &settings,
    );
    tokio::time::sleep(std::time::Duration::from_secs(SHORT_DELAY_SECS)).await;
    let short_work = work_path(
        scene,
        "a short delayed job's claim and completion",
        n,
        model,
    )
    .await?;

    // 5. A long delay: a one-time timer, fired an hour later.
    let long = format!(
        r#"{{"type":"primes","payload":{{"upTo":1000}},"delaySeconds":{LONG_DELAY_SECS}}}"#
    );
    let submitted = scene.api_requests("POST", "/jobs", &long, n, 202).await?;
    let recorded = scene.take(Step::Api).await?;
    let long_submission = api_path(
        scene,
        "a long delayed job's submission (delaySeconds > 900, 202)",
        n,
        &recorded,
        &submitted,
        model,
        &settings,
    );
    scene.advance_secs(LONG_DELAY_SECS + 2);
    let fired = scene.tick(n).await?;
    let recorded = scene.take(Step::Fire).await?;
    let sent = fire_logs(
        &Fired::Sent {
            job_id: JobId::random(),
            delay_secs: 0,
        },
        &[],
        &settings,
    );
    let long_fire = fire_path(
        scene,
        "a long delayed job's timer fire",
        fired,
        &recorded,
        sent,
        model,
    );
    let long_work = work_path(scene, "a long delayed job's claim and completion", n, model).await?;

    let lives = vec![
        LifeFigures::of(
            "a scheduled job (overlap allow), fire to success",
            &[&paths[1], &paths[2]],
            budget,
        ),
        LifeFigures::of(
            "a short delayed job, submission to success",
            &[&short_submission, &short_work],
            budget,
        ),
        LifeFigures::of(
            "a long delayed job, submission to success",
            &[&long_submission, &long_fire, &long_work],
            budget,
        ),
    ];
    paths.extend([
        short_submission,
        short_work,
        long_submission,
        long_fire,
        long_work,
    ]);
    Ok(ScheduleFigures {
        occurrences: n,
        paths,
        lives,
        delayed_messages,
        largest_schedule_item_bytes: scene.largest_schedule_item,
        largest_job_item_bytes: scene.largest_job_item,
        assumed_aws_round_trip_ms: rt,
        system_log_level: system_log_level.to_owned(),
    })
}

/// The API's requests of one kind: their count, the ids they answered
/// with, and their log bytes (the request line and the EMF documents).
#[derive(Debug, Default)]
pub(super) struct ApiReplies {
    pub count: usize,
    pub ids: Vec<String>,
    pub line_bytes: usize,
    pub emf_bytes: usize,
}

impl ApiReplies {
    fn merge(&mut self, other: Self) {
        self.count += other.count;
        self.ids.extend(other.ids);
        self.line_bytes += other.line_bytes;
        self.emf_bytes += other.emf_bytes;
    }
}

/// A path through the API: one API Gateway request and one invocation
/// each, billed its sequential AWS requests.
fn api_path(
    scene: &Scene,
    path: &str,
    occurrences: usize,
    recorded: &Recorded,
    replies: &ApiReplies,
    model: &DurationModel,
    settings: &LogSettings,
) -> PathFigures {
    let per = 1.0 / replies.count.max(1) as f64;
    let logs = LogSources {
        function_lines: replies.line_bytes as f64 * per,
        emf: replies.emf_bytes as f64 * per,
        platform: settings.platform,
        access_log: settings.access_log,
    };
    let sequential = recorded.own.len() as f64 / occurrences.max(1) as f64;
    let invocations = Invocations {
        api_gateway: 1.0,
        lambda: 1.0,
        lambda_gb_seconds: gb_seconds(
            model.api_memory_mb,
            lambda_ms(sequential, model.aws_round_trip_ms),
        ),
        scheduler: 0.0,
    };
    scene.path(path, occurrences, recorded, invocations, Some(logs))
}

/// The fire function's line (`fire`, with what it did) and its EMF
/// documents (`metrics` counted for the job type), per fire.
fn fire_logs(fired: &Fired, metrics: &[Metric], settings: &LogSettings) -> LogSources {
    let mut counted = Metrics::new();
    for metric in metrics {
        counted.count("primes", *metric);
    }
    LogSources {
        function_lines: log::line_bytes("fire", &[("fired", json!(format!("{fired:?}")))]) as f64,
        emf: log::emf_bytes(&counted) as f64,
        platform: settings.platform,
        access_log: 0.0,
    }
}

/// A fire: one EventBridge Scheduler invocation and one asynchronous
/// invocation of the fire function, billed its sequential AWS requests.
fn fire_path(
    scene: &Scene,
    path: &str,
    fires: usize,
    recorded: &Recorded,
    logs: LogSources,
    model: &DurationModel,
) -> PathFigures {
    let sequential = recorded.own.len() as f64 / fires.max(1) as f64;
    let invocations = Invocations {
        api_gateway: 0.0,
        lambda: 1.0,
        lambda_gb_seconds: gb_seconds(
            model.fire_memory_mb,
            lambda_ms(sequential, model.aws_round_trip_ms),
        ),
        scheduler: 1.0,
    };
    scene.path(path, fires, recorded, invocations, Some(logs))
}

/// The worker's part of `jobs` jobs (their claim and completion, with the
/// event source mapping's shares), fed by the poller until all are done.
async fn work_path(
    scene: &mut Scene,
    path: &str,
    jobs: usize,
    model: &DurationModel,
) -> Result<PathFigures, BenchError> {
    let invocations = scene.drain(jobs).await?;
    let recorded = scene.take(Step::Work).await?;
    let waves = crate::measure::BATCH_SIZE.div_ceil(WorkerConfig::default().concurrency.max(1));
    let per_job = invocations as f64 / jobs.max(1) as f64;
    let invocations = Invocations {
        api_gateway: 0.0,
        lambda: per_job,
        lambda_gb_seconds: per_job
            * gb_seconds(
                model.worker_memory_mb,
                lambda_ms(2.0 * waves as f64, model.aws_round_trip_ms),
            ),
        scheduler: 0.0,
    };
    Ok(scene.path(path, jobs, &recorded, invocations, None))
}
