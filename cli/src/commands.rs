//! Runs one parsed command line and decides the exit code.
//!
//! The client commands only need the API's URL; the DLQ commands load the
//! configuration and SDK clients from the environment once, here, and hand
//! [`DeadLetterQueue`] the store and queues built from them.

use crate::args::{ApiArgs, Command, DlqCommand, JobsArgs, PayloadArgs, SelectArgs};
use crate::client::{ApiClient, Auth, Cancel, ClientError, Waited};
use crate::console::guard::Guard;
use crate::console::{Console, serve};
use crate::dlq::{DeadLetterQueue, DlqError, Selection, render_list};
use crate::jobs::{JobsError, Retried, RetryError, StateQuery, list_jobs, retry};
use crate::progress::{ProgressDisplay, ProgressStyle};
use crate::sigv4::Signer;
use jobline_shared::activity::CloudWatchHistory;
use jobline_shared::aws::{Clients, SigningIdentity};
use jobline_shared::error::CredentialsError;
use jobline_shared::{Clock, Config, ConfigError, DynamoJobStore, JobState, SqsJobQueue};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The exit codes of `jobline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; `wait`: the job succeeded.
    Success,
    /// 1: `wait`: the job failed or was cancelled; `cancel`: the job had
    /// already finished; `dlq replay`/`discard`: a message failed.
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
    Jobs(#[from] JobsError),
    #[error("reading the payload from {path}: {source}")]
    PayloadFile {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the payload is not valid JSON: {0}")]
    PayloadJson(#[source] serde_json::Error),
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
        Command::Submit(args) => {
            let payload = read_payload(&args.payload)?;
            let client = api_client(&args.api).await?;
            let accepted = client
                .submit(
                    &args.job_type,
                    &payload,
                    args.callback_url.as_deref(),
                    args.idempotency_key.as_deref(),
                )
                .await?;
            print_json(out, &accepted)?;
            Ok(Exit::Success)
        }
        Command::Status(args) => {
            let job = api_client(&args.api).await?.status(args.id).await?;
            print_json(out, &job)?;
            Ok(Exit::Success)
        }
        Command::Wait(args) => {
            let client = api_client(&args.api).await?;
            let mut display = ProgressDisplay::new(progress);
            let waited = client
                .wait(
                    args.id,
                    Duration::from_secs(args.timeout),
                    Duration::from_millis(args.interval),
                    |job| display.show(job, &mut *err).map_err(CliError::Output),
                )
                .await;
            display.finish(err)?;
            match waited? {
                Waited::Finished { job, status } => {
                    print_json(out, &job)?;
                    Ok(if status == JobState::Succeeded {
                        Exit::Success
                    } else {
                        Exit::Failed
                    })
                }
                Waited::TimedOut { job, status } => {
                    print_json(out, &job)?;
                    writeln!(
                        err,
                        "timed out after {} s: job {} is still {status}",
                        args.timeout, args.id
                    )?;
                    Ok(Exit::TimedOut)
                }
            }
        }
        Command::List(args) => {
            let client = api_client(&args.api).await?;
            let mut cursor = args.cursor.clone();
            let mut shown = 0;
            while shown < args.limit {
                let page_size = (args.limit - shown).min(LIST_PAGE_SIZE);
                let page = client
                    .list(&list_query(&args, page_size, cursor.as_deref()))
                    .await?;
                for job in page["jobs"].as_array().into_iter().flatten() {
                    serde_json::to_writer(&mut *out, job).map_err(io::Error::from)?;
                    writeln!(out)?;
                    shown += 1;
                }
                cursor = page["nextCursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            if let Some(cursor) = cursor {
                writeln!(err, "more jobs: jobline list --cursor {cursor}")?;
            }
            Ok(Exit::Success)
        }
        Command::WebhookSecret(args) => {
            let secret = api_client(&args).await?.webhook_secret().await?;
            writeln!(out, "{secret}")?;
            Ok(Exit::Success)
        }
        Command::Delete(args) => {
            let id = args.id;
            match api_client(&args.api).await?.delete(id).await? {
                None => {
                    writeln!(err, "job {id} is deleted")?;
                    Ok(Exit::Success)
                }
                Some(state) => {
                    writeln!(
                        err,
                        "job {id} is {state}: only a finished job can be deleted (cancel it first)"
                    )?;
                    Ok(Exit::Failed)
                }
            }
        }
        Command::Cancel(args) => {
            let id = args.id;
            match api_client(&args.api).await?.cancel(id).await? {
                Cancel::Cancelled { job } => {
                    print_json(out, &job)?;
                    writeln!(err, "job {id} is cancelled")?;
                    Ok(Exit::Success)
                }
                Cancel::Requested { job } => {
                    print_json(out, &job)?;
                    writeln!(
                        err,
                        "cancellation requested: job {id} is running and stops at its next \
                         heartbeat (unless it finishes first)"
                    )?;
                    Ok(Exit::Success)
                }
                Cancel::Finished { status } => {
                    writeln!(
                        err,
                        "job {id} had already finished ({status}): nothing to cancel"
                    )?;
                    Ok(Exit::Failed)
                }
            }
        }
        Command::Jobs(args) => {
            let table = jobs_table(|name| std::env::var(name).ok())?;
            let clients = Clients::from_env().await;
            let store = DynamoJobStore::new(clients.dynamodb.clone(), table);
            let query = StateQuery {
                job_type: args.job_type,
                owner: args.owner,
                created_since: args.since,
                created_before: args.before,
                ..StateQuery::new(args.state, args.limit.get())
            };
            list_jobs(&store, &query, out).await?.report(err)?;
            Ok(Exit::Success)
        }
        Command::Retry(args) => {
            let (config, clients) = operator_clients(Config::from_env()).await?;
            let outcome = retry(
                &clients.store(&config),
                &clients.queue(&config),
                args.id,
                Clock::system().now_ms(),
            )
            .await?;
            let exit = match outcome {
                Retried::Requeued { message_id } => {
                    writeln!(
                        out,
                        "job {} is queued again (message {message_id})",
                        args.id
                    )?;
                    Exit::Success
                }
                Retried::SentAgain { message_id } => {
                    writeln!(
                        out,
                        "job {} was already queued: its message was sent again ({message_id})",
                        args.id
                    )?;
                    Exit::Success
                }
                Retried::Unchanged(state) => {
                    writeln!(
                        err,
                        "job {} is {state}: only a failed job is retried",
                        args.id
                    )?;
                    Exit::Failed
                }
                Retried::Missing => {
                    writeln!(err, "job {} not found", args.id)?;
                    Exit::Failed
                }
            };
            Ok(exit)
        }
        Command::Console(args) => {
            let (config, dlq_url) = dlq_config(Config::from_env())?;
            let clients = Clients::from_env().await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
                .await
                .map_err(|source| CliError::Listen {
                    port: args.port,
                    source,
                })?;
            let port = listener.local_addr()?.port();
            let console = Console {
                store: Arc::new(clients.store(&config)),
                queue: Arc::new(clients.queue(&config)),
                dlq: Arc::new(SqsJobQueue::new(clients.sqs.clone(), dlq_url)),
                history: Arc::new(CloudWatchHistory::from_env().await),
                guard: Guard::new(port),
                emulated: std::env::var_os("AWS_ENDPOINT_URL").is_some(),
                clock: Clock::system(),
            };
            // Printed, never handed to a browser opener: that would put the
            // token on a command line every local user can read (the guard's
            // module doc says why, and why not through a file either).
            let url = console.guard.launch_url();
            writeln!(out, "Jobline console: {url}")?;
            writeln!(
                out,
                "(open it in your browser: it works once, for the first browser that opens it; \
                 Ctrl-C stops the console)"
            )?;
            out.flush()?;
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            serve(listener, Arc::new(console), stop).await?;
            Ok(Exit::Success)
        }
        Command::Dlq(command) => {
            let (config, dlq_url) = dlq_config(Config::from_env())?;
            let clients = Clients::from_env().await;
            let dlq = SqsJobQueue::new(clients.sqs.clone(), dlq_url);
            let queue = clients.queue(&config);
            let store = clients.store(&config);
            let tools = DeadLetterQueue::new(&dlq, &queue, &store);
            run_dlq(command, tools, out).await
        }
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

/// The configuration and clients of an operator command.
async fn operator_clients(
    config: Result<Config, ConfigError>,
) -> Result<(Config, Clients), ConfigError> {
    Ok((config?, Clients::from_env().await))
}

/// The table `jobs` reads: `JOBS_TABLE`, the only variable it needs.
pub fn jobs_table(lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    lookup("JOBS_TABLE")
        .filter(|table| !table.is_empty())
        .ok_or(ConfigError::Missing("JOBS_TABLE"))
}

/// The API client of `--api`, `--token` and `--sigv4` (which wins over a
/// token).
pub async fn api_client(args: &ApiArgs) -> Result<ApiClient, CliError> {
    let auth = if args.sigv4 {
        Auth::SigV4(Signer::new(SigningIdentity::from_env().await?))
    } else {
        match args.token.as_deref().filter(|token| !token.is_empty()) {
            Some(token) => Auth::Bearer(token.to_owned()),
            None => Auth::Anonymous,
        }
    };
    Ok(ApiClient::new(&args.api_url, auth)?)
}

/// The payload of `--payload` or `--payload-file` (`-` is standard input).
pub fn read_payload(args: &PayloadArgs) -> Result<Value, CliError> {
    let text = match (&args.payload, &args.payload_file) {
        (Some(inline), _) => inline.clone(),
        (None, Some(path)) => read_file(path)?,
        // clap's argument group requires one of them.
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

/// Jobs asked of the API per page by `list`.
const LIST_PAGE_SIZE: usize = 100;

/// The query of one `GET /jobs` page of `args`' listing.
fn list_query(args: &JobsArgs, limit: usize, cursor: Option<&str>) -> String {
    let mut query = format!("limit={limit}");
    if let Some(status) = args.status {
        query.push_str(&format!("&status={status}"));
    }
    if let Some(job_type) = &args.job_type {
        query.push_str(&format!("&type={}", percent_encode(job_type)));
    }
    if let Some(cursor) = cursor {
        query.push_str(&format!("&cursor={}", percent_encode(cursor)));
    }
    query
}

/// `text` with every byte but unreserved ones (RFC 3986) percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
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
