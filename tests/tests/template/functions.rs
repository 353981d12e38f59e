//! The functions and their parameters: each environment configures the
//! code, every parameter's range is one the code accepts, and the
//! sweeper's schedule and the results bucket follow theirs.

use super::*;
use jobline_core::caller::UploadQuota;

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
                let environment = resolved_environment(&template, function, &parameters);
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
        let environment = resolved_environment(&template, function, &parameters);
        let config = Config::from_lookup(|name| environment.get(name).cloned())
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        assert_eq!(u64::from(config.retention_days), min, "{function}");
        let parameters = HashMap::from([
            ("JobRetentionDays", day_less.as_str()),
            ("MaxJobRunSeconds", run.as_str()),
        ]);
        let environment = resolved_environment(&template, function, &parameters);
        let error = Config::from_lookup(|name| environment.get(name).cloned())
            .expect_err("a day less than the floor")
            .to_string();
        assert!(error.contains("JOB_RETENTION_DAYS"), "{function}: {error}");
    }
}

/// The demonstration job types are off unless `EnableDemoJobTypes` turns
/// them on, for the API, the fire function and the worker alike (the API
/// and a schedule's fire submit only what the worker runs); the other
/// functions register no job types.
#[test]
fn demo_job_types_follow_their_parameter_on_the_api_and_the_worker() {
    let template = Template::load();
    assert_eq!(string_default(&template, "EnableDemoJobTypes"), "false");
    assert_eq!(
        template.parameter("EnableDemoJobTypes")["AllowedValues"],
        json!(["true", "false"])
    );
    for function in FUNCTIONS {
        let registers = matches!(function, "ApiFunction" | "WorkerFunction" | "FireFunction");
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
            let environment = resolved_environment(&template, function, &parameters);
            let config = Config::from_lookup(|name| environment.get(name).cloned())
                .unwrap_or_else(|e| panic!("{function}: {e}"));
            assert_eq!(config.demo_job_types, expected, "{function}, {given:?}");
        }
    }
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
        ("MaxUnfinishedPerCaller", "11"),
        ("MaxUploadsPerCallerPerDay", "12"),
        ("MaxUploadGibPerCallerPerDay", "13"),
    ]);
    for function in FUNCTIONS {
        let environment = resolved_environment(&template, function, &parameters);
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
    // The API bounds each caller's jobs and uploads; the fire function,
    // which submits too, its jobs.
    for function in ["ApiFunction", "FireFunction"] {
        let environment = resolved_environment(&template, function, &parameters);
        let callers = Config::from_lookup(|name| environment.get(name).cloned())
            .unwrap()
            .callers;
        assert_eq!(callers.table_name.as_deref(), Some("<CallersTable>"));
        assert_eq!(callers.max_unfinished("alice"), Some(11), "{function}");
        if function == "ApiFunction" {
            assert_eq!(
                callers.upload_quota("alice"),
                Some(UploadQuota {
                    uploads: 12,
                    bytes: 13 << 30
                })
            );
        }
    }
    let environment = resolved_environment(&template, "NotifierFunction", &parameters);
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
    let environment = resolved_environment(&template, "WorkerFunction", &parameters);
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
    let callers = &bare.callers;
    assert_eq!(
        callers.max_unfinished,
        template.default_of("MaxUnfinishedPerCaller")
    );
    assert_eq!(
        callers.upload_quota,
        UploadQuota {
            uploads: template.default_of("MaxUploadsPerCallerPerDay"),
            bytes: template.default_of("MaxUploadGibPerCallerPerDay") << 30,
        }
    );
}

