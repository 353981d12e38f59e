//! `template.yaml`, the SAM template that deploys Jobline, checked against
//! the code so that local runs and the deployed stack cannot drift: the queue
//! and table settings must equal `provision::QueueSettings::TEMPLATE` and
//! what `provision` really creates on moto, the functions' environments must
//! configure `Config` from the template's parameters, and every IAM statement
//! must name its resources. The webhooks' parts (the table's stream, the
//! notifier's queues and mappings, the master key's secret) are held to
//! `QueueSettings::NOTIFY`, the outbox's attributes and `provision` alike.

use aws_sdk_dynamodb::types::{
    BillingMode, PointInTimeRecoveryStatus, SseStatus, StreamViewType, TimeToLiveStatus,
};
use jobline_shared::config::{
    Config, LAMBDA_MAX_TIMEOUT_SECS, SQS_MAX_VISIBILITY_SECS, WorkerConfig, min_retention_days,
};
use jobline_shared::job::JobState;
use jobline_shared::metrics::{Metric, NAMESPACE};
use jobline_shared::outbox::{self, CALLBACK_ATTRIBUTE, STATE_ATTRIBUTE};
use jobline_shared::provision::{
    self, DLQ_RETENTION_SECS, NOTIFIER_TIMEOUT_SECS, QueueSettings, WORKER_TIMEOUT_SECS,
};
use jobline_shared::store::{
    CREATED_ATTRIBUTE, DUE_ATTRIBUTE, DUE_INDEX, FINISHED_ATTRIBUTE, HOOK_SHARD_ATTRIBUTE,
    KEY_ATTRIBUTE, OWNER_ATTRIBUTE, OWNER_INDEX, SHARD_ATTRIBUTE, STATE_INDEX,
    STATE_SHARD_ATTRIBUTE, TTL_ATTRIBUTE, WEBHOOK_INDEX,
};
use jobline_tests::TestEnv;
use jobline_tests::template::{
    ALARM, EVENT_SOURCE_MAPPING, FUNCTION, QUEUE, TABLE, Template, as_list, get_att, number,
    reference, statements,
};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};

/// Every function the template deploys.
const FUNCTIONS: [&str; 4] = [
    "ApiFunction",
    "WorkerFunction",
    "SweeperFunction",
    "NotifierFunction",
];

#[test]
fn queue_settings_equal_the_shared_provisioning_code() {
    let template = Template::load();
    let queue = template.properties("JobsQueue", QUEUE);
    let dlq = template.properties("JobsDeadLetterQueue", QUEUE);
    // As deployed with every parameter at its default.
    let defaults = HashMap::new();
    let worker_timeout = template.resolve_number(
        template.function_property("WorkerFunction", "Timeout"),
        &defaults,
    );
    let visibility = template.resolve_number(&queue["VisibilityTimeout"], &defaults);
    let retention = number(&queue["MessageRetentionPeriod"]);
    let dlq_retention = number(&dlq["MessageRetentionPeriod"]);
    let max_receive_count = template.parameter("MaxReceiveCount");

    // AWS's advice for Lambda-triggered queues.
    assert!(
        visibility >= 6 * worker_timeout,
        "VisibilityTimeout {visibility} < 6 x worker Timeout {worker_timeout}"
    );
    assert!(template.default_of("MaxReceiveCount") >= 5);
    assert!(number(&max_receive_count["MinValue"]) >= 5);
    // A dead-lettered message keeps its enqueue time.
    assert!(
        dlq_retention > retention,
        "DLQ retention {dlq_retention} <= {retention}"
    );

    assert_eq!(worker_timeout, u64::from(WORKER_TIMEOUT_SECS));
    let settings = QueueSettings {
        visibility_timeout_secs: u32::try_from(visibility).unwrap(),
        retention_secs: u32::try_from(retention).unwrap(),
        dlq_retention_secs: u32::try_from(dlq_retention).unwrap(),
        max_receive_count: u32::try_from(template.default_of("MaxReceiveCount")).unwrap(),
    };
    assert_eq!(settings, QueueSettings::TEMPLATE);
    // The tests' settings differ from it in the visibility timeout and the
    // deliveries alone (jobline_tests::test_queue_settings).
    let test = jobline_tests::test_queue_settings(6, 2);
    assert_eq!(
        QueueSettings {
            visibility_timeout_secs: settings.visibility_timeout_secs,
            max_receive_count: settings.max_receive_count,
            ..test
        },
        settings
    );

    assert_eq!(
        queue["RedrivePolicy"],
        json!({
            "deadLetterTargetArn": get_att("JobsDeadLetterQueue", "Arn"),
            "maxReceiveCount": reference("MaxReceiveCount"),
        })
    );
    dlq_admits_only(queue, dlq);
}

/// `provision` names a DLQ `<queue>-dlq`, and its redrive-allow policy
/// admits exactly the queue, whose ARN the template builds from its name;
/// returns the queue's name (a `!Sub` template).
fn dlq_admits_only<'a>(queue: &'a Value, dlq: &Value) -> &'a str {
    let queue_name = queue["QueueName"]["Fn::Sub"]
        .as_str()
        .expect("QueueName !Sub");
    assert_eq!(
        dlq["QueueName"],
        json!({ "Fn::Sub": format!("{queue_name}-dlq") })
    );
    assert_eq!(
        dlq["RedriveAllowPolicy"],
        json!({
            "redrivePermission": "byQueue",
            "sourceQueueArns": [{
                "Fn::Sub": format!("arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{queue_name}")
            }],
        })
    );
    queue_name
}

/// The notifier's queue pair is what `provision` creates for
/// `QueueSettings::NOTIFY`, tied together as the jobs queues are, and its
/// redrive limit is the one the notifier counts to.
#[test]
fn notifier_queue_settings_equal_the_shared_provisioning_code() {
    let template = Template::load();
    let queue = template.properties("NotifyQueue", QUEUE);
    let dlq = template.properties("NotifyDeadLetterQueue", QUEUE);
    let timeout = number(template.function_property("NotifierFunction", "Timeout"));
    assert_eq!(timeout, u64::from(NOTIFIER_TIMEOUT_SECS));
    let visibility = number(&queue["VisibilityTimeout"]);
    assert!(
        visibility >= 6 * timeout,
        "NotifyQueue VisibilityTimeout {visibility} < 6 x notifier Timeout {timeout}"
    );
    let max_receive_count = number(&queue["RedrivePolicy"]["maxReceiveCount"]);
    let settings = QueueSettings {
        visibility_timeout_secs: u32::try_from(visibility).unwrap(),
        retention_secs: u32::try_from(number(&queue["MessageRetentionPeriod"])).unwrap(),
        dlq_retention_secs: u32::try_from(number(&dlq["MessageRetentionPeriod"])).unwrap(),
        max_receive_count: u32::try_from(max_receive_count).unwrap(),
    };
    assert_eq!(settings, QueueSettings::NOTIFY);
    assert!(settings.dlq_retention_secs > settings.retention_secs);
    assert!(settings.max_receive_count >= 5);
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        get_att("NotifyDeadLetterQueue", "Arn")
    );
    // The notifier records a failed delivery as final on the last receive.
    let environment = template.function_environment("NotifierFunction");
    assert_eq!(
        number(&environment["NOTIFY_MAX_RECEIVE_COUNT"]),
        max_receive_count,
        "NOTIFY_MAX_RECEIVE_COUNT and NotifyQueue's maxReceiveCount"
    );
    for properties in [queue, dlq] {
        assert_eq!(properties["SqsManagedSseEnabled"], true);
    }

    // Named as provision names them, the DLQ admitting only the queue.
    assert_eq!(
        dlq_admits_only(queue, dlq),
        provision::notify_queue_name("${AWS::StackName}")
    );

    // The deliveries: a batch of 10, whose failed messages alone come back.
    let mapping = template.event_source_mapping("NotifierFunction", &get_att("NotifyQueue", "Arn"));
    assert_eq!(mapping["BatchSize"], 10);
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
}

