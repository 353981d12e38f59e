//! AWS calls per job, counted by a recording proxy between the SDK and the
//! emulator while the real [`Api`](jobline_api::Api) and
//! [`Worker`](jobline_worker::Worker) (fed by the local poller,
//! the event source mapping's stand-in) process a few jobs.
//!
//! Three phases, each counted on its own:
//! 1. submit, one job at a time: each should be one `PutItem`, answered
//!    before its `SendMessage` is sent (the API writes, then sends, so a
//!    message never precedes its record; the proxy holds each answer for a
//!    round trip's time, so the order shows);
//! 2. work: each job should cost the worker two writes (the claim and the
//!    completion) and no read; the poller's `ReceiveMessage` and
//!    `DeleteMessageBatch` are the mapping's, counted apart;
//! 3. duplicate delivery of every finished job: one refused conditional
//!    write each, and still no read.
//!
//! DynamoDB's write units per job come from what was really written, read
//! back from the table's stream and priced by DynamoDB's rules
//! (`write_units.rs`): moto reports no consumed capacity.

mod write_units;

pub use write_units::{Change, WritePhase, WriteUnitFigures, WriteUnits};
pub(crate) use write_units::{describe_indexes, read_changes};

use crate::aws_call::{CallCount, Operation, RecordedCall, Service, tally};
use crate::endpoint::{AwsEndpoint, Backend};
use crate::error::{BenchError, within};
use crate::measure::{Resources, jobline, submit};
use crate::pricing::item_bytes;
use crate::sdk_clients;
use jobline_core::{JobId, JobMessage, JobQueue, JobState, ReadStore};
use jobline_dynamodb::item_from_record;
use jobline_local::Clients;
use jobline_local::poller::Poller;
use jobline_local::stream::StreamReader;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use write_units::Written;

/// How long the proxy holds each answer: about an in-region AWS round
/// trip, so that concurrent calls overlap at the proxy (moto alone answers
/// in about a millisecond, less than the SDK takes to sign the next call).
const PROXY_LATENCY: Duration = Duration::from_millis(10);

/// How long each phase may take.
const PHASE_TIMEOUT_SECS: u64 = 120;

/// Calls of one operation per job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerJob {
    pub calls: f64,
    pub failed: f64,
}

/// The calls of one phase, per job.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseCalls {
    /// By operation (`"DynamoDB.PutItem"` …).
    pub per_operation: BTreeMap<String, PerJob>,
    pub dynamodb_writes: f64,
    pub dynamodb_reads: f64,
    pub sqs_requests: f64,
}

impl PhaseCalls {
    /// The calls of `calls`, per job (or occurrence) of `jobs`.
    pub fn of(calls: &[RecordedCall], jobs: usize) -> Self {
        let jobs = jobs.max(1) as f64;
        let count = |keep: fn(&Operation) -> bool| {
            calls.iter().filter(|call| keep(&call.operation)).count() as f64 / jobs
        };
        Self {
            per_operation: tally(calls)
                .into_iter()
                .map(|(operation, CallCount { calls, failed })| {
                    (
                        operation,
                        PerJob {
                            calls: calls as f64 / jobs,
                            failed: failed as f64 / jobs,
                        },
                    )
                })
                .collect(),
            dynamodb_writes: count(Operation::is_dynamodb_write),
            dynamodb_reads: count(Operation::is_dynamodb_read),
            sqs_requests: count(|operation| operation.service == Service::Sqs),
        }
    }

    /// Calls of `operation` per job (0 when none).
    pub fn rate(&self, operation: &str) -> PerJob {
        self.per_operation
            .get(operation)
            .copied()
            .unwrap_or_default()
    }

    /// All calls per job.
    pub fn total(&self) -> f64 {
        self.per_operation.values().map(|rate| rate.calls).sum()
    }
}

/// The calls of each phase.
#[derive(Debug, Clone, Serialize)]
pub struct CallFigures {
    pub jobs: usize,
    pub submit: PhaseCalls,
    /// Submissions whose `PutItem` was answered before their `SendMessage` was sent.
    pub ordered_submits: usize,
    pub worker: PhaseCalls,
    /// The poller's calls: the event source mapping's, in AWS.
    pub event_source_mapping: PhaseCalls,
    pub worker_invocations: usize,
    pub duplicate_delivery: PhaseCalls,
    /// The largest job item, once finished, in bytes as DynamoDB sizes it.
    pub largest_item_bytes: usize,
    /// Write units per job, from the table's stream and the refused writes.
    pub write_units: WriteUnitFigures,
    /// What the budget of BENCHMARKS.md bounds.
    pub per_successful_job: PerSuccessfulJob,
}

