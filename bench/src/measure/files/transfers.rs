//! The files measurement's bytes: the CSV generated as a stream into a
//! scratch file and uploaded from it (setup), and the four measured runs'
//! reads and writes.

use crate::error::BenchError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use jobline_core::files::{InputFile, JobFiles, PART_BYTES};
use jobline_core::job_types::JobContext;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// The parts the CSV is uploaded in (setup), read from the file one at a time.
const UPLOAD_PART_BYTES: u64 = 16 * 1024 * 1024;

/// What a handler hands the output writer at a time.
pub const WRITE_BYTES: usize = 64 * 1024;

/// The generated CSV's header: eight numeric columns.
const HEADER: &str = "id,store,price,quantity,discount,weight,latitude,longitude\n";

/// The output's name and content type.
pub const OUTPUT_NAME: &str = "out.csv";
const CONTENT_TYPE: &str = "text/csv";

/// A file removed when dropped.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        // Already gone is fine.
        drop(std::fs::remove_file(&self.0));
    }
}

/// Row `n` of the CSV into `line`: numbers of a few digits, varied by `n`.
fn row(n: u64, line: &mut String) {
    let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    line.clear();
    // Writing to a String cannot fail.
    let _ = writeln!(
        line,
        "{n},{},{}.{:02},{},0.{:02},{}.{:03},{}.{:05},-{}.{:05}",
        h % 512,
        (h >> 9) % 1000,
        (h >> 19) % 100,
        (h >> 26) % 24 + 1,
        (h >> 31) % 50,
        (h >> 37) % 90,
        (h >> 3) % 1000,
        (h >> 14) % 90,
        (h >> 21) % 100_000,
        (h >> 8) % 180,
        (h >> 27) % 100_000,
    );
}

/// Writes a CSV of at least `target` bytes to `path`, a row at a time:
/// its bytes and rows.
pub fn generate(path: &Path, target: u64) -> Result<(u64, u64), BenchError> {
    let io = |what: &str| BenchError::io(format!("{what} {}", path.display()));
    let file = std::fs::File::create(path).map_err(io("creating"))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(HEADER.as_bytes()).map_err(io("writing"))?;
    let (mut bytes, mut rows) = (HEADER.len() as u64, 0);
    let mut line = String::new();
    while bytes < target {
        row(rows, &mut line);
        out.write_all(line.as_bytes()).map_err(io("writing"))?;
        bytes += line.len() as u64;
        rows += 1;
    }
    out.flush().map_err(io("writing"))?;
    Ok((bytes, rows))
}

/// 64 KiB of the CSV's rows: what the writes repeat.
pub fn block() -> Vec<u8> {
    let mut block = Vec::with_capacity(WRITE_BYTES + 128);
    let mut line = String::new();
    let mut n = 0;
    while block.len() < WRITE_BYTES {
        row(n, &mut line);
        block.extend_from_slice(line.as_bytes());
        n += 1;
    }
    block.truncate(WRITE_BYTES);
    block
}

/// Writes `size` bytes to `key` as one multipart upload, one part of at
/// most `part_bytes` at a time, each part's body from `body(offset, length)`.
async fn multipart(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    (size, part_bytes): (u64, u64),
    mut body: impl AsyncFnMut(u64, u64) -> Result<ByteStream, BenchError>,
) -> Result<(), BenchError> {
    let started = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(CONTENT_TYPE)
        .send()
        .await
        .map_err(BenchError::aws)?;
    let id = started
        .upload_id()
        .ok_or_else(|| BenchError::Unexpected("no upload id".into()))?;
    let mut parts = Vec::new();
    let mut offset = 0;
    while offset < size {
        let length = part_bytes.min(size - offset);
        let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .content_length(i64::try_from(length).unwrap_or(i64::MAX))
            .body(body(offset, length).await?)
            .send()
            .await
            .map_err(BenchError::aws)?;
        let etag = part.e_tag().unwrap_or_default();
        parts.push(
            CompletedPart::builder()
                .e_tag(etag)
                .part_number(number)
                .build(),
        );
        offset += length;
    }
    let parts = CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build();
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(parts)
        .send()
        .await
        .map_err(BenchError::aws)?;
    Ok(())
}

