//! Who may do what: every role grants exactly what its function calls,
//! every route needs IAM or JWT auth, and the stage is throttled. And what
//! checkov (`scripts/check-template`) cannot see of the security posture:
//! it passes a property that is an `Fn::If` whatever the branches hold, and
//! reads no IAM grant against the resources it protects. So: an optional
//! customer managed key (`KmsKeyArn`) encrypts every resource that holds
//! data when given, and AWS's keys encrypt them as before when not; each
//! role may use that key, and only that key, only when it is given; and
//! every checkov finding skipped says why.

use super::*;

#[test]
fn iam_is_least_privilege() {
    let template = Template::load();
    let all = statements(&template.0);
    assert!(all.len() >= 6, "found only {} statements", all.len());
    for statement in all {
        for key in ["Resource", "NotResource"] {
            // The one exception: X-Ray's two actions name no resource
            // (`xray_policy` below: only with ActiveTracing, and alone).
            let xray = key == "Resource" && statement["Action"] == json!(XRAY_ACTIONS);
            assert!(
                xray || !as_list(&statement[key]).contains(&&json!("*")),
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
    let uploads = json!({"Fn::Sub": "${ResultsBucket.Arn}/uploads/*"});
    let outputs = json!({"Fn::Sub": "${ResultsBucket.Arn}/outputs/*"});
    // With a customer managed key (KmsKeyArn), every role uses it, on it
    // alone (below: only with the key, and why each role needs it).
    let key = [
        ("kms:Decrypt", reference("KmsKeyArn")),
        ("kms:GenerateDataKey", reference("KmsKeyArn")),
    ];
    // With Lambda's X-Ray tracing (ActiveTracing: Active), every function's
    // role sends its traces (below: only then).
    let xray = XRAY_ACTIONS.map(|action| (action, json!("*")));
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
        // POST /uploads: the presigned PUT, with its keep tier's tag; a
        // submission's HeadObject of an upload, and its tier raised.
        ("s3:PutObject", uploads.clone()),
        ("s3:PutObjectTagging", uploads.clone()),
        ("s3:GetObject", uploads.clone()),
        ("s3:GetObjectTagging", uploads.clone()),
        // Links to the job's outputs, and their deletion with the job.
        ("s3:GetObject", outputs.clone()),
        ("s3:DeleteObject", outputs.clone()),
        // The outputs listed; an upload not sent yet a 404, not a 403.
        ("s3:ListBucket", get_att("ResultsBucket", "Arn")),
        // The per-caller bound: each admission counted.
        ("dynamodb:UpdateItem", get_att("CallersTable", "Arn")),
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
    api.extend(key.clone());
    api.extend(xray.clone());
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
        // A job's input files (a gone one a 404, by s3:ListBucket), and its
        // outputs as multipart uploads.
        ("s3:GetObject", uploads),
        ("s3:ListBucket", get_att("ResultsBucket", "Arn")),
        ("s3:PutObject", outputs.clone()),
        ("s3:AbortMultipartUpload", outputs),
        // A continuation: the job goes on in a new message.
        ("sqs:SendMessage", queue),
    ]);
    worker.extend(key.clone());
    worker.extend(xray.clone());
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
    sweeper.extend(key.clone());
    sweeper.extend(xray.clone());
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
        // Each final state counts its caller down.
        ("dynamodb:UpdateItem", get_att("CallersTable", "Arn")),
    ]);
    notifier.extend(key.clone());
    notifier.extend(xray.clone());
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
        ("dynamodb:UpdateItem", get_att("CallersTable", "Arn")),
        ("sqs:SendMessage", queue.clone()),
        ("sqs:GetQueueAttributes", queue),
        ("sqs:SendMessage", get_att("FireFailuresQueue", "Arn")),
        ("scheduler:DeleteSchedule", group_schedules()),
    ]);
    fire.extend(key);
    fire.extend(xray);
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
            "POST /uploads".to_owned(),
            "GET /uploads/{id}".to_owned(),
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

/// `KmsKeyArn` when given, else nothing (the service's own key).
fn stack_key() -> Value {
    kms_if(reference("KmsKeyArn"), reference("AWS::NoValue"))
}

