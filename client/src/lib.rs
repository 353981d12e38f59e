//! A Rust client of the Jobline API: submit jobs and follow them, manage
//! recurring schedules, upload large inputs, and verify webhook events.
//!
//! - [`Client`]: one API (its base URL and [`Auth`]: none for the local
//!   server, a bearer token for a JWT authorizer, or a SigV4 [`Signer`] for
//!   IAM). Every call has a timeout and is retried as its [`RetryPolicy`]
//!   says: on `429` and `503` (honouring `Retry-After`), and on connection
//!   failures, with backoff; never on another 4xx.
//! - Jobs: [`Client::submit`] (a [`Submission`] carries one
//!   `Idempotency-Key` for all its retries), [`Client::status`],
//!   [`Client::wait`] (polling with backoff, each poll shown to a callback),
//!   [`Client::list`], [`Client::cancel`], [`Client::run_now`],
//!   [`Client::delete`]. Answers are typed ([`Job`], [`Accepted`],
//!   [`JobPage`]); [`Client::json`] gives the same calls answering raw JSON.
//! - Schedules: [`Client::create_schedule`], [`Client::schedules`],
//!   [`Client::schedule`], [`Client::update_schedule`], pause, resume,
//!   trigger, delete.
//! - Uploads: [`Client::upload_file`] hashes a file, asks for an upload,
//!   streams the file to its presigned URL and waits for it to be
//!   `complete`; a job names it in its payload as `{"input": {"upload":
//!   "<uploadId>"}}` ([`Upload::as_input`]).
//! - [`webhooks::verify`]: the receiving side of the jobs' webhooks.
//!
//! No AWS configuration is loaded here: for SigV4, hand the [`Signer`]
//! credentials, or a credentials provider such as an `aws_config::SdkConfig`'s.
//!
//! # Example
//!
//! ```no_run
//! use jobline_client::{Auth, Client, Submission, WaitOptions, Waited};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! # async fn example() -> Result<(), jobline_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:3000", Auth::None)?;
//!
//! // Submit a job, then wait for it, showing its progress.
//! let accepted = client
//!     .submit(&Submission::new("primes", json!({"upTo": 1_000_000})))
//!     .await?;
//! let options = WaitOptions::with_timeout(Duration::from_secs(120));
//! let waited = client
//!     .wait(accepted.job_id, &options, |job| {
//!         if let Some(progress) = &job.progress {
//!             eprintln!("{:>3.0}% {}", progress.fraction * 100.0, progress.message);
//!         }
//!     })
//!     .await?;
//! if let Waited::Finished { job, .. } = &waited {
//!     println!("{} {}: {:?}", job.job_id, job.status, job.result);
//! }
//!
//! // Upload a file, then submit a job naming it.
//! let upload = client.upload_file("sales.csv", "text/csv").await?;
//! let job = Submission::new("csv-stats", json!({"input": upload.as_input()}));
//! let accepted = client.submit(&job).await?;
//! println!("{}", accepted.status_url);
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod error;
mod jobs;
mod retry;
mod schedules;
mod transport;
mod types;
mod uploads;
mod wait;
pub mod webhooks;

pub use auth::{Auth, Credentials, SERVICE, Signer};
pub use client::{Client, REQUEST_TIMEOUT, RawJson, TRANSFER_TIMEOUT};
pub use error::{ClientError, SigningError};
pub use jobs::{Cancel, Deleted, RunNow};
pub use retry::RetryPolicy;
pub use schedules::{
    Fires, LastFire, ListSchedules, NewSchedule, Schedule, ScheduleChanges, SchedulePage, Triggered,
};
pub use types::{
    Accepted, DeliveryState, InputFile, Job, JobPage, ListJobs, OutputFile, Progress, Submission,
    WebhookDelivery, When,
};
pub use uploads::{InvalidUploadId, NewUpload, Upload, UploadId, UploadStatus, UploadTarget};
pub use wait::{WaitOptions, Waited};

/// The API's own types this client's answers use.
pub use jobline_core::schedule::{Overlap, ScheduleId};
pub use jobline_core::{JobId, JobState};
