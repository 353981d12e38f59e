//! Runs one parsed command line and decides the exit code: [`run`] hands
//! each command to its function, the API client's in `api.rs` (the
//! schedules' in `schedule.rs`, the uploads' in `upload.rs`, the
//! deployer's `smoke` checks in `smoke.rs`) and the operator's in
//! `operator.rs`.
//!
//! The client commands call the API through `jobline-client` and only need
//! the API's URL and credentials ([`api_client`]); the DLQ commands load the
//! configuration and SDK clients from the environment once, here, and hand
//! [`DeadLetterQueue`] the store and queues built from them.

mod api;
mod operator;
mod schedule;
mod smoke;
mod upload;

use crate::args::{ApiArgs, Command, DlqCommand, PayloadArgs, SelectArgs};
use crate::dlq::{DeadLetterQueue, DlqError, Selection, render_list};
use crate::jobs::{JobsError, RetryError};
use crate::progress::ProgressStyle;
use aws_config::SdkConfig;
use jobline_client::{Auth, Client, ClientError, RetryPolicy, Signer};
use jobline_core::{Config, ConfigError};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::path::Path;

/// The exit codes of `jobline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; `wait`: the job succeeded.
    Success,
    /// 1: `wait`: the job failed or was cancelled; `cancel`: the job had
    /// already finished; `delete`: it had not; `run`: the job is not
    /// scheduled; `schedule trigger`: the overlap policy skipped the fire;
    /// `dlq replay`/`discard`: a message failed; `smoke`: a check failed.
    Failed,
    /// 2: `wait`: the timeout passed before the job finished.
    TimedOut,
    /// 3: an error: configuration, input, network, AWS, or an API error answer.
    Error,
    /// 64: the command line is invalid.
    Usage,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::TimedOut => 2,
            Self::Error => 3,
            Self::Usage => 64,
        }
    }
}

