//! Jobline's shared library: the job model, the job types, configuration,
//! metrics, and the only code that talks to AWS.
//!
//! # Layout: ports beside their adapters
//!
//! The rest of the workspace talks to storage and messaging through two
//! ports, traits that say what Jobline needs and nothing about AWS:
//!
//! - [`store::JobStore`] (in `store/mod.rs`), the job records. Its adapter
//!   [`store::DynamoJobStore`] (`store/dynamodb.rs`) writes them to
//!   DynamoDB, with the item codec and size budgets of `store/item.rs`.
//! - [`queue::JobQueue`] (in `queue/mod.rs`), the queues of job ids. Its
//!   adapter [`queue::SqsJobQueue`] (`queue/sqs.rs`) uses SQS.
//! - [`results::ResultStore`] (in `results/mod.rs`), results too large for
//!   a job's item. Its adapter [`results::S3ResultStore`] (`results/s3.rs`)
//!   uses S3 and hands out presigned links.
//! - [`activity::MetricHistory`] (in `activity/mod.rs`), the published
//!   metrics read back per minute for the console. Its adapter
//!   `activity::CloudWatchHistory` (`activity/cloudwatch.rs`, feature
//!   `cloudwatch`, which only the console and the local runner need) uses
//!   CloudWatch's `GetMetricData`.
//!
//! Each port also has a fake beside its adapter, for unit tests:
//! `store::memory::MemoryStore`, `queue::memory::MemoryQueue`,
//! `results::memory::MemoryResults` and `activity::memory::FixedHistory`. The fakes,
//! the record builders of `testing` and the `contract` suite that holds
//! fakes and adapters to one behaviour are compiled only for this crate's
//! tests and with the feature `memory`, which other crates enable in their
//! dev-dependencies.
//!
//! The other modules are plain code: [`job`] (the model and its state
//! rules), [`deadline`] (each job's time bound) and [`sweeper`] (which
//! enforces it through the store), [`job_types`], [`config`], [`aws`] (SDK
//! clients), [`provision`] (tables, queues and buckets for local runs and
//! tests), [`error`], [`metrics`] and [`telemetry`]; and [`webhook`], the
//! building blocks of webhook callbacks (Standard Webhooks signing with
//! per-caller secrets, the SSRF guard of callback URLs, and the deliverer
//! that connects only to the address it checked).

pub mod activity;
pub mod aws;
pub mod clock;
pub mod config;
#[cfg(any(test, feature = "memory"))]
pub mod contract;
pub mod deadline;
pub mod error;
pub mod job;
pub mod job_types;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod provision;
pub mod queue;
pub mod results;
pub mod store;
pub mod sweeper;
pub mod telemetry;
#[cfg(any(test, feature = "memory"))]
pub mod testing;
pub mod view;
pub mod webhook;

pub use clock::Clock;
pub use config::{Config, WorkerConfig};
pub use error::{ConfigError, QueueError, StoreError};
pub use job::{JobId, JobRecord, JobRequest, JobState};
pub use job_types::{JobError, JobHandler, JobTypes};
pub use metrics::{Metric, Metrics};
pub use queue::{JobMessage, JobQueue, SqsJobQueue};
pub use store::{CancelOutcome, Completion, DynamoJobStore, Heartbeat, JobStore, Renewed};
