//! Jobline on one machine, with the AWS parts Lambda would supply played by
//! ordinary code: an HTTP server in front of the API handler (API Gateway's
//! part), pollers in front of the worker and the notifier (the SQS event
//! source mapping's part), and a reader of the jobs table's stream in front
//! of the notifier (the stream's mapping), and a firer of the timers the
//! emulator stores but never fires ([`firer`], EventBridge Scheduler's
//! part). The handlers are the very ones the Lambda binaries run; [`stack`]
//! assembles them once for `jobline-local serve`, the tests and the bench.

pub mod clients;
pub mod fair;
pub mod firer;
pub mod poller;
pub mod provision;
pub mod relay;
pub mod server;
pub mod shutdown;
pub mod stack;
pub mod stream;

pub use clients::Clients;
pub use stack::{ServeError, Stack, StackBuilder, serve};
