//! The schedules measurement's stage: its own jobs table, queues,
//! schedules table and schedule group on the bench's moto, the two
//! recording proxies, the API, the firer and the worker's poller on one
//! movable clock, and what each step recorded ([`Scene::take`]).

use super::ApiReplies;
use super::figures::{Invocations, PathFigures, Recorded, log};
use crate::aws_call::RecordedCall;
use crate::endpoint::{AwsEndpoint, Backend};
use crate::error::BenchError;
use crate::measure::calls::{describe_indexes, drain, read_changes};
use crate::measure::logs::LogSources;
use crate::measure::{Resources, poller_settings};
use crate::pricing::{Item, SecondaryIndex, item_bytes, read_units, table_write_units};
use crate::sdk_clients;
use jobline_api::Api;
use jobline_core::Clock;
use jobline_dynamodb::schedules::DynamoScheduleStore;
use jobline_dynamodb::schedules::item::SCHEDULE_ID_ATTRIBUTE;
use jobline_local::firer::{Firer, LocalTimers};
use jobline_local::poller::Poller;
use jobline_local::provision::{self, local_arn, schedule_group_name, schedules_table_name};
use jobline_local::stream::StreamReader;
use jobline_local::{Clients, Stack};
use jobline_scheduler::TimerTarget;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long each proxy holds an answer, as the calls measurement's.
const PROXY_LATENCY: Duration = Duration::from_millis(10);
/// The template's `MaxBacklog` default: the backlog bound is on, as deployed.
const MAX_BACKLOG: u64 = 100_000;
const DAY_MS: i64 = 86_400_000;

/// What kind of step was recorded, which says what is not the path's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// API requests: the backlog bound's reading is apart.
    Api,
    /// A tick of the firer: the firer's own reading of the group, the
    /// deletion of fired one-time timers and the backlog reading are apart.
    Fire,
    /// The worker fed by the poller: all its own (the mapping's included).
    Work,
}

impl Step {
    fn apart(self, call: &RecordedCall) -> bool {
        let name = call.operation.to_string();
        match self {
            Self::Api => name == "SQS.GetQueueAttributes",
            Self::Fire => matches!(
                name.as_str(),
                "SQS.GetQueueAttributes"
                    | "Scheduler.ListSchedules"
                    | "Scheduler.GetSchedule"
                    | "Scheduler.DeleteSchedule"
            ),
            Self::Work => false,
        }
    }
}

#[derive(Debug)]
pub(super) struct Scene {
    direct: Clients,
    resources: Resources,
    schedules_table: String,
    group: String,
    /// The jobs table, SQS and EventBridge Scheduler.
    proxy: AwsEndpoint,
    /// The schedules table.
    schedules_proxy: AwsEndpoint,
    clock: Clock,
    api: Arc<Api>,
    firer: Firer,
    poller: Poller,
    stream: StreamReader,
    table_key: Vec<String>,
    indexes: Vec<SecondaryIndex>,
    /// The schedules table as the last step left it, by schedule id.
    schedule_items: HashMap<String, Item>,
    pub largest_schedule_item: usize,
    pub largest_job_item: usize,
}

