//! Each caller's bounds ([`CallerLimits`]): how many unfinished jobs one
//! caller may have (`MAX_UNFINISHED_PER_CALLER`) and how much it may upload
//! in a UTC day (`MAX_UPLOADS_PER_CALLER_PER_DAY`,
//! `MAX_UPLOAD_GIB_PER_CALLER_PER_DAY`), counted in the callers table
//! (`CALLERS_TABLE`), and per-caller overrides of them and of the
//! schedules bound (`CALLER_LIMITS`). The backlog bound (`MAX_BACKLOG`)
//! stays the last line for all callers together.

use super::parse_or;
use crate::caller::UploadQuota;
use crate::error::ConfigError;
use serde::Deserialize;
use std::collections::HashMap;

/// Each caller's unfinished jobs, at most, by default.
pub const DEFAULT_MAX_UNFINISHED_PER_CALLER: u64 = 10_000;

/// Each caller's upload links in a UTC day, at most, by default.
pub const DEFAULT_MAX_UPLOADS_PER_CALLER_PER_DAY: u64 = 1_000;

/// The bytes each caller may declare in its uploads of a UTC day, at most,
/// by default, in GiB: ten of the largest uploads.
pub const DEFAULT_MAX_UPLOAD_GIB_PER_CALLER_PER_DAY: u64 = 50;

const GIB: u64 = 1024 * 1024 * 1024;

/// A caller's own bounds, where they differ from the deployment's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallerOverride {
    pub max_unfinished: Option<u64>,
    pub max_schedules: Option<usize>,
    pub max_uploads_per_day: Option<u64>,
    pub max_upload_gib_per_day: Option<u64>,
}

/// The per-caller bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerLimits {
    /// `CALLERS_TABLE`: where each caller's unfinished jobs are counted.
    /// Without it, no per-caller bound on jobs (the backlog bound remains).
    pub table_name: Option<String>,
    /// `MAX_UNFINISHED_PER_CALLER` (default
    /// [`DEFAULT_MAX_UNFINISHED_PER_CALLER`]; 0: no bound): a caller's
    /// scheduled, queued and running jobs, at most.
    pub max_unfinished: u64,
    /// `MAX_UPLOADS_PER_CALLER_PER_DAY` (default
    /// [`DEFAULT_MAX_UPLOADS_PER_CALLER_PER_DAY`]) and
    /// `MAX_UPLOAD_GIB_PER_CALLER_PER_DAY` (default
    /// [`DEFAULT_MAX_UPLOAD_GIB_PER_CALLER_PER_DAY`]): a caller's upload
    /// links of a UTC day, and the bytes declared in them, at most (0: no
    /// bound).
    pub upload_quota: UploadQuota,
    /// `CALLER_LIMITS`: JSON, by owner (as `GET /jobs` shows a caller's
    /// jobs' owner), e.g. `{"arn:aws:iam::123456789012:user/batch":
    /// {"maxUnfinished": 50000, "maxSchedules": 500, "maxUploadsPerDay":
    /// 5000, "maxUploadGibPerDay": 200}}`.
    pub overrides: HashMap<String, CallerOverride>,
}

impl CallerLimits {
    /// How many unfinished jobs `owner` may have; `None`: no bound.
    pub fn max_unfinished(&self, owner: &str) -> Option<u64> {
        self.table_name.as_ref()?;
        let max = self
            .overrides
            .get(owner)
            .and_then(|o| o.max_unfinished)
            .unwrap_or(self.max_unfinished);
        (max > 0).then_some(max)
    }

    /// What `owner` may upload in a UTC day (a 0 setting: no bound on
    /// that count); `None`: no callers table to count in, or no bound.
    pub fn upload_quota(&self, owner: &str) -> Option<UploadQuota> {
        self.table_name.as_ref()?;
        let own = self.overrides.get(owner);
        let uploads = own
            .and_then(|o| o.max_uploads_per_day)
            .unwrap_or(self.upload_quota.uploads);
        let bytes = own
            .and_then(|o| o.max_upload_gib_per_day)
            .map_or(self.upload_quota.bytes, |gib| gib.saturating_mul(GIB));
        let bound = |max: u64| if max == 0 { u64::MAX } else { max };
        (uploads > 0 || bytes > 0).then_some(UploadQuota {
            uploads: bound(uploads),
            bytes: bound(bytes),
        })
    }

