//! Delayed and recurring jobs (issue 22): the schedule group whose
//! EventBridge Scheduler schedules fire them, the role Scheduler fires as,
//! the fire function it invokes and the queue of fires that submitted no
//! job, the schedules table, and what the API may do to each.

use super::*;

/// The routes of delayed and recurring jobs, by resource.
const ROUTES: [(&str, &str); 9] = [
    ("RunJobRoute", "POST /jobs/{id}/run"),
    ("CreateScheduleRoute", "POST /schedules"),
    ("ListSchedulesRoute", "GET /schedules"),
    ("GetScheduleRoute", "GET /schedules/{id}"),
    ("UpdateScheduleRoute", "PATCH /schedules/{id}"),
    ("DeleteScheduleRoute", "DELETE /schedules/{id}"),
    ("PauseScheduleRoute", "POST /schedules/{id}/pause"),
    ("ResumeScheduleRoute", "POST /schedules/{id}/resume"),
    ("TriggerScheduleRoute", "POST /schedules/{id}/trigger"),
];

/// The metrics the fire function emits (observability.rs checks every
/// metric's place on the dashboard; these have a widget of their own).
const FIRE_METRICS: [Metric; 3] = [
    Metric::ScheduleFires,
    Metric::ScheduleFiresSkipped,
    Metric::ScheduleFireFailures,
];

/// Every IAM role of the template, by name.
fn roles(template: &Template) -> Vec<&str> {
    template
        .resources_of_type("AWS::IAM::Role")
        .map(|(name, _)| name)
        .collect()
}

/// The alarm actions every alarm has: the one topic, of ALARM and of OK.
fn alarm_actions() -> Value {
    json!({"Fn::If": ["HasAlarmTopic", [reference("AlarmTopicArn")], reference("AWS::NoValue")]})
}

/// EventBridge Scheduler may assume its role only for a schedule of this
/// account's group, and the role may invoke the fire function and send
/// Scheduler's dead letters to the failures queue, nothing else; no other
/// role may invoke the fire function, and it has no resource policy.
#[test]
fn the_scheduler_role_may_only_invoke_the_fire_function_and_dead_letter_its_fires() {
    let template = Template::load();
    let role = template.properties("SchedulerRole", "AWS::IAM::Role");
    assert_eq!(
        template.role_grants("SchedulerRole"),
        grants(&[
            ("lambda:InvokeFunction", get_att("FireFunction", "Arn")),
            ("sqs:SendMessage", get_att("FireFailuresQueue", "Arn")),
            // Its dead letters, with the stack's key (iam.rs).
            ("kms:Decrypt", reference("KmsKeyArn")),
            ("kms:GenerateDataKey", reference("KmsKeyArn")),
        ])
    );
    for statement in statements(&role["Policies"]) {
        for widening in ["NotAction", "NotResource"] {
            assert!(statement[widening].is_null(), "{widening} in {statement}");
        }
    }
    assert!(
        role["ManagedPolicyArns"].is_null(),
        "SchedulerRole has managed policies"
    );

    // The confused-deputy conditions Scheduler documents: this account, and
    // this schedule group's ARN (Scheduler's aws:SourceArn is the group's).
    assert_eq!(
        statements(&role["AssumeRolePolicyDocument"]),
        [&json!({
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {
                "aws:SourceAccount": reference("AWS::AccountId"),
                "aws:SourceArn": get_att("ScheduleGroup", "Arn"),
            }},
        })]
    );

    // What the API creates each schedule with: this role, as target the
    // function the role may invoke, and as DLQ the queue it may send to.
    let api = template.function_environment("ApiFunction");
    for (variable, value) in [
        ("SCHEDULER_ROLE_ARN", get_att("SchedulerRole", "Arn")),
        ("FIRE_FUNCTION_ARN", get_att("FireFunction", "Arn")),
        (
            "FIRE_FAILURES_QUEUE_ARN",
            get_att("FireFailuresQueue", "Arn"),
        ),
    ] {
        assert_eq!(api.get(variable), Some(&value), "{variable}");
    }
    let resolved = resolved_environment(&template, "ApiFunction", &HashMap::new());
    assert_eq!(resolved["FIRE_FUNCTION_ARN"], "<FireFunction.Arn>");

    // Scheduler invokes with the role alone: no resource policy on the fire
    // function, and no other role may invoke any function.
    for (name, permission) in template.resources_of_type("AWS::Lambda::Permission") {
        assert_ne!(
            permission["Properties"]["FunctionName"],
            reference("FireFunction"),
            "{name}"
        );
    }
    for role in roles(&template) {
        let invokes = template
            .role_grants(role)
            .iter()
            .any(|(action, _)| action.starts_with("lambda:"));
        assert_eq!(invokes, role == "SchedulerRole", "{role}");
    }
}

