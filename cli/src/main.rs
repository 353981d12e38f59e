//! `jobline`: parses the command line, sets up logging to stderr, runs the
//! command and exits with its code (see `docs/cli.md`).

use clap::Parser;
use jobline_cli::{Cli, Exit, ProgressStyle, error_chain, run};
use std::io::Write;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_target(false)
        .without_time()
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => {
            // Help and version go to stdout with exit 0; mistakes to stderr.
            let _ = usage.print();
            let exit = if usage.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
            return ExitCode::from(exit.code());
        }
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let progress = ProgressStyle::for_stderr();
    let exit = match run(cli.command, progress, &mut out, &mut err).await {
        Ok(exit) => exit,
        Err(error) => {
            let _ = writeln!(err, "error: {}", error_chain(&error));
            Exit::Error
        }
    };
    ExitCode::from(exit.code())
}
