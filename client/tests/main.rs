//! The client's tests, one module each, built as one test binary (each
//! test binary links the client's whole HTTP stack; one keeps a clean
//! build's disk and link time down).

mod support;

mod calls;
mod retries;
mod uploads;
mod view;
mod webhooks;
