//! DynamoDB's write units per job of the calls measurement, from what was
//! really written (moto reports no consumed capacity): after each phase the
//! table's stream (`NEW_AND_OLD_IMAGES`) is read with the local stream
//! reader ([`read_changes`]), and each record's item images before and after
//! are priced by DynamoDB's rules ([`crate::pricing`]): the table's write
//! units, and those of every secondary index that `DescribeTable` lists
//! ([`describe_indexes`]), with its key schema and projection, so the
//! figures follow the table as it is provisioned, not as it was when this
//! was written. Each record is put in a [`WritePhase`] by the job's `state`
//! before and after, the one attribute read by name. Refused conditional
//! writes leave no record, but DynamoDB bills them too; the proxy counts
//! them ([`Written::refused`]).

use crate::error::BenchError;
use crate::pricing::{IndexProjection, Item, SecondaryIndex, table_write_units, write_units};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeySchemaElement, KeyType, Projection, ProjectionType, TableDescription,
};
use jobline_core::JobState;
use jobline_local::Clients;
use jobline_local::stream::StreamReader;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The job's state in the table: the one attribute the bench reads by name,
/// to tell what a write was for.
const STATE_ATTRIBUTE: &str = "state";

/// What a table write was for, told by the job's `state` before and after
/// (never by index or other attribute names, so it holds whatever the
/// indexes are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WritePhase {
    /// A new item (`INSERT`): the API's submission.
    Submission,
    /// A change into `running` from another state (or none): a claim. A
    /// retried job's claims each count here; a heartbeat (`running` to
    /// `running`) does not.
    Claim,
    /// A change into a final state from one that was not: the completion.
    Completion,
    /// Anything else: heartbeats, a return to the queue, records made after
    /// the final state (a webhook's delivery), deletions. A deletion by
    /// TTL, which DynamoDB does not bill, would be priced as a delete here:
    /// the stream reader's records do not say who deleted (the measured jobs
    /// never expire during a run).
    Other,
}

impl WritePhase {
    pub const ALL: [Self; 4] = [Self::Submission, Self::Claim, Self::Completion, Self::Other];

    /// The phase of a write from `old` to `new` (`None`: no item).
    pub fn of(old: Option<&Item>, new: Option<&Item>) -> Self {
        let state = |item: Option<&Item>| {
            item.and_then(|item| item.get(STATE_ATTRIBUTE))
                .and_then(|value| value.as_s().ok())
                .and_then(|state| state.parse::<JobState>().ok())
        };
        let finished = |state: Option<JobState>| state.is_some_and(JobState::is_finished);
        let (before, after) = (state(old), state(new));
        match (old, new) {
            (None, Some(_)) => Self::Submission,
            (Some(_), Some(_)) if after == Some(JobState::Running) && before != after => {
                Self::Claim
            }
            (Some(_), Some(_)) if finished(after) && !finished(before) => Self::Completion,
            _ => Self::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Submission => "submission",
            Self::Claim => "claim",
            Self::Completion => "completion",
            Self::Other => "other",
        }
    }
}

/// One write of an item, as the table's stream recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The item before (`None`: it was created).
    pub old: Option<Item>,
    /// The item after (`None`: it was deleted).
    pub new: Option<Item>,
}

/// DynamoDB write units per job.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WriteUnits {
    /// The table's.
    pub table: f64,
    /// Each secondary index's, by index name (every index, 0 when untouched).
    pub indexes: BTreeMap<String, f64>,
    /// The table's and all the indexes'.
    pub total: f64,
}

impl WriteUnits {
    /// Zero for the table and each of `indexes`.
    fn zero(indexes: &[SecondaryIndex]) -> Self {
        Self {
            indexes: indexes
                .iter()
                .map(|index| (index.name.clone(), 0.0))
                .collect(),
            ..Self::default()
        }
    }