/// A small evaluator of the Lambda event filter patterns the template uses:
/// objects match field by field, a list matches if any of its entries does
/// (a literal, or `{"exists": bool}`).
fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(name, inner)| match inner {
            Value::Array(entries) => entries.iter().any(|entry| match entry {
                Value::Object(test) if test.contains_key("exists") => {
                    let present = !event[name].is_null();
                    test["exists"].as_bool().expect("exists: bool") == present
                }
                literal => &event[name] == literal,
            }),
            nested => pattern_matches(nested, &event[name]),
        }),
        other => panic!("unexpected pattern {other}"),
    }
}

/// Every state a job can have; a new one fails to compile here until it is
/// listed.
fn every_job_state() -> Vec<JobState> {
    let all = vec![
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];
    for state in &all {
        match state {
            JobState::Queued
            | JobState::Running
            | JobState::Succeeded
            | JobState::Failed
            | JobState::Cancelled => {}
        }
    }
    all
}

/// The table streams both images; the notifier reads the stream from its
/// start, reports failed records, sends a batch it gives up on to its DLQ,
/// and is invoked only for records that can be a final state of a job with
/// a callback, a filter that never drops a record `outbox::announced` takes.
#[test]
fn the_notifier_reads_final_states_from_the_tables_stream() {
    let template = Template::load();
    assert_eq!(
        template.properties("JobsTable", TABLE)["StreamSpecification"],
        json!({"StreamViewType": "NEW_AND_OLD_IMAGES"})
    );
    let mapping =
        template.event_source_mapping("NotifierFunction", &get_att("JobsTable", "StreamArn"));
    // A new mapping reads what the stream still holds, not only what
    // follows its creation.
    assert_eq!(mapping["StartingPosition"], "TRIM_HORIZON");
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!((1..=10_000).contains(&number(&mapping["BatchSize"])));
    // Retried for as long as the stream keeps a record (24 h; -1 for both
    // limits), so an SQS outage delays webhooks instead of dropping them;
    // only what expires unrelayed is described on the DLQ, whose alarm fires.
    // The failed record is retried from, so no bisecting.
    assert_eq!(mapping["MaximumRetryAttempts"], -1);
    assert_eq!(mapping["MaximumRecordAgeInSeconds"], -1);
    assert_eq!(mapping["BisectBatchOnFunctionError"], false);
    assert_eq!(
        mapping["DestinationConfig"],
        json!({"OnFailure": {"Destination": get_att("NotifyDeadLetterQueue", "Arn")}})
    );

    let filters = as_list(&mapping["FilterCriteria"]["Filters"]);
    assert_eq!(filters.len(), 1, "one filter");
    let pattern: Value = serde_json::from_str(
        filters[0]["Pattern"]
            .as_str()
            .expect("the filter's Pattern, a JSON string"),
    )
    .expect("the filter's Pattern is JSON");
    let finished: BTreeSet<&str> = every_job_state()
        .into_iter()
        .filter(|state| state.is_finished())
        .map(JobState::as_str)
        .collect();
    assert_eq!(
        finished,
        BTreeSet::from(["succeeded", "failed", "cancelled"])
    );
    let new_image = &pattern["dynamodb"]["NewImage"];
    assert_eq!(
        new_image
            .as_object()
            .expect("a NewImage pattern")
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([STATE_ATTRIBUTE, CALLBACK_ATTRIBUTE])
    );
    let filtered_states: BTreeSet<&str> = as_list(&new_image[STATE_ATTRIBUTE]["S"])
        .into_iter()
        .map(|state| state.as_str().expect("a state name"))
        .collect();
    assert_eq!(filtered_states, finished);
    assert_eq!(
        new_image[CALLBACK_ATTRIBUTE],
        json!({"S": [{"exists": true}]})
    );
    assert_eq!(pattern["eventName"], json!(["MODIFY", "INSERT"]));

    // Every record announced passes the filter; each one the filter drops
    // the notifier would have ignored.
    let id = "0b6f6f0e-8a4b-4a47-9d5e-2f3f9f0c4b11";
    let image = |state: JobState, callback: bool| {
        let mut image = json!({"jobId": {"S": id}, (STATE_ATTRIBUTE): {"S": state.as_str()}});
        if callback {
            image[CALLBACK_ATTRIBUTE] = json!({"S": "https://hooks.example.com/x"});
        }
        image
    };
    let mut passed = 0;
    for event in ["INSERT", "MODIFY", "REMOVE"] {
        for old in every_job_state().into_iter().map(Some).chain([None]) {
            for new in every_job_state() {
                for callback in [false, true] {
                    let mut dynamodb = json!({"NewImage": image(new, callback)});
                    if let Some(old) = old {
                        dynamodb["OldImage"] = image(old, callback);
                    }
                    let record = json!({"eventName": event, "dynamodb": dynamodb});
                    let filtered = pattern_matches(&pattern, &record);
                    passed += usize::from(filtered);
                    if outbox::announced(&record).is_some() {
                        assert!(filtered, "the filter drops an announced record {record}");
                    }
                    assert_eq!(
                        filtered,
                        event != "REMOVE" && callback && new.is_finished(),
                        "{record}"
                    );
                }
            }
        }
    }
    assert!(passed > 0);
}

/// Each timeout `WorkerTimeoutSeconds` allows gives the worker that timeout
/// and the queue the visibility timeout `provision` would create for it.
#[test]
fn the_worker_timeout_parameter_sets_the_queue_visibility() {
    let template = Template::load();
    let queue = template.properties("JobsQueue", QUEUE);
    let worker = template.properties("WorkerFunction", FUNCTION);
    // The parameter, not a literal, on both sides.
    assert_eq!(worker["Timeout"], reference("WorkerTimeoutSeconds"));
    assert_eq!(
        queue["VisibilityTimeout"],
        json!({"Fn::FindInMap": ["VisibilityTimeouts", reference("WorkerTimeoutSeconds"), "Seconds"]})
    );

    let allowed = template.allowed_numbers("WorkerTimeoutSeconds");
    let default = template.default_of("WorkerTimeoutSeconds");
    assert_eq!(default, u64::from(WORKER_TIMEOUT_SECS));
    assert!(allowed.contains(&default), "default {default} not allowed");
    // One row per allowed value: a missing one would fail the deployment
    // with that value, an extra one could never be used.
    let rows: BTreeSet<u64> = template.0["Mappings"]["VisibilityTimeouts"]
        .as_object()
        .expect("Mappings.VisibilityTimeouts")
        .keys()
        .map(|key| number(&json!(key)))
        .collect();
    assert_eq!(rows, allowed.iter().copied().collect::<BTreeSet<_>>());

    for timeout in allowed {
        assert!(
            (1..=u64::from(LAMBDA_MAX_TIMEOUT_SECS)).contains(&timeout),
            "Lambda allows no timeout of {timeout} s"
        );
        let given = timeout.to_string();
        let parameters = HashMap::from([("WorkerTimeoutSeconds", given.as_str())]);
        assert_eq!(
            template.resolve_number(&worker["Timeout"], &parameters),
            timeout
        );
        let visibility = template.resolve_number(&queue["VisibilityTimeout"], &parameters);
        let expected = QueueSettings::for_worker_timeout(u32::try_from(timeout).unwrap());
        assert_eq!(
            visibility,
            u64::from(expected.visibility_timeout_secs),
            "VisibilityTimeouts.{timeout}"
        );
        // The event source mapping refuses a shorter visibility.
        assert!(
            visibility >= timeout,
            "visibility {visibility} < timeout {timeout}"
        );
        assert!(visibility <= u64::from(SQS_MAX_VISIBILITY_SECS));
        // The worker's own idea of its timeout is the function's.
        let environment = template.resolved_environment("WorkerFunction", &parameters);
        let config = Config::from_lookup(|name| environment.get(name).cloned())
            .unwrap_or_else(|e| panic!("WorkerTimeoutSeconds {timeout}: {e}"));
        assert_eq!(u64::from(config.worker.function_timeout_secs), timeout);
    }
}