#[test]
fn functions_are_rust_binaries_on_arm64() {
    let template = Template::load();
    let binaries = [
        ("ApiFunction", "jobline-api"),
        ("WorkerFunction", "jobline-worker"),
        ("SweeperFunction", "jobline-sweeper"),
        ("NotifierFunction", "jobline-notifier"),
        // functions/fire: EventBridge Scheduler's target.
        ("FireFunction", "jobline-fire"),
    ];
    assert_eq!(binaries.map(|(function, _)| function), FUNCTIONS);
    for (function, binary) in binaries {
        let property = |name| template.function_property(function, name);
        assert_eq!(property("Runtime"), "provided.al2023", "{function}");
        assert_eq!(property("Architectures"), &json!(["arm64"]), "{function}");
        assert_eq!(property("Handler"), "bootstrap", "{function}");
        // The workspace root: cargo lambda builds `--bin <Binary>` there.
        assert_eq!(property("CodeUri"), ".", "{function}");
        // What SAM builds by; besides, only checkov's skips (iam.rs).
        let mut metadata = template.resource(function, FUNCTION)["Metadata"].clone();
        metadata
            .as_object_mut()
            .map(|fields| fields.remove("checkov"));
        assert_eq!(
            metadata,
            json!({"BuildMethod": "rust-cargolambda", "BuildProperties": {"Binary": binary}}),
            "{function}"
        );
    }
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

/// The results bucket is private and encrypted, and its lifecycle rules
/// remove every file with the job record that needs it: results and
/// outputs after `JobRetentionDays`, uploads by the keep tier a job gave
/// them (`KEEP_TAG`, one rule for each of `KEEP_TIERS_DAYS`), and any
/// unfinished multipart upload a day after it began.
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
    // SSE-S3, or the stack's key (iam.rs).
    assert_eq!(
        without_kms_key(
            &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
                ["SSEAlgorithm"]
        ),
        "AES256"
    );

    let rules = as_list(&bucket["LifecycleConfiguration"]["Rules"]);
    let ids: Vec<&str> = rules
        .iter()
        .map(|rule| rule["Id"].as_str().expect("a rule's Id"))
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "rule ids repeat: {ids:?}");
    let rule = |id: &str| {
        let found = rules.iter().find(|rule| rule["Id"] == id);
        *found.unwrap_or_else(|| panic!("no lifecycle rule {id}"))
    };
    let abort_after_a_day = json!({"DaysAfterInitiation": 1});
    // Results and outputs: with the job's record, unfinished uploads a day.
    for (id, prefix) in [
        ("expire-with-the-jobs", "results/"),
        ("expire-outputs-with-the-jobs", "outputs/"),
    ] {
        assert_eq!(
            rule(id),
            &json!({
                "Id": id,
                "Status": "Enabled",
                "Prefix": prefix,
                "ExpirationInDays": reference("JobRetentionDays"),
                "AbortIncompleteMultipartUpload": abort_after_a_day,
            }),
            "{id}"
        );
    }
    // The keys the code writes are under those prefixes.
    let job = JobId::random();
    assert!(jobline_core::results::result_key(job, 1).starts_with("results/"));
    assert!(files::output_key(job, 1, "out.csv").starts_with("outputs/"));
    assert!(files::output_prefix(job, 1).starts_with("outputs/"));

    // Uploads: unfinished ones a day after they began (S3 refuses that in
    // a rule that filters on tags), and each upload by its keep tier.
    assert_eq!(
        rule("uploads-abort-incomplete"),
        &json!({
            "Id": "uploads-abort-incomplete",
            "Status": "Enabled",
            "Prefix": "uploads/",
            "AbortIncompleteMultipartUpload": abort_after_a_day,
        })
    );
    assert_eq!(
        files::KEEP_TIERS_DAYS,
        [2, 7, 30, 90, 180, 400, 800, 1600, 4100]
    );
    let mut tiers = Vec::new();
    for days in files::KEEP_TIERS_DAYS {
        let id = format!("uploads-keep-{days}");
        assert_eq!(
            rule(&id),
            &json!({
                "Id": id,
                "Status": "Enabled",
                "Prefix": "uploads/",
                "TagFilters": [{"Key": files::KEEP_TAG, "Value": days.to_string()}],
                "ExpirationInDays": days,
            }),
            "{id}"
        );
        tiers.push(id);
    }
    let mut expected: Vec<String> = [
        "expire-with-the-jobs",
        "expire-outputs-with-the-jobs",
        "uploads-abort-incomplete",
    ]
    .map(str::to_owned)
    .to_vec();
    expected.extend(tiers);
    assert_eq!(ids, expected, "the lifecycle rules, and nothing else");
    // The longest tier outlasts the record of a job that names an upload at
    // the end of its window and runs the longest allowed.
    let longest_record_days = number(&template.parameter("JobRetentionDays")["MaxValue"])
        + number(&template.parameter("MaxJobRunSeconds")["MaxValue"]).div_ceil(86_400)
        + files::UPLOAD_WINDOW.as_secs().div_ceil(86_400);
    let longest_tier = u64::from(*files::KEEP_TIERS_DAYS.last().unwrap());
    assert!(
        longest_tier >= longest_record_days,
        "{longest_tier} < {longest_record_days}"
    );

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

