//! The command line of delayed and recurring jobs: `submit --at|--in`'s
//! time, and `jobline schedule …`. `docs/cli.md` describes them.

use super::{ApiArgs, PayloadArgs};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use jobline_core::schedule::{Overlap, ScheduleId};

/// The furthest ahead `--in` reaches: a year, as the API's `delaySeconds`.
pub const MAX_DELAY_SECS: u64 = 365 * 86_400;

/// `submit`'s time: at most one of `--at` and `--in`; neither runs the job
/// at once.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct WhenArgs {
    /// Run the job at this time, an RFC 3339 time with an offset, e.g.
    /// 2027-03-01T09:00:00+01:00 or 2027-03-01T08:00:00Z (sent as `runAt`).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    pub at: Option<String>,
    /// Run the job this long from now: a whole number and a unit, s, m, h
    /// or d, e.g. 90s, 15m, 3h or 2d, at most 365d (sent as `delaySeconds`).
    #[arg(long = "in", value_name = "DURATION", value_parser = delay_secs)]
    pub delay: Option<u64>,
}

/// `--at`: checked as the API reads `runAt` (jiff's RFC 3339 with an
/// offset), and sent as written.
fn rfc3339(text: &str) -> Result<String, String> {
    text.parse::<jiff::Timestamp>()
        .map(|_| text.to_owned())
        .map_err(|_| {
            format!(
                "{text:?} is not an RFC 3339 time with an offset, such as \
                 2027-03-01T09:00:00+01:00 or 2027-03-01T08:00:00Z"
            )
        })
}

/// `--in`: `90s`, `15m`, `3h`, `2d`, in seconds; nothing else (no
/// fractions, no spaces, no combinations such as `1h30m`: write `90m`).
pub fn delay_secs(text: &str) -> Result<u64, String> {
    let unreadable = || {
        format!(
            "{text:?} is not a duration: a whole number and a unit, s, m, h or d, such as \
             90s, 15m, 3h or 2d"
        )
    };
    let unit_at = text.len().checked_sub(1).ok_or_else(unreadable)?;
    let (number, unit) = text.split_at(unit_at);
    let per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(unreadable()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unreadable());
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .filter(|secs| *secs <= MAX_DELAY_SECS)
        .ok_or_else(|| format!("{text:?} is too far ahead: a job runs at most 365d from now"))
}

/// `jobline schedule …`: the caller's recurring schedules, through the API.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a recurring schedule (POST /schedules) and print it: each
    /// fire creates a job of its type with its payload.
    Create(CreateScheduleArgs),
    /// List your schedules (GET /schedules), one JSON object a line.
    List(ScheduleListArgs),
    /// Show a schedule (GET /schedules/{id}): its expression in words, its
    /// time zone, its next five fires, its last fire and job, and counts.
    Show(ShowScheduleArgs),
    /// Change a schedule (PATCH /schedules/{id}) and print it; a new
    /// expression or zone counts from now.
    Update(UpdateScheduleArgs),
    /// Pause a schedule (POST /schedules/{id}/pause): it fires nothing
    /// until resumed.
    Pause(ScheduleArgs),
    /// Resume a paused schedule (POST /schedules/{id}/resume): it fires
    /// from now on, with no catch-up of the fires it missed.
    Resume(ScheduleArgs),
    /// Fire a schedule once now (POST /schedules/{id}/trigger), paused or
    /// not, and print its job's 202; exits 1 if its overlap policy skips it.
    Trigger(ScheduleArgs),
    /// Delete a schedule and its timer (DELETE /schedules/{id}); the jobs
    /// it created stay.
    Delete(ScheduleArgs),
}

/// `--overlap`: what a fire does while the previous job is unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OverlapArg {
    /// Create the job anyway.
    Allow,
    /// Skip the fire.
    Skip,
}

impl From<OverlapArg> for Overlap {
    fn from(overlap: OverlapArg) -> Self {
        match overlap {
            OverlapArg::Allow => Self::Allow,
            OverlapArg::Skip => Self::Skip,
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateScheduleArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// When it fires: EventBridge Scheduler's cron(…) or rate(…), e.g.
    /// 'cron(0 9 ? * MON-FRI *)' or 'rate(15 minutes)'.
    #[arg(long, value_name = "EXPRESSION")]
    pub expression: String,
    /// The IANA time zone the expression is read in (default UTC).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// The job type each fire runs.
    #[arg(long = "type", value_name = "TYPE")]
    pub job_type: String,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// POST each job's final state to this https URL, signed with your
    /// secret (`jobline webhook-secret`).
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// What a fire does while the schedule's previous job has not finished
    /// (default allow).
    #[arg(long, value_enum, value_name = "POLICY")]
    pub overlap: Option<OverlapArg>,
}

#[derive(Debug, Args)]
pub struct ScheduleListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// At most this many schedules (following the API's pages).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
    /// Every schedule, however many pages they take.
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Go on from where an earlier listing stopped (it prints the cursor).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowScheduleArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The schedule id (a hyphenated UUID).
    #[arg(value_name = "ID")]
    pub id: ScheduleId,
    /// Print the API's JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// `update`: at least one change.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["expression", "timezone", "payload", "payload_file", "callback_url", "no_callback_url", "overlap"])
))]
pub struct UpdateScheduleArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The schedule id (a hyphenated UUID).
    #[arg(value_name = "ID")]
    pub id: ScheduleId,
    /// A new expression: cron(…) or rate(…).
    #[arg(long, value_name = "EXPRESSION")]
    pub expression: Option<String>,
    /// A new IANA time zone.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// A new callback URL for the jobs it creates from now on.
    #[arg(long, value_name = "URL", conflicts_with = "no_callback_url")]
    pub callback_url: Option<String>,
    /// Remove the callback URL.
    #[arg(long)]
    pub no_callback_url: bool,
    /// A new overlap policy.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub overlap: Option<OverlapArg>,
}

/// The API and one schedule: `pause`, `resume`, `trigger`, `delete`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The schedule id (a hyphenated UUID).
    #[arg(value_name = "ID")]
    pub id: ScheduleId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_a_number_and_one_unit() {
        assert_eq!(delay_secs("90s"), Ok(90));
        assert_eq!(delay_secs("15m"), Ok(900));
        assert_eq!(delay_secs("3h"), Ok(10_800));
        assert_eq!(delay_secs("2d"), Ok(172_800));
        assert_eq!(delay_secs("0s"), Ok(0));
        assert_eq!(delay_secs("365d"), Ok(MAX_DELAY_SECS));
        for text in [
            "", "s", "90", "1.5h", "1h30m", " 5m", "5 m", "5M", "-5m", "+5m", "5w", "m5", "5mm",
        ] {
            let error = delay_secs(text).unwrap_err();
            assert!(error.contains("90s, 15m, 3h or 2d"), "{text:?}: {error}");
        }
        for text in ["366d", "31536001s", "99999999999999999999d"] {
            let error = delay_secs(text).unwrap_err();
            assert!(error.contains("at most 365d"), "{text:?}: {error}");
        }
    }

    #[test]
    fn at_is_rfc3339_with_an_offset() {
        assert_eq!(
            rfc3339("2027-03-01T09:00:00+01:00").as_deref(),
            Ok("2027-03-01T09:00:00+01:00")
        );
        assert!(rfc3339("2027-03-01T08:00:00Z").is_ok());
        for text in ["2027-03-01T09:00:00", "2027-03-01", "tomorrow", "09:00"] {
            let error = rfc3339(text).unwrap_err();
            assert!(error.contains("with an offset"), "{text:?}: {error}");
        }
    }
}