/// The bounds of `HeartbeatSeconds` and `MaxJobRunSeconds` are values the
/// code accepts and reads back, so no allowed deployment fails at cold start.
#[test]
fn heartbeat_and_run_bound_parameters_are_values_the_code_accepts() {
    let template = Template::load();
    for (parameter, read) in [
        (
            "HeartbeatSeconds",
            (|w: &WorkerConfig| w.heartbeat_secs) as fn(&WorkerConfig) -> u32,
        ),
        ("MaxJobRunSeconds", |w: &WorkerConfig| w.max_run_secs),
    ] {
        let definition = template.parameter(parameter);
        assert_eq!(definition["Type"], "Number", "{parameter}");
        let min = number(&definition["MinValue"]);
        let max = number(&definition["MaxValue"]);
        let default = template.default_of(parameter);
        assert!(min >= 1, "{parameter} MinValue {min}: the code needs 1");
        assert!(
            (min..=max).contains(&default),
            "{parameter} default {default}"
        );
        for value in [min, default, max] {
            let given = value.to_string();
            let parameters = HashMap::from([(parameter, given.as_str())]);
            for function in FUNCTIONS {
                let environment = template.resolved_environment(function, &parameters);
                let config = Config::from_lookup(|name| environment.get(name).cloned())
                    .unwrap_or_else(|e| panic!("{function}, {parameter} {value}: {e}"));
                assert_eq!(
                    u64::from(read(&config.worker)),
                    value,
                    "{function}, {parameter}"
                );
            }
        }
    }
}

/// A job's record outlives its dead-lettered message, so a replay finds it:
/// `JobRetentionDays`' floor is the code's own bound for the longest run
/// `MaxJobRunSeconds` allows (the DLQ's 14 days plus 7), so no allowed pair of
/// parameters fails at cold start, and the code refuses a day less.
#[test]
fn job_records_outlive_the_dead_letter_queue_and_the_longest_run() {
    let template = Template::load();
    for dlq in ["JobsDeadLetterQueue", "NotifyDeadLetterQueue"] {
        assert_eq!(
            number(&template.properties(dlq, QUEUE)["MessageRetentionPeriod"]),
            u64::from(DLQ_RETENTION_SECS),
            "{dlq}"
        );
    }
    let min = number(&template.parameter("JobRetentionDays")["MinValue"]);
    let longest_run = number(&template.parameter("MaxJobRunSeconds")["MaxValue"]);
    assert_eq!(
        min,
        u64::from(min_retention_days(u32::try_from(longest_run).unwrap())),
        "JobRetentionDays' MinValue for MaxJobRunSeconds up to {longest_run}"
    );
    assert!(min * 86_400 >= u64::from(DLQ_RETENTION_SECS) + longest_run);
    assert!(template.default_of("JobRetentionDays") >= min);
    let (min_days, day_less, run) = (
        min.to_string(),
        (min - 1).to_string(),
        longest_run.to_string(),
    );
    for function in FUNCTIONS {
        let parameters = HashMap::from([
            ("JobRetentionDays", min_days.as_str()),
            ("MaxJobRunSeconds", run.as_str()),
        ]);
        let environment = template.resolved_environment(function, &parameters);
        let config = Config::from_lookup(|name| environment.get(name).cloned())
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        assert_eq!(u64::from(config.retention_days), min, "{function}");
        let parameters = HashMap::from([
            ("JobRetentionDays", day_less.as_str()),
            ("MaxJobRunSeconds", run.as_str()),
        ]);
        let environment = template.resolved_environment(function, &parameters);
        let error = Config::from_lookup(|name| environment.get(name).cloned())
            .expect_err("a day less than the floor")
            .to_string();
        assert!(error.contains("JOB_RETENTION_DAYS"), "{function}: {error}");
    }
}

/// The demonstration job types are off unless `EnableDemoJobTypes` turns
/// them on, for the API and the worker alike (the API accepts only what the
/// worker runs); the other functions register no job types.
#[test]
fn demo_job_types_follow_their_parameter_on_the_api_and_the_worker() {
    let template = Template::load();
    assert_eq!(string_default(&template, "EnableDemoJobTypes"), "false");
    assert_eq!(
        template.parameter("EnableDemoJobTypes")["AllowedValues"],
        json!(["true", "false"])
    );
    for function in FUNCTIONS {
        let registers = matches!(function, "ApiFunction" | "WorkerFunction");
        assert_eq!(
            template
                .function_environment(function)
                .get("DEMO_JOB_TYPES"),
            registers.then(|| reference("EnableDemoJobTypes")).as_ref(),
            "{function}"
        );
        for (given, expected) in [
            (None, false),
            (Some("false"), false),
            (Some("true"), registers),
        ] {
            let parameters: HashMap<&str, &str> = given
                .map(|value| ("EnableDemoJobTypes", value))
                .into_iter()
                .collect();
            let environment = template.resolved_environment(function, &parameters);
            let config = Config::from_lookup(|name| environment.get(name).cloned())
                .unwrap_or_else(|e| panic!("{function}: {e}"));
            assert_eq!(config.demo_job_types, expected, "{function}, {given:?}");
        }
    }
}

#[test]
fn worker_takes_the_redrive_limit_from_the_redrive_policy_parameter() {
    let template = Template::load();
    let redrive_limit =
        &template.properties("JobsQueue", QUEUE)["RedrivePolicy"]["maxReceiveCount"];
    assert_eq!(redrive_limit, &reference("MaxReceiveCount"));
    assert_eq!(
        &template.function_environment("WorkerFunction")["MAX_RECEIVE_COUNT"],
        redrive_limit
    );
}

#[test]
fn function_environments_configure_the_code_from_the_parameters() {
    let template = Template::load();
    // Values unlike every default, so that a misspelt variable, which the
    // code would silently replace by its default, fails here.
    let parameters = HashMap::from([
        ("MaxReceiveCount", "7"),
        ("RetryBaseDelaySeconds", "3"),
        ("RetryMaxDelaySeconds", "301"),
        ("WorkerConcurrency", "9"),
        ("JobRetentionDays", "31"),
        ("WorkerTimeoutSeconds", "120"),
        ("HeartbeatSeconds", "11"),
        ("MaxJobRunSeconds", "3601"),
    ]);
    for function in FUNCTIONS {
        let environment = template.resolved_environment(function, &parameters);
        // The level comes from ApplicationLogLevel (INFO by default), not
        // RUST_LOG: see logging_is_json_with_levels_from_the_parameters.
        assert!(!environment.contains_key("RUST_LOG"), "{function}");
        let config = Config::from_lookup(|name| environment.get(name).cloned())
            .unwrap_or_else(|e| panic!("{function}'s environment: {e}"));
        assert_eq!(config.table_name, "<JobsTable>", "{function}");
        assert_eq!(config.queue_url, "<JobsQueue>", "{function}");
        assert_eq!(config.retention_days, 31, "{function}");
        // Every function builds the job store, which reads these.
        assert_eq!(config.worker.function_timeout_secs, 120, "{function}");
        assert_eq!(config.worker.heartbeat_secs, 11, "{function}");
        assert_eq!(config.worker.max_run_secs, 3601, "{function}");
        // Only the API (GET /webhook-secret, callbackUrl on submission) and
        // the notifier read the master key; only the notifier its queue.
        let webhooks = &config.webhooks;
        let reads_the_key = matches!(function, "ApiFunction" | "NotifierFunction");
        assert_eq!(
            webhooks.secret_id.as_deref(),
            reads_the_key.then_some("<WebhookMasterSecret>"),
            "{function}"
        );
        // The notifier relays to and delivers from its queue; the sweeper
        // hands it owed webhooks the stream never relayed.
        assert_eq!(
            webhooks.queue_url.is_some(),
            matches!(function, "NotifierFunction" | "SweeperFunction"),
            "{function}"
        );
        assert!(!webhooks.allow_local_callbacks, "{function}");
    }
    let environment = template.resolved_environment("NotifierFunction", &parameters);
    let notifier = Config::from_lookup(|name| environment.get(name).cloned())
        .unwrap()
        .webhooks;
    assert!(notifier.secret_id.is_some());
    assert!(notifier.queue_url.is_some());
    assert_eq!(notifier.queue_url.as_deref(), Some("<NotifyQueue>"));
    assert_eq!(
        notifier.max_receive_count,
        QueueSettings::NOTIFY.max_receive_count
    );
    let environment = template.resolved_environment("WorkerFunction", &parameters);
    let worker = Config::from_lookup(|name| environment.get(name).cloned())
        .unwrap()
        .worker;
    assert_eq!(
        worker,
        WorkerConfig {
            max_receive_count: 7,
            retry_base_delay_secs: 3,
            retry_max_delay_secs: 301,
            concurrency: 9,
            function_timeout_secs: 120,
            heartbeat_secs: 11,
            max_run_secs: 3601,
        }
    );

    // The code's defaults are the template's defaults.
    let bare = Config::from_lookup(|name| {
        matches!(name, "JOBS_TABLE" | "JOBS_QUEUE_URL").then(|| "set".to_owned())
    })
    .unwrap();
    let default = |parameter| u32::try_from(template.default_of(parameter)).unwrap();
    assert_eq!(bare.retention_days, default("JobRetentionDays"));
    assert_eq!(
        bare.worker,
        WorkerConfig {
            max_receive_count: default("MaxReceiveCount"),
            retry_base_delay_secs: default("RetryBaseDelaySeconds"),
            retry_max_delay_secs: default("RetryMaxDelaySeconds"),
            concurrency: usize::try_from(default("WorkerConcurrency")).unwrap(),
            function_timeout_secs: default("WorkerTimeoutSeconds"),
            heartbeat_secs: default("HeartbeatSeconds"),
            max_run_secs: default("MaxJobRunSeconds"),
        }
    );
    assert_eq!(
        bare.webhooks.max_receive_count,
        QueueSettings::NOTIFY.max_receive_count
    );
}