/// The figures per successful job that the budget in BENCHMARKS.md bounds
/// ([`crate::report::Budget`]). Every job of the measurement succeeds (the
/// measurement fails otherwise), so these are per job of its first two
/// phases, submission and work; the duplicate deliveries of the third are
/// an added scenario, reported apart and not counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerSuccessfulJob {
    /// DynamoDB write units: the table's and every secondary index's, from
    /// the stream's item images, plus the refused conditional writes
    /// ([`WriteUnitFigures::per_job`]).
    pub write_units: f64,
    /// DynamoDB read units: each read request of the submission and the
    /// worker counted as 1 (a strongly consistent read of up to 4 KB; the
    /// proxy does not see sizes). Status polls are not measured, so not
    /// counted.
    pub read_units: f64,
    /// AWS requests: every request the proxy saw from the API's submission
    /// (`PutItem`, `SendMessage`), the event source mapping's shares of
    /// `ReceiveMessage` and `DeleteMessageBatch`, and the worker's claim,
    /// its `ChangeMessageVisibility` and the completion. In practice DynamoDB
    /// and SQS; a request to any other service would count too.
    pub aws_requests: f64,
}

impl PerSuccessfulJob {
    fn of(
        submit: &PhaseCalls,
        worker: &PhaseCalls,
        mapping: &PhaseCalls,
        write_units: &WriteUnitFigures,
    ) -> Self {
        Self {
            write_units: write_units.per_job.total,
            read_units: submit.dynamodb_reads + worker.dynamodb_reads,
            aws_requests: submit.total() + worker.total() + mapping.total(),
        }
    }
}

/// Counts the calls of `jobs` jobs through a proxy in front of `emulator`.
pub async fn measure(emulator: &str, jobs: usize) -> Result<CallFigures, BenchError> {
    let direct = sdk_clients(emulator).await;
    let resources = Resources::create(&direct, "calls").await?;
    let proxy = AwsEndpoint::start(Backend::Forward {
        upstream: emulator.to_owned(),
        latency: PROXY_LATENCY,
    })
    .await?;
    let figures = count(&direct, &resources, &proxy, jobs).await;
    resources.delete(&direct).await?;
    figures
}

async fn count(
    direct: &Clients,
    resources: &Resources,
    proxy: &AwsEndpoint,
    jobs: usize,
) -> Result<CallFigures, BenchError> {
    let config = &resources.config;
    let (api, poller) = jobline(&sdk_clients(&proxy.url()).await, resources);

    // 1. Submissions, one at a time, so each one's calls are its own.
    let mut submit_calls = Vec::new();
    let mut ordered_submits = 0;
    for _ in 0..jobs {
        submit(&api).await?;
        let calls = proxy.take_calls();
        let find = |name: &str| calls.iter().find(|c| c.operation.name == name);
        if let (Some(put), Some(send)) = (find("PutItem"), find("SendMessage")) {
            ordered_submits += usize::from(put.precedes(send));
        }
        submit_calls.extend(calls);
    }

    // 2. The worker, fed by the poller until every job is acknowledged.
    let worker_invocations = drain(&poller, jobs).await?;
    let (worker_calls, mapping_calls) = split_mapping(proxy.take_calls());

    // What the two phases wrote, from the table's stream (not counted).
    let mut stream =
        StreamReader::for_table(&direct.dynamodb, direct.streams.clone(), &config.table_name)
            .await
            .map_err(BenchError::aws)?;
    let changes = read_changes(&mut stream).await?;
    let (table_key, indexes) = describe_indexes(direct, &config.table_name).await?;

    let direct_store = direct.store(config);
    let mut largest_item_bytes = 0;
    let mut ids = Vec::new();
    for item in scan_ids(direct, &config.table_name).await? {
        let job = direct_store
            .get(item)
            .await
            .map_err(BenchError::aws)?
            .ok_or_else(|| BenchError::Unexpected(format!("job {item} vanished")))?;
        if job.state != JobState::Succeeded {
            return Err(BenchError::Unexpected(format!(
                "job {item} ended {} ({:?})",
                job.state, job.error
            )));
        }
        largest_item_bytes = largest_item_bytes.max(item_bytes(&item_from_record(&job)));
        ids.push(item);
    }
    if ids.len() != jobs {
        return Err(BenchError::Unexpected(format!(
            "{} of {jobs} jobs in the table",
            ids.len()
        )));
    }

    // 3. Every message again, sent straight to the emulator (not counted).
    let direct_queue = direct.queue(config);
    for &job_id in &ids {
        direct_queue
            .send(&JobMessage::new(job_id))
            .await
            .map_err(BenchError::aws)?;
    }
    drain(&poller, jobs).await?;
    let duplicate_calls = proxy.take_calls();
    let duplicate_changes = read_changes(&mut stream).await?;

    let refused = |calls: &[RecordedCall]| {
        calls
            .iter()
            .filter(|call| call.operation.is_dynamodb_write() && call.failed())
            .count()
    };
    let write_units = WriteUnitFigures::of(
        table_key,
        indexes,
        &Written {
            changes,
            refused: refused(&submit_calls) + refused(&worker_calls),
        },
        &Written {
            changes: duplicate_changes,
            refused: refused(&duplicate_calls),
        },
        largest_item_bytes,
        jobs,
    );
    let submit = PhaseCalls::of(&submit_calls, jobs);
    let worker = PhaseCalls::of(&worker_calls, jobs);
    let event_source_mapping = PhaseCalls::of(&mapping_calls, jobs);
    Ok(CallFigures {
        jobs,
        per_successful_job: PerSuccessfulJob::of(
            &submit,
            &worker,
            &event_source_mapping,
            &write_units,
        ),
        submit,
        ordered_submits,
        worker,
        event_source_mapping,
        worker_invocations,
        duplicate_delivery: PhaseCalls::of(&duplicate_calls, jobs),
        largest_item_bytes,
        write_units,
    })
}

