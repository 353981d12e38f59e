//! `jobline schedule …`: the caller's recurring schedules through the API,
//! one function each, in the client commands' style: JSON on stdout (one
//! object a line for a listing, a summary for `show`), what happened on
//! stderr, exit 1 for the one refusal a command expects (a trigger the
//! overlap policy skips), and the API's error answers as errors (exit 3).

use super::{CliError, Exit, api_client, print_json, print_pages, read_payload};
use crate::args::{
    CreateScheduleArgs, ScheduleArgs, ScheduleCommand, ScheduleListArgs, ShowScheduleArgs,
    UpdateScheduleArgs,
};
use jobline_client::{ListSchedules, NewSchedule, ScheduleChanges, Triggered};
use jobline_core::schedule::Overlap;
use serde_json::Value;
use std::io::{self, Write};

/// Runs one `jobline schedule` command.
pub(super) async fn schedule(
    command: ScheduleCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        ScheduleCommand::Create(args) => create(args, out).await,
        ScheduleCommand::List(args) => list(args, out, err).await,
        ScheduleCommand::Show(args) => show(args, out).await,
        ScheduleCommand::Update(args) => update(args, out).await,
        ScheduleCommand::Pause(args) => pause(args, true, out, err).await,
        ScheduleCommand::Resume(args) => pause(args, false, out, err).await,
        ScheduleCommand::Trigger(args) => trigger(args, out, err).await,
        ScheduleCommand::Delete(args) => delete(args, err).await,
    }
}

/// `schedule create`: `POST /schedules`, the schedule printed.
async fn create(args: CreateScheduleArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let new = NewSchedule {
        timezone: args.timezone,
        callback_url: args.callback_url,
        overlap: args.overlap.map(Overlap::from),
        ..NewSchedule::new(args.expression, args.job_type, read_payload(&args.payload)?)
    };
    let schedule = api_client(&args.api)
        .await?
        .json()
        .create_schedule(&new)
        .await?;
    print_json(out, &schedule)?;
    Ok(Exit::Success)
}

/// `schedule list`: a line a schedule, page after page up to `--limit`
/// (every page with `--all`).
async fn list(
    args: ScheduleListArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let client = api_client(&args.api).await?;
    let wanted = if args.all { usize::MAX } else { args.limit };
    let page = |size: usize, cursor: Option<&str>| ListSchedules {
        limit: Some(size),
        cursor: cursor.map(str::to_owned),
    };
    print_pages(
        async |size, cursor| client.json().schedules(&page(size, cursor)).await,
        "schedules",
        args.cursor.clone(),
        wanted,
        "more schedules: jobline schedule list --cursor",
        out,
        err,
    )
    .await?;
    Ok(Exit::Success)
}

/// `schedule show`: the summary (or, with `--json`, the API's JSON).
async fn show(args: ShowScheduleArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let schedule = api_client(&args.api)
        .await?
        .json()
        .schedule(args.id)
        .await?;
    if args.json {
        print_json(out, &schedule)?;
    } else {
        render(&schedule, out)?;
    }
    Ok(Exit::Success)
}

/// `schedule update`: `PATCH` with the changes given.
async fn update(args: UpdateScheduleArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let payload_given = args.payload.payload.is_some() || args.payload.payload_file.is_some();
    let changes = ScheduleChanges {
        expression: args.expression,
        timezone: args.timezone,
        payload: payload_given
            .then(|| read_payload(&args.payload))
            .transpose()?,
        callback_url: match (args.callback_url, args.no_callback_url) {
            (Some(url), _) => Some(Some(url)),
            (None, true) => Some(None),
            (None, false) => None,
        },
        overlap: args.overlap.map(Overlap::from),
    };
    let schedule = api_client(&args.api)
        .await?
        .json()
        .update_schedule(args.id, &changes)
        .await?;
    print_json(out, &schedule)?;
    Ok(Exit::Success)
}

