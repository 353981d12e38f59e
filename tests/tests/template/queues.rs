//! The queues, the table and the stream: their settings equal what
//! `provision` creates (and moto holds), and the mappings read them as the
//! code expects.

use super::*;

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
        assert_eq!(
            without_kms_key(&properties["SqsManagedSseEnabled"]),
            &json!(true)
        );
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

    let patterns: Vec<Value> = as_list(&mapping["FilterCriteria"]["Filters"])
        .into_iter()
        .map(|filter| {
            serde_json::from_str(
                filter["Pattern"]
                    .as_str()
                    .expect("a Pattern, a JSON string"),
            )
            .expect("the filter's Pattern is JSON")
        })
        .collect();
    assert_eq!(patterns.len(), 3, "final states, replays, removals");
    let finished: BTreeSet<&str> = every_job_state()
        .into_iter()
        .filter(|state| state.is_finished())
        .map(JobState::as_str)
        .collect();
    assert_eq!(
        finished,
        BTreeSet::from(["succeeded", "failed", "cancelled"])
    );

    // Every record the notifier acts on (a webhook to announce, a caller to
    // count) passes a filter; every other record that passes is a write to
    // a job already final, which both ignore.
    let id = "0b6f6f0e-8a4b-4a47-9d5e-2f3f9f0c4b11";
    let image = |state: JobState, callback: bool| {
        let mut image = json!({"jobId": {"S": id}, (STATE_ATTRIBUTE): {"S": state.as_str()},
                               "owner": {"S": "alice"}});
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
                    let mut dynamodb = json!({});
                    if event != "REMOVE" {
                        dynamodb["NewImage"] = image(new, callback);
                    }
                    if let Some(old) = old {
                        dynamodb["OldImage"] = image(old, callback);
                    }
                    let record = json!({"eventName": event, "dynamodb": dynamodb});
                    let filtered = patterns.iter().any(|p| pattern_matches(p, &record));
                    passed += usize::from(filtered);
                    let acted_on =
                        outbox::announced(&record).is_some() || outbox::counted(&record).is_some();
                    if acted_on {
                        assert!(filtered, "the filter drops a record acted on: {record}");
                    } else if filtered {
                        assert!(
                            event != "REMOVE" && new.is_finished(),
                            "the filter passes a record nothing acts on: {record}"
                        );
                    }
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
        let environment = resolved_environment(&template, "WorkerFunction", &parameters);
        let config = Config::from_lookup(|name| environment.get(name).cloned())
            .unwrap_or_else(|e| panic!("WorkerTimeoutSeconds {timeout}: {e}"));
        assert_eq!(u64::from(config.worker.function_timeout_secs), timeout);
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
        // As deployed without a customer managed key (iam.rs has it).
        assert_eq!(
            attributes["SqsManagedSseEnabled"],
            without_kms_key(&properties["SqsManagedSseEnabled"]).to_string()
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
        // As deployed without a customer managed key (iam.rs has it).
        assert_eq!(
            attributes["SqsManagedSseEnabled"],
            without_kms_key(&properties["SqsManagedSseEnabled"]).to_string()
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
    // The AWS managed key, as provision's table has it, unless KmsKeyArn
    // names one (iam.rs).
    assert_eq!(
        template_table["SSESpecification"],
        json!({
            "SSEEnabled": true,
            "SSEType": "KMS",
            "KMSMasterKeyId": kms_if(reference("KmsKeyArn"), reference("AWS::NoValue")),
        })
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