#[test]
fn functions_are_rust_binaries_on_arm64() {
    let template = Template::load();
    for (function, binary) in [
        ("ApiFunction", "jobline-api"),
        ("WorkerFunction", "jobline-worker"),
        ("SweeperFunction", "jobline-sweeper"),
        ("NotifierFunction", "jobline-notifier"),
    ] {
        let property = |name| template.function_property(function, name);
        assert_eq!(property("Runtime"), "provided.al2023", "{function}");
        assert_eq!(property("Architectures"), &json!(["arm64"]), "{function}");
        assert_eq!(property("Handler"), "bootstrap", "{function}");
        // The workspace root: cargo lambda builds `--bin <Binary>` there.
        assert_eq!(property("CodeUri"), ".", "{function}");
        assert_eq!(
            template.resource(function, FUNCTION)["Metadata"],
            json!({"BuildMethod": "rust-cargolambda", "BuildProperties": {"Binary": binary}}),
            "{function}"
        );
    }
}

#[test]
fn worker_reports_partial_batch_failures_from_the_queue() {
    let template = Template::load();
    let worker_mappings = template
        .resources_of_type(EVENT_SOURCE_MAPPING)
        .filter(|(_, mapping)| mapping["Properties"]["FunctionName"] == reference("WorkerFunction"))
        .count();
    assert_eq!(worker_mappings, 1, "one event source mapping of the worker");
    let mapping = template.event_source_mapping("WorkerFunction", &get_att("JobsQueue", "Arn"));
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(mapping["BatchSize"], reference("BatchSize"));
    assert_eq!(
        mapping["MaximumBatchingWindowInSeconds"],
        reference("MaximumBatchingWindowInSeconds")
    );
    assert_eq!(
        mapping["ScalingConfig"]["MaximumConcurrency"],
        reference("MaximumConcurrency")
    );
    assert!(number(&template.parameter("MaximumConcurrency")["MinValue"]) >= 2);
}

/// Every policy statement under `node`.
fn grants(list: &[(&str, Value)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(action, resource)| ((*action).to_owned(), resource.to_string()))
        .collect()
}

#[test]
fn iam_is_least_privilege() {
    let template = Template::load();
    let all = statements(&template.0);
    assert!(all.len() >= 6, "found only {} statements", all.len());
    for statement in all {
        for key in ["Resource", "NotResource"] {
            assert!(
                !as_list(&statement[key]).contains(&&json!("*")),
                "{key} \"*\" in {statement}"
            );
        }
    }

    // Each function has its own role, so SAM adds no managed policy, and no
    // SAM event (an SQS event would attach a policy on "*").
    for (function, role) in [
        ("ApiFunction", "ApiFunctionRole"),
        ("WorkerFunction", "WorkerFunctionRole"),
        ("SweeperFunction", "SweeperFunctionRole"),
        ("NotifierFunction", "NotifierFunctionRole"),
    ] {
        let properties = template.properties(function, FUNCTION);
        assert_eq!(properties["Role"], get_att(role, "Arn"), "{function}");
        assert!(
            properties["Policies"].is_null(),
            "{function} has SAM Policies"
        );
        assert!(properties["Events"].is_null(), "{function} has SAM Events");
        assert!(
            template.properties(role, "AWS::IAM::Role")["ManagedPolicyArns"].is_null(),
            "{role} has managed policies"
        );
    }

    let table = get_att("JobsTable", "Arn");
    let queue = get_att("JobsQueue", "Arn");
    let results = json!({"Fn::Sub": "${ResultsBucket.Arn}/results/*"});
    let secret = reference("WebhookMasterSecret");
    let logs = |group: &str| {
        [
            ("logs:CreateLogStream", get_att(group, "Arn")),
            ("logs:PutLogEvents", get_att(group, "Arn")),
        ]
    };
    let mut api = logs("ApiLogGroup").to_vec();
    api.extend([
        ("dynamodb:PutItem", table.clone()),
        ("dynamodb:GetItem", table.clone()),
        // POST /jobs/{id}/cancel: a conditional update, on the table only.
        ("dynamodb:UpdateItem", table.clone()),
        // GET /jobs: the caller's partition of the owner index, then the jobs.
        (
            "dynamodb:Query",
            json!({"Fn::Sub": format!("${{JobsTable.Arn}}/index/{OWNER_INDEX}")}),
        ),
        ("dynamodb:BatchGetItem", table.clone()),
        // DELETE /jobs/{id}.
        ("dynamodb:DeleteItem", table.clone()),
        // Links to large results (presigned with this role), and their deletion.
        ("s3:GetObject", results.clone()),
        ("s3:DeleteObject", results.clone()),
        ("sqs:SendMessage", queue.clone()),
        ("sqs:GetQueueAttributes", queue.clone()),
        // GET /webhook-secret: the caller's secret, derived from the key.
        ("secretsmanager:GetSecretValue", secret.clone()),
    ]);
    assert_eq!(template.role_grants("ApiFunctionRole"), grants(&api));
    let mut worker = logs("WorkerLogGroup").to_vec();
    worker.extend([
        ("dynamodb:UpdateItem", table.clone()),
        // The claim reads a large payload's own item.
        ("dynamodb:GetItem", table.clone()),
        ("sqs:ReceiveMessage", queue.clone()),
        ("sqs:DeleteMessage", queue.clone()),
        ("sqs:GetQueueAttributes", queue.clone()),
        ("sqs:ChangeMessageVisibility", queue.clone()),
        ("s3:PutObject", results),
        // A continuation: the job goes on in a new message.
        ("sqs:SendMessage", queue),
    ]);
    assert_eq!(template.role_grants("WorkerFunctionRole"), grants(&worker));
    // The sweeper queries the due index and the webhook index, updates
    // jobs, and sends owed webhooks to the notifier's queue; it reads no
    // queue.
    let mut sweeper = logs("SweeperLogGroup").to_vec();
    sweeper.extend([
        (
            "dynamodb:Query",
            json!({"Fn::Sub": format!("${{JobsTable.Arn}}/index/{DUE_INDEX}")}),
        ),
        (
            "dynamodb:Query",
            json!({"Fn::Sub": format!("${{JobsTable.Arn}}/index/{WEBHOOK_INDEX}")}),
        ),
        ("dynamodb:UpdateItem", table.clone()),
        // A swept job is returned whole, its large payload read; an owed
        // webhook's job is read.
        ("dynamodb:GetItem", table.clone()),
        ("sqs:SendMessage", get_att("NotifyQueue", "Arn")),
    ]);
    assert_eq!(
        template.role_grants("SweeperFunctionRole"),
        grants(&sweeper)
    );
    // The notifier reads the stream, relays to and delivers from its own
    // queue, records deliveries on the job, and signs with the master key.
    let stream = get_att("JobsTable", "StreamArn");
    let notify = get_att("NotifyQueue", "Arn");
    let mut notifier = logs("NotifierLogGroup").to_vec();
    notifier.extend([
        ("dynamodb:GetItem", table.clone()),
        ("dynamodb:UpdateItem", table),
        ("dynamodb:DescribeStream", stream.clone()),
        ("dynamodb:GetRecords", stream.clone()),
        ("dynamodb:GetShardIterator", stream.clone()),
        ("dynamodb:ListStreams", stream),
        ("sqs:SendMessage", notify.clone()),
        ("sqs:ReceiveMessage", notify.clone()),
        ("sqs:DeleteMessage", notify.clone()),
        ("sqs:ChangeMessageVisibility", notify.clone()),
        ("sqs:GetQueueAttributes", notify),
        // The stream mapping's on-failure destination.
        ("sqs:SendMessage", get_att("NotifyDeadLetterQueue", "Arn")),
        ("secretsmanager:GetSecretValue", secret),
    ]);
    assert_eq!(
        template.role_grants("NotifierFunctionRole"),
        grants(&notifier)
    );
    for (function, group) in [
        ("ApiFunction", "ApiLogGroup"),
        ("WorkerFunction", "WorkerLogGroup"),
        ("SweeperFunction", "SweeperLogGroup"),
        ("NotifierFunction", "NotifierLogGroup"),
    ] {
        assert_eq!(
            template.properties(function, FUNCTION)["LoggingConfig"]["LogGroup"],
            reference(group),
            "{function} must log where its role may write"
        );
    }
}

