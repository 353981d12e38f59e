//! In-memory fakes of the ports, each held to its adapter's behaviour by
//! [`crate::contract`].

pub mod activity;
pub mod queue;
pub mod results;
pub mod store;
