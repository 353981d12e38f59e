//! `jobline upload FILE` (the file sent through `jobline-client`'s
//! `upload_file`, the upload printed), `jobline upload show ID`, and what
//! `submit --upload` shares with them: the file's media type, and the
//! upload named in a job's payload (`"input": {"upload": "<uploadId>"}`).

use super::{CliError, Exit, api_client, print_json};
use crate::args::{UploadArgs, UploadCommand};
use jobline_client::{Client, Upload, UploadId};
use serde_json::{Map, Value, json};
use std::io::{self, Write};
use std::path::Path;

/// The media type of a file whose extension says nothing known.
const UNKNOWN_TYPE: &str = "application/octet-stream";

/// Runs `jobline upload FILE` or `jobline upload show ID`.
pub(super) async fn upload(args: UploadArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let upload = match (args.command, args.file) {
        (Some(UploadCommand::Show(show)), _) => {
            let upload = api_client(&show.api).await?.json().upload(show.id).await?;
            print_json(out, &upload)?;
            return Ok(Exit::Success);
        }
        (None, Some(path)) => {
            let client = api_client(&args.api).await?;
            upload_file(&client, &path, args.content_type.as_deref()).await?
        }
        // clap requires one or the other.
        (None, None) => unreachable!("FILE is required without a subcommand"),
    };
    let shown = serde_json::to_value(&upload).map_err(io::Error::from)?;
    print_json(out, &shown)?;
    Ok(Exit::Success)
}

/// Uploads the file at `path` as `content_type`, or as its extension says.
pub(super) async fn upload_file(
    client: &Client,
    path: &Path,
    content_type: Option<&str>,
) -> Result<Upload, CliError> {
    let content_type = content_type.unwrap_or_else(|| guess_type(path));
    Ok(client.upload_file(path, content_type).await?)
}

/// The media type a file's extension usually means.
pub fn guess_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => "text/csv",
        Some("tsv") => "text/tab-separated-values",
        Some("json") => "application/json",
        Some("jsonl" | "ndjson") => "application/x-ndjson",
        Some("txt" | "log") => "text/plain",
        Some("xml") => "application/xml",
        Some("parquet") => "application/vnd.apache.parquet",
        Some("gz") => "application/gzip",
        Some("zip") => "application/zip",
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => UNKNOWN_TYPE,
    }
}

/// Names upload `id` in `payload`'s `input` (an object, made if missing);
/// with `None`, only checks that it can be.
pub(super) fn name_upload(payload: &mut Value, id: Option<UploadId>) -> Result<(), CliError> {
    let Value::Object(fields) = payload else {
        return Err(CliError::UploadPayload(
            "the payload must be a JSON object to name an upload in its input",
        ));
    };
    let input = fields
        .entry("input")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(input) = input else {
        return Err(CliError::UploadPayload(
            "the payload's input must be a JSON object to name an upload",
        ));
    };
    if input.contains_key("upload") {
        return Err(CliError::UploadPayload(
            "the payload's input already names an upload",
        ));
    }
    match id {
        Some(id) => {
            input.insert("upload".to_owned(), json!(id));
        }
        // Only a check: leave no empty input behind.
        None if input.is_empty() => {
            fields.remove("input");
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_is_merged_into_the_payloads_input() {
        let id: UploadId = "0193f0a4-0000-7000-8000-00000000beef".parse().unwrap();
        let mut payload = json!({"delimiter": ";"});
        name_upload(&mut payload, None).unwrap();
        assert_eq!(payload, json!({"delimiter": ";"}));
        name_upload(&mut payload, Some(id)).unwrap();
        assert_eq!(
            payload,
            json!({"delimiter": ";", "input": {"upload": id.to_string()}})
        );
        let mut with_input = json!({"input": {"header": true}});
        name_upload(&mut with_input, Some(id)).unwrap();
        assert_eq!(
            with_input,
            json!({"input": {"header": true, "upload": id.to_string()}})
        );
        for refused in [
            json!([1, 2]),
            json!({"input": "a.csv"}),
            json!({"input": {"upload": "other"}}),
        ] {
            let mut payload = refused.clone();
            let err = name_upload(&mut payload, None).unwrap_err();
            assert!(matches!(err, CliError::UploadPayload(_)), "{refused}");
        }
    }

    #[test]
    fn media_types_come_from_the_extension() {
        assert_eq!(guess_type(Path::new("sales.CSV")), "text/csv");
        assert_eq!(
            guess_type(Path::new("/tmp/a.jsonl")),
            "application/x-ndjson"
        );
        assert_eq!(guess_type(Path::new("data")), UNKNOWN_TYPE);
        assert_eq!(guess_type(Path::new("x.tar.gz")), "application/gzip");
    }
}