/// `schedule pause` and `resume`.
async fn pause(
    args: ScheduleArgs,
    paused: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let client = api_client(&args.api).await?;
    let schedule = if paused {
        client.json().pause_schedule(args.id).await?
    } else {
        client.json().resume_schedule(args.id).await?
    };
    print_json(out, &schedule)?;
    let id = args.id;
    if paused {
        writeln!(
            err,
            "schedule {id} is paused: it fires nothing until resumed"
        )?;
    } else {
        writeln!(
            err,
            "schedule {id} is resumed: it fires from now on (the fires it missed are not run)"
        )?;
    }
    Ok(Exit::Success)
}

/// `schedule trigger`: one fire now; exit 1 if the overlap policy skips it.
async fn trigger(
    args: ScheduleArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let id = args.id;
    match api_client(&args.api)
        .await?
        .json()
        .trigger_schedule(id)
        .await?
    {
        Triggered::Accepted { job } => {
            print_json(out, &job)?;
            writeln!(
                err,
                "schedule {id} fired: job {} is {}",
                job["jobId"].as_str().unwrap_or("?"),
                job["status"].as_str().unwrap_or("accepted")
            )?;
            Ok(Exit::Success)
        }
        Triggered::Skipped { message } => {
            writeln!(err, "schedule {id} did not fire: {message}")?;
            Ok(Exit::Failed)
        }
    }
}

/// `schedule delete`: the schedule and its timer; its jobs stay.
async fn delete(args: ScheduleArgs, err: &mut dyn Write) -> Result<Exit, CliError> {
    api_client(&args.api)
        .await?
        .delete_schedule(args.id)
        .await?;
    writeln!(
        err,
        "schedule {} is deleted (the jobs it created stay)",
        args.id
    )?;
    Ok(Exit::Success)
}

/// `at` (RFC 3339) in `zone` as a person there reads it, e.g.
/// `2027-03-01 09:00:00 CET`; nothing for UTC or a zone jiff does not know.
fn local_time(at: &str, zone: &str) -> Option<String> {
    if zone == "UTC" {
        return None;
    }
    let instant: jiff::Timestamp = at.parse().ok()?;
    let local = instant.in_tz(zone).ok()?;
    Some(local.strftime("%Y-%m-%d %H:%M:%S %Z").to_string())
}

/// A time of the schedule's JSON, with its local reading in `zone`.
fn shown_time(at: &str, zone: &str) -> String {
    match local_time(at, zone) {
        Some(local) => format!("{at} ({local})"),
        None => at.to_owned(),
    }
}