/// The resource types the template deploys, and whether each holds data at
/// rest that the customer managed key must encrypt (a function: its
/// environment variables). A new type fails here until it is placed.
const RESOURCE_TYPES: [(&str, bool); 20] = [
    (FUNCTION, true),
    (TABLE, true),
    (QUEUE, true),
    ("AWS::Logs::LogGroup", true),
    ("AWS::SecretsManager::Secret", true),
    ("AWS::S3::Bucket", true),
    ("AWS::S3::BucketPolicy", false),
    ("AWS::IAM::Role", false),
    ("AWS::IAM::ManagedPolicy", false),
    (EVENT_SOURCE_MAPPING, false),
    ("AWS::Lambda::Permission", false),
    ("AWS::Events::Rule", false),
    // Its schedules are created at run time by the API, with Scheduler's
    // own key: the template has none.
    ("AWS::Scheduler::ScheduleGroup", false),
    ("AWS::ApiGatewayV2::Api", false),
    ("AWS::ApiGatewayV2::Integration", false),
    ("AWS::ApiGatewayV2::Authorizer", false),
    ("AWS::ApiGatewayV2::Route", false),
    ("AWS::ApiGatewayV2::Stage", false),
    (ALARM, false),
    ("AWS::CloudWatch::Dashboard", false),
];

/// With `KmsKeyArn` every table, queue, log group, secret, bucket and
/// function environment is encrypted with that key; without it, each keeps
/// what it had: the AWS managed key for the tables, the secret and the
/// environments, SSE-SQS, SSE-S3, and CloudWatch Logs' own encryption.
#[test]
fn a_customer_managed_key_encrypts_everything_it_is_given_for() {
    let template = Template::load();
    let parameter = template.parameter("KmsKeyArn");
    assert_eq!(parameter["Type"], "String");
    assert_eq!(parameter["Default"], "", "AWS's keys unless one is given");
    let pattern = parameter["AllowedPattern"]
        .as_str()
        .expect("AllowedPattern");
    assert!(pattern.starts_with("^$|"), "an empty KmsKeyArn is allowed");
    assert!(pattern.contains(":key/"), "a key's ARN, not an alias's");
    assert_eq!(
        template.0["Conditions"]["HasKmsKey"],
        json!({"Fn::Not": [{"Fn::Equals": [reference("KmsKeyArn"), ""]}]})
    );

    let types: BTreeMap<&str, bool> = RESOURCE_TYPES.into_iter().collect();
    let mut encrypted = BTreeMap::<&str, usize>::new();
    for (name, resource) in template.0["Resources"].as_object().expect("Resources") {
        let kind = resource["Type"].as_str().expect("Type");
        let holds_data = types
            .get(kind)
            .unwrap_or_else(|| panic!("{name}: does {kind} hold data the key must encrypt?"));
        if *holds_data {
            *encrypted.entry(kind).or_default() += 1;
        }
    }
    assert_eq!(
        encrypted,
        BTreeMap::from([
            (FUNCTION, 5),
            (TABLE, 3),
            (QUEUE, 5),
            ("AWS::Logs::LogGroup", 6),
            ("AWS::SecretsManager::Secret", 1),
            ("AWS::S3::Bucket", 1),
        ])
    );

    // The tables: KMS either way (SSEEnabled true is the AWS managed key,
    // aws/dynamodb), and the stream with them.
    for (name, table) in template.resources_of_type(TABLE) {
        assert_eq!(
            table["Properties"]["SSESpecification"],
            json!({"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": stack_key()}),
            "{name}"
        );
    }
    // The queues: SSE-SQS, or SSE-KMS with the key (never both), each
    // caller reusing a data key for an hour, within SQS's 1 minute to 24
    // hours.
    for (name, queue) in template.resources_of_type(QUEUE) {
        let properties = &queue["Properties"];
        assert_eq!(properties["KmsMasterKeyId"], stack_key(), "{name}");
        assert_eq!(
            properties["SqsManagedSseEnabled"],
            kms_if(json!(false), json!(true)),
            "{name}"
        );
        let reuse = &properties["KmsDataKeyReusePeriodSeconds"];
        assert_eq!(
            reuse,
            &kms_if(json!(3600), reference("AWS::NoValue")),
            "{name}"
        );
        assert!((60..=86_400).contains(&number(&reuse["Fn::If"][1])));
    }
    for kind in ["AWS::Logs::LogGroup", "AWS::SecretsManager::Secret"] {
        for (name, resource) in template.resources_of_type(kind) {
            assert_eq!(resource["Properties"]["KmsKeyId"], stack_key(), "{name}");
        }
    }
    // Every function's environment, from Globals; none sets its own.
    assert_eq!(template.0["Globals"]["Function"]["KmsKeyArn"], stack_key());
    for (name, function) in template.resources_of_type(FUNCTION) {
        assert!(
            function["Properties"]["KmsKeyArn"].is_null(),
            "{name} overrides the key"
        );
    }
    // The bucket: SSE-S3, or SSE-KMS with the key and an S3 Bucket Key (KMS
    // called per bucket key, not per object).
    for (name, bucket) in template.resources_of_type("AWS::S3::Bucket") {
        assert_eq!(
            bucket["Properties"]["BucketEncryption"],
            json!({"ServerSideEncryptionConfiguration": [{
                "ServerSideEncryptionByDefault": {
                    "SSEAlgorithm": kms_if(json!("aws:kms"), json!("AES256")),
                    "KMSMasterKeyID": stack_key(),
                },
                "BucketKeyEnabled": kms_if(json!(true), reference("AWS::NoValue")),
            }]}),
            "{name}"
        );
    }
    // Its server access logs, to a bucket of the deployer's if named.
    assert_eq!(template.parameter("AccessLogBucket")["Default"], "");
    assert_eq!(
        template.properties("ResultsBucket", "AWS::S3::Bucket")["LoggingConfiguration"],
        json!({"Fn::If": [
            "HasAccessLogBucket",
            {
                "DestinationBucketName": reference("AccessLogBucket"),
                "LogFilePrefix": {"Fn::Sub": "${AWS::StackName}/results/"},
            },
            reference("AWS::NoValue"),
        ]})
    );
}