/// Errors that end a command with [`Exit::Error`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Dlq(#[from] DlqError),
    #[error(transparent)]
    Callers(#[from] crate::callers::CallersError),
    #[error(transparent)]
    Jobs(#[from] JobsError),
    #[error("migrating the table: {0}")]
    Migrate(#[source] jobline_core::StoreError),
    #[error("reading the payload from {path}: {source}")]
    PayloadFile {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the payload is not valid JSON: {0}")]
    PayloadJson(#[source] serde_json::Error),
    #[error("--upload: {0}")]
    UploadPayload(&'static str),
    #[error(transparent)]
    Retry(#[from] RetryError),
    #[error(
        "listening on 127.0.0.1:{port}: {source} (choose another with --port, or 0 for any free port)"
    )]
    Listen {
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("writing the output: {0}")]
    Output(#[from] io::Error),
}

/// Runs `command`, printing results to `out`, and notices and `wait`'s
/// progress (in `progress` style) to `err`.
pub async fn run(
    command: Command,
    progress: ProgressStyle,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        Command::Submit(args) => api::submit(args, out, err).await,
        Command::Status(args) => api::status(args, out).await,
        Command::Wait(args) => api::wait(args, progress, out, err).await,
        Command::List(args) => api::list(args, out, err).await,
        Command::WebhookSecret(args) => api::webhook_secret(args, out).await,
        Command::Delete(args) => api::delete(args, err).await,
        Command::Upload(args) => upload::upload(args, out).await,
        Command::Cancel(args) => api::cancel(args, out, err).await,
        Command::Run(args) => api::run(args, out, err).await,
        Command::Schedule(command) => schedule::schedule(command, out, err).await,
        Command::Smoke(args) => smoke::smoke(args, progress, out, err).await,
        Command::Jobs(args) => operator::jobs(args, out, err).await,
        Command::Retry(args) => operator::retry_job(args, out, err).await,
        Command::Console(args) => operator::console(args, out).await,
        Command::Migrate(args) => operator::migrate(args, out, err).await,
        Command::Dlq(command) => operator::dlq(command, out).await,
        Command::Callers(command) => operator::callers(command, out).await,
    }
}

/// Runs a DLQ command on `tools`.
pub async fn run_dlq(
    command: DlqCommand,
    tools: DeadLetterQueue<'_>,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        DlqCommand::List(args) => {
            let letters = tools.list(args.limit).await?;
            render_list(&letters, args.json, out)?;
            Ok(Exit::Success)
        }
        DlqCommand::Replay(args) => {
            let report = tools.replay(&selection(&args), args.dry_run).await?;
            report.render(out)?;
            Ok(failed_if(report.failed()))
        }
        DlqCommand::Discard(args) => {
            let report = tools.discard(&selection(&args), args.dry_run).await?;
            report.render(out)?;
            Ok(failed_if(report.failed()))
        }
    }
}

fn selection(args: &SelectArgs) -> Selection {
    Selection {
        job_ids: args.job_ids.clone(),
        job_types: args.job_types.clone(),
        limit: args.limit,
    }
}

/// `dlq replay` and `discard` exit 1 when a message failed (the run stopped
/// there), else 0.
fn failed_if(failed: usize) -> Exit {
    if failed > 0 {
        Exit::Failed
    } else {
        Exit::Success
    }
}

/// The configuration the DLQ commands need: `JOBS_TABLE`, `JOBS_QUEUE_URL`
/// and `JOBS_DLQ_URL`, which `Config` alone treats as optional.
pub fn dlq_config(config: Result<Config, ConfigError>) -> Result<(Config, String), ConfigError> {
    let config = config?;
    let dlq_url = config
        .dlq_url
        .clone()
        .ok_or(ConfigError::Missing("JOBS_DLQ_URL"))?;
    Ok((config, dlq_url))
}

/// A tool's SDK configuration: the SDK's default credential and region
/// chains (profiles, SSO) and the system's CA store. No network call:
/// credentials resolve on first use.
pub(super) async fn tools_sdk_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The configuration and SDK set-up of an operator command.
async fn operator_clients(
    config: Result<Config, ConfigError>,
) -> Result<(Config, SdkConfig), ConfigError> {
    Ok((config?, tools_sdk_config().await))
}

/// The table `jobs` reads: `JOBS_TABLE`, the only variable it needs.
pub fn jobs_table(lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    lookup("JOBS_TABLE")
        .filter(|table| !table.is_empty())
        .ok_or(ConfigError::Missing("JOBS_TABLE"))
}

/// The API client of `--api`, `--token`, `--sigv4` (which wins over a
/// token) and `--retries`.
pub async fn api_client(args: &ApiArgs) -> Result<Client, CliError> {
    let auth = if args.sigv4 {
        Auth::SigV4(sigv4_signer(&tools_sdk_config().await)?)
    } else {
        match args.token.as_deref().filter(|token| !token.is_empty()) {
            Some(token) => Auth::Bearer(token.to_owned()),
            None => Auth::None,
        }
    };
    let client = Client::new(&args.api_url, auth)?
        .with_retry(RetryPolicy::with_retries(args.retries))
        .with_user_agent(concat!("jobline-cli/", env!("CARGO_PKG_VERSION")))?;
    Ok(client)
}

/// Why `--sigv4` cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no AWS region is configured: set AWS_REGION or a profile's region")]
    NoRegion,
    #[error("no AWS credentials provider is configured")]
    NoProvider,
}

/// The SigV4 signer of `--sigv4`: the region and credentials provider of
/// `config` (for the CLI, the default chain: environment, profile, SSO,
/// container or instance role), asked for credentials at the first request.
pub fn sigv4_signer(config: &SdkConfig) -> Result<Signer, CredentialsError> {
    let region = config.region().ok_or(CredentialsError::NoRegion)?;
    let provider = config
        .credentials_provider()
        .ok_or(CredentialsError::NoProvider)?;
    Ok(Signer::from_provider(provider, region.to_string()))
}

/// The payload of `--payload` or `--payload-file` (`-` is standard input).
pub fn read_payload(args: &PayloadArgs) -> Result<Value, CliError> {
    let text = match (&args.payload, &args.payload_file) {
        (Some(inline), _) => inline.clone(),
        (None, Some(path)) => read_file(path)?,
        // Neither given: the empty payload.
        (None, None) => "{}".to_owned(),
    };
    serde_json::from_str(&text).map_err(CliError::PayloadJson)
}

fn read_file(path: &Path) -> Result<String, CliError> {
    let failed = |source| CliError::PayloadFile {
        path: path.display().to_string(),
        source,
    };
    if path == Path::new("-") {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text).map_err(failed)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(failed)
    }
}

/// Items asked of the API per page by `list` and `schedule list`.
const LIST_PAGE_SIZE: usize = 100;

