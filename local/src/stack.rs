//! The whole local stack, assembled in one place: the API behind the HTTP
//! server, the worker behind `pollers` pollers, the sweeper on a timer
//! (the deployed stack's schedule), on one store and queue, and, with
//! [`Webhooks`], the notifier behind the stream relay and a poller of its
//! own queue.
//! `jobline-local serve`, the integration tests and the benchmark build it
//! with [`Stack::builder`], so all three run the same wiring.
//!
//! [`serve`] runs it until a stop, then stops in order: the server stops
//! accepting and the pollers stop receiving at once; batches in hand are
//! processed and their messages deleted, open HTTP requests get a bounded
//! drain, and every request already in the API runs to its end.

use crate::fair::FairShare;
use crate::firer::{Firer, LocalTimers};
use crate::poller::{Poller, PollerSettings, SQS_MAX_BATCH};
use crate::relay::StreamRelay;
use crate::server::{self, HttpSettings};
use crate::shutdown;
use crate::stream::StreamReader;
use jobline_api::Api;
use jobline_core::caller::CallerCounts;
use jobline_core::files::{JobFiles, UploadFiles};
use jobline_core::limits::NOTIFIER_TIMEOUT_SECS;
use jobline_core::limits::QueueSettings;
use jobline_core::results::ResultStore;
use jobline_core::schedule::ScheduleStore;
use jobline_core::timers::Timers;
use jobline_core::{Clock, Config, JobQueue, JobStore, JobTypes, WorkerConfig};
use jobline_notifier::Notifier;
use jobline_sweeper::Sweeper;
use jobline_webhooks::{Deliverer, KeySource};
use jobline_worker::Worker;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The API, the worker, and how to feed and serve them.
#[derive(Debug)]
pub struct Stack {
    api: Arc<Api>,
    worker: Arc<Worker>,
    sweeper: Sweeper,
    sweep_interval: Duration,
    queue: Arc<dyn JobQueue>,
    poller: PollerSettings,
    queue_arn: String,
    pollers: usize,
    http: HttpSettings,
    notifier: Option<NotifierParts>,
    firer: Option<Firer>,
    /// The fair-queue window of the worker's pollers
    /// ([`PollerSettings::fair_window`]), when it has one.
    fair: Option<Arc<FairShare>>,
    clock: Clock,
}

/// What schedules and long delays need locally: the emulator's timers (the
/// stack's schedule group), which [`Firer`] fires, and the schedules table.
#[derive(Debug)]
pub struct Schedules {
    pub timers: Arc<dyn Timers>,
    pub store: Arc<dyn ScheduleStore>,
    pub max_per_caller: usize,
}

/// What webhooks need locally: the notifier's own store client (deployed it
/// has its own role), the master keys, the notifier's queue, the jobs
/// table's stream, and how to deliver.
#[derive(Debug)]
pub struct Webhooks {
    pub store: Arc<dyn JobStore>,
    pub keys: Arc<dyn KeySource>,
    pub queue: Arc<dyn JobQueue>,
    pub stream: StreamReader,
    pub deliverer: Deliverer,
    /// How its queue is polled ([`notifier_poller_settings`], as deployed).
    pub poller: PollerSettings,
}

/// The notifier and what feeds it.
#[derive(Debug)]
struct NotifierParts {
    notifier: Arc<Notifier>,
    queue: Arc<dyn JobQueue>,
    stream: StreamReader,
    poller: PollerSettings,
}

/// The notifier queue's event source mapping in the template: batches of
/// up to 10, no batching window, the queue's visibility and the function's
/// timeout.
pub fn notifier_poller_settings() -> PollerSettings {
    PollerSettings {
        batch_size: SQS_MAX_BATCH,
        batching_window: Duration::ZERO,
        wait_secs: 20,
        visibility_secs: i32::try_from(QueueSettings::NOTIFY.visibility_timeout_secs)
            .unwrap_or(i32::MAX),
        function_timeout: Duration::from_secs(u64::from(NOTIFIER_TIMEOUT_SECS)),
        // Webhook deliveries carry no caller group.
        fair_window: 0,
    }
}