impl Scene {
    /// Creates the resources and assembles Jobline on them, as the fire
    /// function and the API are built deployed (`max_per_caller` schedules
    /// a caller).
    pub async fn start(emulator: &str, max_per_caller: usize) -> Result<Self, BenchError> {
        let direct = sdk_clients(emulator).await;
        let resources = Resources::create(&direct, "schedules").await?;
        let name = &resources.config.table_name;
        let (schedules_table, group) = (schedules_table_name(name), schedule_group_name(name));
        provision::create_schedules_table(&direct.dynamodb, &schedules_table)
            .await
            .map_err(BenchError::aws)?;
        provision::create_schedule_group(&direct.scheduler, &group)
            .await
            .map_err(BenchError::aws)?;
        let forward = || Backend::Forward {
            upstream: emulator.to_owned(),
            latency: PROXY_LATENCY,
        };
        let proxy = AwsEndpoint::start(forward()).await?;
        let schedules_proxy = AwsEndpoint::start(forward()).await?;
        let (clients, schedule_clients) = (
            sdk_clients(&proxy.url()).await,
            sdk_clients(&schedules_proxy.url()).await,
        );
        let mut config = resources.config.clone();
        config.max_backlog = MAX_BACKLOG;
        let clock = Clock::movable();
        let timers = clients.timers(TimerTarget {
            group: group.clone(),
            target_arn: local_arn("lambda", "function:jobline-bench-fire"),
            role_arn: local_arn("iam", "role/jobline-bench-scheduler"),
            dead_letter_arn: None,
        });
        let timers = Arc::new(LocalTimers::new(Arc::new(timers), clock.clone()));
        let store = Arc::new(clients.store(&config));
        let queue = Arc::new(clients.queue(&config));
        let schedules =
            DynamoScheduleStore::new(schedule_clients.dynamodb.clone(), &schedules_table);
        let api = Arc::new(
            Api::new(
                store.clone(),
                queue.clone(),
                jobline_jobs::registry(true),
                &config,
            )
            .with_clock(clock.clone())
            .with_queue_depth(queue.clone())
            .with_timers(timers.clone())
            .with_schedules(Arc::new(schedules), max_per_caller),
        );
        let firer = Firer::new(timers, Arc::clone(&api), clock.clone());
        let poller = Stack::builder(store, queue, &config)
            .clock(clock.clone())
            .poller_settings(poller_settings())
            .queue_arn(&resources.queue_arn)
            .build()
            .poller();
        let stream = StreamReader::for_table(&direct.dynamodb, direct.streams.clone(), name)
            .await
            .map_err(BenchError::aws)?;
        let (table_key, indexes) = describe_indexes(&direct, name).await?;
        Ok(Self {
            direct,
            resources,
            schedules_table,
            group,
            proxy,
            schedules_proxy,
            clock,
            api,
            firer,
            poller,
            stream,
            table_key,
            indexes,
            schedule_items: HashMap::new(),
            largest_schedule_item: 0,
            largest_job_item: 0,
        })
    }

    /// Deletes what [`start`](Self::start) created.
    pub async fn finish(self) -> Result<(), BenchError> {
        let scheduler = &self.direct.scheduler;
        scheduler
            .delete_schedule_group()
            .name(&self.group)
            .send()
            .await
            .map_err(BenchError::aws)?;
        self.direct
            .dynamodb
            .delete_table()
            .table_name(&self.schedules_table)
            .send()
            .await
            .map_err(BenchError::aws)?;
        self.resources.delete(&self.direct).await
    }

    /// `path`'s figures from `recorded` over `occurrences`.
    pub fn path(
        &self,
        path: &str,
        occurrences: usize,
        recorded: &Recorded,
        invocations: Invocations,
        logs: Option<LogSources>,
    ) -> PathFigures {
        PathFigures::of(
            path,
            occurrences,
            recorded,
            &self.table_key,
            &self.indexes,
            invocations,
            logs,
        )
    }

    /// Takes what was recorded since the last take and drops it.
    pub async fn flush(&mut self) -> Result<(), BenchError> {
        self.take(Step::Work).await.map(drop)
    }

