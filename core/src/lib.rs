//! Jobline's centre: the job model and what every part of Jobline agrees
//! on, with no AWS in it (`scripts/check-deps` fails if an AWS SDK enters
//! this crate's dependency tree).
//!
//! - [`job`]: a job's record and the pure rules of its state machine
//!   (queued, running, succeeded, failed, cancelled); [`view`]: a job as
//!   its client sees it.
//! - [`job_types`]: the job-type API ([`JobHandler`], the `JobContext` a
//!   handler runs in, the [`JobTypes`] registry); the types themselves live in `jobs/`.
//! - [`deadline`]: each job's time bound; [`backoff`]: the delays between
//!   retries; [`clock`]: the one clock every time-dependent decision reads.
//! - The ports, traits that say what Jobline needs of storage and messaging
//!   and nothing about AWS: [`store`] (the job records, split by role),
//!   [`queue`], [`results`], [`files`] (uploads a job reads, outputs it
//!   streams), [`activity`], [`timers`] and [`schedule`] (a
//!   caller's recurring schedules). Their adapters live in their
//!   own crates at the edge (`adapters/`), one per AWS service, so each
//!   function builds only the SDKs it calls; their fakes live in the test
//!   kit (`testkit/`).
//! - [`limits`]: the numbers every part shares (AWS's limits, the
//!   template's timeouts and queue settings), importing nothing;
//!   [`config`]: configuration read once from the environment.
//! - [`metrics`] (CloudWatch embedded metric format lines) and
//!   [`telemetry`] (the logs): both are lines on stdout, which Lambda hands
//!   to CloudWatch Logs, so neither needs an SDK; [`trace_context`] (a
//!   job's W3C `traceparent`) and [`spans`] (the steps of its trace,
//!   exported over OTLP when an endpoint is configured).

pub mod activity;
pub mod backoff;
pub mod caller;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod error;
pub mod files;
pub mod job;
pub mod job_types;
pub mod limits;
pub mod metrics;
pub mod queue;
pub mod results;
pub mod schedule;
pub mod spans;
pub mod store;
pub mod telemetry;
pub mod timers;
pub mod trace_context;
pub mod view;

pub use clock::Clock;
pub use config::{Config, WorkerConfig};
pub use error::{ConfigError, QueueError, StoreError};
pub use job::{JobId, JobRecord, JobRequest, JobState};
pub use job_types::{JobError, JobHandler, JobTypes};
pub use metrics::{Metric, Metrics};
pub use queue::{JobMessage, JobQueue};
pub use store::{
    ApiStore, CancelOutcome, CancelStore, Completion, Heartbeat, JobStore, NotifierStore,
    OperatorStore, ReadStore, Renewed, ReplayStore, SweeperStore, WorkerStore,
};