/// Builds a [`Stack`]; every setting has the template's default.
#[derive(Debug)]
pub struct StackBuilder {
    store: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    /// The worker's and pollers' own store and queue, when they are not the
    /// API's (deployed, the two functions have their own clients and roles).
    worker_clients: Option<(Arc<dyn JobStore>, Arc<dyn JobQueue>)>,
    results: Option<Arc<dyn ResultStore>>,
    files: Option<(Arc<dyn UploadFiles>, Arc<dyn JobFiles>)>,
    config: Config,
    job_types: JobTypes,
    worker: WorkerConfig,
    poller: PollerSettings,
    queue_arn: String,
    pollers: usize,
    http: HttpSettings,
    sweep_interval: Duration,
    webhooks: Option<Webhooks>,
    schedules: Option<Schedules>,
    counts: Option<Arc<dyn CallerCounts>>,
    clock: Clock,
}

/// How often [`serve`] sweeps unless told otherwise: the template's
/// default schedule (`SweepIntervalMinutes`, 5).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

impl Stack {
    /// A stack on `store` and `queue`, configured by `config` (its worker
    /// settings included), with the built-in job types, 2 pollers and the
    /// template's event source mapping.
    pub fn builder(
        store: Arc<dyn JobStore>,
        queue: Arc<dyn JobQueue>,
        config: &Config,
    ) -> StackBuilder {
        StackBuilder {
            store,
            queue,
            worker_clients: None,
            results: None,
            files: None,
            worker: config.worker.clone(),
            config: config.clone(),
            // Locally, the demonstration types too: they are how Jobline is tried out.
            job_types: jobline_jobs::registry(true),
            poller: PollerSettings::default(),
            queue_arn: String::new(),
            pollers: 2,
            http: HttpSettings::default(),
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            webhooks: None,
            schedules: None,
            counts: None,
            clock: Clock::system(),
        }
    }

    /// The one clock every part of the stack reads (a test's movable one).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    pub fn sweeper(&self) -> &Sweeper {
        &self.sweeper
    }

    /// The firer of the timers, with schedules on.
    pub fn firer(&self) -> Option<&Firer> {
        self.firer.as_ref()
    }

    /// The notifier, with webhooks on.
    pub fn notifier(&self) -> Option<&Arc<Notifier>> {
        self.notifier.as_ref().map(|parts| &parts.notifier)
    }

    /// A poller feeding this stack's worker from its queue (sharing the
    /// queue's fair-queue window with the others, when it has one).
    pub fn poller(&self) -> Poller {
        let poller = Poller::new(
            Arc::clone(&self.queue),
            Arc::clone(&self.worker),
            self.poller,
            self.queue_arn.clone(),
        )
        .with_clock(self.clock.clone());
        match &self.fair {
            Some(share) => poller.with_fair_share(Arc::clone(share)),
            None => poller,
        }
    }
}

impl StackBuilder {
    pub fn job_types(mut self, job_types: JobTypes) -> Self {
        self.job_types = job_types;
        self
    }

    /// Gives the worker and its pollers their own store and queue (clients
    /// of their own), as the worker function has deployed; by default they
    /// share the API's.
    pub fn worker_clients(mut self, store: Arc<dyn JobStore>, queue: Arc<dyn JobQueue>) -> Self {
        self.worker_clients = Some((store, queue));
        self
    }