    /// What was recorded since the last take, as `step` recorded it.
    pub async fn take(&mut self, step: Step) -> Result<Recorded, BenchError> {
        let jobs_calls = self.proxy.take_calls();
        let schedule_calls = self.schedules_proxy.take_calls();
        let changes = read_changes(&mut self.stream).await?;
        for change in &changes {
            let bytes = change.new.as_ref().map_or(0, item_bytes);
            self.largest_job_item = self.largest_job_item.max(bytes);
        }
        let before = std::mem::take(&mut self.schedule_items);
        self.schedule_items = self.scan_schedules().await?;
        let after = &self.schedule_items;
        let item_sizes = before.values().chain(after.values()).map(item_bytes);
        self.largest_schedule_item = item_sizes.fold(self.largest_schedule_item, usize::max);

        let writes = schedule_calls
            .iter()
            .filter(|call| call.operation.is_dynamodb_write())
            .count();
        let mut read = 0.0;
        let mut queries = 0;
        let mean_schedule = mean_bytes(before.values().chain(after.values()));
        for call in &schedule_calls {
            match call.operation.name.as_str() {
                "GetItem" => read += f64::from(read_units(self.largest_schedule_item)),
                // The per-caller bound: the owner's schedules there before it.
                "Query" => {
                    read += f64::from(read_units((before.len() + queries) * mean_schedule));
                    queries += 1;
                }
                _ => {}
            }
        }
        let job_reads = jobs_calls.iter().filter(|c| c.operation.is_dynamodb_read());
        read += job_reads.count() as f64 * f64::from(read_units(self.largest_job_item));
        let (apart, mut own): (Vec<_>, Vec<_>) =
            jobs_calls.into_iter().partition(|call| step.apart(call));
        own.extend(schedule_calls);
        Ok(Recorded {
            own,
            apart,
            changes,
            schedule_write_units: writes as f64 * mean_write_units(&before, after),
            read_units: read,
        })
    }

    /// The schedules table, read straight from moto (not counted).
    async fn scan_schedules(&self) -> Result<HashMap<String, Item>, BenchError> {
        let items: Vec<Item> = self
            .direct
            .dynamodb
            .scan()
            .table_name(&self.schedules_table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(BenchError::aws)?;
        Ok(items
            .into_iter()
            .map(|item| {
                let id = item
                    .get(SCHEDULE_ID_ATTRIBUTE)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                (id, item)
            })
            .collect())
    }

    /// `count` requests `method uri` with `body` to the API, each answered
    /// `status`; the ids they answered with (`jobId` or `scheduleId`).
    pub async fn api_requests(
        &self,
        method: &str,
        uri: &str,
        body: &str,
        count: usize,
        status: u16,
    ) -> Result<ApiReplies, BenchError> {
        let mut replies = ApiReplies::default();
        for _ in 0..count {
            let request = http::Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "127.0.0.1:3000")
                .header("content-type", "application/json")
                .body(lambda_http::Body::from(body.to_owned()))
                .map_err(|e| BenchError::Unexpected(format!("request: {e}")))?;
            let reply = self.api.handle(request).await;
            let answered: Value =
                serde_json::from_slice(reply.response.body().as_ref()).unwrap_or(Value::Null);
            if reply.response.status().as_u16() != status {
                return Err(BenchError::Unexpected(format!(
                    "{method} {uri} answered {}: {answered}",
                    reply.response.status()
                )));
            }
            // The API's line: jobId and jobType for a job, then the status.
            let mut fields = Vec::new();
            if let Some(job) = answered["jobId"].as_str() {
                fields.push(("jobId", json!(job)));
                fields.push(("jobType", json!("primes")));
            }
            fields.push(("status", json!(status)));
            replies.count += 1;
            replies.line_bytes += log::line_bytes("request", &fields);
            replies.emf_bytes += log::emf_bytes(&reply.metrics);
            if let Some(id) = answered["jobId"]
                .as_str()
                .or(answered["scheduleId"].as_str())
            {
                replies.ids.push(id.to_owned());
            }
        }
        Ok(replies)
    }

    /// Deletes the schedules `ids` through the API.
    pub async fn delete_schedules(&self, ids: &[String]) -> Result<ApiReplies, BenchError> {
        let mut replies = ApiReplies::default();
        for id in ids {
            let uri = format!("/schedules/{id}");
            replies.merge(self.api_requests("DELETE", &uri, "", 1, 204).await?);
        }
        Ok(replies)
    }

    /// Moves the clock to one second past the next `hour`:`minute` UTC.
    pub fn move_to_next(&self, hour: i64, minute: i64) -> Result<(), BenchError> {
        let now = self.clock.now_ms();
        let mut at = now.div_euclid(DAY_MS) * DAY_MS + (hour * 60 + minute) * 60_000 + 1_000;
        if at <= now {
            at += DAY_MS;
        }
        self.advance_secs((at - now).div_euclid(1000) + 1);
        Ok(())
    }

