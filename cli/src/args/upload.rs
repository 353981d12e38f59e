//! The command line of uploads: `jobline upload FILE`, `jobline upload show
//! ID`, and `submit --upload FILE`. `docs/cli.md` describes them.

use super::ApiArgs;
use clap::{Args, Subcommand};
use jobline_client::UploadId;
use std::path::PathBuf;

/// `jobline upload`: a file, or `show ID`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct UploadArgs {
    #[command(subcommand)]
    pub command: Option<UploadCommand>,
    #[command(flatten)]
    pub api: ApiArgs,
    /// The file to upload.
    #[arg(value_name = "FILE", required = true)]
    pub file: Option<PathBuf>,
    /// Its media type, `type/subtype` (guessed from the file's extension
    /// otherwise: csv, tsv, json, jsonl, ndjson, txt, xml, parquet, gz, zip,
    /// pdf, png, jpg; else application/octet-stream).
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UploadCommand {
    /// Print an upload (GET /uploads/{id}): its status (pending, complete
    /// or expired), size, type, hash and times.
    Show(UploadShowArgs),
}

#[derive(Debug, Args)]
pub struct UploadShowArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The upload id (a hyphenated UUID).
    #[arg(value_name = "ID")]
    pub id: UploadId,
}

/// `submit --upload FILE`: upload a file first, and name it in the payload.
#[derive(Debug, Args)]
pub struct SubmitUploadArgs {
    /// Upload this file first, then submit the job with the upload named in
    /// its payload: `"input": {"upload": "<uploadId>"}` is merged into the
    /// payload (which must be an object).
    #[arg(long, value_name = "FILE")]
    pub upload: Option<PathBuf>,
    /// The uploaded file's media type (see `jobline upload --help`).
    #[arg(long, value_name = "TYPE", requires = "upload")]
    pub content_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command};
    use clap::Parser;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("jobline").chain(args.iter().copied()))
    }

    #[test]
    fn upload_takes_a_file_or_show_and_an_id() {
        let Command::Upload(upload) = parse(&["upload", "sales.csv", "--content-type", "text/csv"])
            .unwrap()
            .command
        else {
            panic!("expected upload")
        };
        assert!(upload.command.is_none());
        assert_eq!(upload.file.unwrap().to_str(), Some("sales.csv"));
        assert_eq!(upload.content_type.as_deref(), Some("text/csv"));

        let id = "0193f0a4-0000-7000-8000-00000000beef";
        let Command::Upload(show) = parse(&["upload", "show", id, "--api", "http://h"])
            .unwrap()
            .command
        else {
            panic!("expected upload show")
        };
        let Some(super::UploadCommand::Show(show)) = show.command else {
            panic!("expected show")
        };
        assert_eq!(
            (show.id.to_string().as_str(), show.api.api_url.as_str()),
            (id, "http://h")
        );

        assert_eq!(
            parse(&["upload"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse(&["upload", "show", "../admin"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn submit_uploads_only_with_a_file() {
        let Command::Submit(submit) =
            parse(&["submit", "--type", "csv-stats", "--upload", "a.csv"])
                .unwrap()
                .command
        else {
            panic!("expected submit")
        };
        assert_eq!(submit.upload.upload.unwrap().to_str(), Some("a.csv"));
        let alone = parse(&[
            "submit",
            "--type",
            "csv-stats",
            "--content-type",
            "text/csv",
        ]);
        assert_eq!(
            alone.unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
    }
}