/// Uploads the file at `path` (`size` bytes) to `key` as a multipart
/// upload, reading one part of the file into memory at a time. (A body the
/// SDK streams from the file itself, `ByteStream::read_from`, goes up
/// aws-chunked with a trailing checksum, and moto 5.2.5 never answered it.)
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &Path,
    size: u64,
) -> Result<(), BenchError> {
    let file =
        std::fs::File::open(path).map_err(BenchError::io(format!("opening {}", path.display())))?;
    let part = async |offset, length| {
        let mut body = vec![0; usize::try_from(length).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut body, offset)
            .map_err(BenchError::io(format!("reading {}", path.display())))?;
        Ok(ByteStream::from(body))
    };
    multipart(s3, bucket, key, (size, UPLOAD_PART_BYTES), part).await
}

/// What a raw read got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub bytes: u64,
    pub chunks: u64,
    pub largest_chunk: u64,
}

/// Reads `input` from its start to its end through `files`, doing nothing
/// with the chunks.
pub async fn raw_read(files: &dyn JobFiles, input: &InputFile) -> Result<Read, BenchError> {
    let mut chunks = files
        .read(&input.key, &input.etag, 0)
        .await
        .map_err(BenchError::aws)?;
    let mut read = Read {
        bytes: 0,
        chunks: 0,
        largest_chunk: 0,
    };
    while let Some(chunk) = chunks.next_chunk().await.map_err(BenchError::aws)? {
        let length = chunk.len() as u64;
        read.bytes += length;
        read.chunks += 1;
        read.largest_chunk = read.largest_chunk.max(length);
    }
    Ok(read)
}

/// Writes `size` bytes, `block` repeated, to `key` with the SDK: one
/// multipart upload, parts of [`PART_BYTES`] one at a time, each built in
/// a buffer of its size.
pub async fn raw_write(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    size: u64,
    block: &[u8],
) -> Result<(), BenchError> {
    let part = async |_, length| {
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let mut body = Vec::with_capacity(length);
        while body.len() < length {
            let take = (length - body.len()).min(block.len());
            body.extend_from_slice(&block[..take]);
        }
        Ok(ByteStream::from(body))
    };
    multipart(s3, bucket, key, (size, PART_BYTES as u64), part).await
}

/// Writes `size` bytes, `block` repeated, as output [`OUTPUT_NAME`] of
/// `ctx`'s job, [`WRITE_BYTES`] at a time: the bytes the writer reports.
pub async fn write_output(ctx: &JobContext, size: u64, block: &[u8]) -> Result<u64, BenchError> {
    let failed = |what: &str| {
        let what = what.to_owned();
        move |error| BenchError::Unexpected(format!("{what} failed: {error}"))
    };
    let mut out = ctx
        .create_output(OUTPUT_NAME, CONTENT_TYPE)
        .map_err(failed("create_output"))?;
    let mut left = size;
    while left > 0 {
        let take = usize::try_from(left).unwrap_or(usize::MAX).min(block.len());
        out.write(&block[..take])
            .await
            .map_err(failed("OutputWriter::write"))?;
        left -= take as u64;
    }
    let output = out.finish().await.map_err(failed("OutputWriter::finish"))?;
    Ok(output.size)
}

/// Deletes every object of `bucket`, then the bucket.
pub async fn empty_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), BenchError> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .map_err(BenchError::aws)?;
    for key in listed.contents().iter().filter_map(|object| object.key()) {
        s3.delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(BenchError::aws)?;
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(BenchError::aws)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_is_numeric_rows_under_a_header_of_eight_columns() {
        let dir = std::env::temp_dir().join(format!("jobline-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = Scratch(dir.join("t.csv"));
        let (bytes, rows) = generate(&file.0, 100_000).unwrap();
        let text = std::fs::read_to_string(&file.0).unwrap();
        assert_eq!(text.len() as u64, bytes);
        assert!((100_000..100_200).contains(&bytes));
        let summary = jobline_jobs::csv_stats::summarise(&text).unwrap();
        assert_eq!(summary["rows"], serde_json::json!(rows));
        assert_eq!(summary["columns"].as_object().unwrap().len(), 8);
        drop(file);
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(block().len(), WRITE_BYTES);
    }
}
