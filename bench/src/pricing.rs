//! List-price cost per million jobs, from the calls counted per job.
//!
//! Prices are AWS's us-east-1 on-demand list prices, free tiers left out:
//! API Gateway HTTP API $1.00 per million requests (first 300 M a month);
//! Lambda $0.20 per million requests and $0.0000133334 per GB-second on
//! arm64; DynamoDB on-demand $0.625 per million write request units and
//! $0.125 per million read request units (since the 50 % cut of
//! 1 November 2024); SQS standard $0.40 per million requests (each 64 KiB
//! of payload counts as one); CloudWatch Logs ingestion $0.50 per GB (the
//! first tier of Lambda's logs; the same for API Gateway's access log, a
//! vended log of the same tier). Checked on [`PRICES_CHECKED`].
//!
//! A DynamoDB write costs one WRU per started KB of the larger of the item
//! before and after it, so the item's size is computed the way DynamoDB
//! sizes items: attribute names plus values.

use crate::measure::logs::LogSources;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use std::collections::HashMap;

/// A gigabyte as AWS bills data: 2^30 bytes.
const GB: f64 = 1_073_741_824.0;

/// When the prices below were last checked against AWS's pricing pages.
pub const PRICES_CHECKED: &str = "2026-11-27";

/// us-east-1 list prices, USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    pub api_gateway_http_per_million: f64,
    pub lambda_requests_per_million: f64,
    pub lambda_arm64_per_gb_second: f64,
    pub dynamodb_wru_per_million: f64,
    pub dynamodb_rru_per_million: f64,
    pub sqs_requests_per_million: f64,
    pub cloudwatch_logs_per_gb: f64,
}

impl Prices {
    pub const US_EAST_1: Self = Self {
        api_gateway_http_per_million: 1.00,
        lambda_requests_per_million: 0.20,
        lambda_arm64_per_gb_second: 0.000_013_333_4,
        dynamodb_wru_per_million: 0.625,
        dynamodb_rru_per_million: 0.125,
        sqs_requests_per_million: 0.40,
        cloudwatch_logs_per_gb: 0.50,
    };
}

/// What one job uses, on average.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UsagePerJob {
    pub api_gateway_requests: f64,
    pub lambda_invocations: f64,
    pub lambda_gb_seconds: f64,
    pub dynamodb_wru: f64,
    pub dynamodb_rru: f64,
    pub sqs_requests: f64,
    /// Bytes ingested by CloudWatch Logs, by source.
    pub log_bytes: LogSources,
}

/// USD per million jobs, by line item.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostPerMillionJobs {
    pub api_gateway: f64,
    pub lambda_requests: f64,
    pub lambda_compute: f64,
    pub dynamodb_writes: f64,
    pub dynamodb_reads: f64,
    pub sqs: f64,
    pub cloudwatch_logs: f64,
    /// `cloudwatch_logs` by source.
    pub cloudwatch_logs_by_source: LogSources,
    pub total: f64,
}

impl CostPerMillionJobs {
    pub fn of(usage: &UsagePerJob, prices: &Prices) -> Self {
        // Per-million prices times per-job usage is the cost of a million jobs.
        let api_gateway = usage.api_gateway_requests * prices.api_gateway_http_per_million;
        let lambda_requests = usage.lambda_invocations * prices.lambda_requests_per_million;
        let lambda_compute = usage.lambda_gb_seconds * prices.lambda_arm64_per_gb_second * 1e6;
        let dynamodb_writes = usage.dynamodb_wru * prices.dynamodb_wru_per_million;
        let dynamodb_reads = usage.dynamodb_rru * prices.dynamodb_rru_per_million;
        let sqs = usage.sqs_requests * prices.sqs_requests_per_million;
        let cloudwatch_logs_by_source = usage
            .log_bytes
            .scaled(1e6 / GB * prices.cloudwatch_logs_per_gb);
        let cloudwatch_logs = cloudwatch_logs_by_source.total();
        Self {
            api_gateway,
            lambda_requests,
            lambda_compute,
            dynamodb_writes,
            dynamodb_reads,
            sqs,
            cloudwatch_logs,
            cloudwatch_logs_by_source,
            total: api_gateway
                + lambda_requests
                + lambda_compute
                + dynamodb_writes
                + dynamodb_reads
                + sqs
                + cloudwatch_logs,
        }
    }
}

/// GB-seconds of one invocation: memory times duration billed per 1 ms.
pub fn gb_seconds(memory_mb: u32, duration_ms: f64) -> f64 {
    f64::from(memory_mb) / 1024.0 * duration_ms.ceil() / 1000.0
}

/// An item's size as DynamoDB counts it: each attribute's name plus its
/// value (strings and binaries by length, numbers about one byte per two
/// digits plus one, booleans and nulls one byte). Job items hold no lists,
/// maps or sets.
pub fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
                    AttributeValue::B(b) => b.as_ref().len(),
                    _ => 1,
                }
        })
        .sum()
}

/// Write request units of one standard write of an item of `bytes`.
pub fn write_units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_usage_times_price_per_line() {
        let usage = UsagePerJob {
            api_gateway_requests: 1.0,
            lambda_invocations: 1.1,
            lambda_gb_seconds: 0.01,
            dynamodb_wru: 3.0,
            dynamodb_rru: 0.0,
            sqs_requests: 1.3,
            log_bytes: LogSources {
                function_lines: 536.870_912,
                emf: 268.435_456,
                platform: 0.0,
                access_log: 268.435_456,
            },
        };
        let cost = CostPerMillionJobs::of(&usage, &Prices::US_EAST_1);
        assert!((cost.api_gateway - 1.0).abs() < 1e-9);
        assert!((cost.lambda_requests - 0.22).abs() < 1e-9);
        assert!((cost.lambda_compute - 0.133_334).abs() < 1e-9);
        assert!((cost.dynamodb_writes - 1.875).abs() < 1e-9);
        assert_eq!(cost.dynamodb_reads, 0.0);
        assert!((cost.sqs - 0.52).abs() < 1e-9);
        assert!((cost.cloudwatch_logs - 0.5).abs() < 1e-9);
        assert!((cost.cloudwatch_logs_by_source.function_lines - 0.25).abs() < 1e-9);
        assert!((cost.cloudwatch_logs_by_source.access_log - 0.125).abs() < 1e-9);
        assert!((cost.total - 4.248_334).abs() < 1e-9);
    }

    #[test]
    fn lambda_bills_memory_times_whole_milliseconds() {
        assert_eq!(gb_seconds(1024, 1000.0), 1.0);
        assert_eq!(gb_seconds(512, 2.2), 0.5 * 0.003);
    }

    #[test]
    fn items_are_sized_by_names_and_values() {
        let item = HashMap::from([
            ("jobId".to_owned(), AttributeValue::S("abc".into())),
            ("attempts".to_owned(), AttributeValue::N("12345".into())),
            ("dead".to_owned(), AttributeValue::Bool(false)),
        ]);
        assert_eq!(item_bytes(&item), (5 + 3) + (8 + 4) + (4 + 1));
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
    }
}