    fn add(&mut self, other: &Self) {
        self.table += other.table;
        for (index, units) in &other.indexes {
            *self.indexes.entry(index.clone()).or_default() += units;
        }
        self.total += other.total;
    }

    fn scaled(&self, factor: f64) -> Self {
        Self {
            table: self.table * factor,
            indexes: self
                .indexes
                .iter()
                .map(|(index, units)| (index.clone(), units * factor))
                .collect(),
            total: self.total * factor,
        }
    }

    /// Write units of `changes` by phase, per job of `jobs`, on a table
    /// keyed by `table_key` with `indexes`.
    pub fn by_phase(
        changes: &[Change],
        table_key: &[String],
        indexes: &[SecondaryIndex],
        jobs: usize,
    ) -> BTreeMap<WritePhase, Self> {
        let mut phases: BTreeMap<WritePhase, Self> = WritePhase::ALL
            .into_iter()
            .map(|phase| (phase, Self::zero(indexes)))
            .collect();
        for change in changes {
            let (old, new) = (change.old.as_ref(), change.new.as_ref());
            let units = phases
                .entry(WritePhase::of(old, new))
                .or_insert_with(|| Self::zero(indexes));
            let table = f64::from(table_write_units(old, new));
            units.table += table;
            units.total += table;
            for index in indexes {
                let written = f64::from(index.write_units(table_key, old, new));
                *units.indexes.entry(index.name.clone()).or_default() += written;
                units.total += written;
            }
        }
        let per_job = 1.0 / jobs.max(1) as f64;
        phases
            .into_iter()
            .map(|(phase, units)| (phase, units.scaled(per_job)))
            .collect()
    }

    /// `refused` refused conditional writes (in all), per job of `jobs`:
    /// DynamoDB bills each as a write of the item it refused to change, so
    /// each costs the write units of `item_bytes` (the largest job item: 1
    /// unit while it is under 1 KB). No index is written.
    pub fn refused(refused: f64, item_bytes: usize, indexes: &[SecondaryIndex]) -> Self {
        let table = refused * f64::from(write_units(item_bytes));
        Self {
            table,
            total: table,
            ..Self::zero(indexes)
        }
    }
}

/// Write units per job, from the table's stream (and the proxy, for the
/// refused conditional writes).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WriteUnitFigures {
    /// The table's key attributes, from `DescribeTable`.
    pub table_key: Vec<String>,
    /// Its secondary indexes, from `DescribeTable`.
    pub indexes: Vec<SecondaryIndex>,
    /// Stream records of the submission and work phases.
    pub records: usize,
    /// Their write units by phase, per job.
    pub by_phase: BTreeMap<WritePhase, WriteUnits>,
    /// Refused conditional writes of the submission and work phases, per job.
    pub refused_writes: f64,
    /// Their write units, per job.
    pub refused: WriteUnits,
    /// All of the above: the phases' and the refused writes'.
    pub per_job: WriteUnits,
    /// The duplicate deliveries', per job: their refused writes, and any
    /// stream record they made (none, when all is well).
    pub duplicate_delivery: WriteUnits,
    /// Stream records of the duplicate deliveries.
    pub duplicate_delivery_records: usize,
}

/// What one part of the measurement wrote: its stream records, and how
/// many conditional writes DynamoDB refused (which leave none), in all.
#[derive(Debug)]
pub(super) struct Written {
    pub changes: Vec<Change>,
    pub refused: usize,
}

