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
//! vended log of the same tier); EventBridge Scheduler $1.00 per million
//! scheduled invocations (the EventBridge pricing page,
//! <https://aws.amazon.com/eventbridge/pricing/>: the first 14 million
//! invocations a month are free, and its API calls, `CreateSchedule` and
//! the others, are not billed). Checked on [`PRICES_CHECKED`].
//!
//! S3 Standard in us-east-1 ([`S3Prices`], for jobs on files): $0.005 per
//! 1,000 PUT, COPY, POST and LIST requests, $0.0004 per 1,000 GET, HEAD and
//! other requests, $0.023 per GB-month of storage (the first 50 TB), data
//! transfer in free, and from S3 to Lambda in the same region free (the S3
//! pricing page, <https://aws.amazon.com/s3/pricing/>, as issue 23 quotes
//! it on [`S3_PRICES_CHECKED`]).
//!
//! A DynamoDB write costs one WRU per started KB of the larger of the item
//! before and after it, so the item's size is computed the way DynamoDB
//! sizes items: attribute names plus values ([`item_bytes`]). Each global
//! secondary index the write touches costs write units of its own
//! ([`SecondaryIndex::write_units`]); the calls measurement applies both to
//! the item images of the table's stream.

use crate::measure::logs::LogSources;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A gigabyte as AWS bills data: 2^30 bytes.
pub const GB: f64 = 1_073_741_824.0;

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
    /// A timer's fire: a one-time timer's (a job delayed past 15 minutes)
    /// or a recurring schedule's.
    pub scheduler_invocations_per_million: f64,
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
        scheduler_invocations_per_million: 1.00,
    };
}

/// When the S3 prices were taken from the S3 pricing page.
pub const S3_PRICES_CHECKED: &str = "2026-12-07";

/// S3 Standard's us-east-1 list prices, USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct S3Prices {
    /// PUT, COPY, POST and LIST requests, per 1,000: `PutObject`,
    /// `PutObjectTagging`, the three calls of a multipart upload,
    /// `ListObjectsV2`.
    pub put_per_thousand: f64,
    /// GET, HEAD and every other request, per 1,000: `GetObject`,
    /// `HeadObject`, `GetObjectTagging`.
    pub get_per_thousand: f64,
    pub storage_per_gb_month: f64,
    pub transfer_in_per_gb: f64,
    /// From S3 to a Lambda function in the same region.
    pub transfer_to_lambda_per_gb: f64,
}

impl S3Prices {
    pub const US_EAST_1: Self = Self {
        put_per_thousand: 0.005,
        get_per_thousand: 0.0004,
        storage_per_gb_month: 0.023,
        transfer_in_per_gb: 0.0,
        transfer_to_lambda_per_gb: 0.0,
    };

    /// One PUT-class request.
    pub fn put(&self) -> f64 {
        self.put_per_thousand / 1000.0
    }

    /// One GET-class request.
    pub fn get(&self) -> f64 {
        self.get_per_thousand / 1000.0
    }
}

/// What one job uses, on average.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsagePerJob {
    pub api_gateway_requests: f64,
    pub lambda_invocations: f64,
    pub lambda_gb_seconds: f64,
    /// The table's write units (refused conditional writes included).
    pub dynamodb_wru: f64,
    /// Each global secondary index's write units, by index name.
    pub dynamodb_index_wru: BTreeMap<String, f64>,
    pub dynamodb_rru: f64,
    pub sqs_requests: f64,
    /// Bytes ingested by CloudWatch Logs, by source.
    pub log_bytes: LogSources,
}

/// USD per million jobs, by line item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostPerMillionJobs {
    pub api_gateway: f64,
    pub lambda_requests: f64,
    pub lambda_compute: f64,
    /// The table's write units.
    pub dynamodb_writes: f64,
    /// Each global secondary index's write units, by index name.
    pub dynamodb_index_writes: BTreeMap<String, f64>,
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
        let dynamodb_index_writes: BTreeMap<String, f64> = usage
            .dynamodb_index_wru
            .iter()
            .map(|(index, units)| (index.clone(), units * prices.dynamodb_wru_per_million))
            .collect();
        let dynamodb_reads = usage.dynamodb_rru * prices.dynamodb_rru_per_million;
        let sqs = usage.sqs_requests * prices.sqs_requests_per_million;
        let cloudwatch_logs_by_source = usage
            .log_bytes
            .scaled(1e6 / GB * prices.cloudwatch_logs_per_gb);
        let cloudwatch_logs = cloudwatch_logs_by_source.total();
        let total = api_gateway
            + lambda_requests
            + lambda_compute
            + dynamodb_writes
            + dynamodb_index_writes.values().sum::<f64>()
            + dynamodb_reads
            + sqs
            + cloudwatch_logs;
        Self {
            api_gateway,
            lambda_requests,
            lambda_compute,
            dynamodb_writes,
            dynamodb_index_writes,
            dynamodb_reads,
            sqs,
            cloudwatch_logs,
            cloudwatch_logs_by_source,
            total,
        }
    }
}

