//! The console's HTML: escaping, the page layout, forms, and the activity
//! chart as inline SVG (server-rendered: no script, no CDN, works with the
//! keyboard and a screen reader, which also get the chart's numbers as a
//! table).

use jobline_core::activity::{Series, Window};
use jobline_core::job::format_ms;
use std::fmt::Write as _;

/// `text` safe in HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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
    DeadLetters,
}

/// A whole page: `title`, the navigation with `section` current, `body`.
pub fn page(title: &str, section: Section, body: &str) -> String {
    let link = |href: &str, label: &str, this: Section| {
        let current = if this == section {
            r#" aria-current="page""#
        } else {
            ""
        };
        format!(r#"<a href="{href}"{current}>{label}</a>"#)
    };
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Jobline console</title>
<link rel="stylesheet" href="/console.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<span class="brand">Jobline</span>
<nav aria-label="Console">{overview}{jobs}{dlq}</nav>
</header>
<main id="main">
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"##,
        title = escape(title),
        overview = link("/", "Overview", Section::Overview),
        jobs = link("/jobs", "Jobs", Section::Jobs),
        dlq = link("/dlq", "Dead letters", Section::DeadLetters),
    )
}

/// A button that POSTs `fields` (and the CSRF token) to `/act`.
pub fn action_form(csrf: &str, fields: &[(&str, &str)], label: &str, class: &str) -> String {
    let mut form = String::from(r#"<form method="post" action="/act" class="inline">"#);
    let _ = write!(
        form,
        r#"<input type="hidden" name="csrf" value="{}">"#,
        escape(csrf)
    );
    for (name, value) in fields {
        let _ = write!(
            form,
            r#"<input type="hidden" name="{}" value="{}">"#,
            escape(name),
            escape(value)
        );
    }
    let _ = write!(
        form,
        r#"<button type="submit" class="{class}">{}</button></form>"#,
        escape(label)
    );
    form
}

/// A time as RFC 3339 UTC (its `title`) shown relative to now (`5m ago`,
/// `in 12s`), or an en dash.
pub fn time(ms: Option<i64>, now_ms: i64) -> String {
    let Some(ms) = ms else {
        return "–".to_owned();
    };
    let relative = if ms > now_ms {
        format!("in {}", crate::dlq::format_age((ms - now_ms) / 1_000))
    } else {
        ago(now_ms - ms)
    };
    format!(
        r#"<time datetime="{at}" title="{at}">{relative}</time>"#,
        at = format_ms(ms)
    )
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
pub fn chart(series: &[Series], window: Window) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 120.0;
    let peak = series
        .iter()
        .flat_map(|s| s.per_minute.iter().copied())
        .fold(1.0_f64, f64::max);
    let step = WIDTH / (window.minutes.max(2) - 1) as f64;
    let mut svg = format!(
        r#"<svg class="chart" viewBox="-40 -10 {w} {h}" role="img" aria-labelledby="chart-title"><title id="chart-title">Jobs per minute over the last {m} minutes</title>"#,
        w = WIDTH + 50.0,
        h = HEIGHT + 30.0,
        m = window.minutes
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/><line class="axis" x1="0" y1="0" x2="0" y2="{HEIGHT}"/><text x="-6" y="6" text-anchor="end">{peak}</text><text x="-6" y="{HEIGHT}" text-anchor="end">0</text><text x="0" y="{y}">−{m} min</text><text x="{WIDTH}" y="{y}" text-anchor="end">now</text>"#,
        peak = peak,
        y = HEIGHT + 16.0,
        m = window.minutes
    );
    for s in series {
        let (class, _) = style(s);
        let points: Vec<String> = s
            .per_minute
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, HEIGHT - v / peak * HEIGHT))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="line {class}" points="{}"/>"#,
            points.join(" ")
        );
    }
    svg.push_str("</svg>");
    let mut legend = String::from(r#"<ul class="legend">"#);
    for s in series {
        let (class, label) = style(s);
        let _ = write!(
            legend,
            r#"<li><span class="swatch {class}"></span>{label}: <strong data-total="{class}">{}</strong></li>"#,
            s.total()
        );
    }
    legend.push_str("</ul>");
    let mut table = String::from(
        r#"<details><summary>The numbers, minute by minute</summary><table><thead><tr><th scope="col">Minute (UTC)</th>"#,
    );
    for s in series {
        let _ = write!(table, r#"<th scope="col">{}</th>"#, style(s).1);
    }
    table.push_str("</tr></thead><tbody>");
    for minute in 0..window.minutes {
        let at = window.start_ms + minute as i64 * jobline_core::activity::MINUTE_MS;
        let _ = write!(table, "<tr><td>{}</td>", &format_ms(at)[11..16]);
        for s in series {
            let _ = write!(table, "<td>{}</td>", s.per_minute[minute]);
        }
        table.push_str("</tr>");
    }
    table.push_str("</tbody></table></details>");
    format!("{svg}{legend}{table}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::Metric;

    #[test]
    fn text_and_query_values_are_escaped() {
        assert_eq!(
            escape(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn times_read_relative_to_now_both_ways() {
        assert_eq!(time(None, 0), "–");
        let past = time(Some(1_000), 301_000);
        assert!(past.contains(">5m ago<"), "{past}");
        assert!(
            past.contains(r#"datetime="1970-01-01T00:00:01.000Z""#),
            "{past}"
        );
        assert!(time(Some(13_000), 1_000).contains(">in 12s<"));
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
        let html = chart(&series, window);
        assert_eq!(html.matches("<polyline").count(), 2);
        assert!(html.contains(r#"data-total="succeeded">5<"#), "{html}");
        assert!(html.contains(r#"data-total="failed">2<"#), "{html}");
        assert_eq!(html.matches("<tr><td>").count(), 3);
        // The peak (4) is drawn at the top.
        assert!(html.contains("360.0,0.0"), "{html}");
    }
}