/// Prints one of the API's listings, a JSON line an item, page after page
/// from `cursor` until `wanted` are shown or the listing ends:
/// `fetch(size, cursor)` gets a page of at most `size` items from `cursor`,
/// its items in the array `key` and the next page's cursor in
/// `nextCursor`. If the listing goes on past what was shown, says on `err`
/// how to continue: `{hint} {cursor}`.
async fn print_pages(
    mut fetch: impl AsyncFnMut(usize, Option<&str>) -> Result<Value, ClientError>,
    key: &str,
    mut cursor: Option<String>,
    wanted: usize,
    hint: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let mut shown = 0;
    while shown < wanted {
        let page = fetch((wanted - shown).min(LIST_PAGE_SIZE), cursor.as_deref()).await?;
        for item in page[key].as_array().into_iter().flatten() {
            serde_json::to_writer(&mut *out, item).map_err(io::Error::from)?;
            writeln!(out)?;
            shown += 1;
        }
        cursor = page["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    if let Some(cursor) = cursor {
        writeln!(err, "{hint} {cursor}")?;
    }
    Ok(())
}

fn print_json(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// An error and its causes on one line, skipping causes whose text the
/// message already includes (the SDK's own messages are terse: the cause
/// says what actually went wrong).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        Config::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn dlq_commands_name_the_missing_variable() {
        let err = dlq_config(config(&[("JOBS_TABLE", "t"), ("JOBS_QUEUE_URL", "q")])).unwrap_err();
        assert!(err.to_string().contains("JOBS_DLQ_URL"), "{err}");
        let err =
            dlq_config(config(&[("JOBS_QUEUE_URL", "q"), ("JOBS_DLQ_URL", "d")])).unwrap_err();
        assert!(err.to_string().contains("JOBS_TABLE"), "{err}");
        let (config, dlq_url) = dlq_config(config(&[
            ("JOBS_TABLE", "t"),
            ("JOBS_QUEUE_URL", "q"),
            ("JOBS_DLQ_URL", "d"),
        ]))
        .unwrap();
        assert_eq!((config.table_name.as_str(), dlq_url.as_str()), ("t", "d"));
    }

    #[test]
    fn jobs_needs_only_the_table() {
        let err = jobs_table(|_| None).unwrap_err();
        assert!(err.to_string().contains("JOBS_TABLE"), "{err}");
        assert!(jobs_table(|_| Some(String::new())).is_err());
        let table = jobs_table(|name| (name == "JOBS_TABLE").then(|| "t".to_owned()));
        assert_eq!(table.unwrap(), "t");
    }

    #[test]
    fn payloads_come_inline_or_from_a_file() {
        let inline = PayloadArgs {
            payload: Some(r#"{"upTo": 10}"#.into()),
            payload_file: None,
        };
        assert_eq!(
            read_payload(&inline).unwrap(),
            serde_json::json!({"upTo": 10})
        );
        let bad = PayloadArgs {
            payload: Some("{upTo: 10}".into()),
            payload_file: None,
        };
        assert!(matches!(read_payload(&bad), Err(CliError::PayloadJson(_))));
        let none = PayloadArgs {
            payload: None,
            payload_file: None,
        };
        assert_eq!(read_payload(&none).unwrap(), serde_json::json!({}));
        let path =
            std::env::temp_dir().join(format!("jobline-payload-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"csv": "a,b\n1,2\n"}"#).unwrap();
        let file = PayloadArgs {
            payload: None,
            payload_file: Some(path.clone()),
        };
        assert_eq!(read_payload(&file).unwrap()["csv"], "a,b\n1,2\n");
        std::fs::remove_file(&path).unwrap();
        let missing = PayloadArgs {
            payload: None,
            payload_file: Some(PathBuf::from("/nonexistent/payload.json")),
        };
        let err = read_payload(&missing).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/payload.json"),
            "{err}"
        );
    }

    #[test]
    fn error_chains_add_only_new_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner(#[source] io::Error);
        let error = Outer(Inner(io::Error::other("connection refused")));
        assert_eq!(error_chain(&error), "outer: inner: connection refused");
    }

    #[test]
    fn sigv4_signs_with_the_sdk_configs_region_and_credentials() {
        use aws_config::Region;
        use aws_credential_types::provider::SharedCredentialsProvider;
        let credentials =
            jobline_client::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let config = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        assert_eq!(sigv4_signer(&config).unwrap().region(), "eu-west-1");
        let no_region = SdkConfig::builder().build();
        assert!(matches!(
            sigv4_signer(&no_region),
            Err(CredentialsError::NoRegion)
        ));
        let no_credentials = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .build();
        assert!(matches!(
            sigv4_signer(&no_credentials),
            Err(CredentialsError::NoProvider)
        ));
    }

    #[test]
    fn exit_codes_are_distinct() {
        let codes = [
            Exit::Success,
            Exit::Failed,
            Exit::TimedOut,
            Exit::Error,
            Exit::Usage,
        ]
        .map(Exit::code);
        assert_eq!(codes, [0, 1, 2, 3, 64]);
    }
}
