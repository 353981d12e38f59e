//! Jobline's integration suites, one module each, built as one test binary.
//!
//! One binary, not one per file: each test binary links the AWS SDKs, the
//! API, the worker and the local stack (about 80 MB in a debug build), and
//! a clean CI checkout building two dozen of them ran out of disk. Run one
//! suite with its module's name as the filter, e.g.
//! `cargo test --workspace --test integration pipeline::`.
//!
//! But some have a binary, so a process, of their own: `traces.rs`
//! installs the process's one OTLP exporter, which would export every other
//! suite's spans too; `fairness.rs` holds the local stack to a bound of
//! 2.5 s in wall-clock time, and the browser suites (`in_browser.rs`) wait
//! for pages with wall-clock bounds, which another suite's load on the
//! emulator would eat into.

mod api;
mod contract;
mod dlq;
mod events;
mod faults;
mod listing;
mod migration;
mod openapi;
mod pipeline;
mod reliability;
mod results;
mod retries;
mod schedules;
mod stalls;
mod store;
mod sweeper;
mod template;
mod time_travel;
mod timers;
mod uploads;