    /// The worker's settings, instead of `config.worker`.
    /// Where uploads are checked and kept (the API), and inputs read and
    /// outputs written (the worker).
    pub fn files<F: UploadFiles + JobFiles + 'static>(mut self, files: Arc<F>) -> Self {
        self.files = Some((files.clone(), files));
        self
    }

    /// Where the API and the worker keep results over the job item's budget.
    pub fn results(mut self, results: Arc<dyn ResultStore>) -> Self {
        self.results = Some(results);
        self
    }

    pub fn worker_config(mut self, worker: WorkerConfig) -> Self {
        self.worker = worker;
        self
    }

    pub fn poller_settings(mut self, poller: PollerSettings) -> Self {
        self.poller = poller;
        self
    }

    /// The queue's ARN, as the mapping puts it in each record.
    pub fn queue_arn(mut self, queue_arn: impl Into<String>) -> Self {
        self.queue_arn = queue_arn.into();
        self
    }

    /// How many pollers [`serve`] runs; 0 serves the API alone (and its
    /// sweeper), so another process can run the worker and the notifier,
    /// as deployed.
    pub fn pollers(mut self, pollers: usize) -> Self {
        self.pollers = pollers;
        self
    }

    /// Turns webhooks on: callback URLs are accepted (under `config`'s
    /// policy), the API hands out callers' secrets, and [`serve`] runs the
    /// notifier on the stream and its queue.
    pub fn webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// Turns schedules and delays past 15 minutes on: the API writes
    /// timers and schedules, and [`serve`] fires the timers ([`Firer`]).
    pub fn schedules(mut self, schedules: Schedules) -> Self {
        self.schedules = Some(schedules);
        self
    }

    /// The clock every part reads (default: the wall clock); tests pass a
    /// [`Clock::movable`] and move it by hours and days.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn http(mut self, http: HttpSettings) -> Self {
        self.http = http;
        self
    }

    /// Bounds each caller's unfinished jobs, counted in `counts`: the API
    /// counts admissions up, the notifier's relay (which needs webhooks on:
    /// it reads the table's stream) final states down.
    pub fn caller_counts(mut self, counts: Arc<dyn CallerCounts>) -> Self {
        self.counts = Some(counts);
        self
    }

    /// How often [`serve`] runs the sweeper (default
    /// [`DEFAULT_SWEEP_INTERVAL`]; at least a millisecond).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval.max(Duration::from_millis(1));
        self
    }

    pub fn build(self) -> Stack {
        let mut api = Api::new(
            self.store.clone(),
            Arc::clone(&self.queue),
            self.job_types.clone(),
            &self.config,
        )
        .with_clock(self.clock.clone());
        let mut sweeper = Sweeper::new(self.store.clone());
        let (store, queue) = self.worker_clients.unwrap_or((self.store, self.queue));
        if let Some(webhooks) = &self.webhooks {
            api = api.with_webhook_keys(Arc::clone(&webhooks.keys));
            sweeper = sweeper.with_webhooks(Arc::clone(&webhooks.queue));
        }
        if let Some(counts) = &self.counts {
            api = api.with_caller_counts(Arc::clone(counts));
        }
        let counts = self.counts;
        let notifier = self.webhooks.map(|webhooks| {
            let mut notifier = Notifier::new(
                webhooks.store,
                Arc::clone(&webhooks.queue),
                webhooks.keys,
                webhooks.deliverer,
                &self.config.webhooks,
            )
            .with_clock(self.clock.clone());
            if let Some(counts) = counts {
                notifier = notifier.with_counts(counts);
            }
            NotifierParts {
                notifier: Arc::new(notifier),
                queue: webhooks.queue,
                stream: webhooks.stream,
                poller: webhooks.poller,
            }
        });
        let mut worker = Worker::new(store, Arc::clone(&queue), self.job_types, self.worker)
            .with_clock(self.clock.clone());
        if let Some((uploads, files)) = self.files {
            api = api.with_files(uploads);
            worker = worker.with_files(files);
        }
        if let Some(results) = self.results {
            api = api.with_results(Arc::clone(&results));
            worker = worker.with_results(results);
        }
        let mut timers = None;
        if let Some(schedules) = self.schedules {
            let local = Arc::new(LocalTimers::new(schedules.timers, self.clock.clone()));
            api = api
                .with_timers(local.clone())
                .with_schedules(schedules.store, schedules.max_per_caller);
            timers = Some(local);
        }
        let api = Arc::new(api);
        let firer = timers.map(|timers| Firer::new(timers, Arc::clone(&api), self.clock.clone()));
        Stack {
            api,
            firer,
            worker: Arc::new(worker),
            sweeper,
            sweep_interval: self.sweep_interval,
            queue,
            poller: self.poller,
            fair: (self.poller.fair_window > 0)
                .then(|| Arc::new(FairShare::new(self.poller.fair_window))),
            queue_arn: self.queue_arn,
            pollers: self.pollers,
            http: self.http,
            notifier,
            clock: self.clock,
        }
    }
}

