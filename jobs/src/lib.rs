//! The job types this deployment runs: the one registry that the API (to
//! accept a type and check its payload), the worker (to run it) and the local
//! runner are all built from.
//!
//! To add a job type, put its [`JobHandler`] in a file of this crate and add
//! one `.with(…)` line to [`registry`] (docs/job-types.md, "Adding a job type");
//! the built-in ones are here as models, one file each: `csv-stats`
//! ([`CsvStats`]), `thumbnail` ([`Thumbnail`]) and `ping` ([`Ping`], the
//! probe of `jobline smoke`) for production, and the
//! demonstration types ([`Sleep`], [`FailTimes`], [`AlwaysFail`],
//! [`Primes`], [`PrimeCount`]). The API
//! and the worker are deployed together, but a worker may briefly run an
//! older registry during a deploy: it retries a job of a type it does not
//! know yet instead of failing it.
//!
//! The demonstration types ([`with_demos`]) are there for the
//! local runner and the tests, and in a deployment only when its
//! `EnableDemoJobTypes` parameter turns them on (`DEMO_JOB_TYPES`, read as
//! `Config::demo_job_types`); without them a submission of one is an
//! unknown type (422 `unknown_job_type`), like any other.

pub mod csv_stats;
mod failing;
pub mod ping;
mod prime_count;
mod primes;
mod sleep;
pub mod thumbnail;

pub use async_trait::async_trait;
pub use csv_stats::CsvStats;
pub use failing::{AlwaysFail, FailTimes};
pub use jobline_core::job_types::{JobContext, JobError, JobHandler, JobTypes};
pub use ping::Ping;
pub use prime_count::PrimeCount;
pub use primes::Primes;
pub use sleep::Sleep;
pub use thumbnail::Thumbnail;

/// Every job type of this deployment: the built-in ones (the demonstration
/// types only if `demos`), plus yours.
pub fn registry(demos: bool) -> JobTypes {
    with_demos(production(), demos)
    // Register a job type here, one line each: `.with(my_type::MyType)`.
}

/// Every job type Jobline ships, production and demonstration: what the
/// local runner and the tests run.
pub fn builtin() -> JobTypes {
    with_demos(production(), true)
}

/// The built-in job types a deployment always runs: `csv-stats`,
/// `thumbnail`, and `ping`, the probe `jobline smoke` checks a deployed
/// stack with.
pub fn production() -> JobTypes {
    JobTypes::new().with(CsvStats).with(Thumbnail).with(Ping)
}

/// `types` and, if `enabled`, the demonstration job types, for trying the
/// system out: `sleep` (progress, cancellation), `fail-times` (retries),
/// `always-fail` (the dead-letter queue), `primes` (a CPU-bound run) and
/// `prime-count` (a long job in chunks, with checkpoints and continuations).
/// Off in a deployment unless turned on: they let any caller hold workers
/// for minutes, or dead-letter jobs at will.
pub fn with_demos(types: JobTypes, enabled: bool) -> JobTypes {
    if !enabled {
        return types;
    }
    types
        .with(Sleep)
        .with(FailTimes)
        .with(AlwaysFail)
        .with(Primes)
        .with(PrimeCount)
}

/// A context for a handler's unit tests: job `attempt`, an hour to run.
#[cfg(test)]
fn test_context(attempt: u32) -> JobContext {
    JobContext::new(
        jobline_core::JobId::random(),
        attempt,
        jobline_core::Clock::system().now_ms() + 3_600_000,
        tokio_util::sync::CancellationToken::new(),
    )
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
        for builtin in builtin().names() {
            assert!(names.contains(&builtin), "{builtin} missing from {names:?}");
        }
    }

    #[test]
    fn without_the_demos_the_registry_holds_only_the_production_types() {
        let types = registry(false);
        let names = names(&types);
        for production in production().names() {
            assert!(
                names.contains(&production),
                "{production} missing from {names:?}"
            );
        }
        assert!(types.get("csv-stats").is_some());
        assert!(types.get("thumbnail").is_some());
        assert!(types.get("ping").is_some(), "jobline smoke's probe");
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

    #[test]
    fn builtin_registry_lists_its_types() {
        let types = builtin();
        assert_eq!(
            types.names().collect::<Vec<_>>(),
            [
                "always-fail",
                "csv-stats",
                "fail-times",
                "ping",
                "prime-count",
                "primes",
                "sleep",
                "thumbnail"
            ]
        );
        assert!(types.get("primes").is_some());
        assert!(types.get("nope").is_none());
        assert_eq!(
            format!("{types:?}"),
            r#"["always-fail", "csv-stats", "fail-times", "ping", "prime-count", "primes", "sleep", "thumbnail"]"#
        );
        assert_eq!(
            types.peak_memory_bytes(),
            Thumbnail
                .peak_memory_bytes()
                .max(Primes.peak_memory_bytes()),
            "the thumbnail's decode and the sieve are the largest"
        );
    }

    #[test]
    fn the_demonstration_types_are_apart_from_production() {
        assert_eq!(
            production().names().collect::<Vec<_>>(),
            ["csv-stats", "ping", "thumbnail"]
        );
        assert_eq!(with_demos(JobTypes::new(), false).names().count(), 0);
        let demos = with_demos(JobTypes::new(), true);
        assert_eq!(
            demos.names().collect::<Vec<_>>(),
            [
                "always-fail",
                "fail-times",
                "prime-count",
                "primes",
                "sleep"
            ]
        );
        let mut all: Vec<&str> = demos
            .names()
            .chain(["csv-stats", "ping", "thumbnail"])
            .collect();
        all.sort_unstable();
        assert_eq!(builtin().names().collect::<Vec<_>>(), all);
    }

    /// Error text is stored and shown to clients: no built-in type quotes
    /// the payload it was given, in validation or in a run.
    #[tokio::test]
    async fn no_builtin_echoes_its_input() {
        const MARK: &str = "SECRET-7f3a";
        let types = builtin();
        let payloads = [
            serde_json::json!(MARK),
            serde_json::json!({"upTo": MARK, "csv": MARK, "seconds": MARK, "failures": MARK}),
            serde_json::json!({"csv": format!("{MARK}\n{MARK}")}),
            serde_json::json!({"csv": format!("a\n{MARK}")}),
            serde_json::json!({"csv": format!("a\n1,{MARK}")}),
        ];
        for name in types.names() {
            let handler = types.get(name).unwrap();
            for payload in &payloads {
                if let Err(message) = handler.validate(payload) {
                    assert!(!message.contains(MARK), "{name} validate: {message}");
                }
                if let Err(error) = handler.run(&test_context(1), payload.clone()).await {
                    assert!(!error.to_string().contains(MARK), "{name} run: {error}");
                }
            }
        }
    }
}