/// The API may create, update, delete and read the schedules of the
/// stack's group and no other, and pass the scheduler role, to Scheduler
/// only; the fire function may only delete them; no role may do more with
/// Scheduler or pass any other role.
#[test]
fn the_api_touches_only_the_groups_schedules_and_passes_only_the_scheduler_role() {
    let template = Template::load();
    let mut scheduler: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut passes = Vec::new();
    for role in roles(&template) {
        for (action, resource) in template.role_grants(role) {
            if action.starts_with("scheduler:") {
                assert_eq!(
                    resource,
                    group_schedules().to_string(),
                    "{role}: {action} beyond the group's schedules"
                );
                scheduler.entry(role).or_default().insert(action);
            }
        }
        let policies = &template.properties(role, "AWS::IAM::Role")["Policies"];
        for statement in statements(policies) {
            if as_list(&statement["Action"])
                .iter()
                .any(|action| action.as_str().is_some_and(|a| a.starts_with("iam:")))
            {
                passes.push((role, statement));
            }
        }
    }
    let actions = |list: &[&str]| -> BTreeSet<String> {
        list.iter().map(|action| (*action).to_owned()).collect()
    };
    assert_eq!(
        scheduler,
        BTreeMap::from([
            (
                "ApiFunctionRole",
                actions(&[
                    "scheduler:CreateSchedule",
                    "scheduler:UpdateSchedule",
                    "scheduler:DeleteSchedule",
                    "scheduler:GetSchedule",
                ])
            ),
            // An orphan timer, whose schedule's record is gone, deletes
            // itself at its first fire.
            ("FireFunctionRole", actions(&["scheduler:DeleteSchedule"])),
        ])
    );
    assert_eq!(passes.len(), 1, "iam: statements {passes:?}");
    let (role, statement) = passes[0];
    assert_eq!(role, "ApiFunctionRole");
    assert_eq!(as_list(&statement["Action"]), [&json!("iam:PassRole")]);
    assert_eq!(statement["Resource"], get_att("SchedulerRole", "Arn"));
    assert_eq!(
        statement["Condition"],
        json!({"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}})
    );

    // The API's settings: the group, the records, the per-caller bound.
    let api = template.function_environment("ApiFunction");
    assert_eq!(api["SCHEDULE_GROUP"], reference("ScheduleGroup"));
    assert_eq!(api["SCHEDULES_TABLE"], reference("SchedulesTable"));
    assert_eq!(
        api["MAX_SCHEDULES_PER_CALLER"],
        reference("MaxSchedulesPerCaller")
    );
    let bound = template.parameter("MaxSchedulesPerCaller");
    assert_eq!(bound["Type"], "Number");
    assert_eq!(number(&bound["MinValue"]), 1);
    assert_eq!(template.default_of("MaxSchedulesPerCaller"), 100);
    let resolved = resolved_environment(&template, "ApiFunction", &HashMap::new());
    assert_eq!(resolved["MAX_SCHEDULES_PER_CALLER"], "100");
    let given = HashMap::from([("MaxSchedulesPerCaller", "7")]);
    let resolved = resolved_environment(&template, "ApiFunction", &given);
    assert_eq!(resolved["MAX_SCHEDULES_PER_CALLER"], "7");
}

/// The fire function submits a job as the API does, from its own role, is
/// invoked by Scheduler alone, and sends the record of an invocation that
/// failed every attempt to the failures queue.
#[test]
fn the_fire_function_submits_as_the_api_and_sends_its_failures_to_the_queue() {
    let template = Template::load();
    let fire = template.properties("FireFunction", FUNCTION);
    assert_eq!(
        fire["EventInvokeConfig"],
        json!({
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 3600,
            "DestinationConfig": {"OnFailure": {
                "Type": "SQS",
                "Destination": get_att("FireFailuresQueue", "Arn"),
            }},
        })
    );
    // SAM adds no policy to a role it did not make: the role sends there.
    assert!(template.role_grants("FireFunctionRole").contains(&(
        "sqs:SendMessage".to_owned(),
        get_att("FireFailuresQueue", "Arn").to_string()
    )));
    assert!(fire["Events"].is_null(), "FireFunction has SAM Events");
    assert_eq!(
        template
            .resources_of_type(EVENT_SOURCE_MAPPING)
            .filter(
                |(_, mapping)| mapping["Properties"]["FunctionName"] == reference("FireFunction")
            )
            .count(),
        0,
        "an event source mapping of the fire function"
    );
    // One submission, sized as the API's.
    assert_eq!(number(&fire["Timeout"]), 10);
    assert_eq!(
        fire["MemorySize"],
        template.properties("ApiFunction", FUNCTION)["MemorySize"]
    );
    // No reservation: a cap would only delay a minute's burst of fires
    // (functions.rs has every function's).
    assert!(fire["ReservedConcurrentExecutions"].is_null());

    // The submission's settings are the API's.
    let environment = template.function_environment("FireFunction");
    let api = template.function_environment("ApiFunction");
    for variable in [
        "MAX_BACKLOG",
        "DEMO_JOB_TYPES",
        "SCHEDULES_TABLE",
        "SCHEDULE_GROUP",
    ] {
        assert!(environment.contains_key(variable), "{variable}");
        assert_eq!(environment[variable], api[variable], "{variable}");
    }
    let resolved = resolved_environment(&template, "FireFunction", &HashMap::new());
    let config = Config::from_lookup(|name| resolved.get(name).cloned())
        .unwrap_or_else(|e| panic!("the fire function's environment: {e}"));
    assert_eq!(config.table_name, "<JobsTable>");
    assert_eq!(config.queue_url, "<JobsQueue>");
    assert_eq!(config.max_backlog, template.default_of("MaxBacklog"));
    assert_eq!(
        template.0["Outputs"]["FireFunctionName"]["Value"],
        reference("FireFunction")
    );
}

/// The fires that submitted no job are kept as long as the dead letters,
/// encrypted, read by nothing, alarmed from the first, and on the dashboard
/// with the fire function's metrics, whose failures are alarmed too.
#[test]
fn fire_failures_are_kept_encrypted_and_alarmed() {
    let template = Template::load();
    let queue = template.properties("FireFailuresQueue", QUEUE);
    assert_eq!(
        number(&queue["MessageRetentionPeriod"]),
        u64::from(DLQ_RETENTION_SECS)
    );
    assert_eq!(
        without_kms_key(&queue["SqsManagedSseEnabled"]),
        &json!(true)
    );
    assert!(queue["RedrivePolicy"].is_null());
    assert_eq!(
        queue["QueueName"],
        json!({"Fn::Sub": "${AWS::StackName}-fire-dlq"})
    );
    for (name, mapping) in template.resources_of_type(EVENT_SOURCE_MAPPING) {
        assert_ne!(
            mapping["Properties"]["EventSourceArn"],
            get_att("FireFailuresQueue", "Arn"),
            "{name} would consume the fire failures"
        );
    }
    assert_eq!(
        template.0["Outputs"]["FireFailuresQueueUrl"]["Value"],
        reference("FireFailuresQueue")
    );

    let depth = template.properties("FireFailuresAlarm", ALARM);
    let emf = template.properties("ScheduleFireFailuresAlarm", ALARM);
    for (name, alarm) in [
        ("FireFailuresAlarm", depth),
        ("ScheduleFireFailuresAlarm", emf),
    ] {
        assert_eq!(alarm["Threshold"], 0, "{name}");
        assert_eq!(
            alarm["ComparisonOperator"], "GreaterThanThreshold",
            "{name}"
        );
        assert_eq!(alarm["TreatMissingData"], "notBreaching", "{name}");
        assert_eq!(alarm["AlarmActions"], alarm_actions(), "{name}");
        assert_eq!(alarm["OKActions"], alarm_actions(), "{name}");
    }
    assert_eq!(depth["Namespace"], "AWS/SQS");
    assert_eq!(depth["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert_eq!(
        depth["Dimensions"],
        json!([{"Name": "QueueName", "Value": get_att("FireFailuresQueue", "QueueName")}])
    );
    // The EMF figure of all job types: every document has the dimension
    // sets [JobType] and [] (core/src/metrics.rs), the second of which is
    // the figure without dimension.
    assert_eq!(emf["Namespace"], NAMESPACE);
    assert_eq!(emf["MetricName"], Metric::ScheduleFireFailures.name());
    assert!(emf["Dimensions"].is_null(), "{}", emf["Dimensions"]);
    assert_eq!(emf["Statistic"], "Sum");

    let body =
        template.properties("Dashboard", "AWS::CloudWatch::Dashboard")["DashboardBody"]["Fn::Sub"]
            .as_str()
            .expect("DashboardBody !Sub");
    for metric in FIRE_METRICS.map(Metric::name) {
        assert!(
            body.contains(&format!(r#"["{NAMESPACE}", "{metric}"]"#)),
            "the dashboard lacks {NAMESPACE}/{metric}"
        );
    }
    assert!(
        body.contains(
            r#"["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${FireFailuresQueue.QueueName}""#
        ),
        "the dashboard lacks the fire failures queue's depth"
    );
}

/// A caller's schedules are one partition of the schedules table, keyed by
/// schedule id, with no index, stream or TTL, kept and protected as the
/// job records are, and only the API and the fire function may touch them.
#[test]
fn the_schedules_table_is_a_partition_a_caller_without_index_stream_or_ttl() {
    let template = Template::load();
    let table = template.properties("SchedulesTable", TABLE);
    let jobs = template.properties("JobsTable", TABLE);
    assert_eq!(
        table["KeySchema"],
        json!([
            {"AttributeName": "owner", "KeyType": "HASH"},
            {"AttributeName": "scheduleId", "KeyType": "RANGE"},
        ])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "scheduleId", "AttributeType": "S"},
        ])
    );
    for absent in [
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "StreamSpecification",
        "TimeToLiveSpecification",
    ] {
        assert!(table[absent].is_null(), "SchedulesTable has {absent}");
    }
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    for setting in [
        "BillingMode",
        "PointInTimeRecoverySpecification",
        "SSESpecification",
    ] {
        assert!(!jobs[setting].is_null(), "{setting}");
        assert_eq!(table[setting], jobs[setting], "{setting}");
    }
    let resource = template.resource("SchedulesTable", TABLE);
    let jobs_resource = template.resource("JobsTable", TABLE);
    for retention in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(resource[retention], jobs_resource[retention], "{retention}");
    }
    for function in ["ApiFunction", "FireFunction"] {
        assert_eq!(
            template.function_environment(function)["SCHEDULES_TABLE"],
            reference("SchedulesTable"),
            "{function}"
        );
    }
    let arn = get_att("SchedulesTable", "Arn").to_string();
    let users: BTreeSet<&str> = roles(&template)
        .into_iter()
        .filter(|role| {
            template
                .role_grants(role)
                .iter()
                .any(|(_, resource)| resource.contains("SchedulesTable"))
        })
        .collect();
    assert_eq!(
        users,
        BTreeSet::from(["ApiFunctionRole", "FireFunctionRole"])
    );
    for role in users {
        for (action, resource) in template.role_grants(role) {
            if resource.contains("SchedulesTable") {
                assert_eq!(resource, arn, "{role} {action}: the table, no index");
            }
        }
    }
    assert_eq!(
        template.0["Outputs"]["SchedulesTableName"]["Value"],
        reference("SchedulesTable")
    );
}

/// The group is the stack's, goes with it (and its schedules with it), and
/// holds every schedule: the API creates them at run time, so none is a
/// resource of the template.
#[test]
fn the_schedule_group_is_the_stacks_and_holds_every_schedule() {
    let template = Template::load();
    let group = template.resource("ScheduleGroup", "AWS::Scheduler::ScheduleGroup");
    assert_eq!(
        group["Properties"]["Name"],
        json!({"Fn::Sub": "${AWS::StackName}-jobs"})
    );
    for retention in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(group[retention], "Delete", "{retention}");
    }
    assert_eq!(
        template
            .resources_of_type("AWS::Scheduler::Schedule")
            .count(),
        0
    );
    for function in ["ApiFunction", "FireFunction"] {
        assert_eq!(
            template.function_environment(function)["SCHEDULE_GROUP"],
            reference("ScheduleGroup"),
            "{function}"
        );
    }
    assert_eq!(
        template.0["Outputs"]["ScheduleGroupName"]["Value"],
        reference("ScheduleGroup")
    );
}

/// The routes of delayed and recurring jobs go to the API function,
/// authorized as reading a job (every_route_requires_iam_or_jwt_auth lists
/// them with the others, and the client policy covers them).
#[test]
fn schedule_routes_are_authorized_and_routed_as_reading_a_job() {
    let template = Template::load();
    let route = |name| template.properties(name, "AWS::ApiGatewayV2::Route");
    let get = route("GetJobRoute");
    for (name, key) in ROUTES {
        let properties = route(name);
        assert_eq!(properties["RouteKey"], key, "{name}");
        for property in ["AuthorizationType", "AuthorizerId", "Target", "ApiId"] {
            assert_eq!(properties[property], get[property], "{name} {property}");
        }
    }
}