/// The webhook master key is generated by Secrets Manager (never a
/// parameter or a literal), long enough for the code, and only the API and
/// the notifier may read it, that secret alone.
#[test]
fn the_webhook_master_key_is_generated_and_read_only_by_the_api_and_notifier() {
    let template = Template::load();
    let secret = template.properties("WebhookMasterSecret", "AWS::SecretsManager::Secret");
    assert_eq!(
        secret["GenerateSecretString"],
        json!({"PasswordLength": 64, "ExcludePunctuation": true})
    );
    assert!(secret["SecretString"].is_null(), "a key in the template");
    let length = number(&secret["GenerateSecretString"]["PasswordLength"]);
    assert!(
        length >= u64::try_from(jobline_shared::webhook::keys::MIN_MASTER_KEY_BYTES).unwrap(),
        "a {length}-character key is refused by the code"
    );

    let readers: BTreeSet<&str> = template
        .resources_of_type("AWS::IAM::Role")
        .filter_map(|(role, _)| {
            let grants = template.role_grants(role);
            let secrets: BTreeSet<_> = grants
                .iter()
                .filter(|(action, _)| action.starts_with("secretsmanager:"))
                .cloned()
                .collect();
            if secrets.is_empty() {
                return None;
            }
            assert_eq!(
                secrets,
                BTreeSet::from([(
                    "secretsmanager:GetSecretValue".to_owned(),
                    reference("WebhookMasterSecret").to_string()
                )]),
                "{role} may read only the webhook master key"
            );
            Some(role)
        })
        .collect();
    assert_eq!(
        readers,
        BTreeSet::from(["ApiFunctionRole", "NotifierFunctionRole"])
    );
    for function in ["ApiFunction", "NotifierFunction"] {
        assert_eq!(
            template.function_environment(function)["WEBHOOK_SECRET_ID"],
            reference("WebhookMasterSecret"),
            "{function}"
        );
    }
    for (output, value) in [
        ("WebhookMasterSecretArn", reference("WebhookMasterSecret")),
        ("NotifierFunctionName", reference("NotifierFunction")),
        (
            "NotifyDeadLetterQueueUrl",
            reference("NotifyDeadLetterQueue"),
        ),
    ] {
        assert_eq!(template.0["Outputs"][output]["Value"], value, "{output}");
    }
}

#[test]
fn every_route_requires_iam_or_jwt_auth() {
    let template = Template::load();
    let routes: BTreeSet<_> = template
        .resources_of_type("AWS::ApiGatewayV2::Route")
        .map(|(name, route)| {
            let properties = &route["Properties"];
            assert_eq!(
                properties["AuthorizationType"],
                json!({"Fn::If": ["UseJwt", "JWT", "AWS_IAM"]}),
                "{name}"
            );
            assert_eq!(
                properties["AuthorizerId"],
                json!({"Fn::If": ["UseJwt", reference("JwtAuthorizer"), reference("AWS::NoValue")]}),
                "{name}"
            );
            properties["RouteKey"].as_str().expect("RouteKey").to_owned()
        })
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from([
            "DELETE /jobs/{id}".to_owned(),
            "GET /jobs".to_owned(),
            "GET /jobs/{id}".to_owned(),
            "GET /openapi.yaml".to_owned(),
            "POST /jobs".to_owned(),
            "POST /jobs/{id}/cancel".to_owned(),
            "GET /webhook-secret".to_owned(),
        ])
    );
    assert_eq!(
        template.parameter("AuthMode")["Default"],
        "IAM",
        "protected by IAM unless JWT is chosen"
    );
}

#[test]
fn cancel_is_authorized_and_routed_as_reading_a_job() {
    let template = Template::load();
    let route = |name| template.properties(name, "AWS::ApiGatewayV2::Route");
    let cancel = route("CancelJobRoute");
    let get = route("GetJobRoute");
    assert_eq!(cancel["RouteKey"], "POST /jobs/{id}/cancel");
    assert_eq!(get["RouteKey"], "GET /jobs/{id}");
    for property in ["AuthorizationType", "AuthorizerId", "Target", "ApiId"] {
        assert!(!get[property].is_null(), "GetJobRoute has no {property}");
        assert_eq!(cancel[property], get[property], "{property}");
    }

    // IAM mode: the client policy lets a caller invoke every route, and
    // API Gateway may invoke the function for each.
    let prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}";
    let allowed: BTreeSet<String> = statements(
        &template.properties("ClientPolicy", "AWS::IAM::ManagedPolicy")["PolicyDocument"],
    )
    .into_iter()
    .flat_map(|statement| as_list(&statement["Resource"]))
    .map(|resource| {
        resource["Fn::Sub"]
            .as_str()
            .expect("a Resource !Sub")
            .to_owned()
    })
    .collect();
    let permission = template.properties("ApiInvokePermission", "AWS::Lambda::Permission");
    let source = permission["SourceArn"]["Fn::Sub"]
        .as_str()
        .expect("SourceArn !Sub");
    let invokable = source
        .strip_prefix(&format!("{prefix}/*/*"))
        .and_then(|path| path.strip_suffix('*'))
        .expect("SourceArn <api>/*/*<path prefix>*");
    for (_, route) in template.resources_of_type("AWS::ApiGatewayV2::Route") {
        let key = route["Properties"]["RouteKey"].as_str().expect("RouteKey");
        let (method, path) = key.split_once(' ').expect("METHOD /path");
        let arn = format!("{prefix}/$default/{method}{}", path.replace("{id}", "*"));
        assert!(allowed.contains(&arn), "ClientPolicy lacks {arn} ({key})");
        assert!(path.starts_with(invokable), "{key} is not under {source}");
    }
}

