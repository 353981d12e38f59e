//! `jobline dlq list`: the dead messages and their jobs, as a table or
//! JSON. Listing is a scan that selects everything (up to the limit) and
//! then makes every message visible again, so it changes nothing but the
//! messages' receive counts.

use super::{DeadBody, DeadLetter, DeadLetterQueue, DlqError, JOB_MISSING, Selection};
use jobline_core::Clock;
use jobline_core::job::format_ms;
use jobline_core::{JobId, JobState};
use serde::Serialize;
use std::io::{self, Write};
use std::num::NonZeroUsize;

impl DeadLetterQueue<'_> {
    /// `dlq list`: reads the dead messages and their jobs, and leaves every
    /// message in the queue, visible.
    pub async fn list(&self, limit: Option<NonZeroUsize>) -> Result<Vec<DeadLetter>, DlqError> {
        let scan = self.scan(&Selection::all(limit)).await?;
        for message in scan
            .unselected
            .iter()
            .chain(scan.selected.iter().map(|letter| &letter.message))
        {
            self.make_visible(&message.receipt_handle).await;
        }
        Ok(scan.selected)
    }
}

/// One row of `dlq list --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRow {
    pub message_id: String,
    pub job_id: Option<JobId>,
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    pub state: Option<JobState>,
    pub last_error: Option<String>,
    /// When the message was first sent (SQS keeps it through the redrive).
    pub sent_at: Option<String>,
    pub age_seconds: Option<i64>,
    pub receive_count: u32,
    /// Why the row has no job: a missing record or a malformed body.
    pub problem: Option<String>,
    /// The raw body, for malformed messages only.
    pub body: Option<String>,
}

impl ListRow {
    pub fn new(letter: &DeadLetter, now_ms: i64) -> Self {
        let sent_at = letter.message.sent_at_ms();
        let record = letter.record();
        let problem = match &letter.body {
            DeadBody::Malformed(reason) => Some(reason.clone()),
            DeadBody::Job { record: None, .. } => Some(JOB_MISSING.to_owned()),
            DeadBody::Job { .. } => None,
        };
        Self {
            message_id: letter.message.message_id.clone(),
            job_id: letter.job_id(),
            job_type: record.map(|job| job.job_type.clone()),
            state: record.map(|job| job.state),
            last_error: record.and_then(|job| job.error.clone()),
            sent_at: sent_at.map(format_ms),
            age_seconds: sent_at.map(|sent| (now_ms - sent).max(0) / 1000),
            receive_count: letter.message.receive_count(),
            body: matches!(letter.body, DeadBody::Malformed(_))
                .then(|| letter.message.body.clone()),
            problem,
        }
    }
}

/// Prints `dlq list` output: a table, or a JSON array with `json`.
pub fn render_list(letters: &[DeadLetter], json: bool, out: &mut dyn Write) -> io::Result<()> {
    let now = Clock::system().now_ms();
    let rows: Vec<ListRow> = letters.iter().map(|l| ListRow::new(l, now)).collect();
    if json {
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        return writeln!(out);
    }
    if rows.is_empty() {
        return writeln!(out, "the dead-letter queue is empty");
    }
    let dash = || "-".to_owned();
    let mut table = vec![
        [
            "MESSAGE ID",
            "JOB ID",
            "TYPE",
            "STATE",
            "RECEIVES",
            "AGE",
            "LAST ERROR",
        ]
        .map(str::to_owned),
    ];
    table.extend(rows.iter().map(|row| {
        [
            row.message_id.clone(),
            row.job_id.map_or_else(dash, |id| id.to_string()),
            row.job_type.clone().unwrap_or_else(dash),
            match (&row.state, &row.body) {
                (Some(state), _) => state.to_string(),
                (None, Some(_)) => "malformed".to_owned(),
                (None, None) => "missing".to_owned(),
            },
            row.receive_count.to_string(),
            row.age_seconds.map_or_else(dash, format_age),
            one_line(
                row.last_error
                    .as_deref()
                    .or(row.problem.as_deref())
                    .unwrap_or("-"),
            ),
        ]
    }));
    let mut widths = [0; 6];
    for row in &table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &table {
        for (cell, width) in row[..6].iter().zip(widths) {
            write!(out, "{cell:<width$}  ")?;
        }
        writeln!(out, "{}", row[6])?;
    }
    writeln!(out, "{} message(s)", rows.len())
}