/// An event source mapping ignores its function's reserved concurrency, so
/// a reservation below its `MaximumConcurrency` would throttle deliveries
/// into retries and the dead-letter queue. The worker's reservation, when
/// asked for, is its mapping's `MaximumConcurrency` itself; no other
/// mapped function reserves; the API may, and 0 means none (a reservation
/// of 0 would stop the function).
#[test]
fn reserved_concurrency_never_throttles_an_event_source() {
    let template = Template::load();
    assert_eq!(
        string_default(&template, "ReserveWorkerConcurrency"),
        "false"
    );
    assert_eq!(
        template.0["Conditions"]["ReserveWorker"],
        json!({"Fn::Equals": [reference("ReserveWorkerConcurrency"), "true"]})
    );
    let worker = template.properties("WorkerFunction", FUNCTION);
    assert_eq!(
        worker["ReservedConcurrentExecutions"],
        json!({"Fn::If": ["ReserveWorker", reference("MaximumConcurrency"), reference("AWS::NoValue")]})
    );

    for (name, mapping) in template.resources_of_type(EVENT_SOURCE_MAPPING) {
        let properties = &mapping["Properties"];
        let function = properties["FunctionName"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: FunctionName is not a Ref"));
        let reserved = &template.properties(function, FUNCTION)["ReservedConcurrentExecutions"];
        if reserved.is_null() {
            continue;
        }
        // Reserved only as the mapping's own cap: never a number below it.
        let maximum = &properties["ScalingConfig"]["MaximumConcurrency"];
        assert!(!maximum.is_null(), "{name}: {function} reserves, uncapped");
        match reserved["Fn::If"].as_array().map(Vec::as_slice) {
            Some([_, reservation, none]) => {
                assert_eq!(reservation, maximum, "{name}: {function}");
                assert_eq!(none, &reference("AWS::NoValue"), "{name}");
            }
            _ => panic!("{name}: {function} reserves {reserved}, not its MaximumConcurrency"),
        }
    }

    let api = template.parameter("ApiReservedConcurrency");
    assert_eq!(template.default_of("ApiReservedConcurrency"), 0);
    assert_eq!(number(&api["MinValue"]), 0);
    assert_eq!(
        template.0["Conditions"]["ReserveApi"],
        json!({"Fn::Not": [{"Fn::Equals": [reference("ApiReservedConcurrency"), "0"]}]})
    );
    assert_eq!(
        template.properties("ApiFunction", FUNCTION)["ReservedConcurrentExecutions"],
        json!({"Fn::If": ["ReserveApi", reference("ApiReservedConcurrency"), reference("AWS::NoValue")]})
    );
    for function in ["SweeperFunction", "NotifierFunction", "FireFunction"] {
        assert!(
            template.properties(function, FUNCTION)["ReservedConcurrentExecutions"].is_null(),
            "{function}"
        );
    }
}