#[test]
fn alarms_watch_the_dead_letter_queues_the_queue_age_and_the_functions() {
    let template = Template::load();
    let alarm = |name: &str| template.properties(name, ALARM);
    let dimension = |name: &str, value: Value| json!([{"Name": name, "Value": value}]);
    let cases = [
        (
            "DeadLetterQueueAlarm",
            "ApproximateNumberOfMessagesVisible",
            dimension("QueueName", get_att("JobsDeadLetterQueue", "QueueName")),
            json!(0),
        ),
        (
            "OldestMessageAgeAlarm",
            "ApproximateAgeOfOldestMessage",
            dimension("QueueName", get_att("JobsQueue", "QueueName")),
            reference("OldestMessageAgeAlarmSeconds"),
        ),
        (
            "WorkerErrorsAlarm",
            "Errors",
            dimension("FunctionName", reference("WorkerFunction")),
            json!(0),
        ),
        // Webhook events the notifier could not handle, or a stream batch it
        // gave up on.
        (
            "NotifyDeadLetterQueueAlarm",
            "ApproximateNumberOfMessagesVisible",
            dimension("QueueName", get_att("NotifyDeadLetterQueue", "QueueName")),
            json!(0),
        ),
        (
            "NotifierErrorsAlarm",
            "Errors",
            dimension("FunctionName", reference("NotifierFunction")),
            json!(0),
        ),
        // Webhooks late: the notifier behind the stream by 5 minutes.
        (
            "NotifierStreamAgeAlarm",
            "IteratorAge",
            dimension("FunctionName", reference("NotifierFunction")),
            json!(300_000),
        ),
    ];
    let actions = json!({"Fn::If": ["HasAlarmTopic", [reference("AlarmTopicArn")], reference("AWS::NoValue")]});
    for (name, metric, dimensions, threshold) in cases {
        let alarm = alarm(name);
        assert_eq!(alarm["MetricName"], metric, "{name}");
        assert_eq!(alarm["Dimensions"], dimensions, "{name}");
        assert_eq!(alarm["Threshold"], threshold, "{name}");
        assert_eq!(
            alarm["ComparisonOperator"], "GreaterThanThreshold",
            "{name}"
        );
        assert_eq!(alarm["TreatMissingData"], "notBreaching", "{name}");
        // Every alarm notifies the one topic, of ALARM and of OK.
        assert_eq!(alarm["AlarmActions"], actions, "{name}");
        assert_eq!(alarm["OKActions"], actions, "{name}");
    }
    assert_eq!(
        template.properties("NotifyDeadLetterQueueAlarm", ALARM)["Namespace"],
        "AWS/SQS"
    );
}