/// Every role may use the key (each reads a table, which DynamoDB decrypts
/// for each caller, or sends to a queue), with `kms:Decrypt` and
/// `kms:GenerateDataKey` only, on that key only, in a policy that exists
/// only when the key is given: no statement on `"*"`, nothing to grant
/// without a key. No other policy names KMS.
#[test]
fn each_role_may_use_the_key_only_when_given_and_nothing_else_of_kms() {
    let template = Template::load();
    let key_policy = |role: &str| {
        json!({"Fn::If": [
            "HasKmsKey",
            {
                "PolicyName": format!("jobline-{role}-key"),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "UseTheStacksKey",
                        "Effect": "Allow",
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                        "Resource": reference("KmsKeyArn"),
                    }],
                },
            },
            reference("AWS::NoValue"),
        ]})
    };
    let mut with_key = BTreeSet::new();
    for (name, role) in template.resources_of_type("AWS::IAM::Role") {
        let policies = as_list(&role["Properties"]["Policies"]);
        let (conditional, plain): (Vec<&Value>, Vec<&Value>) = policies
            .into_iter()
            .filter(|policy| policy["Fn::If"][0] != "TracingActive")
            .partition(|policy| !policy["Fn::If"].is_null());
        for policy in &plain {
            for statement in statements(policy) {
                for action in as_list(&statement["Action"]) {
                    let action = action.as_str().expect("an action");
                    assert!(
                        !action.starts_with("kms:"),
                        "{name}: {action} outside the key's own policy"
                    );
                }
            }
        }
        let [policy] = conditional.as_slice() else {
            panic!("{name}: {} conditional policies", conditional.len());
        };
        let short = plain[0]["PolicyName"]
            .as_str()
            .and_then(|policy| policy.strip_prefix("jobline-"))
            .expect("a jobline-<role> policy");
        assert_eq!(*policy, &key_policy(short), "{name}");
        // Which the role needs: it reads or writes what the key encrypts.
        let grants = template.role_grants(name);
        let uses_encrypted_data = grants.iter().any(|(action, _)| {
            action.starts_with("dynamodb:")
                || ["sqs:SendMessage", "sqs:ReceiveMessage"].contains(&action.as_str())
                || ["s3:GetObject", "s3:PutObject"].contains(&action.as_str())
                || action == "secretsmanager:GetSecretValue"
        });
        assert!(uses_encrypted_data, "{name} needs no key");
        with_key.insert(name);
    }
    assert_eq!(
        with_key,
        BTreeSet::from([
            "ApiFunctionRole",
            "WorkerFunctionRole",
            "SweeperFunctionRole",
            "NotifierFunctionRole",
            "FireFunctionRole",
            "SchedulerRole",
        ])
    );
    // The callers' policy lets them call the API, not use the key.
    for statement in statements(
        &template.properties("ClientPolicy", "AWS::IAM::ManagedPolicy")["PolicyDocument"],
    ) {
        assert_eq!(statement["Action"], "execute-api:Invoke");
    }
}

/// X-Ray's actions for Lambda's active tracing: X-Ray defines no resource
/// type for them, so a grant can only name `"*"`.
const XRAY_ACTIONS: [&str; 2] = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

