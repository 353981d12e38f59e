//! `csv-stats`: sums up the numeric columns of a CSV document, given inline
//! (`{"csv": "..."}`, up to the payload's 256 KiB) or as an upload of any
//! size (`{"input": {"upload": "<id>"}}`), which it reads as a stream, one
//! line at a time, resuming mid-file from its checkpoint in a continuation
//! or after a crash. It fails permanently on input it cannot read, naming
//! the row and column by number, never quoting the document (errors are
//! shown to clients).
//!
//! Its memory is bounded whatever the file's size: the reader's chunk, one
//! line (at most [`MAX_LINE_BYTES`]: a longer one fails the job) and the
//! running sums of at most [`MAX_COLUMNS`] columns, which are also the
//! checkpoint (within its 16 KiB).

use async_trait::async_trait;
use jobline_core::job_types::{InputReader, JobContext, JobError, JobHandler, payload_field};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The longest line read: a longer one fails the job (a file with no line
/// breaks must not be read into memory whole).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The most columns a document may have.
pub const MAX_COLUMNS: usize = 64;

/// The longest column name kept (longer ones are cut, at a character).
const MAX_NAME_BYTES: usize = 64;

/// How often a streamed run saves its checkpoint, in bytes read.
const CHECKPOINT_EVERY_BYTES: u64 = 4 * 1024 * 1024;

/// `{"csv": "a,b\n1,2\n"}` or `{"input": {"upload": "<id>"}}` →
/// `{"rows": 1, "columns": {"a": {count, sum, min, max, mean}, …}}` (and
/// `bytes`, the size read, for an upload).
///
/// Every value below the header must be a number; a ragged row or a value
/// that is not a number fails the job permanently, naming the row and column.
#[derive(Debug, Clone, Copy)]
pub struct CsvStats;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Column {
    sum: f64,
    min: f64,
    max: f64,
}

/// The running sums, line by line: what a checkpoint saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    header: Option<Vec<String>>,
    columns: Vec<Option<Column>>,
    rows: u64,
    /// Lines read, empty ones included: the next one's number less one.
    lines: u64,
}

impl Summary {
    /// Takes one line (without its `\n`).
    pub fn feed(&mut self, line: &[u8]) -> Result<(), String> {
        self.lines += 1;
        let row = self.lines;
        let text = std::str::from_utf8(line).map_err(|_| format!("row {row} is not UTF-8 text"))?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let Some(header) = &self.header else {
            let names: Vec<String> = text.split(',').map(|name| cut(name.trim())).collect();
            if names.len() > MAX_COLUMNS {
                return Err(format!(
                    "the header has {} columns; the most is {MAX_COLUMNS}",
                    names.len()
                ));
            }
            self.columns = vec![None; names.len()];
            self.header = Some(names);
            return Ok(());
        };
        let fields = text.split(',').count();
        if fields != header.len() {
            return Err(format!(
                "row {row} has {fields} fields, the header has {}",
                header.len()
            ));
        }
        for (index, (field, column)) in text.split(',').zip(&mut self.columns).enumerate() {
            let value: f64 = field
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| format!("row {row}, column {}: not a number", index + 1))?;
            let stats = column.get_or_insert(Column {
                sum: 0.0,
                min: value,
                max: value,
            });
            stats.sum += value;
            stats.min = stats.min.min(value);
            stats.max = stats.max.max(value);
        }
        self.rows += 1;
        Ok(())
    }

    /// The result.
    pub fn finish(&self) -> Result<Value, String> {
        let header = self
            .header
            .as_ref()
            .ok_or("csv is empty: expected a header row")?;
        let rows = self.rows;
        let summary: Map<String, Value> = header
            .iter()
            .zip(&self.columns)
            .filter_map(|(name, column)| {
                let c = column.as_ref()?;
                Some((
                    name.clone(),
                    json!({"count": rows, "sum": c.sum, "min": c.min, "max": c.max, "mean": c.sum / rows as f64}),
                ))
            })
            .collect();
        Ok(json!({ "rows": rows, "columns": summary }))
    }
}

/// `name` cut to [`MAX_NAME_BYTES`], at a character.
fn cut(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// Summarises `text`; `Err` says which line is wrong and why.
pub fn summarise(text: &str) -> Result<Value, String> {
    let mut summary = Summary::default();
    for line in text.lines() {
        summary.feed(line.as_bytes())?;
    }
    summary.finish()
}

/// Where a streamed run resumes: the byte after the last whole line read,
/// and the sums so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    offset: u64,
    summary: Summary,
}

/// Reads `reader` to its end from `checkpoint`, line by line.
async fn summarise_stream(
    ctx: &JobContext,
    reader: &mut InputReader,
    mut at: Checkpoint,
) -> Result<Value, JobError> {
    let permanent = JobError::Permanent;
    let mut line: Vec<u8> = Vec::new();
    let mut saved = at.offset;
    while let Some(chunk) = reader.chunk().await? {
        let mut rest = chunk.as_slice();
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if line.is_empty() {
                at.summary.feed(&rest[..end]).map_err(permanent)?;
            } else {
                extend(&mut line, &rest[..end], at.summary.lines)?;
                at.summary.feed(&line).map_err(permanent)?;
                line.clear();
            }
            rest = &rest[end + 1..];
        }
        extend(&mut line, rest, at.summary.lines)?;
        at.offset = reader.position() - line.len() as u64;
        ctx.progress(
            reader.position() as f64 / reader.size().max(1) as f64,
            "reading rows",
        );
        let stop = ctx.is_cancelled();
        if stop || at.offset - saved >= CHECKPOINT_EVERY_BYTES {
            ctx.save_checkpoint(serde_json::to_value(&at).unwrap_or_default())?;
            saved = at.offset;
        }
        if stop {
            return Err(JobError::Continue);
        }
    }
    if !line.is_empty() {
        at.summary.feed(&line).map_err(permanent)?;
    }
    let mut result = at.summary.finish().map_err(permanent)?;
    result["bytes"] = json!(reader.size());
    Ok(result)
}

/// Appends to the line being read, within [`MAX_LINE_BYTES`].
fn extend(line: &mut Vec<u8>, bytes: &[u8], lines: u64) -> Result<(), JobError> {
    if line.len() + bytes.len() > MAX_LINE_BYTES {
        return Err(JobError::Permanent(format!(
            "row {} is longer than {MAX_LINE_BYTES} bytes",
            lines + 1
        )));
    }
    line.extend_from_slice(bytes);
    Ok(())
}

#[async_trait]
impl JobHandler for CsvStats {
    fn name(&self) -> &str {
        "csv-stats"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        if payload.get("input").is_some() {
            return Ok(());
        }
        match payload_field(payload, "csv")? {
            Value::String(_) => Ok(()),
            _ => Err("payload.csv must be a string, or payload.input an upload".to_owned()),
        }
    }

    async fn run(&self, ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        self.validate(&payload).map_err(JobError::Permanent)?;
        if let Some(reference) = payload.get("input") {
            let input = ctx.input(reference)?.clone();
            let at: Checkpoint = ctx
                .checkpoint()
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default();
            if at.offset > 0 {
                tracing::info!(
                    offset = at.offset,
                    "csv-stats resumes mid-file from its checkpoint"
                );
            }
            let mut reader = ctx.open_input(&input, at.offset).await?;
            return summarise_stream(ctx, &mut reader, at).await;
        }
        let text = payload["csv"].as_str().unwrap_or_default();
        summarise(text).map_err(JobError::Permanent)
    }
}

#[cfg(test)]
mod tests;
