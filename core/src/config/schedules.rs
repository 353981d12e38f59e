//! The schedules' settings ([`ScheduleConfig`]): where the callers'
//! schedules and the timers live, and what the timers invoke.

use super::parse_or;
use crate::error::ConfigError;

/// Where schedules and delayed jobs' timers live, and what they invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// `SCHEDULES_TABLE`: the callers' schedules.
    pub table_name: String,
    /// `SCHEDULE_GROUP`: the EventBridge Scheduler group of every timer.
    pub group: String,
    /// `FIRE_FUNCTION_ARN`: the fire function, every timer's target (the
    /// API's only; the fire function creates no timer but a delayed job's
    /// set again).
    pub target_arn: String,
    /// `SCHEDULER_ROLE_ARN`: the role EventBridge Scheduler invokes it with.
    pub role_arn: String,
    /// `FIRE_FAILURES_QUEUE_ARN`: where the scheduler sends a fire it
    /// could not deliver.
    pub dead_letter_arn: Option<String>,
    /// `MAX_SCHEDULES_PER_CALLER` (default [`DEFAULT_MAX_SCHEDULES_PER_CALLER`]).
    pub max_per_caller: usize,
}

/// Each caller's schedules, at most, by default.
pub const DEFAULT_MAX_SCHEDULES_PER_CALLER: usize = 100;

/// The schedules' settings, when `SCHEDULES_TABLE` and `SCHEDULE_GROUP`
/// are set.
pub(super) fn schedule_config(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<ScheduleConfig>, ConfigError> {
    let set = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let (Some(table_name), Some(group)) = (set("SCHEDULES_TABLE"), set("SCHEDULE_GROUP")) else {
        return Ok(None);
    };
    Ok(Some(ScheduleConfig {
        table_name,
        group,
        target_arn: set("FIRE_FUNCTION_ARN").unwrap_or_default(),
        role_arn: set("SCHEDULER_ROLE_ARN").unwrap_or_default(),
        dead_letter_arn: set("FIRE_FAILURES_QUEUE_ARN"),
        max_per_caller: parse_or(
            lookup,
            "MAX_SCHEDULES_PER_CALLER",
            DEFAULT_MAX_SCHEDULES_PER_CALLER,
        )?,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, DEFAULT_MAX_SCHEDULES_PER_CALLER};
    use crate::error::ConfigError;

    fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            [("JOBS_TABLE", "t"), ("JOBS_QUEUE_URL", "q")]
                .iter()
                .chain(extra)
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn schedules_are_on_with_their_table_and_group() {
        assert_eq!(config(&[]).unwrap().schedules, None);
        assert_eq!(
            config(&[("SCHEDULES_TABLE", "s")]).unwrap().schedules,
            None,
            "a table alone is not enough"
        );
        let on = config(&[
            ("SCHEDULES_TABLE", "s"),
            ("SCHEDULE_GROUP", "g"),
            ("FIRE_FUNCTION_ARN", "arn:fire"),
        ])
        .unwrap()
        .schedules
        .unwrap();
        assert_eq!((on.table_name.as_str(), on.group.as_str()), ("s", "g"));
        assert_eq!(on.target_arn, "arn:fire");
        assert_eq!(on.dead_letter_arn, None);
        assert_eq!(on.max_per_caller, DEFAULT_MAX_SCHEDULES_PER_CALLER);
        assert!(matches!(
            config(&[
                ("SCHEDULES_TABLE", "s"),
                ("SCHEDULE_GROUP", "g"),
                ("MAX_SCHEDULES_PER_CALLER", "many"),
            ]),
            Err(ConfigError::Invalid {
                name: "MAX_SCHEDULES_PER_CALLER",
                ..
            })
        ));
    }
}
