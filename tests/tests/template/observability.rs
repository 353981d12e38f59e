//! What operators see: alarms, the dashboard, the functions' JSON logs and
//! the API's access log.

use super::*;

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
        Metric::ScheduleFires,
        Metric::ScheduleFiresSkipped,
        Metric::ScheduleFireFailures,
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
            | Metric::JobDurationMs
            | Metric::ScheduleFires
            | Metric::ScheduleFiresSkipped
            | Metric::ScheduleFireFailures => {}
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
        ("FireFunction", "FireLogGroup"),
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
    let settings = jobline_core::telemetry::Settings::from_lookup(
        |name| (name == "AWS_LAMBDA_LOG_LEVEL").then(|| "INFO".to_owned()),
        false,
    );
    assert_eq!(settings.filter, "info");
    assert_eq!(settings.format, jobline_core::telemetry::LogFormat::Json);
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