/// GB-seconds of one invocation: memory times duration billed per 1 ms.
pub fn gb_seconds(memory_mb: u32, duration_ms: f64) -> f64 {
    f64::from(memory_mb) / 1024.0 * duration_ms.ceil() / 1000.0
}

/// An item as DynamoDB stores it: attribute name to value.
pub type Item = HashMap<String, AttributeValue>;

/// The most bytes DynamoDB stores for a number (38 significant digits).
const MAX_NUMBER_BYTES: usize = 21;
/// The fixed part of a list or map value.
const DOCUMENT_OVERHEAD_BYTES: usize = 3;
/// What a list or map adds per element.
const DOCUMENT_ELEMENT_BYTES: usize = 1;
/// What DynamoDB adds to every global secondary index entry.
pub const INDEX_ENTRY_OVERHEAD_BYTES: usize = 100;
/// The bytes one write request unit covers.
const WRITE_UNIT_BYTES: usize = 1024;

/// An item's size as DynamoDB counts it: the sum over its attributes of
/// the UTF-8 length of the name plus the value's size ([`value_bytes`]).
pub fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum()
}

/// A value's size by DynamoDB's documented rules, which are approximate
/// for numbers:
/// - string: its UTF-8 bytes; binary: its length;
/// - number: 1 byte per two significant digits (sign, decimal point,
///   exponent, and leading and trailing zeros left out), plus 1, at most 21
///   ([`number_bytes`]; DynamoDB's own encoding differs by a byte at times);
/// - boolean and null: 1 byte;
/// - list and map: 3 bytes, plus each element's size and 1 byte per element
///   (a map element's size counts its name, as an attribute's does);
/// - sets: the sum of their elements' sizes (AWS documents no overhead).
pub fn value_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_bytes(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(strings) => strings.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_bytes(n)).sum(),
        AttributeValue::Bs(binaries) => binaries.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(elements) => {
            DOCUMENT_OVERHEAD_BYTES
                + elements
                    .iter()
                    .map(|element| value_bytes(element) + DOCUMENT_ELEMENT_BYTES)
                    .sum::<usize>()
        }
        AttributeValue::M(elements) => {
            DOCUMENT_OVERHEAD_BYTES
                + elements
                    .iter()
                    .map(|(name, element)| {
                        name.len() + value_bytes(element) + DOCUMENT_ELEMENT_BYTES
                    })
                    .sum::<usize>()
        }
        // Bool, Null, and any kind a later SDK adds.
        _ => 1,
    }
}

/// A number's size: 1 byte per two significant digits, plus 1, at most 21.
/// The significant digits are the mantissa's, without the sign, the decimal
/// point and leading and trailing zeros (`1000` has one, `0.0123` three; zero
/// counts as one).
pub fn number_bytes(number: &str) -> usize {
    let mantissa = number
        .split(['e', 'E'])
        .next()
        .unwrap_or_default()
        .trim_start_matches(['-', '+']);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    (significant.max(1).div_ceil(2) + 1).min(MAX_NUMBER_BYTES)
}

/// Write request units of one standard write of an item of `bytes`: one
/// per started KB, at least one.
pub fn write_units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(WRITE_UNIT_BYTES).max(1)).unwrap_or(u32::MAX)
}

/// The bytes one strongly consistent read request unit covers.
const READ_UNIT_BYTES: usize = 4096;

/// Read request units of one strongly consistent read of `bytes` (a
/// `GetItem`, or the items a `Query` reads): one per started 4 KB, at
/// least one.
pub fn read_units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(READ_UNIT_BYTES).max(1)).unwrap_or(u32::MAX)
}

