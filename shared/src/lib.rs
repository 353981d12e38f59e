//! Jobline's shared library: the job model, the job types, configuration,
//! metrics, and the only code that talks to AWS (DynamoDB through
//! [`store::JobStore`], SQS through [`queue::JobQueue`]).

pub mod aws;
pub mod config;
pub mod error;
pub mod job;
pub mod job_types;
#[cfg(feature = "memory")]
pub mod memory;
pub mod metrics;
pub mod provision;
pub mod queue;
pub mod store;
pub mod telemetry;

pub use config::{Config, WorkerConfig};
pub use error::{ConfigError, QueueError, StoreError};
pub use job::{JobId, JobRecord, JobRequest, JobState};
pub use job_types::{JobError, JobHandler, JobTypes};
pub use metrics::{Metric, Metrics};
pub use queue::{JobMessage, JobQueue, SqsJobQueue};
pub use store::{Completion, DynamoJobStore, JobStore};