    /// Moves the clock forward by `secs`.
    pub fn advance_secs(&self, secs: i64) {
        self.clock
            .advance(Duration::from_secs(u64::try_from(secs).unwrap_or(0)));
    }

    /// One tick of the firer, which must fire `expected` fires and fail none.
    pub async fn tick(&self, expected: usize) -> Result<usize, BenchError> {
        let report = self.firer.tick().await.map_err(BenchError::aws)?;
        if report.failed > 0 || report.fired != expected {
            return Err(BenchError::Unexpected(format!(
                "a tick fired {} and failed {}; {expected} fires were due",
                report.fired, report.failed
            )));
        }
        Ok(report.fired)
    }

    /// Feeds the worker until `jobs` messages are acknowledged; its invocations.
    pub async fn drain(&self, jobs: usize) -> Result<usize, BenchError> {
        drain(&self.poller, jobs).await
    }

    /// The messages SQS holds delayed, read straight from moto.
    pub async fn delayed_messages(&self) -> Result<u64, BenchError> {
        let attributes =
            provision::queue_attributes(&self.direct.sqs, &self.resources.queues.queue_url)
                .await
                .map_err(BenchError::aws)?;
        Ok(attributes
            .get("ApproximateNumberOfMessagesDelayed")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

/// The mean size of `items`, bytes (0 when there are none).
fn mean_bytes<'a>(items: impl Iterator<Item = &'a Item>) -> usize {
    let (count, total) = items.fold((0, 0), |(count, total), item| {
        (count + 1, total + item_bytes(item))
    });
    total.checked_div(count).unwrap_or(0)
}

/// The mean write units of the items that changed between `before` and
/// `after` (each on the larger of its two images); 1 when none changed.
fn mean_write_units(before: &HashMap<String, Item>, after: &HashMap<String, Item>) -> f64 {
    let units: Vec<u32> = before
        .keys()
        .chain(after.keys().filter(|id| !before.contains_key(*id)))
        .filter(|id| before.get(*id) != after.get(*id))
        .map(|id| table_write_units(before.get(id), after.get(id)))
        .collect();
    if units.is_empty() {
        1.0
    } else {
        f64::from(units.iter().sum::<u32>()) / units.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn item(id: &str, padding: usize) -> Item {
        Item::from([
            (
                SCHEDULE_ID_ATTRIBUTE.to_owned(),
                AttributeValue::S(id.into()),
            ),
            ("p".to_owned(), AttributeValue::S("x".repeat(padding))),
        ])
    }

    #[test]
    fn schedule_writes_are_priced_on_the_larger_image_of_what_changed() {
        let before = HashMap::from([
            ("a".to_owned(), item("a", 100)),
            ("b".to_owned(), item("b", 100)),
            ("c".to_owned(), item("c", 2000)),
        ]);
        let after = HashMap::from([
            ("a".to_owned(), item("a", 1500)),
            ("b".to_owned(), item("b", 100)),
            ("d".to_owned(), item("d", 10)),
        ]);
        // a: 2 (after), c: deleted, 2 (before), d: created, 1; b unchanged.
        assert!((mean_write_units(&before, &after) - 5.0 / 3.0).abs() < 1e-9);
        assert_eq!(mean_write_units(&before, &before), 1.0);
        assert_eq!(mean_bytes(std::iter::empty()), 0);
        assert_eq!(
            mean_bytes(before.values()),
            item_bytes(&item("a", 100)) + 1900 / 3
        );
    }

    #[test]
    fn what_is_apart_depends_on_the_step() {
        use crate::aws_call::Operation;
        let call = |operation| RecordedCall {
            operation,
            started: std::time::Instant::now(),
            finished: std::time::Instant::now(),
            status: 200,
        };
        let delete = call(Operation::scheduler("DeleteSchedule"));
        let depth = call(Operation::sqs("GetQueueAttributes"));
        assert!(Step::Fire.apart(&delete) && !Step::Api.apart(&delete));
        assert!(Step::Api.apart(&depth) && Step::Fire.apart(&depth));
        assert!(!Step::Work.apart(&depth));
        assert!(!Step::Fire.apart(&call(Operation::dynamodb("GetItem"))));
    }
}