/// Table write units of one write, from the item before (`None`: it did not
/// exist) and after (`None`: deleted): DynamoDB bills the larger of the two,
/// one unit per started KB, at least one.
pub fn table_write_units(old: Option<&Item>, new: Option<&Item>) -> u32 {
    let units = |item: Option<&Item>| item.map_or(0, |item| write_units(item_bytes(item)));
    units(old).max(units(new)).max(1)
}

/// What a global secondary index holds of an item besides the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum IndexProjection {
    /// The index's and the table's keys only.
    KeysOnly,
    /// The keys and these non-key attributes.
    Include(Vec<String>),
    /// The whole item.
    All,
}

/// A global secondary index, as `DescribeTable` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecondaryIndex {
    pub name: String,
    /// Its partition key, then its sort key if it has one.
    pub key_attributes: Vec<String>,
    pub projection: IndexProjection,
}

impl SecondaryIndex {
    /// Whether `item` is in the index: only an item with every key
    /// attribute of the index is (the index is sparse otherwise).
    pub fn holds(&self, item: &Item) -> bool {
        self.key_attributes
            .iter()
            .all(|attribute| item.contains_key(attribute))
    }

    /// The bytes of `item`'s entry: the index's keys, the table's keys and
    /// the projected attributes, plus DynamoDB's 100 bytes of overhead.
    pub fn entry_bytes(&self, table_key: &[String], item: &Item) -> usize {
        let projected = |name: &String| {
            self.key_attributes.contains(name)
                || table_key.contains(name)
                || match &self.projection {
                    IndexProjection::KeysOnly => false,
                    IndexProjection::Include(attributes) => attributes.contains(name),
                    IndexProjection::All => true,
                }
        };
        item.iter()
            .filter(|(name, _)| projected(name))
            .map(|(name, value)| name.len() + value_bytes(value))
            .sum::<usize>()
            + INDEX_ENTRY_OVERHEAD_BYTES
    }

    /// Whether a write from `old` to `new` changed what the index projects
    /// besides the keys: any attribute for `ALL`, the listed ones for
    /// `INCLUDE`, none for `KEYS_ONLY`.
    fn projection_changed(&self, old: &Item, new: &Item) -> bool {
        let differs = |name: &String| old.get(name) != new.get(name);
        match &self.projection {
            IndexProjection::KeysOnly => false,
            IndexProjection::Include(attributes) => attributes.iter().any(differs),
            IndexProjection::All => old.keys().chain(new.keys()).any(differs),
        }
    }

