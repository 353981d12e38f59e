//! A job's files on its page: the uploads it reads (from its record) and,
//! once it succeeded, the outputs of the attempt that finished it, listed
//! from the results bucket with their sizes and a link each, and when the
//! links stop working.

use super::html::time;
use super::{Console, ConsoleError};
use jobline_core::files::{UploadFiles, output_prefix};
use jobline_core::results::{LINK_TTL, ResultStore};
use jobline_core::{JobRecord, JobState};
use maud::{Markup, html};
use std::sync::Arc;

/// Where the console finds a job's outputs and links them: the results
/// bucket (`RESULTS_BUCKET`).
#[derive(Debug, Clone)]
pub struct Bucket {
    pub files: Arc<dyn UploadFiles>,
    pub links: Arc<dyn ResultStore>,
}

impl Bucket {
    /// The bucket of an adapter that both lists and links (`S3Bucket`).
    pub fn of<B: UploadFiles + ResultStore + 'static>(bucket: Arc<B>) -> Self {
        Self {
            files: bucket.clone(),
            links: bucket,
        }
    }
}

/// A size in bytes, as people read it (KiB, MiB, GiB).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The inputs and outputs of `job`, or nothing if it has neither.
pub async fn section(console: &Console, job: &JobRecord, now: i64) -> Result<Markup, ConsoleError> {
    let outputs = match (&console.bucket, job.state) {
        (Some(bucket), JobState::Succeeded) => {
            let mut outputs = Vec::new();
            for output in bucket
                .files
                .list(&output_prefix(job.id, job.attempts))
                .await?
            {
                let link = bucket.links.link(&output.key).await?;
                outputs.push((output, link));
            }
            outputs
        }
        _ => Vec::new(),
    };
    let links_until = now + i64::try_from(LINK_TTL.as_millis()).unwrap_or(0);
    Ok(html! {
        @if !job.inputs.is_empty() {
            h2 { "Inputs" }
            table data-inputs {
                thead { tr { th { "Upload" } th { "Content type" } th { "Size" } th { "SHA-256" } } }
                tbody {
                    @for input in &job.inputs {
                        tr {
                            td { code { (input.upload_id) } }
                            td { (input.content_type) }
                            td { (size(input.size)) }
                            td { code title=(input.sha256) { (&input.sha256[..12.min(input.sha256.len())]) "…" } }
                        }
                    }
                }
            }
        }
        @if !outputs.is_empty() {
            h2 { "Outputs" }
            p { "Written by attempt " (job.attempts) "; the links work until " (time(Some(links_until), now)) "." }
            table data-outputs {
                thead { tr { th { "Name" } th { "Size" } th { "Link" } } }
                tbody {
                    @for (output, link) in &outputs {
                        tr {
                            td { code { (output.name) } }
                            td { (size(output.size)) }
                            td { a href=(link) { "download" } }
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::guard::Guard;
    use jobline_core::Clock;
    use jobline_core::files::{InputFile, JobFiles, UploadId};
    use jobline_testkit::memory::activity::FixedHistory;
    use jobline_testkit::memory::files::MemoryFiles;
    use jobline_testkit::memory::queue::MemoryQueue;
    use jobline_testkit::memory::results::MemoryResults;
    use jobline_testkit::memory::store::MemoryStore;
    use jobline_testkit::testing::{job, now_ms};

    #[tokio::test]
    async fn a_succeeded_jobs_page_shows_its_inputs_and_the_finishing_attempts_outputs() {
        let files = Arc::new(MemoryFiles::new());
        let mut done = job("thumbnail").state(JobState::Succeeded).build();
        done.attempts = 2;
        done.inputs = vec![InputFile {
            upload_id: UploadId::new(now_ms()),
            key: "uploads/x/y".into(),
            etag: "\"e\"".into(),
            size: 3 * 1024 * 1024,
            content_type: "image/png".into(),
            sha256: "ab".repeat(32),
        }];
        let put = |attempt: u32, name: &str, bytes: usize| {
            let files = Arc::clone(&files);
            let key = jobline_core::files::output_key(done.id, attempt, name);
            async move { files.put(&key, "image/png", vec![0; bytes]).await.unwrap() }
        };
        put(2, "thumb-128.png", 2048).await;
        put(1, "stale.png", 10).await;
        let console = Console {
            store: Arc::new(MemoryStore::new()),
            queue: Arc::new(MemoryQueue::new()),
            dlq: Arc::new(MemoryQueue::new()),
            history: Arc::new(FixedHistory::new()),
            guard: Guard::new(4321),
            emulated: false,
            clock: Clock::system(),
            bucket: Some(Bucket {
                files: files.clone(),
                links: Arc::new(MemoryResults::new()),
            }),
        };
        let html = section(&console, &done, now_ms())
            .await
            .unwrap()
            .into_string();
        assert!(
            html.contains("image/png") && html.contains("3.0 MiB"),
            "{html}"
        );
        assert!(
            html.contains("thumb-128.png") && html.contains("2.0 KiB"),
            "{html}"
        );
        assert!(html.contains("memory://outputs/"), "a link each: {html}");
        assert!(
            !html.contains("stale.png"),
            "only the finishing attempt's: {html}"
        );
        assert!(html.contains("the links work until"), "{html}");

        done.state = JobState::Running;
        let running = section(&console, &done, now_ms())
            .await
            .unwrap()
            .into_string();
        assert!(
            !running.contains("Outputs") && running.contains("Inputs"),
            "{running}"
        );
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(200 * 1024 * 1024), "200.0 MiB");
    }
}