/// Lambda's X-Ray tracing is a parameter (`ActiveTracing`, off by default:
/// a job's trace is OpenTelemetry's), and only with it on does each
/// function's role get X-Ray's two actions, in a policy of their own, on
/// `"*"` (the only form they have); no other role gets any, nor any other
/// X-Ray action.
#[test]
fn x_ray_is_granted_only_with_active_tracing_and_only_its_two_actions() {
    let template = Template::load();
    let parameter = template.parameter("ActiveTracing");
    assert_eq!(parameter["Default"], "PassThrough");
    assert_eq!(parameter["AllowedValues"], json!(["PassThrough", "Active"]));
    assert_eq!(
        template.0["Globals"]["Function"]["Tracing"],
        reference("ActiveTracing")
    );
    let xray_policy = |role: &str| {
        json!({"Fn::If": [
            "TracingActive",
            {
                "PolicyName": format!("jobline-{role}-xray"),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "SendXRayTraces",
                        "Effect": "Allow",
                        "Action": XRAY_ACTIONS,
                        "Resource": "*",
                    }],
                },
            },
            reference("AWS::NoValue"),
        ]})
    };
    for (name, role) in template.resources_of_type("AWS::IAM::Role") {
        let policies = as_list(&role["Properties"]["Policies"]);
        let xray: Vec<&Value> = policies
            .iter()
            .copied()
            .filter(|policy| policy["Fn::If"][0] == "TracingActive")
            .collect();
        let function = FUNCTIONS
            .iter()
            .find(|function| format!("{function}Role") == name);
        match function {
            Some(function) => {
                let short = function
                    .strip_suffix("Function")
                    .expect("a function")
                    .to_ascii_lowercase();
                assert_eq!(xray, [&xray_policy(&short)], "{name}");
            }
            None => assert!(xray.is_empty(), "{name}: {xray:?}"),
        }
        for policy in policies
            .iter()
            .filter(|p| p["Fn::If"][0] != "TracingActive")
        {
            for statement in statements(policy) {
                for action in as_list(&statement["Action"]) {
                    let action = action.as_str().expect("an action");
                    assert!(!action.starts_with("xray:"), "{name}: {action}");
                }
            }
        }
    }
    // Active tracing does not need the endpoint, nor the endpoint it: the
    // exporter's variable is set only when OtlpEndpoint is given.
    let none = HashMap::new();
    for function in FUNCTIONS {
        let environment = resolved_environment(&template, function, &none);
        assert!(
            !environment.contains_key("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "{function}: {environment:?}"
        );
        let given = HashMap::from([("OtlpEndpoint", "http://localhost:4318")]);
        let environment = resolved_environment(&template, function, &given);
        assert_eq!(
            environment["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://localhost:4318",
            "{function}"
        );
    }
}

/// Each checkov finding the template skips, and that each says why (in
/// full in `template.yaml`): a new skip is a change here, in review.
#[test]
fn every_skipped_checkov_finding_says_why() {
    let template = Template::load();
    let mut skipped = BTreeSet::new();
    for (name, resource) in template.0["Resources"].as_object().expect("Resources") {
        for skip in as_list(&resource["Metadata"]["checkov"]["skip"]) {
            let id = skip["id"].as_str().expect("a skip's id");
            let comment = skip["comment"].as_str().unwrap_or_default();
            assert!(
                comment.split_whitespace().count() >= 10,
                "{name} {id}: too short a reason: {comment:?}"
            );
            assert!(skipped.insert((name.as_str(), id)), "{name} {id} twice");
        }
    }
    let expected: BTreeSet<(&str, &str)> = [
        // No versioning: deleting a job must delete its files.
        ("ResultsBucket", "CKV_AWS_21"),
        // Encrypted either way; checkov does not evaluate the !If.
        ("ResultsBucket", "CKV_AWS_19"),
    ]
    .into_iter()
    .chain(FUNCTIONS.into_iter().flat_map(|function| {
        // No VPC: nothing private to reach. No function DLQ: each has its
        // queue's redrive, an on-failure destination, or no event to keep.
        [(function, "CKV_AWS_116"), (function, "CKV_AWS_117")]
    }))
    // No reservation where a cap would throttle an event source or delay
    // fires, or where one run at a time needs none.
    .chain(
        ["SweeperFunction", "NotifierFunction", "FireFunction"]
            .map(|function| (function, "CKV_AWS_115")),
    )
    .collect();
    assert_eq!(skipped, expected);
}