#[test]
fn dashboard_is_json_and_shows_every_metric() {
    let template = Template::load();
    let body =
        template.properties("Dashboard", "AWS::CloudWatch::Dashboard")["DashboardBody"]["Fn::Sub"]
            .as_str()
            .expect("DashboardBody !Sub");
    // Replace each ${...} (a name in a string, or the alarm threshold) by 0.
    let mut plain = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        let end = start + rest[start..].find('}').expect("closing }");
        plain.push_str(&rest[..start]);
        plain.push('0');
        rest = &rest[end + 1..];
    }
    plain.push_str(rest);
    let dashboard: Value = serde_json::from_str(&plain).expect("DashboardBody is JSON");
    let shown: BTreeSet<(String, String)> = dashboard["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .flat_map(|widget| {
            widget["properties"]["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|line| {
            (
                line[0].as_str().unwrap_or_default().to_owned(),
                line[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    // Every metric the code can emit; a new one fails to compile here
    // until it is listed (and then this test, until it is on the dashboard).
    let emitted = [
        Metric::JobsAccepted,
        Metric::JobsSucceeded,
        Metric::JobsFailed,
        Metric::JobsRetried,
        Metric::JobsDeadLettered,
        Metric::DuplicateDeliveries,
        Metric::JobsRefused,
        Metric::JobsSwept,
        Metric::JobsCancelled,
        Metric::JobsContinued,
        Metric::WebhooksDelivered,
        Metric::WebhooksFailed,
        Metric::QueueTimeMs,
        Metric::JobDurationMs,
    ];
    for metric in emitted {
        match metric {
            Metric::JobsAccepted
            | Metric::JobsSucceeded
            | Metric::JobsFailed
            | Metric::JobsRetried
            | Metric::JobsDeadLettered
            | Metric::DuplicateDeliveries
            | Metric::JobsRefused
            | Metric::JobsSwept
            | Metric::JobsCancelled
            | Metric::JobsContinued
            | Metric::WebhooksDelivered
            | Metric::WebhooksFailed
            | Metric::QueueTimeMs
            | Metric::JobDurationMs => {}
        }
    }
    for metric in emitted {
        assert!(
            shown.contains(&(NAMESPACE.to_owned(), metric.name().to_owned())),
            "the dashboard lacks {NAMESPACE}/{}",
            metric.name()
        );
    }
    for metric in [
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
    ] {
        assert!(
            shown.contains(&("AWS/SQS".to_owned(), metric.to_owned())),
            "{metric}"
        );
    }
    // Both dead-letter queues' depth, as their alarms watch it.
    for queue in ["JobsDeadLetterQueue", "NotifyDeadLetterQueue"] {
        assert!(
            body.contains(&format!(
                r#"["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${{{queue}.QueueName}}""#
            )),
            "the dashboard lacks {queue}'s depth"
        );
    }
    for function in FUNCTIONS {
        assert!(
            body.contains(&format!(
                r#"["AWS/Lambda", "Errors", "FunctionName", "${{{function}}}""#
            )),
            "the dashboard lacks {function}'s errors"
        );
    }
}

fn attribute(attributes: &HashMap<String, String>, name: &str) -> u64 {
    attributes[name]
        .parse()
        .unwrap_or_else(|e| panic!("{name}={}: {e}", attributes[name]))
}

/// What `provision` creates on moto, read back, equals the template.
#[tokio::test]
async fn provisioned_resources_equal_the_template() {
    jobline_tests::require_emulator!();
    let template = Template::load();
    let env = TestEnv::new().await;

    let sqs = &env.clients.sqs;
    let queue = provision::queue_attributes(sqs, &env.queues.queue_url)
        .await
        .unwrap();
    let dlq = provision::queue_attributes(sqs, &env.queues.dlq_url)
        .await
        .unwrap();
    let template_queue = template.properties("JobsQueue", QUEUE);
    let template_dlq = template.properties("JobsDeadLetterQueue", QUEUE);
    // provision creates the queue for the default worker timeout.
    assert_eq!(
        attribute(&queue, "VisibilityTimeout"),
        template.resolve_number(&template_queue["VisibilityTimeout"], &HashMap::new())
    );
    assert_eq!(
        attribute(&queue, "MessageRetentionPeriod"),
        number(&template_queue["MessageRetentionPeriod"])
    );
    assert_eq!(
        attribute(&dlq, "MessageRetentionPeriod"),
        number(&template_dlq["MessageRetentionPeriod"])
    );
    for (attributes, properties) in [(&queue, template_queue), (&dlq, template_dlq)] {
        assert_eq!(
            attributes["SqsManagedSseEnabled"],
            properties["SqsManagedSseEnabled"].to_string()
        );
    }
    let redrive: Value = serde_json::from_str(&queue["RedrivePolicy"]).unwrap();
    assert_eq!(
        number(&redrive["maxReceiveCount"]),
        template.default_of("MaxReceiveCount")
    );
    assert_eq!(redrive["deadLetterTargetArn"], dlq["QueueArn"]);
    // moto 5.2.5 accepts RedriveAllowPolicy but does not report it back
    // (GetQueueAttributes omits it), so provision's side is compared only
    // where the emulator reports it; the template's side is pinned in
    // queue_settings_equal_the_shared_provisioning_code.
    if let Some(reported) = dlq.get("RedriveAllowPolicy") {
        let allow: Value = serde_json::from_str(reported).unwrap();
        assert_eq!(
            allow["redrivePermission"],
            template_dlq["RedriveAllowPolicy"]["redrivePermission"]
        );
        assert_eq!(allow["sourceQueueArns"], json!([queue["QueueArn"]]));
    }

    // The notifier's queues, as provision creates them for the local runner.
    let notify = provision::create_queues(
        sqs,
        &provision::notify_queue_name(&env.table),
        QueueSettings::NOTIFY,
    )
    .await
    .unwrap();
    let notify_queue = provision::queue_attributes(sqs, &notify.queue_url)
        .await
        .unwrap();
    let notify_dlq = provision::queue_attributes(sqs, &notify.dlq_url)
        .await
        .unwrap();
    let template_notify = template.properties("NotifyQueue", QUEUE);
    let template_notify_dlq = template.properties("NotifyDeadLetterQueue", QUEUE);
    for (name, attributes, properties) in [
        ("VisibilityTimeout", &notify_queue, template_notify),
        ("MessageRetentionPeriod", &notify_queue, template_notify),
        ("MessageRetentionPeriod", &notify_dlq, template_notify_dlq),
    ] {
        assert_eq!(
            attribute(attributes, name),
            number(&properties[name]),
            "{name}"
        );
    }
    for (attributes, properties) in [
        (&notify_queue, template_notify),
        (&notify_dlq, template_notify_dlq),
    ] {
        assert_eq!(
            attributes["SqsManagedSseEnabled"],
            properties["SqsManagedSseEnabled"].to_string()
        );
    }
    let redrive: Value = serde_json::from_str(&notify_queue["RedrivePolicy"]).unwrap();
    assert_eq!(
        number(&redrive["maxReceiveCount"]),
        number(&template_notify["RedrivePolicy"]["maxReceiveCount"])
    );
    assert_eq!(redrive["deadLetterTargetArn"], notify_dlq["QueueArn"]);
    if let Some(reported) = notify_dlq.get("RedriveAllowPolicy") {
        let allow: Value = serde_json::from_str(reported).unwrap();
        assert_eq!(allow["redrivePermission"], "byQueue");
        assert_eq!(allow["sourceQueueArns"], json!([notify_queue["QueueArn"]]));
    }
    for url in [&notify.queue_url, &notify.dlq_url] {
        sqs.delete_queue().queue_url(url).send().await.unwrap();
    }

    // The master key, as provision makes it: what the template's
    // GenerateSecretString asks Secrets Manager for.
    let secrets = &env.clients.secrets;
    let template_secret = template.properties("WebhookMasterSecret", "AWS::SecretsManager::Secret");
    let generated = &template_secret["GenerateSecretString"];
    let arn = provision::create_webhook_secret(secrets, &env.table)
        .await
        .unwrap();
    let key = secrets
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap()
        .secret_string
        .expect("a string secret");
    assert_eq!(
        u64::try_from(key.len()).unwrap(),
        number(&generated["PasswordLength"])
    );
    assert_eq!(generated["ExcludePunctuation"], true);
    assert!(
        key.chars().all(|c| c.is_ascii_alphanumeric()),
        "punctuation or spaces in the generated key"
    );
    secrets
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();

    let dynamodb = &env.clients.dynamodb;
    let template_table = template.properties("JobsTable", TABLE);
    let table = dynamodb
        .describe_table()
        .table_name(&env.table)
        .send()
        .await
        .unwrap()
        .table
        .expect("table description");
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::from(
            template_table["BillingMode"].as_str().unwrap()
        ))
    );
    let key_schema: Vec<Value> = table
        .key_schema()
        .iter()
        .map(|k| json!({"AttributeName": k.attribute_name(), "KeyType": k.key_type().as_str()}))
        .collect();
    assert_eq!(Value::from(key_schema), template_table["KeySchema"]);
    let attributes: Vec<Value> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            json!({"AttributeName": a.attribute_name(), "AttributeType": a.attribute_type().as_str()})
        })
        .collect();
    assert_eq!(
        Value::from(attributes),
        template_table["AttributeDefinitions"]
    );
    assert_eq!(
        template_table["KeySchema"][0]["AttributeName"],
        KEY_ATTRIBUTE
    );
    let indexes: Vec<Value> = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let keys: Vec<Value> = index
                .key_schema()
                .iter()
                .map(|k| json!({"AttributeName": k.attribute_name(), "KeyType": k.key_type().as_str()}))
                .collect();
            json!({
                "IndexName": index.index_name(),
                "KeySchema": keys,
                "Projection": {"ProjectionType": index
                    .projection()
                    .and_then(|p| p.projection_type())
                    .map(|t| t.as_str())},
            })
        })
        .collect();
    assert_eq!(
        Value::from(indexes),
        template_table["GlobalSecondaryIndexes"]
    );
    assert_eq!(
        template_table["GlobalSecondaryIndexes"],
        json!([{
            "IndexName": DUE_INDEX,
            "KeySchema": [
                {"AttributeName": SHARD_ATTRIBUTE, "KeyType": "HASH"},
                {"AttributeName": DUE_ATTRIBUTE, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }, {
            "IndexName": OWNER_INDEX,
            "KeySchema": [
                {"AttributeName": OWNER_ATTRIBUTE, "KeyType": "HASH"},
                {"AttributeName": CREATED_ATTRIBUTE, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }, {
            "IndexName": STATE_INDEX,
            "KeySchema": [
                {"AttributeName": STATE_SHARD_ATTRIBUTE, "KeyType": "HASH"},
                {"AttributeName": CREATED_ATTRIBUTE, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }, {
            "IndexName": WEBHOOK_INDEX,
            "KeySchema": [
                {"AttributeName": HOOK_SHARD_ATTRIBUTE, "KeyType": "HASH"},
                {"AttributeName": FINISHED_ATTRIBUTE, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }])
    );
    assert_eq!(
        template_table["SSESpecification"],
        json!({"SSEEnabled": true})
    );
    assert_eq!(
        table.sse_description().and_then(|s| s.status()),
        Some(&SseStatus::Enabled)
    );
    // The outbox: a stream with both images, as the notifier reads it.
    let stream = table.stream_specification().expect("a stream");
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type(),
        Some(&StreamViewType::from(
            template_table["StreamSpecification"]["StreamViewType"]
                .as_str()
                .expect("StreamViewType")
        ))
    );
    assert_eq!(
        stream.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    assert!(table.latest_stream_arn().is_some());

    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&env.table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .expect("TTL description");
    assert_eq!(
        template_table["TimeToLiveSpecification"],
        json!({"AttributeName": TTL_ATTRIBUTE, "Enabled": true})
    );
    assert_eq!(ttl.attribute_name(), Some(TTL_ATTRIBUTE));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    let backups = dynamodb
        .describe_continuous_backups()
        .table_name(&env.table)
        .send()
        .await
        .unwrap()
        .continuous_backups_description
        .expect("continuous backups description");
    assert_eq!(
        template_table["PointInTimeRecoverySpecification"],
        json!({"PointInTimeRecoveryEnabled": true})
    );
    assert_eq!(
        backups
            .point_in_time_recovery_description()
            .and_then(|p| p.point_in_time_recovery_status()),
        Some(&PointInTimeRecoveryStatus::Enabled)
    );

    env.cleanup().await;
}

/// A string parameter's default, and that it is one of its allowed values.
fn string_default<'a>(template: &'a Template, parameter: &str) -> &'a str {
    let definition = template.parameter(parameter);
    let default = definition["Default"].as_str().expect("a string default");
    assert!(
        as_list(&definition["AllowedValues"]).contains(&&json!(default)),
        "{parameter}'s default {default} is not allowed"
    );
    default
}

#[test]
fn logging_is_json_with_levels_from_the_parameters() {
    let template = Template::load();
    assert_eq!(string_default(&template, "ApplicationLogLevel"), "INFO");
    assert_eq!(string_default(&template, "SystemLogLevel"), "WARN");
    assert_eq!(
        template.parameter("ApplicationLogLevel")["AllowedValues"],
        json!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"])
    );
    for (function, group) in [
        ("ApiFunction", "ApiLogGroup"),
        ("WorkerFunction", "WorkerLogGroup"),
        ("SweeperFunction", "SweeperLogGroup"),
        ("NotifierFunction", "NotifierLogGroup"),
    ] {
        // SAM merges the function's LoggingConfig into the global one.
        let mut logging = template.0["Globals"]["Function"]["LoggingConfig"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(own) = template.properties(function, FUNCTION)["LoggingConfig"].as_object() {
            logging.extend(own.clone());
        }
        assert_eq!(
            Value::Object(logging),
            json!({
                "LogFormat": "JSON",
                "ApplicationLogLevel": reference("ApplicationLogLevel"),
                "SystemLogLevel": reference("SystemLogLevel"),
                "LogGroup": reference(group),
            }),
            "{function}"
        );
    }
    // The functions' filter is what Lambda derives from the default level.
    let settings = jobline_shared::telemetry::Settings::from_lookup(
        |name| (name == "AWS_LAMBDA_LOG_LEVEL").then(|| "INFO".to_owned()),
        false,
    );
    assert_eq!(settings.filter, "info");
    assert_eq!(settings.format, jobline_shared::telemetry::LogFormat::Json);
}

#[test]
fn the_api_stage_is_throttled_by_default() {
    let template = Template::load();
    let stage = template.properties("ApiStage", "AWS::ApiGatewayV2::Stage");
    assert_eq!(
        stage["DefaultRouteSettings"],
        json!({
            "ThrottlingRateLimit": reference("ThrottlingRateLimit"),
            "ThrottlingBurstLimit": reference("ThrottlingBurstLimit"),
        })
    );
    let rate = template.default_of("ThrottlingRateLimit");
    let burst = template.default_of("ThrottlingBurstLimit");
    // Generous, yet a cap: above a few requests a second, below the
    // account's 10,000 per second and 5,000 burst.
    assert!((100..10_000).contains(&rate), "rate {rate}");
    assert!((rate..=5_000).contains(&burst), "burst {burst}");
    for parameter in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        assert!(
            number(&template.parameter(parameter)["MinValue"]) >= 1,
            "{parameter} 0 would refuse every request"
        );
    }
}

#[test]
fn the_access_log_is_json_with_an_operators_fields() {
    let template = Template::load();
    let stage = template.properties("ApiStage", "AWS::ApiGatewayV2::Stage");
    let settings = &stage["AccessLogSettings"];
    assert_eq!(
        settings["DestinationArn"],
        get_att("ApiAccessLogGroup", "Arn")
    );
    let format = settings["Format"].as_str().expect("Format");
    // Each $context variable as API Gateway could fill it in: "-" when
    // absent, so a quoted string; the unquoted ones are always numbers.
    let sample = format
        .replace("$context.requestTimeEpoch", "1795972194007")
        .replace("$context.status", "202")
        .replace("$context.integrationLatency", "-")
        .replace("$context.responseLength", "152")
        .replace("$context.routeKey", "POST /jobs")
        .replace("$context.requestId", "AbCdEfGhIjKlMnO=")
        .replace("$context.identity.sourceIp", "203.0.113.7");
    assert!(!sample.contains('$'), "an unexpected variable in {format}");
    let line: Value = serde_json::from_str(&sample).expect("the access log line is JSON");
    let fields: BTreeSet<&str> = line
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "requestId",
            "time",
            "routeKey",
            "status",
            "responseLength",
            "integrationLatency",
            "ip",
        ])
    );
    assert!(!format.contains('\n'), "one line per request");
}

#[test]
fn the_api_bounds_the_backlog_and_is_never_anonymous() {
    let template = Template::load();
    assert_eq!(template.default_of("MaxBacklog"), 100_000);
    let environment = template.function_environment("ApiFunction");
    assert_eq!(environment["MAX_BACKLOG"], reference("MaxBacklog"));
    for function in FUNCTIONS {
        let environment = template.function_environment(function);
        assert!(
            !environment.contains_key("ALLOW_ANONYMOUS"),
            "{function}: a deployed API always has an authorizer"
        );
        // Loopback callbacks are for a developer's machine only.
        assert!(
            !environment.contains_key("ALLOW_LOCAL_CALLBACKS"),
            "{function}: a deployed stack delivers to public addresses only"
        );
    }
    let resolved = template.resolved_environment("ApiFunction", &HashMap::new());
    assert_eq!(resolved["MAX_BACKLOG"], "100000");
}

#[test]
fn the_sweeper_runs_on_the_parameters_schedule_and_reads_no_queue() {
    let template = Template::load();
    let rule = template.properties("SweepSchedule", "AWS::Events::Rule");
    assert_eq!(
        rule["ScheduleExpression"],
        json!({"Fn::Sub": "rate(${SweepIntervalMinutes} minutes)"})
    );
    assert_eq!(rule["State"], "ENABLED");
    assert_eq!(
        rule["Targets"],
        json!([{"Id": "sweeper", "Arn": get_att("SweeperFunction", "Arn")}])
    );
    // "rate(1 minutes)" is invalid: the plural form needs at least 2.
    assert!(number(&template.parameter("SweepIntervalMinutes")["MinValue"]) >= 2);
    assert_eq!(template.default_of("SweepIntervalMinutes"), 5);
    assert_eq!(
        jobline_local::stack::DEFAULT_SWEEP_INTERVAL.as_secs(),
        60 * template.default_of("SweepIntervalMinutes"),
        "the local runner sweeps as often as the deployed stack"
    );
    let permission = template.properties("SweeperInvokePermission", "AWS::Lambda::Permission");
    assert_eq!(permission["FunctionName"], reference("SweeperFunction"));
    assert_eq!(permission["Principal"], "events.amazonaws.com");
    assert_eq!(permission["SourceArn"], get_att("SweepSchedule", "Arn"));
    // An event source mapping on the DLQ would delete its messages.
    for (name, mapping) in template.resources_of_type("AWS::Lambda::EventSourceMapping") {
        assert_ne!(
            mapping["Properties"]["FunctionName"],
            reference("SweeperFunction"),
            "{name}"
        );
    }
    let alarm = template.properties("SweeperErrorsAlarm", "AWS::CloudWatch::Alarm");
    assert_eq!(
        alarm["Dimensions"],
        json!([{"Name": "FunctionName", "Value": reference("SweeperFunction")}])
    );
}

#[test]
fn the_results_bucket_is_private_encrypted_and_expires_with_the_jobs() {
    let template = Template::load();
    let bucket = template.properties("ResultsBucket", "AWS::S3::Bucket");
    assert_eq!(
        bucket["PublicAccessBlockConfiguration"],
        json!({
            "BlockPublicAcls": true,
            "BlockPublicPolicy": true,
            "IgnorePublicAcls": true,
            "RestrictPublicBuckets": true,
        })
    );
    assert_eq!(
        bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
            ["SSEAlgorithm"],
        "AES256"
    );
    let rule = &bucket["LifecycleConfiguration"]["Rules"][0];
    assert_eq!(rule["Status"], "Enabled");
    assert_eq!(rule["ExpirationInDays"], reference("JobRetentionDays"));
    assert_eq!(rule["Prefix"], "results/");
    for function in ["ApiFunction", "WorkerFunction"] {
        assert_eq!(
            template.function_environment(function)["RESULTS_BUCKET"],
            reference("ResultsBucket"),
            "{function}"
        );
    }
}

/// The results bucket refuses every request that does not come over TLS,
/// whoever makes it: one Deny on `aws:SecureTransport` false for the bucket
/// and its objects, kept with the bucket.
#[test]
fn the_results_bucket_refuses_requests_without_tls() {
    let template = Template::load();
    let policies: Vec<&Value> = template
        .resources_of_type("AWS::S3::BucketPolicy")
        .map(|(_, policy)| policy)
        .filter(|policy| policy["Properties"]["Bucket"] == reference("ResultsBucket"))
        .collect();
    assert_eq!(policies.len(), 1, "the results bucket's policies");
    let policy = policies[0];
    let bucket = template.resource("ResultsBucket", "AWS::S3::Bucket");
    for retention in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(policy[retention], bucket[retention], "{retention}");
    }
    let document = &policy["Properties"]["PolicyDocument"];
    assert_eq!(document["Version"], "2012-10-17");
    let found = statements(document);
    assert_eq!(found.len(), 1, "{document}");
    let statement = found[0];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(statement["Principal"], "*");
    assert_eq!(as_list(&statement["Action"]), [&json!("s3:*")]);
    assert_eq!(
        as_list(&statement["Resource"])
            .into_iter()
            .map(Value::to_string)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([
            get_att("ResultsBucket", "Arn").to_string(),
            json!({"Fn::Sub": "${ResultsBucket.Arn}/*"}).to_string(),
        ])
    );
    assert_eq!(
        statement["Condition"],
        json!({"Bool": {"aws:SecureTransport": "false"}})
    );
}