    /// Index write units of one table write from `old` to `new` (`None`:
    /// the item did not exist, or was deleted), by DynamoDB's rules:
    /// - in the index neither before nor after: 0;
    /// - after only: a put; before only: a delete;
    /// - both, with any of the index's key attributes changed: a delete
    ///   and a put (the entry moves);
    /// - both, keys unchanged, a projected non-key attribute changed: an
    ///   update;
    /// - otherwise: 0.
    ///
    /// A delete is 1 unit; a put or an update is 1 unit per started KB of
    /// the new entry ([`Self::entry_bytes`]: keys, projection and 100 bytes
    /// of overhead), so an entry over 1 KB costs more than 1.
    pub fn write_units(&self, table_key: &[String], old: Option<&Item>, new: Option<&Item>) -> u32 {
        let old = old.filter(|item| self.holds(item));
        let new = new.filter(|item| self.holds(item));
        let put = |item: &Item| write_units(self.entry_bytes(table_key, item));
        const DELETE: u32 = 1;
        match (old, new) {
            (None, None) => 0,
            (None, Some(new)) => put(new),
            (Some(_), None) => DELETE,
            (Some(old), Some(new)) => {
                let key_changed = self
                    .key_attributes
                    .iter()
                    .any(|attribute| old.get(attribute) != new.get(attribute));
                if key_changed {
                    DELETE + put(new)
                } else if self.projection_changed(old, new) {
                    put(new)
                } else {
                    0
                }
            }
        }
    }
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
            dynamodb_index_wru: BTreeMap::from([("a".to_owned(), 4.0), ("b".to_owned(), 1.0)]),
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
        assert!((cost.dynamodb_index_writes["a"] - 2.5).abs() < 1e-9);
        assert!((cost.dynamodb_index_writes["b"] - 0.625).abs() < 1e-9);
        assert_eq!(cost.dynamodb_reads, 0.0);
        assert!((cost.sqs - 0.52).abs() < 1e-9);
        assert!((cost.cloudwatch_logs - 0.5).abs() < 1e-9);
        assert!((cost.cloudwatch_logs_by_source.function_lines - 0.25).abs() < 1e-9);
        assert!((cost.cloudwatch_logs_by_source.access_log - 0.125).abs() < 1e-9);
        assert!((cost.total - (4.248_334 + 3.125)).abs() < 1e-9);
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
        assert_eq!(read_units(0), 1);
        assert_eq!(read_units(4096), 1);
        assert_eq!(read_units(4097), 2);
    }

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.to_owned())
    }

    fn n(value: &str) -> AttributeValue {
        AttributeValue::N(value.to_owned())
    }

    fn item(attributes: &[(&str, AttributeValue)]) -> Item {
        attributes
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn numbers_count_significant_digits_two_to_a_byte_plus_one() {
        assert_eq!(number_bytes("7"), 2);
        assert_eq!(number_bytes("12"), 2);
        assert_eq!(number_bytes("123"), 3);
        assert_eq!(number_bytes("-12345"), 4);
        // Leading and trailing zeros, the point and the exponent are not digits.
        assert_eq!(number_bytes("1000000"), 2);
        assert_eq!(number_bytes("0.00123"), 3);
        assert_eq!(number_bytes("1.5E+10"), 2);
        assert_eq!(number_bytes("0"), 2);
        // A millisecond timestamp: 13 digits.
        assert_eq!(number_bytes("1764412345678"), 8);
        // 38 digits, the most DynamoDB keeps: at most 21 bytes.
        assert_eq!(number_bytes(&"9".repeat(38)), 20);
        assert_eq!(number_bytes(&"9".repeat(50)), 21);
    }

    #[test]
    fn strings_are_utf8_bytes_and_documents_add_three_plus_one_per_element() {
        // "é" is 2 bytes in UTF-8, and so is "ü" in the name.
        assert_eq!(item_bytes(&item(&[("ü", s("café"))])), 2 + 5);
        assert_eq!(value_bytes(&AttributeValue::Null(true)), 1);
        assert_eq!(
            value_bytes(&AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                vec![0; 10]
            ))),
            10
        );
        // A list: 3 + (1 + 1) + (2 + 1).
        assert_eq!(
            value_bytes(&AttributeValue::L(vec![
                AttributeValue::Bool(true),
                n("42")
            ])),
            3 + 2 + 3
        );
        // A map: 3 + each element's name and value, + 1 each.
        let map = AttributeValue::M(HashMap::from([
            ("at".to_owned(), n("5")),
            ("state".to_owned(), s("ok")),
        ]));
        assert_eq!(value_bytes(&map), 3 + (2 + 2 + 1) + (5 + 2 + 1));
        // Nested: the map inside a list counts its own overhead.
        assert_eq!(
            value_bytes(&AttributeValue::L(vec![map])),
            3 + (3 + 5 + 8) + 1
        );
        assert_eq!(
            value_bytes(&AttributeValue::Ss(vec!["ab".into(), "cde".into()])),
            5
        );
    }

    #[test]
    fn a_table_write_bills_the_larger_image_per_started_kb() {
        let small = item(&[("id", s("x"))]);
        let large = item(&[("id", s("x")), ("blob", s(&"a".repeat(2000)))]);
        assert_eq!(table_write_units(None, Some(&small)), 1);
        assert_eq!(table_write_units(Some(&large), Some(&small)), 2);
        assert_eq!(table_write_units(Some(&small), Some(&large)), 2);
        assert_eq!(table_write_units(Some(&large), None), 2);
        assert_eq!(table_write_units(None, None), 1);
    }

    const TABLE_KEY: &[&str] = &["id"];

    fn table_key() -> Vec<String> {
        TABLE_KEY.iter().map(|&k| k.to_owned()).collect()
    }

    fn index(projection: IndexProjection) -> SecondaryIndex {
        SecondaryIndex {
            name: "by-shard".into(),
            key_attributes: vec!["shard".into(), "due".into()],
            projection,
        }
    }

    fn job(shard: Option<&str>, due: &str, note: &str, other: &str) -> Item {
        let mut job = item(&[
            ("id", s("job-1")),
            ("due", n(due)),
            ("note", s(note)),
            ("other", s(other)),
        ]);
        if let Some(shard) = shard {
            job.insert("shard".into(), s(shard));
        }
        job
    }

    #[test]
    fn entering_a_sparse_index_is_a_put_and_leaving_it_a_delete() {
        let index = index(IndexProjection::KeysOnly);
        let keys = table_key();
        let out = job(None, "10", "a", "b");
        let inside = job(Some("3"), "10", "a", "b");
        assert_eq!(index.write_units(&keys, None, Some(&inside)), 1);
        assert_eq!(index.write_units(&keys, Some(&out), Some(&inside)), 1);
        assert_eq!(index.write_units(&keys, Some(&inside), Some(&out)), 1);
        assert_eq!(index.write_units(&keys, Some(&inside), None), 1);
        // Never in it: no index write, whatever changes.
        let changed = job(None, "99", "z", "z");
        assert_eq!(index.write_units(&keys, None, Some(&out)), 0);
        assert_eq!(index.write_units(&keys, Some(&out), Some(&changed)), 0);
        assert_eq!(index.write_units(&keys, Some(&out), None), 0);
    }

    #[test]
    fn a_changed_index_key_moves_the_entry_a_delete_and_a_put() {
        let keys = table_key();
        let before = job(Some("3"), "10", "a", "b");
        for projection in [
            IndexProjection::KeysOnly,
            IndexProjection::Include(vec!["note".into()]),
            IndexProjection::All,
        ] {
            let index = index(projection);
            assert_eq!(
                index.write_units(&keys, Some(&before), Some(&job(Some("3"), "20", "a", "b"))),
                2
            );
            assert_eq!(
                index.write_units(&keys, Some(&before), Some(&job(Some("4"), "10", "a", "b"))),
                2
            );
        }
    }

    #[test]
    fn a_non_key_change_updates_only_an_index_that_projects_it() {
        let keys = table_key();
        let before = job(Some("3"), "10", "a", "b");
        let note_changed = job(Some("3"), "10", "new", "b");
        let other_changed = job(Some("3"), "10", "a", "new");
        let mut other_removed = before.clone();
        other_removed.remove("other");

        let keys_only = index(IndexProjection::KeysOnly);
        assert_eq!(
            keys_only.write_units(&keys, Some(&before), Some(&note_changed)),
            0
        );
        assert_eq!(
            keys_only.write_units(&keys, Some(&before), Some(&other_changed)),
            0
        );

        let include = index(IndexProjection::Include(vec!["note".into()]));
        assert_eq!(
            include.write_units(&keys, Some(&before), Some(&note_changed)),
            1
        );
        assert_eq!(
            include.write_units(&keys, Some(&before), Some(&other_changed)),
            0
        );

        let all = index(IndexProjection::All);
        assert_eq!(
            all.write_units(&keys, Some(&before), Some(&note_changed)),
            1
        );
        assert_eq!(
            all.write_units(&keys, Some(&before), Some(&other_removed)),
            1
        );
        assert_eq!(
            all.write_units(&keys, Some(&before), Some(&before.clone())),
            0
        );
    }

    #[test]
    fn an_index_entry_holds_keys_projection_and_100_bytes() {
        let keys = table_key();
        let big = job(Some("3"), "10", &"n".repeat(1500), &"o".repeat(1500));
        // Keys: id (2 + 5), due (3 + 2), shard (5 + 1).
        let key_bytes = 7 + 5 + 6;
        let keys_only = index(IndexProjection::KeysOnly);
        assert_eq!(keys_only.entry_bytes(&keys, &big), key_bytes + 100);
        assert_eq!(keys_only.write_units(&keys, None, Some(&big)), 1);
        let include = index(IndexProjection::Include(vec!["note".into()]));
        assert_eq!(include.entry_bytes(&keys, &big), key_bytes + 4 + 1500 + 100);
        // An entry over 1 KB: 2 units a put, and a move is 1 + 2.
        assert_eq!(include.write_units(&keys, None, Some(&big)), 2);
        let moved = job(Some("4"), "10", &"n".repeat(1500), "o");
        assert_eq!(include.write_units(&keys, Some(&big), Some(&moved)), 3);
        let all = index(IndexProjection::All);
        assert_eq!(all.entry_bytes(&keys, &big), item_bytes(&big) + 100);
        // 18 + 1504 + 1505 + 100 bytes: 4 started KB.
        assert_eq!(all.write_units(&keys, None, Some(&big)), 4);
        // A delete is 1 unit, however large the entry.
        assert_eq!(all.write_units(&keys, Some(&big), None), 1);
    }
}
