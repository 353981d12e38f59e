//! `jobline-local`'s process tests, one module each, built as one test
//! binary: each starts the `jobline-local` binary against the emulator
//! (crashes, SIGTERM, hostile clients, long jobs, files, webhooks). One
//! binary, not one per file, because each links the whole local stack
//! (about 80 MB in a debug build) and a clean CI checkout ran out of disk
//! building them all. Run one with its module's name as the filter, e.g.
//! `cargo test -p jobline-local --test process crash::`.

mod crash;
mod files;
mod hostile;
mod long_jobs;
mod server;
mod sigterm;
mod webhooks;
