//! The console's HTML: the page layout, forms, and the activity chart as
//! inline SVG (server-rendered: no script, no CDN, works with the keyboard
//! and a screen reader, which also get the chart's numbers as a table).
//!
//! Every page comes from [maud] templates: they are checked when the crate
//! compiles (an unclosed element is a build error, not a broken page), and
//! every value spliced into them is escaped, so no job type, caller, error
//! or payload can inject markup into the operator's console.

use jobline_core::activity::{Series, Window};
use jobline_core::job::format_ms;
use jobline_core::{JobId, JobState};
use maud::{DOCTYPE, Markup, html};
use std::fmt::Write as _;

/// `text` percent-encoded for a query string value.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// The parts of the console, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Jobs,
    Schedules,
    DeadLetters,
}

/// A whole page: `title`, the navigation with `section` current, `body`.
pub fn page(title: &str, section: Section, body: Markup) -> String {
    let link = |href: &str, label: &str, this: Section| {
        html! { a href=(href) aria-current=[(this == section).then_some("page")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Jobline console" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "Jobline" }
                    nav aria-label="Console" {
                        (link("/", "Overview", Section::Overview))
                        (link("/jobs", "Jobs", Section::Jobs))
                        (link("/schedules", "Schedules", Section::Schedules))
                        (link("/dlq", "Dead letters", Section::DeadLetters))
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

/// A button that POSTs `fields` (and the CSRF token) to `/act`.
pub fn action_form(csrf: &str, fields: &[(&str, &str)], label: &str, class: &str) -> Markup {
    html! {
        form method="post" action="/act" class="inline" {
            input type="hidden" name="csrf" value=(csrf);
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A job's state, as a coloured badge.
pub fn state_badge(state: JobState) -> Markup {
    let name = state.as_str();
    html! { span class={ "state " (name) } { (name) } }
}

/// A link to a job's page, showing its id.
pub fn job_link(id: JobId) -> Markup {
    html! { a href={ "/jobs/" (id) } { code { (id) } } }
}

/// A progress bar and its percentage, then `message`.
pub fn progress_bar(fraction: f64, message: &str) -> Markup {
    let percent = format!("{:.0}%", fraction * 100.0);
    html! { progress max="1" value=(fraction) { (percent) } " " (percent) " " (message) }
}

/// JSON for a `<pre>`, cut at 64 KiB.
pub fn json_block(value: &serde_json::Value) -> Markup {
    const SHOWN: usize = 64 * 1024;
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut cut = text.len().min(SHOWN);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    html! {
        pre { (&text[..cut]) }
        @if cut < text.len() {
            p.notice { "Cut at 64 KiB of " (text.len()) " bytes." }
        }
    }
}

/// A time as RFC 3339 UTC (its `title`) shown relative to now (`5m ago`,
/// `in 12s`), or an en dash.
pub fn time(ms: Option<i64>, now_ms: i64) -> Markup {
    let Some(ms) = ms else {
        return html! { "–" };
    };
    let relative = if ms > now_ms {
        format!("in {}", crate::dlq::format_age((ms - now_ms) / 1_000))
    } else {
        ago(now_ms - ms)
    };
    let at = format_ms(ms);
    html! { time datetime=(at) title=(at) { (relative) } }
}

/// `12s ago`, `5m ago`, `2h05m ago`, `3d04h ago`.
pub fn ago(elapsed_ms: i64) -> String {
    format!("{} ago", crate::dlq::format_age(elapsed_ms.max(0) / 1_000))
}

/// The colour class and label of each charted series.
fn style(series: &Series) -> (&'static str, &'static str) {
    match series.metric.name() {
        "JobsSucceeded" => ("succeeded", "Succeeded"),
        "JobsFailed" => ("failed", "Failed"),
        _ => ("retried", "Retried"),
    }
}

/// The per-minute chart of `series` over `window`: a line each, a legend
/// with the totals, and the same numbers as a table for screen readers.
pub fn chart(series: &[Series], window: Window) -> Markup {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 120.0;
    let peak = series
        .iter()
        .flat_map(|s| s.per_minute.iter().copied())
        .fold(1.0_f64, f64::max);
    let step = WIDTH / (window.minutes.max(2) - 1) as f64;
    let points = |s: &Series| {
        s.per_minute
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, HEIGHT - v / peak * HEIGHT))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let minutes = window.minutes;
    // SVG elements get explicit end tags: in HTML, `<line>` inside `<svg>`
    // does not close itself without `/>`.
    html! {
        svg.chart viewBox={ "-40 -10 " (WIDTH + 50.0) " " (HEIGHT + 30.0) } role="img" aria-labelledby="chart-title" {
            title id="chart-title" { "Jobs per minute over the last " (minutes) " minutes" }
            line.axis x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
            line.axis x1="0" y1="0" x2="0" y2=(HEIGHT) {}
            text x="-6" y="6" text-anchor="end" { (peak) }
            text x="-6" y=(HEIGHT) text-anchor="end" { "0" }
            text x="0" y=(HEIGHT + 16.0) { "−" (minutes) " min" }
            text x=(WIDTH) y=(HEIGHT + 16.0) text-anchor="end" { "now" }
            @for s in series {
                polyline class={ "line " (style(s).0) } points=(points(s)) {}
            }
        }
        ul.legend {
            @for s in series {
                @let (class, label) = style(s);
                li {
                    span class={ "swatch " (class) } {}
                    (label) ": "
                    strong data-total=(class) { (s.total()) }
                }
            }
        }
        details {
            summary { "The numbers, minute by minute" }
            table {
                thead {
                    tr {
                        th scope="col" { "Minute (UTC)" }
                        @for s in series {
                            th scope="col" { (style(s).1) }
                        }
                    }
                }
                tbody {
                    @for minute in 0..minutes {
                        @let at = window.start_ms + minute as i64 * jobline_core::activity::MINUTE_MS;
                        tr {
                            td { (&format_ms(at)[11..16]) }
                            @for s in series {
                                td { (s.per_minute[minute]) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::Metric;

    #[test]
    fn spliced_text_is_escaped_and_query_values_encoded() {
        let hostile = r#"<script>"x" & 'y'</script>"#;
        let html = page(hostile, Section::Jobs, html! { p { (hostile) } });
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("<p>&lt;script&gt;&quot;x&quot; &amp; 'y'&lt;/script&gt;</p>"),
            "{html}"
        );
        let form = action_form("t\"k", &[("job", "a\"b")], "<Go>", "primary").into_string();
        assert!(form.contains(r#"value="t&quot;k""#), "{form}");
        assert!(form.contains(r#"value="a&quot;b""#), "{form}");
        assert!(form.contains("&lt;Go&gt;</button>"), "{form}");
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn the_navigation_marks_the_current_section() {
        let html = page("Jobs", Section::Jobs, html! {});
        assert!(
            html.contains(r#"<a href="/jobs" aria-current="page">Jobs</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"<a href="/">Overview</a>"#), "{html}");
        assert!(html.contains("<title>Jobs · Jobline console</title>"));
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    }

    #[test]
    fn times_read_relative_to_now_both_ways() {
        assert_eq!(time(None, 0).into_string(), "–");
        let past = time(Some(1_000), 301_000).into_string();
        assert!(past.contains(">5m ago<"), "{past}");
        assert!(
            past.contains(r#"datetime="1970-01-01T00:00:01.000Z""#),
            "{past}"
        );
        assert!(time(Some(13_000), 1_000).into_string().contains(">in 12s<"));
    }

    #[test]
    fn the_chart_has_a_line_a_total_and_a_row_per_minute() {
        let window = Window {
            start_ms: 0,
            minutes: 3,
        };
        let series = [
            Series {
                metric: Metric::JobsSucceeded,
                per_minute: vec![1.0, 4.0, 0.0],
            },
            Series {
                metric: Metric::JobsFailed,
                per_minute: vec![0.0, 0.0, 2.0],
            },
        ];
        let html = chart(&series, window).into_string();
        assert_eq!(html.matches("<polyline").count(), 2);
        assert!(html.contains(r#"data-total="succeeded">5<"#), "{html}");
        assert!(html.contains(r#"data-total="failed">2<"#), "{html}");
        assert_eq!(html.matches("<tr><td>").count(), 3);
        // The peak (4) is drawn at the top.
        assert!(html.contains("360.0,0.0"), "{html}");
    }
}