/// The summary `schedule show` prints of a schedule's JSON.
fn render(schedule: &Value, out: &mut dyn Write) -> io::Result<()> {
    let text = |name: &str| schedule[name].as_str().unwrap_or("").to_owned();
    let zone = text("timezone");
    let state = if schedule["paused"] == true {
        "paused"
    } else {
        "active"
    };
    writeln!(out, "schedule {}: {state}", text("scheduleId"))?;
    writeln!(
        out,
        "  when          {}: {}",
        text("expression"),
        text("description")
    )?;
    writeln!(out, "  time zone     {zone}")?;
    writeln!(
        out,
        "  runs          {} with payload {}, overlap {}",
        text("type"),
        schedule["payload"],
        text("overlap")
    )?;
    if let Some(url) = schedule["callbackUrl"].as_str() {
        writeln!(out, "  callback      {url}")?;
    }
    let next: Vec<&str> = schedule["nextFires"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if next.is_empty() {
        let why = if state == "paused" {
            "none while paused"
        } else {
            "none"
        };
        writeln!(out, "  next fires    {why}")?;
    }
    for (i, at) in next.iter().enumerate() {
        let label = if i == 0 { "next fires" } else { "" };
        writeln!(out, "  {label:<12}  {}", shown_time(at, &zone))?;
    }
    let last = &schedule["lastFire"];
    match last["scheduledAt"].as_str() {
        Some(at) => writeln!(
            out,
            "  last fire     {}: job {}",
            shown_time(at, &zone),
            last["jobId"].as_str().unwrap_or("?")
        )?,
        None => writeln!(out, "  last fire     none yet")?,
    }
    let fires = &schedule["fires"];
    let count = |name: &str| fires[name].as_u64().unwrap_or(0);
    write!(
        out,
        "  fires         {} fired, {} skipped, {} refused",
        count("fired"),
        count("skipped"),
        count("refused")
    )?;
    match fires["lastMissedAt"].as_str() {
        Some(at) => writeln!(out, "; the last missed at {}", shown_time(at, &zone))?,
        None => writeln!(out)?,
    }
    if let Some(reason) = fires["lastRefusal"].as_str() {
        writeln!(out, "  last refusal  {reason}")?;
    }
    writeln!(
        out,
        "  its jobs      jobline list --schedule-id {}",
        text("scheduleId")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(schedule: &Value) -> String {
        let mut out = Vec::new();
        render(schedule, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn show_reads_the_schedule_in_words_and_in_its_zone() {
        let schedule = json!({
            "scheduleId": "0190c0de-0000-7000-8000-000000000001",
            "expression": "cron(0 9 ? * MON-FRI *)",
            "timezone": "Europe/Paris",
            "description": "at 09:00, Monday through Friday",
            "type": "primes",
            "payload": {"upTo": 10},
            "callbackUrl": null,
            "overlap": "skip",
            "paused": false,
            "nextFires": ["2027-03-01T08:00:00.000Z", "2027-03-02T08:00:00.000Z"],
            "lastFire": {
                "scheduledAt": "2027-02-26T08:00:00.000Z",
                "jobId": "0193f0a4-0000-7000-8000-000000000002",
                "statusUrl": "/jobs/0193f0a4-0000-7000-8000-000000000002"
            },
            "fires": {"fired": 12, "skipped": 1, "refused": 0,
                      "lastMissedAt": "2027-02-20T08:00:00.000Z", "lastRefusal": null},
        });
        let text = shown(&schedule);
        assert_eq!(
            text,
            "schedule 0190c0de-0000-7000-8000-000000000001: active\n\
             \x20 when          cron(0 9 ? * MON-FRI *): at 09:00, Monday through Friday\n\
             \x20 time zone     Europe/Paris\n\
             \x20 runs          primes with payload {\"upTo\":10}, overlap skip\n\
             \x20 next fires    2027-03-01T08:00:00.000Z (2027-03-01 09:00:00 CET)\n\
             \x20               2027-03-02T08:00:00.000Z (2027-03-02 09:00:00 CET)\n\
             \x20 last fire     2027-02-26T08:00:00.000Z (2027-02-26 09:00:00 CET): job 0193f0a4-0000-7000-8000-000000000002\n\
             \x20 fires         12 fired, 1 skipped, 0 refused; the last missed at 2027-02-20T08:00:00.000Z (2027-02-20 09:00:00 CET)\n\
             \x20 its jobs      jobline list --schedule-id 0190c0de-0000-7000-8000-000000000001\n"
        );
    }

    #[test]
    fn a_paused_schedule_has_no_next_fire_and_utc_needs_no_second_reading() {
        let schedule = json!({
            "scheduleId": "s", "expression": "rate(1 hour)", "timezone": "UTC",
            "description": "every hour", "type": "primes", "payload": {},
            "callbackUrl": "https://example.com/hook", "overlap": "allow", "paused": true,
            "nextFires": [], "lastFire": null,
            "fires": {"fired": 0, "skipped": 0, "refused": 2, "lastMissedAt": null,
                      "lastRefusal": "the job type is gone"},
        });
        let text = shown(&schedule);
        assert!(text.starts_with("schedule s: paused\n"), "{text}");
        assert!(
            text.contains("  next fires    none while paused\n"),
            "{text}"
        );
        assert!(text.contains("  last fire     none yet\n"), "{text}");
        assert!(
            text.contains("  callback      https://example.com/hook\n"),
            "{text}"
        );
        assert!(
            text.contains("  last refusal  the job type is gone\n"),
            "{text}"
        );
        assert_eq!(local_time("2027-03-01T08:00:00Z", "UTC"), None);
        assert_eq!(local_time("2027-03-01T08:00:00Z", "Nowhere/City"), None);
    }
}
