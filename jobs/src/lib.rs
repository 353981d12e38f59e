//! The job types this deployment runs: the one registry that the API (to
//! accept a type and check its payload), the worker (to run it) and the local
//! runner are all built from.
//!
//! To add a job type, put its [`JobHandler`] in a file of this crate and add
//! one `.with(…)` line to [`registry`] (docs/job-types.md, "Adding a job type"). The API
//! and the worker are deployed together, but a worker may briefly run an
//! older registry during a deploy: it retries a job of a type it does not
//! know yet instead of failing it.
//!
//! The demonstration types ([`JobTypes::with_demos`]) are there for the
//! local runner and the tests, and in a deployment only when its
//! `EnableDemoJobTypes` parameter turns them on (`DEMO_JOB_TYPES`, read as
//! `Config::demo_job_types`); without them a submission of one is an
//! unknown type (422 `unknown_job_type`), like any other.

pub use async_trait::async_trait;
pub use jobline_core::job_types::{JobContext, JobError, JobHandler, JobTypes};

/// Every job type of this deployment: the built-in ones (the demonstration
/// types only if `demos`), plus yours.
pub fn registry(demos: bool) -> JobTypes {
    JobTypes::production().with_demos(demos)
    // Register a job type here, one line each: `.with(my_type::MyType)`.
}

/// Compiles every ```rust block of docs/job-types.md, so its examples stay true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/job-types.md")]
pub struct JobTypeDocDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    fn names(types: &JobTypes) -> Vec<&str> {
        types.names().collect()
    }

    #[test]
    fn the_registry_holds_every_builtin_type_with_the_demos() {
        let types = registry(true);
        let names = names(&types);
        for builtin in JobTypes::builtin().names() {
            assert!(names.contains(&builtin), "{builtin} missing from {names:?}");
        }
    }

    #[test]
    fn without_the_demos_the_registry_holds_only_the_production_types() {
        let types = registry(false);
        let names = names(&types);
        for production in JobTypes::production().names() {
            assert!(
                names.contains(&production),
                "{production} missing from {names:?}"
            );
        }
        assert!(types.get("csv-stats").is_some());
        // A deployment without the demos knows none of them: the API answers
        // 422 unknown_job_type, as for any unregistered type.
        for demo in [
            "sleep",
            "fail-times",
            "always-fail",
            "primes",
            "prime-count",
        ] {
            assert!(types.get(demo).is_none(), "{demo} in {names:?}");
            assert!(registry(true).get(demo).is_some(), "{demo}");
        }
    }
}