impl WriteUnitFigures {
    /// The write units per job of `jobs` jobs on a table keyed by
    /// `table_key` with `indexes`: those of the submission and work phases
    /// (`measured`) and, apart, those of the duplicate deliveries
    /// (`duplicate`), each refused write billed as `largest_item_bytes`.
    pub(super) fn of(
        table_key: Vec<String>,
        indexes: Vec<SecondaryIndex>,
        measured: &Written,
        duplicate: &Written,
        largest_item_bytes: usize,
        jobs: usize,
    ) -> Self {
        let per_job = 1.0 / jobs.max(1) as f64;
        let refused_writes = measured.refused as f64 * per_job;
        let by_phase = WriteUnits::by_phase(&measured.changes, &table_key, &indexes, jobs);
        let refused = WriteUnits::refused(refused_writes, largest_item_bytes, &indexes);
        let mut all = refused.clone();
        for units in by_phase.values() {
            all.add(units);
        }
        let mut duplicate_delivery = WriteUnits::refused(
            duplicate.refused as f64 * per_job,
            largest_item_bytes,
            &indexes,
        );
        for units in WriteUnits::by_phase(&duplicate.changes, &table_key, &indexes, jobs).values() {
            duplicate_delivery.add(units);
        }
        Self {
            table_key,
            indexes,
            records: measured.changes.len(),
            by_phase,
            refused_writes,
            refused,
            per_job: all,
            duplicate_delivery,
            duplicate_delivery_records: duplicate.changes.len(),
        }
    }
}

/// Every record of the stream not read yet, as item changes.
pub(crate) async fn read_changes(stream: &mut StreamReader) -> Result<Vec<Change>, BenchError> {
    let mut changes = Vec::new();
    while let Some(batch) = stream.next_batch().await.map_err(BenchError::aws)? {
        for record in batch["Records"].as_array().into_iter().flatten() {
            changes.push(change_from_record(record).map_err(|reason| {
                BenchError::Unexpected(format!("a stream record {reason}: {record}"))
            })?);
        }
        stream.advance();
    }
    Ok(changes)
}

/// The item images of one record of a Lambda stream event.
fn change_from_record(record: &Value) -> Result<Change, String> {
    let image = |name: &str| match &record["dynamodb"][name] {
        Value::Null => Ok(None),
        image => item_from_json(image).map(Some),
    };
    let change = Change {
        old: image("OldImage")?,
        new: image("NewImage")?,
    };
    if change.old.is_none() && change.new.is_none() {
        return Err("has no image (the stream must keep NEW_AND_OLD_IMAGES)".into());
    }
    Ok(change)
}

/// An item in DynamoDB JSON (`{"name": {"S": "..."}, ...}`).
fn item_from_json(image: &Value) -> Result<Item, String> {
    image
        .as_object()
        .ok_or("has an image that is not an object")?
        .iter()
        .map(|(name, value)| Ok((name.clone(), attribute_from_json(value)?)))
        .collect()
}

/// One attribute value in DynamoDB JSON, as the stream reader writes it.
fn attribute_from_json(value: &Value) -> Result<AttributeValue, String> {
    let unknown = || format!("has an attribute value it cannot read: {value}");
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(unknown)?;
    let (kind, inner) = object.iter().next().ok_or_else(unknown)?;
    let text = || inner.as_str().map(str::to_owned).ok_or_else(unknown);
    let texts = || {
        inner
            .as_array()
            .ok_or_else(unknown)?
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(unknown))
            .collect::<Result<Vec<_>, _>>()
    };
    let binary = |encoded: &str| base64_decode(encoded).map(Blob::new).ok_or_else(unknown);
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(unknown)?),
        "NULL" => AttributeValue::Null(inner.as_bool().ok_or_else(unknown)?),
        "B" => AttributeValue::B(binary(&text()?)?),
        "SS" => AttributeValue::Ss(texts()?),
        "NS" => AttributeValue::Ns(texts()?),
        "BS" => AttributeValue::Bs(
            texts()?
                .iter()
                .map(|encoded| binary(encoded))
                .collect::<Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(unknown)?
                .iter()
                .map(attribute_from_json)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_from_json(inner)?),
        _ => return Err(unknown()),
    })
}