/// Polls until `jobs` messages were acknowledged; returns the invocations.
pub(crate) async fn drain(poller: &Poller, jobs: usize) -> Result<usize, BenchError> {
    within(
        PHASE_TIMEOUT_SECS,
        "the worker to process every job",
        async {
            let (mut acknowledged, mut invocations) = (0, 0);
            while acknowledged < jobs {
                let outcome = poller.poll_once().await.map_err(BenchError::aws)?;
                if outcome.received > 0 {
                    invocations += 1;
                    acknowledged += outcome.received - outcome.failed.len();
                }
            }
            Ok(invocations)
        },
    )
    .await?
}

/// Splits the mapping's calls (`ReceiveMessage`, `DeleteMessageBatch`) from
/// the function's.
pub(crate) fn split_mapping(calls: Vec<RecordedCall>) -> (Vec<RecordedCall>, Vec<RecordedCall>) {
    calls.into_iter().partition(|call| {
        !matches!(
            call.operation.name.as_str(),
            "ReceiveMessage" | "DeleteMessageBatch"
        )
    })
}

/// The job ids in `table`, read straight from the emulator (not counted).
async fn scan_ids(clients: &Clients, table: &str) -> Result<Vec<JobId>, BenchError> {
    let items: Vec<_> = clients
        .dynamodb
        .scan()
        .table_name(table)
        .projection_expression("jobId")
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(BenchError::aws)?;
    items
        .iter()
        .map(|item| {
            item.get("jobId")
                .and_then(|v| v.as_s().ok())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| BenchError::Unexpected(format!("item without a job id: {item:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn recorded(operation: Operation, status: u16) -> RecordedCall {
        RecordedCall {
            operation,
            started: Instant::now(),
            finished: Instant::now(),
            status,
        }
    }

    #[test]
    fn the_mappings_calls_are_counted_apart_and_per_job() {
        let calls = vec![
            recorded(Operation::sqs("ReceiveMessage"), 200),
            recorded(Operation::dynamodb("UpdateItem"), 200),
            recorded(Operation::dynamodb("UpdateItem"), 400),
            recorded(Operation::sqs("DeleteMessageBatch"), 200),
            recorded(Operation::dynamodb("GetItem"), 200),
        ];
        let (worker, mapping) = split_mapping(calls);
        assert_eq!(PhaseCalls::of(&mapping, 2).total(), 1.0);
        let worker = PhaseCalls::of(&worker, 2);
        assert_eq!(
            worker.rate("DynamoDB.UpdateItem"),
            PerJob {
                calls: 1.0,
                failed: 0.5
            }
        );
        assert_eq!((worker.dynamodb_writes, worker.dynamodb_reads), (1.0, 0.5));
        assert_eq!(worker.rate("SQS.SendMessage").calls, 0.0);
        assert_eq!(PhaseCalls::of(&mapping, 1).sqs_requests, 2.0);
    }

    #[test]
    fn the_budgeted_figures_sum_the_submission_the_mapping_and_the_worker() {
        let phase = |operations: &[(Operation, u16)]| {
            let calls: Vec<_> = operations
                .iter()
                .map(|(op, status)| recorded(op.clone(), *status))
                .collect();
            PhaseCalls::of(&calls, 1)
        };
        let submit = phase(&[
            (Operation::dynamodb("PutItem"), 200),
            (Operation::sqs("SendMessage"), 200),
        ]);
        let worker = phase(&[
            (Operation::dynamodb("UpdateItem"), 200),
            (Operation::sqs("ChangeMessageVisibility"), 200),
            (Operation::dynamodb("UpdateItem"), 200),
            (Operation::dynamodb("GetItem"), 200),
        ]);
        let mapping = phase(&[
            (Operation::sqs("ReceiveMessage"), 200),
            (Operation::sqs("DeleteMessageBatch"), 200),
        ]);
        let write_units = WriteUnitFigures {
            per_job: WriteUnits {
                table: 3.0,
                indexes: BTreeMap::from([("i".to_owned(), 10.0)]),
                total: 13.0,
            },
            ..WriteUnitFigures::default()
        };
        assert_eq!(
            PerSuccessfulJob::of(&submit, &worker, &mapping, &write_units),
            PerSuccessfulJob {
                write_units: 13.0,
                read_units: 1.0,
                aws_requests: 8.0,
            }
        );
    }
}
