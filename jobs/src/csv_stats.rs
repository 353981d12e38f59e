//! `csv-stats`: sums up the numeric columns of a small CSV document, and
//! fails permanently on input it cannot read (naming the row and column by
//! number, never quoting the document: errors are shown to clients).

use async_trait::async_trait;
use jobline_core::job_types::{JobContext, JobError, JobHandler, payload_field};
use serde_json::{Map, Value, json};

/// `{"csv": "a,b\n1,2\n"}` → `{"rows": 1, "columns": {"a": {count, sum, min, max, mean}, …}}`.
///
/// Every value below the header must be a number; a ragged row or a value
/// that is not a number fails the job permanently, naming the row and column.
/// Its peak memory (a 256 KiB payload, one row at a time, the result) is
/// within the default [`JobHandler::peak_memory_bytes`].
#[derive(Debug, Clone, Copy)]
pub struct CsvStats;

#[derive(Debug, Clone, Copy)]
struct Column {
    sum: f64,
    min: f64,
    max: f64,
}

/// Summarises `text`; `Err` says which line is wrong and why.
pub fn summarise(text: &str) -> Result<Value, String> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("csv is empty: expected a header row")?
        .split(',')
        .map(str::trim)
        .collect();
    let mut columns: Vec<Option<Column>> = vec![None; header.len()];
    let mut rows = 0u64;
    for (index, line) in lines.enumerate() {
        let row_number = index + 2;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != header.len() {
            return Err(format!(
                "row {row_number} has {} fields, the header has {}",
                fields.len(),
                header.len()
            ));
        }
        for (index, (text, column)) in fields.iter().zip(&mut columns).enumerate() {
            let value: f64 = text
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| format!("row {row_number}, column {}: not a number", index + 1))?;
            let stats = column.get_or_insert(Column {
                sum: 0.0,
                min: value,
                max: value,
            });
            stats.sum += value;
            stats.min = stats.min.min(value);
            stats.max = stats.max.max(value);
        }
        rows += 1;
    }
    let summary: Map<String, Value> = header
        .iter()
        .zip(columns)
        .filter_map(|(name, column)| {
            let c = column?;
            Some((
                (*name).to_owned(),
                json!({"count": rows, "sum": c.sum, "min": c.min, "max": c.max, "mean": c.sum / rows as f64}),
            ))
        })
        .collect();
    Ok(json!({ "rows": rows, "columns": summary }))
}

#[async_trait]
impl JobHandler for CsvStats {
    fn name(&self) -> &str {
        "csv-stats"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        match payload_field(payload, "csv")? {
            Value::String(_) => Ok(()),
            _ => Err("payload.csv must be a string".to_owned()),
        }
    }

    async fn run(&self, _ctx: &JobContext, payload: Value) -> Result<Value, JobError> {
        self.validate(&payload).map_err(JobError::Permanent)?;
        let text = payload["csv"].as_str().unwrap_or_default();
        summarise(text).map_err(JobError::Permanent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_context;

    #[test]
    fn summarises_numeric_columns() {
        let out = summarise("price, qty\n2.5,4\n1.5,2\n\n").unwrap();
        assert_eq!(out["rows"], 2);
        assert_eq!(out["columns"]["price"]["sum"], 4.0);
        assert_eq!(out["columns"]["price"]["mean"], 2.0);
        assert_eq!(out["columns"]["qty"]["min"], 2.0);
        assert_eq!(out["columns"]["qty"]["max"], 4.0);
    }

    #[test]
    fn names_the_bad_row() {
        assert_eq!(
            summarise("a,b\n1,2\n3\n").unwrap_err(),
            "row 3 has 1 fields, the header has 2"
        );
        assert_eq!(
            summarise("a\nx\n").unwrap_err(),
            "row 2, column 1: not a number"
        );
        assert!(summarise("").is_err());
    }

    #[tokio::test]
    async fn bad_input_is_a_permanent_failure() {
        assert!(matches!(
            CsvStats
                .run(&test_context(1), json!({"csv": "a\nnope"}))
                .await,
            Err(JobError::Permanent(_))
        ));
        assert!(CsvStats.validate(&json!({"csv": 3})).is_err());
        assert_eq!(
            CsvStats
                .run(&test_context(1), json!({"csv": "a\n1"}))
                .await
                .unwrap()["rows"],
            1
        );
    }
}