/// Standard base64 (with or without padding), as the stream reader encodes
/// binaries; `None` if `encoded` is not base64.
fn base64_decode(encoded: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits = encoded.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut bits: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= u32::from(sextet(c)?) << (18 - 6 * i);
        }
        let [_, a, b, c] = bits.to_be_bytes();
        bytes.extend_from_slice(&[a, b, c][..chunk.len() - 1]);
    }
    Some(bytes)
}

/// The key attributes of `table` and its secondary indexes, read straight
/// from the emulator (not counted).
pub(crate) async fn describe_indexes(
    clients: &Clients,
    table: &str,
) -> Result<(Vec<String>, Vec<SecondaryIndex>), BenchError> {
    let described = clients
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(BenchError::aws)?
        .table
        .ok_or_else(|| BenchError::Unexpected(format!("DescribeTable of {table}: no table")))?;
    indexes_of(&described)
        .map_err(|reason| BenchError::Unexpected(format!("DescribeTable of {table}: {reason}")))
}

/// A table's key attributes and its global and local secondary indexes
/// (both cost write units the same way).
fn indexes_of(table: &TableDescription) -> Result<(Vec<String>, Vec<SecondaryIndex>), String> {
    let table_key = key_attributes(table.key_schema());
    if table_key.is_empty() {
        return Err("the table has no key schema".into());
    }
    let index = |name: Option<&str>,
                 keys: &[KeySchemaElement],
                 projection: Option<&Projection>|
     -> Result<SecondaryIndex, String> {
        let name = name.ok_or("an index without a name")?.to_owned();
        let projection = projection.ok_or_else(|| format!("index {name} has no projection"))?;
        let projection = match projection.projection_type() {
            Some(ProjectionType::KeysOnly) => IndexProjection::KeysOnly,
            Some(ProjectionType::Include) => {
                IndexProjection::Include(projection.non_key_attributes().to_vec())
            }
            Some(ProjectionType::All) => IndexProjection::All,
            other => return Err(format!("index {name} has projection {other:?}")),
        };
        Ok(SecondaryIndex {
            key_attributes: key_attributes(keys),
            name,
            projection,
        })
    };
    let global = table
        .global_secondary_indexes()
        .iter()
        .map(|gsi| index(gsi.index_name(), gsi.key_schema(), gsi.projection()));
    let local = table
        .local_secondary_indexes()
        .iter()
        .map(|lsi| index(lsi.index_name(), lsi.key_schema(), lsi.projection()));
    let mut indexes = global.chain(local).collect::<Result<Vec<_>, _>>()?;
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((table_key, indexes))
}

