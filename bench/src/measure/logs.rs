//! CloudWatch Logs bytes per job, from each of the three sources that write
//! them. Log ingestion is billed per byte and is among the largest costs per
//! job, so each source is counted on its own:
//!
//! 1. **The functions' own output**, measured in the CPU run: their log lines
//!    (stderr) and their EMF metric documents (stdout), per submission and
//!    per job of a batch. A status poll writes the API's one line per request
//!    and no EMF; its line is taken to be the size of a submission's.
//! 2. **Lambda's platform records**, one set per invocation. With the
//!    template's `LogFormat: JSON` they are JSON records filtered by
//!    `SystemLogLevel`: at `WARN` (the default) none per invocation; at `INFO`
//!    `platform.start` and `platform.report`; at `DEBUG` also
//!    `platform.runtimeDone`. Their sizes are those of AWS's documented
//!    record shapes ([`PLATFORM_RECORDS`], with a real-length request id);
//!    cold-start records (`platform.initStart`, `platform.initReport`) are
//!    per instance, not per job, and left out.
//! 3. **The API Gateway access log**, one line per request (submission or
//!    poll), in the format of `template.yaml`'s `AccessLogSettings` filled in
//!    with typical values ([`ACCESS_LOG_SAMPLE_VALUES`]).

use crate::error::BenchError;
use serde::Serialize;

/// `template.yaml`, for its access log format.
const TEMPLATE: &str = include_str!("../../../template.yaml");

/// Lambda's JSON platform records per invocation, with the lowest
/// `SystemLogLevel` that sends each, as AWS documents their shape.
pub const PLATFORM_RECORDS: [(&str, &str); 3] = [
    (
        "INFO",
        r#"{"time":"2026-11-29T17:09:54.007Z","type":"platform.start","record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","version":"$LATEST"}}"#,
    ),
    (
        "INFO",
        r#"{"time":"2026-11-29T17:09:54.019Z","type":"platform.report","record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","metrics":{"durationMs":11.52,"billedDurationMs":12,"memorySizeMB":256,"maxMemoryUsedMB":10},"status":"success"}}"#,
    ),
    (
        "DEBUG",
        r#"{"time":"2026-11-29T17:09:54.019Z","type":"platform.runtimeDone","record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","status":"success","metrics":{"durationMs":11.52,"producedBytes":0}}}"#,
    ),
];

/// `SystemLogLevel`s from most to least detail.
const SYSTEM_LOG_LEVELS: [&str; 3] = ["DEBUG", "INFO", "WARN"];

/// The template's default `SystemLogLevel`.
pub const DEFAULT_SYSTEM_LOG_LEVEL: &str = "WARN";

/// Typical values of the access log's `$context` variables. A request id
/// of an HTTP API is 16 characters; an IPv4 address ~13; the responses are
/// 3-digit lengths; the function answers in tens of milliseconds.
pub const ACCESS_LOG_SAMPLE_VALUES: [(&str, &str); 7] = [
    ("$context.requestTimeEpoch", "1795972194007"),
    ("$context.requestId", "AbCdEfGhIjKlMnO="),
    ("$context.routeKey", "GET /jobs/{id}"),
    ("$context.status", "200"),
    ("$context.responseLength", "312"),
    ("$context.integrationLatency", "23"),
    ("$context.identity.sourceIp", "203.0.113.7"),
];

/// Bytes (or dollars) per job by source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LogSources {
    /// The functions' log lines (stderr).
    pub function_lines: f64,
    /// The functions' EMF documents (stdout).
    pub emf: f64,
    /// Lambda's platform records.
    pub platform: f64,
    /// API Gateway's access log.
    pub access_log: f64,
}

impl LogSources {
    pub fn total(&self) -> f64 {
        self.function_lines + self.emf + self.platform + self.access_log
    }

    /// Each source times `factor`.
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            function_lines: self.function_lines * factor,
            emf: self.emf * factor,
            platform: self.platform * factor,
            access_log: self.access_log * factor,
        }
    }
}

/// Bytes of platform records per invocation at `system_log_level`.
pub fn platform_bytes_per_invocation(system_log_level: &str) -> Result<usize, BenchError> {
    let rank = |level: &str| SYSTEM_LOG_LEVELS.iter().position(|l| *l == level);
    let chosen = rank(system_log_level).ok_or_else(|| {
        BenchError::Unexpected(format!("unknown SystemLogLevel {system_log_level}"))
    })?;
    Ok(PLATFORM_RECORDS
        .iter()
        .filter(|(level, _)| rank(level).is_some_and(|at| at >= chosen))
        .map(|(_, record)| record.len())
        .sum())
}

/// The access log format of `template.yaml`.
pub fn access_log_format() -> Result<&'static str, BenchError> {
    let mut lines = TEMPLATE
        .lines()
        .skip_while(|l| !l.contains("AccessLogSettings:"));
    lines
        .find(|l| l.trim() == "Format: >-")
        .and_then(|_| lines.next())
        .map(str::trim)
        .filter(|format| format.starts_with('{'))
        .ok_or_else(|| {
            BenchError::Unexpected("template.yaml: no one-line AccessLogSettings.Format".into())
        })
}

/// Bytes of one access log line, `format` filled in with typical values.
pub fn access_log_line_bytes(format: &str) -> Result<usize, BenchError> {
    let line = ACCESS_LOG_SAMPLE_VALUES
        .iter()
        .fold(format.to_owned(), |line, (variable, value)| {
            line.replace(variable, value)
        });
    if line.contains("$context") {
        return Err(BenchError::Unexpected(format!(
            "the access log format has a variable without a sample value: {format}"
        )));
    }
    Ok(line.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_records_shrink_with_the_level() {
        let debug = platform_bytes_per_invocation("DEBUG").unwrap();
        let info = platform_bytes_per_invocation("INFO").unwrap();
        assert_eq!(platform_bytes_per_invocation("WARN").unwrap(), 0);
        assert_eq!(
            info,
            PLATFORM_RECORDS[0].1.len() + PLATFORM_RECORDS[1].1.len()
        );
        assert_eq!(debug, info + PLATFORM_RECORDS[2].1.len());
        assert!(platform_bytes_per_invocation("LOUD").is_err());
        for (_, record) in PLATFORM_RECORDS {
            let json: serde_json::Value = serde_json::from_str(record).unwrap();
            assert_eq!(json["record"]["requestId"].as_str().unwrap().len(), 36);
        }
    }

    #[test]
    fn the_templates_access_log_line_is_sized_filled_in() {
        let format = access_log_format().unwrap();
        let bytes = access_log_line_bytes(format).unwrap();
        assert!((100..400).contains(&bytes), "{bytes} B: {format}");
        assert_eq!(
            access_log_line_bytes(r#"{"s":$context.status}"#).unwrap(),
            r#"{"s":200}"#.len()
        );
        assert!(access_log_line_bytes(r#"{"x":"$context.other"}"#).is_err());
    }
}