/// A part of the stack that ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("a poller failed: {0}")]
    Poller(#[source] tokio::task::JoinError),
    #[error("the HTTP server failed: {0}")]
    Server(#[source] tokio::task::JoinError),
    #[error("the sweeper failed: {0}")]
    Sweeper(#[source] tokio::task::JoinError),
    #[error("the notifier failed: {0}")]
    Notifier(#[source] tokio::task::JoinError),
    #[error("the timers' firer failed: {0}")]
    Firer(#[source] tokio::task::JoinError),
}

/// Runs `sweeper` every `interval` until `stop`; a failed run is logged and
/// the next one starts over, as the deployed schedule's would.
async fn sweep_every(
    sweeper: Sweeper,
    clock: Clock,
    interval: Duration,
    mut stop: shutdown::Shutdown,
) {
    loop {
        tokio::select! {
            () = stop.requested() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let report = sweeper.sweep_once(clock.now_ms()).await;
        report.metrics.emit();
        if report.swept + report.requeued + report.failed > 0 {
            tracing::info!(
                swept = report.swept,
                requeued = report.requeued,
                failed = report.failed,
                scanned = report.scanned,
                "sweep done"
            );
        }
    }
}

/// How often [`serve`] exports the spans ended meanwhile, when an OTLP
/// exporter is installed (`jobline_core::spans`): a long-running process
/// has no invocation to flush at the end of, as a Lambda function has.
pub const SPAN_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Exports the ended spans every `interval` until `stop`, if an exporter
/// is installed; returns at once if none is.
async fn flush_spans_every(interval: Duration, mut stop: shutdown::Shutdown) {
    if !jobline_core::spans::exporting() {
        return;
    }
    loop {
        tokio::select! {
            () = stop.requested() => return,
            () = tokio::time::sleep(interval) => {}
        }
        jobline_core::spans::flush().await;
    }
}

/// Serves `stack`'s API on `listener` and runs its pollers until `shutdown`
/// completes, then stops as the module says and returns once all is done.
pub async fn serve(
    stack: Stack,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (trigger, stop) = shutdown::channel();
    let mut pollers = JoinSet::new();
    for _ in 0..stack.pollers {
        let (poller, stop) = (stack.poller(), stop.clone());
        pollers.spawn(async move { poller.run(stop).await });
    }
    let mut notifier = JoinSet::new();
    // With no pollers this process serves the API alone; the notifier runs
    // beside the worker, in the other one.
    if let Some(parts) = stack.notifier.filter(|_| stack.pollers > 0) {
        let relay = StreamRelay::new(parts.stream, Arc::clone(&parts.notifier));
        let relay_stop = stop.clone();
        notifier.spawn(async move { relay.run(relay_stop).await });
        let poller = Poller::new(parts.queue, parts.notifier, parts.poller, String::new())
            .with_clock(stack.clock.clone());
        let poller_stop = stop.clone();
        notifier.spawn(async move { poller.run(poller_stop).await });
    }
    let mut firer = JoinSet::new();
    if let Some(timers) = stack.firer.clone() {
        let firer_stop = stop.clone();
        firer.spawn(async move { timers.run(firer_stop).await });
    }
    let sweeper = tokio::spawn(sweep_every(
        stack.sweeper.clone(),
        stack.clock.clone(),
        stack.sweep_interval,
        stop.clone(),
    ));
    let spans = tokio::spawn(flush_spans_every(SPAN_FLUSH_INTERVAL, stop.clone()));
    let server = tokio::spawn(server::run(
        listener,
        Arc::clone(&stack.api),
        stack.http,
        stop,
    ));
    shutdown.await;
    tracing::info!("stopping: finishing the batches in hand and the open requests");
    trigger.stop();
    let mut result = server.await.map_err(ServeError::Server);
    if let Err(error) = sweeper.await {
        result = result.and(Err(ServeError::Sweeper(error)));
    }
    while let Some(joined) = pollers.join_next().await {
        if let Err(error) = joined {
            result = result.and(Err(ServeError::Poller(error)));
        }
    }
    while let Some(joined) = firer.join_next().await {
        if let Err(error) = joined {
            result = result.and(Err(ServeError::Firer(error)));
        }
    }
    while let Some(joined) = notifier.join_next().await {
        if let Err(error) = joined {
            result = result.and(Err(ServeError::Notifier(error)));
        }
    }
    // The last spans, once every part has stopped.
    let _ = spans.await;
    jobline_core::spans::flush().await;
    tracing::info!("stopped");
    result
}
