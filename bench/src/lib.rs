//! `jobline-bench`: measures what Jobline costs to run. It is a harness,
//! not a test suite: every figure is a measurement reported as it came out,
//! and the goals are compared in the report, never asserted.
//!
//! What it measures, one module of [`measure`] each:
//! - [`measure::sizes`]: the stripped `bootstrap` and zip of each function.
//! - [`measure::init`]: process start to first `/next` on the Runtime API,
//!   against a hello-world `lambda_runtime` function, and the connections
//!   made before it.
//! - [`measure::calls`]: the AWS calls per job, recorded by a proxy in front
//!   of the emulator, and DynamoDB's write units per job (table and each
//!   index, by phase), computed from the item images of the table's stream.
//! - [`measure::cpu`]: CPU time, peak memory and log bytes per invocation of
//!   the release binaries, against an endpoint that answers at once.
//! - [`measure::logs`]: CloudWatch Logs bytes per job by source (the
//!   functions' lines and EMF, Lambda's platform records, the API access log).
//! - [`measure::cost`]: from those, the list price per million jobs.
//! - [`measure::schedules`]: what delayed jobs and recurring schedules cost
//!   per occurrence (a fire, a delayed submission, a timer's fire, a whole
//!   life), through the same proxy, with the real API and the local firer.
//! - [`measure::throughput`]: jobs per second end to end on the local stack,
//!   against the emulator's own ceiling for the same calls.
//! - [`measure::files`]: jobs on files: `csv-stats` streaming an upload and
//!   `OutputWriter` streaming an output, in MiB/s and peak memory, against
//!   raw reads and writes of the same bytes; and what files cost per GB.
//!
//! The goals are reported, not enforced; the budget per successful job at
//! the end of BENCHMARKS.md ([`report::Budget`]) is: the run fails when the
//! calls measurement exceeds it.
//!
//! The stand-ins that make this possible on one machine: a Lambda Runtime
//! API ([`runtime_api`]) and a recording AWS endpoint ([`endpoint`]) that
//! forwards to moto or answers from [`canned`]. Unlike the rest of Jobline
//! the harness calls the AWS SDK directly ([`sdk_clients`]): it has to, to
//! measure the emulator without Jobline in the way. It only ever talks to
//! endpoints on 127.0.0.1, so it uses fixed credentials.

pub mod aws_call;
pub mod canned;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod harness;
pub mod measure;
pub mod pricing;
pub mod process;
pub mod report;
pub mod runtime_api;
pub mod server;
pub mod stats;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::config::Credentials;
use jobline_local::Clients;

/// The region of everything the harness creates or pretends to be.
pub const REGION: &str = "us-east-1";

/// SDK clients for the endpoint at `url` (the emulator or a stand-in), with
/// fixed credentials the emulator accepts.
pub async fn sdk_clients(url: &str) -> Clients {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "AKIABENCHBENCHBENCH0",
            "bench-secret",
            None,
            None,
            "jobline-bench",
        ))
        .load()
        .await;
    Clients::from_sdk_config(&config)
}
