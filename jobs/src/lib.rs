//! The job types this deployment runs: the one registry that the API (to
//! accept a type and check its payload), the worker (to run it) and the local
//! runner are all built from.
//!
//! To add a job type, put its [`JobHandler`] in a file of this crate and add
//! one `.with(…)` line to [`registry`] (README, "Adding a job type"). The API
//! and the worker are deployed together, but a worker may briefly run an
//! older registry during a deploy: it retries a job of a type it does not
//! know yet instead of failing it.

pub use async_trait::async_trait;
pub use jobline_shared::job_types::{JobContext, JobError, JobHandler, JobTypes};

/// Every job type of this deployment: the built-in ones, plus yours.
pub fn registry() -> JobTypes {
    JobTypes::builtin()
    // Register a job type here, one line each: `.with(my_type::MyType)`.
}

/// Compiles every ```rust block of the README, so its examples stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_the_builtin_types() {
        let registry = registry();
        let names: Vec<&str> = registry.names().collect();
        for builtin in JobTypes::builtin().names() {
            assert!(names.contains(&builtin), "{builtin} missing from {names:?}");
        }
    }
}