    /// How many schedules `owner` may have, `default` unless overridden.
    pub fn max_schedules(&self, owner: &str, default: usize) -> usize {
        self.overrides
            .get(owner)
            .and_then(|o| o.max_schedules)
            .unwrap_or(default)
    }
}

pub(super) fn caller_limits(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<CallerLimits, ConfigError> {
    let overrides = match lookup("CALLER_LIMITS").filter(|v| !v.trim().is_empty()) {
        None => HashMap::new(),
        Some(json) => serde_json::from_str(&json).map_err(|e| ConfigError::Invalid {
            name: "CALLER_LIMITS",
            value: json.chars().take(80).collect(),
            reason: format!(
                "must be a JSON object of owner → {{\"maxUnfinished\": N, \"maxSchedules\": N, \"maxUploadsPerDay\": N, \"maxUploadGibPerDay\": N}}: {e}"
            ),
        })?,
    };
    Ok(CallerLimits {
        table_name: lookup("CALLERS_TABLE").filter(|v| !v.is_empty()),
        max_unfinished: parse_or(
            lookup,
            "MAX_UNFINISHED_PER_CALLER",
            DEFAULT_MAX_UNFINISHED_PER_CALLER,
        )?,
        upload_quota: UploadQuota {
            uploads: parse_or(
                lookup,
                "MAX_UPLOADS_PER_CALLER_PER_DAY",
                DEFAULT_MAX_UPLOADS_PER_CALLER_PER_DAY,
            )?,
            bytes: parse_or(
                lookup,
                "MAX_UPLOAD_GIB_PER_CALLER_PER_DAY",
                DEFAULT_MAX_UPLOAD_GIB_PER_CALLER_PER_DAY,
            )?
            .saturating_mul(GIB),
        },
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(vars: &[(&str, &str)]) -> Result<CallerLimits, ConfigError> {
        caller_limits(&|name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn a_caller_has_the_deployments_bounds_unless_overridden() {
        let off = limits(&[]).unwrap();
        assert_eq!(off.max_unfinished("alice"), None, "no table, no bound");
        let on = limits(&[
            ("CALLERS_TABLE", "callers"),
            ("MAX_UNFINISHED_PER_CALLER", "100"),
            (
                "CALLER_LIMITS",
                r#"{"batch": {"maxUnfinished": 5000, "maxSchedules": 7, "maxUploadsPerDay": 3, "maxUploadGibPerDay": 2}}"#,
            ),
            ("MAX_UPLOADS_PER_CALLER_PER_DAY", "20"),
        ])
        .unwrap();
        assert_eq!(off.upload_quota("alice"), None, "no table, no quota");
        assert_eq!(
            on.upload_quota("alice"),
            Some(UploadQuota {
                uploads: 20,
                bytes: DEFAULT_MAX_UPLOAD_GIB_PER_CALLER_PER_DAY * GIB
            })
        );
        assert_eq!(
            on.upload_quota("batch"),
            Some(UploadQuota {
                uploads: 3,
                bytes: 2 * GIB
            })
        );
        assert_eq!(on.max_unfinished("alice"), Some(100));
        assert_eq!(on.max_unfinished("batch"), Some(5000));
        assert_eq!(on.max_schedules("alice", 100), 100);
        assert_eq!(on.max_schedules("batch", 100), 7);
        let unbounded = limits(&[
            ("CALLERS_TABLE", "c"),
            ("MAX_UNFINISHED_PER_CALLER", "0"),
            ("MAX_UPLOADS_PER_CALLER_PER_DAY", "0"),
            ("MAX_UPLOAD_GIB_PER_CALLER_PER_DAY", "0"),
        ])
        .unwrap();
        assert_eq!(unbounded.max_unfinished("alice"), None);
        assert_eq!(unbounded.upload_quota("alice"), None);
        let count_only = limits(&[
            ("CALLERS_TABLE", "c"),
            ("MAX_UPLOAD_GIB_PER_CALLER_PER_DAY", "0"),
        ]);
        assert_eq!(
            count_only.unwrap().upload_quota("alice"),
            Some(UploadQuota {
                uploads: DEFAULT_MAX_UPLOADS_PER_CALLER_PER_DAY,
                bytes: u64::MAX
            })
        );
        for bad in [r#"{"x": {"max": 1}}"#, "[1]", "{"] {
            assert!(matches!(
                limits(&[("CALLER_LIMITS", bad)]),
                Err(ConfigError::Invalid {
                    name: "CALLER_LIMITS",
                    ..
                })
            ));
        }
    }
}
