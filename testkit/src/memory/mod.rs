//! In-memory fakes of the ports, each held to its adapter's behaviour by
//! [`crate::contract`]; [`schedules`] is the schedules table's; [`timers`] fires nothing,
//! as the emulator.

pub mod activity;
pub mod callers;
pub mod files;
pub mod queue;
pub mod results;
pub mod schedules;
pub mod store;
pub mod timers;