/// A duration in seconds as `42s`, `12m`, `3h05m` or `2d04h`.
pub fn format_age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// A table cell: no line breaks.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::fixtures::*;

    #[tokio::test]
    async fn list_reads_jobs_and_malformed_bodies_and_changes_nothing() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        let failed = insert(&store, "primes", JobState::Failed, Some("boom"));
        let failed_message = push_job(&dlq, failed);
        let missing_message = push_job(&dlq, JobId::random());
        let junk_message = dlq.push("not json");

        let letters = tools(&dlq, &queue, &store).list(None).await.unwrap();

        let ids: Vec<&str> = letters
            .iter()
            .map(|l| l.message.message_id.as_str())
            .collect();
        assert_eq!(ids, [&failed_message, &missing_message, &junk_message]);
        assert_eq!(letters[0].record().unwrap().error.as_deref(), Some("boom"));
        assert!(matches!(
            letters[1].body,
            DeadBody::Job { record: None, .. }
        ));
        assert!(matches!(letters[2].body, DeadBody::Malformed(_)));
        assert_eq!(dlq.contents().len(), 3);
        assert!(all_visible(&dlq), "listing leaves every message visible");
        assert_eq!(store.writes(), 0);
        assert!(queue.sent().is_empty());

        let mut table = Vec::new();
        render_list(&letters, false, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.contains("primes") && table.contains("boom"),
            "{table}"
        );
        assert!(
            table.contains("malformed") && table.contains("missing"),
            "{table}"
        );
        let mut json_out = Vec::new();
        render_list(&letters, true, &mut json_out).unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&json_out).unwrap();
        assert_eq!(rows[0]["type"], "primes");
        assert_eq!(rows[0]["state"], "failed");
        assert_eq!(rows[0]["lastError"], "boom");
        assert_eq!(rows[0]["receiveCount"], 1);
        assert_eq!(rows[2]["body"], "not json");
        assert_only_made_visible(&[&dlq, &queue]);
    }

    #[tokio::test]
    async fn list_stops_on_limit_and_on_redelivered_messages() {
        let (dlq, queue, store) = (MemoryQueue::new(), MemoryQueue::new(), MemoryStore::new());
        for _ in 0..25 {
            push_job(&dlq, insert(&store, "primes", JobState::Failed, None));
        }
        let letters = tools(&dlq, &queue, &store).list(limit(12)).await.unwrap();
        assert_eq!(letters.len(), 12);
        assert!(all_visible(&dlq));

        // SQS hands out messages again once their visibility ends: each is
        // listed once, and made visible with its newest receipt handle.
        let redelivering = MemoryQueue::new();
        redelivering.set_redelivering(true);
        for _ in 0..3 {
            push_job(
                &redelivering,
                insert(&store, "primes", JobState::Failed, None),
            );
        }
        let letters = tools(&redelivering, &queue, &store)
            .list(None)
            .await
            .unwrap();
        assert_eq!(letters.len(), 3);
        assert!(all_visible(&redelivering));
        assert_eq!(store.writes(), 0);
        assert!(queue.sent().is_empty());
        assert_only_made_visible(&[&dlq, &redelivering, &queue]);
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(format_age(42), "42s");
        assert_eq!(format_age(12 * 60 + 5), "12m");
        assert_eq!(format_age(3 * 3_600 + 5 * 60), "3h05m");
        assert_eq!(format_age(2 * 86_400 + 4 * 3_600), "2d04h");
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}
