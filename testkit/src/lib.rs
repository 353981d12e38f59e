//! Jobline's test kit, for every crate's tests and never in a function's
//! build:
//!
//! - [`memory`]: an in-memory fake of each port (`store`, `queue`,
//!   `results`, `activity`), for the functions' unit tests;
//! - [`contract`]: the behaviour every store and queue must have, written
//!   once; this crate's tests run it against the fakes and
//!   `tests/tests/contract.rs` against DynamoDB and SQS on the emulator, so
//!   a fake cannot drift from the adapter production uses;
//! - [`testing`]: record builders and a local webhook receiver.

pub mod contract;
pub mod memory;
pub mod testing;
