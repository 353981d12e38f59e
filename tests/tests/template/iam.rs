//! Who may do what: every role grants exactly what its function calls,
//! every route needs IAM or JWT auth, and the stage is throttled.

use super::*;

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
        ("FireFunction", "FireFunctionRole"),
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
    // Delayed jobs and recurring schedules (schedules.rs has the details):
    // the callers' schedules, the group's timers, and the role they fire as.
    let schedules = get_att("SchedulesTable", "Arn");
    api.extend([
        ("dynamodb:GetItem", schedules.clone()),
        ("dynamodb:PutItem", schedules.clone()),
        ("dynamodb:UpdateItem", schedules.clone()),
        ("dynamodb:DeleteItem", schedules.clone()),
        // GET /schedules and the per-caller bound: the caller's partition.
        ("dynamodb:Query", schedules.clone()),
        ("scheduler:CreateSchedule", group_schedules()),
        ("scheduler:UpdateSchedule", group_schedules()),
        ("scheduler:DeleteSchedule", group_schedules()),
        ("scheduler:GetSchedule", group_schedules()),
        ("iam:PassRole", get_att("SchedulerRole", "Arn")),
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
    // The fire function submits a job as POST /jobs does (its writes, the
    // backlog's depth, the send), reads and records the fired schedule,
    // sends its on-failure records, and deletes an orphan timer.
    let (table, queue) = (get_att("JobsTable", "Arn"), get_att("JobsQueue", "Arn"));
    let mut fire = logs("FireLogGroup").to_vec();
    fire.extend([
        ("dynamodb:PutItem", table.clone()),
        ("dynamodb:GetItem", table.clone()),
        ("dynamodb:UpdateItem", table),
        ("dynamodb:GetItem", schedules.clone()),
        ("dynamodb:UpdateItem", schedules),
        ("sqs:SendMessage", queue.clone()),
        ("sqs:GetQueueAttributes", queue),
        ("sqs:SendMessage", get_att("FireFailuresQueue", "Arn")),
        ("scheduler:DeleteSchedule", group_schedules()),
    ]);
    assert_eq!(template.role_grants("FireFunctionRole"), grants(&fire));
    for (function, group) in [
        ("ApiFunction", "ApiLogGroup"),
        ("WorkerFunction", "WorkerLogGroup"),
        ("SweeperFunction", "SweeperLogGroup"),
        ("NotifierFunction", "NotifierLogGroup"),
        ("FireFunction", "FireLogGroup"),
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
        length >= u64::try_from(jobline_webhooks::keys::MIN_MASTER_KEY_BYTES).unwrap(),
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
            // A delayed job, run now.
            "POST /jobs/{id}/run".to_owned(),
            // Recurring schedules.
            "POST /schedules".to_owned(),
            "GET /schedules".to_owned(),
            "GET /schedules/{id}".to_owned(),
            "PATCH /schedules/{id}".to_owned(),
            "DELETE /schedules/{id}".to_owned(),
            "POST /schedules/{id}/pause".to_owned(),
            "POST /schedules/{id}/resume".to_owned(),
            "POST /schedules/{id}/trigger".to_owned(),
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
    let resolved = resolved_environment(&template, "ApiFunction", &HashMap::new());
    assert_eq!(resolved["MAX_BACKLOG"], "100000");
}