/// The attributes of a key schema, the partition key first.
fn key_attributes(schema: &[KeySchemaElement]) -> Vec<String> {
    let mut keys: Vec<&KeySchemaElement> = schema.iter().collect();
    keys.sort_by_key(|key| *key.key_type() != KeyType::Hash);
    keys.iter()
        .map(|key| key.attribute_name().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.to_owned())
    }

    /// A job item in `state`, with the attributes a sparse index keys on
    /// while the job is unfinished (any names: the bench reads only `state`).
    fn job(state: &str, due: Option<&str>) -> Item {
        let mut item = Item::from([
            ("jobId".to_owned(), s("j1")),
            ("state".to_owned(), s(state)),
            ("shard".to_owned(), s(&format!("{state}#3"))),
            ("created".to_owned(), AttributeValue::N("100".into())),
        ]);
        if let Some(due) = due {
            item.insert("pending".into(), s("3"));
            item.insert("due".into(), AttributeValue::N(due.into()));
        }
        item
    }

    fn keys_only(name: &str, keys: [&str; 2]) -> SecondaryIndex {
        SecondaryIndex {
            name: name.into(),
            key_attributes: keys.map(str::to_owned).to_vec(),
            projection: IndexProjection::KeysOnly,
        }
    }

    #[test]
    fn a_write_is_put_in_its_phase_by_the_state_before_and_after() {
        let queued = job("queued", Some("10"));
        let running = job("running", Some("20"));
        let mut beat = running.clone();
        beat.insert("progress".into(), s("50%"));
        let done = job("succeeded", None);
        let mut delivered = done.clone();
        delivered.insert("hook".into(), s("delivered"));
        let phase = |old: Option<&Item>, new: Option<&Item>| WritePhase::of(old, new);
        assert_eq!(phase(None, Some(&queued)), WritePhase::Submission);
        assert_eq!(phase(Some(&queued), Some(&running)), WritePhase::Claim);
        assert_eq!(phase(Some(&running), Some(&beat)), WritePhase::Other);
        assert_eq!(phase(Some(&running), Some(&done)), WritePhase::Completion);
        assert_eq!(phase(Some(&queued), Some(&done)), WritePhase::Completion);
        assert_eq!(phase(Some(&done), Some(&delivered)), WritePhase::Other);
        assert_eq!(phase(Some(&running), Some(&queued)), WritePhase::Other);
        assert_eq!(phase(Some(&done), None), WritePhase::Other);
        // An item without a state (a payload item) is only ever a submission.
        let payload = Item::from([("jobId".to_owned(), s("j1#payload"))]);
        assert_eq!(phase(None, Some(&payload)), WritePhase::Submission);
        assert_eq!(phase(Some(&payload), Some(&payload)), WritePhase::Other);
    }

    #[test]
    fn write_units_add_up_by_phase_table_and_index_per_job() {
        let table_key = vec!["jobId".to_owned()];
        let indexes = vec![
            keys_only("by-due", ["pending", "due"]),
            keys_only("by-created", ["jobId", "created"]),
            keys_only("by-state", ["shard", "created"]),
            keys_only("never", ["absent", "created"]),
        ];
        let queued = job("queued", Some("10"));
        let running = job("running", Some("20"));
        let done = job("succeeded", None);
        // Two jobs' worth of one job's writes: the per-job figures are halved.
        let one_job = [
            Change {
                old: None,
                new: Some(queued.clone()),
            },
            Change {
                old: Some(queued),
                new: Some(running.clone()),
            },
            Change {
                old: Some(running),
                new: Some(done),
            },
        ];
        let by_phase = WriteUnits::by_phase(&one_job, &table_key, &indexes, 2);
        let units = |phase: WritePhase| &by_phase[&phase];
        let expect = |table: f64, due: f64, created: f64, state: f64| WriteUnits {
            table,
            indexes: BTreeMap::from([
                ("by-due".to_owned(), due),
                ("by-created".to_owned(), created),
                ("by-state".to_owned(), state),
                ("never".to_owned(), 0.0),
            ]),
            total: table + due + created + state,
        };
        // Submission: three puts; the claim moves the due and the state
        // entries (delete + put each); the completion deletes the due entry
        // and moves the state entry; the created entry never changes.
        assert_eq!(units(WritePhase::Submission), &expect(0.5, 0.5, 0.5, 0.5));
        assert_eq!(units(WritePhase::Claim), &expect(0.5, 1.0, 0.0, 1.0));
        assert_eq!(units(WritePhase::Completion), &expect(0.5, 0.5, 0.0, 1.0));
        assert_eq!(units(WritePhase::Other), &expect(0.0, 0.0, 0.0, 0.0));

        let mut all = WriteUnits::refused(0.5, 300, &indexes);
        assert_eq!(all, expect(0.5, 0.0, 0.0, 0.0));
        for phase in by_phase.values() {
            all.add(phase);
        }
        // 3 table + 10 index units a job, plus the refused write's half.
        assert_eq!(all, expect(2.0, 2.0, 0.5, 2.5));
        assert_eq!(all.total, 7.0);
        // A refused write of an item over 1 KB is billed as its size.
        assert_eq!(WriteUnits::refused(1.0, 1500, &indexes).table, 2.0);
    }

    #[test]
    fn stream_records_are_read_back_into_items() {
        let record = serde_json::json!({
            "eventName": "MODIFY",
            "dynamodb": {
                "OldImage": {"jobId": {"S": "j1"}, "n": {"N": "12"}},
                "NewImage": {
                    "jobId": {"S": "j1"},
                    "ok": {"BOOL": true},
                    "none": {"NULL": true},
                    "bin": {"B": "aGVsbG8="},
                    "tags": {"SS": ["a", "b"]},
                    "list": {"L": [{"N": "1"}, {"M": {"k": {"S": "v"}}}]},
                },
            },
        });
        let change = change_from_record(&record).unwrap();
        assert_eq!(
            change.old,
            Some(Item::from([
                ("jobId".to_owned(), s("j1")),
                ("n".to_owned(), AttributeValue::N("12".into())),
            ]))
        );
        let new = change.new.unwrap();
        assert_eq!(new["bin"], AttributeValue::B(Blob::new(b"hello".to_vec())));
        assert_eq!(new["none"], AttributeValue::Null(true));
        assert_eq!(
            new["list"],
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::M(Item::from([("k".to_owned(), s("v"))])),
            ])
        );
        let insert = serde_json::json!({"dynamodb": {"NewImage": {"jobId": {"S": "j1"}}}});
        assert_eq!(change_from_record(&insert).unwrap().old, None);
        assert!(change_from_record(&serde_json::json!({"dynamodb": {}})).is_err());
        let odd = serde_json::json!({"dynamodb": {"NewImage": {"x": {"Q": "1"}}}});
        assert!(change_from_record(&odd).is_err());
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("aA==").unwrap(), b"h");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(base64_decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        assert_eq!(base64_decode("a$=="), None);
        assert_eq!(base64_decode("aGVsb"), None);
    }

    #[test]
    fn indexes_come_from_the_table_description() {
        use aws_sdk_dynamodb::types::{
            GlobalSecondaryIndexDescription, LocalSecondaryIndexDescription,
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap()
        };
        let projection = |kind: ProjectionType, attributes: &[&str]| {
            let mut projection = Projection::builder().projection_type(kind);
            for attribute in attributes {
                projection = projection.non_key_attributes(*attribute);
            }
            projection.build()
        };
        let table = TableDescription::builder()
            .key_schema(key("jobId", KeyType::Hash))
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name("z-include")
                    // The sort key first: the partition key still comes first.
                    .key_schema(key("b", KeyType::Range))
                    .key_schema(key("a", KeyType::Hash))
                    .projection(projection(ProjectionType::Include, &["x", "y"]))
                    .build(),
            )
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name("a-keys")
                    .key_schema(key("c", KeyType::Hash))
                    .projection(projection(ProjectionType::KeysOnly, &[]))
                    .build(),
            )
            .local_secondary_indexes(
                LocalSecondaryIndexDescription::builder()
                    .index_name("m-local")
                    .key_schema(key("jobId", KeyType::Hash))
                    .key_schema(key("d", KeyType::Range))
                    .projection(projection(ProjectionType::All, &[]))
                    .build(),
            )
            .build();
        let (table_key, indexes) = indexes_of(&table).unwrap();
        assert_eq!(table_key, ["jobId"]);
        assert_eq!(
            indexes,
            [
                SecondaryIndex {
                    name: "a-keys".into(),
                    key_attributes: vec!["c".into()],
                    projection: IndexProjection::KeysOnly,
                },
                SecondaryIndex {
                    name: "m-local".into(),
                    key_attributes: vec!["jobId".into(), "d".into()],
                    projection: IndexProjection::All,
                },
                SecondaryIndex {
                    name: "z-include".into(),
                    key_attributes: vec!["a".into(), "b".into()],
                    projection: IndexProjection::Include(vec!["x".into(), "y".into()]),
                },
            ]
        );
        assert!(indexes_of(&TableDescription::builder().build()).is_err());
    }
}
