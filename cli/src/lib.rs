//! The `jobline` command-line tool: a client of the Jobline API (`submit`,
//! `status`, `wait`, `cancel`, `run`, `schedule …`, `upload`, and `smoke`,
//! the deployer's end-to-end checks of a stack), through the
//! `jobline-client` crate, and the operator's dead-letter queue tools
//! (`dlq list`, `dlq replay`, `dlq discard`), the operators' listing of
//! every caller's jobs by state (`jobs`), and a caller's counts (`callers`).
//! `docs/cli.md` is its manual.
//!
//! The operator's tools (the DLQ tools, `jobs`, `retry` and the console)
//! reach AWS only through the operator's role of the store port
//! ([`OperatorStore`]) and [`JobQueue`], so they can be tested on in-memory
//! fakes and on moto alike.
//!
//! [`OperatorStore`]: jobline_core::OperatorStore
//! [`JobQueue`]: jobline_core::JobQueue

pub mod args;
pub mod callers;
pub mod commands;
pub mod console;
pub mod dlq;
pub mod jobs;
pub mod progress;

pub use args::Cli;
pub use commands::{CliError, Exit, error_chain, run};
pub use progress::ProgressStyle;
