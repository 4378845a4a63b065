//! Charts drawn on the server: `plotters` with its SVG backend, into a string put inline in the page.
//!
//! Each chart is a `<figure>` with a `<figcaption>`; the `<svg>` has `role="img"`, an `aria-label` and
//! a `<title>`; the same numbers follow as a `<table>` inside `<details>`, so a chart is readable
//! without colour, without images and by a screen reader. Series differ by marker shape and line
//! dash, and are named in a legend, never by colour alone; every bar carries its count as text.
//!
//! Safety of the inline SVG: the strings drawn (scenario names, subjects, event kinds) come from
//! attackers. `plotters-svg` escapes `<`, `>`, `&`, `"` and `'` in text and attribute values, and
//! writes presentation attributes only (no `style=`, no `<style>`), which the page's CSP
//! (`style-src 'self'`) allows. The SVG is inserted without maud's escaping, so before it is, it is
//! checked by [`svg_is_safe`]: only the elements and attributes plotters writes, nothing else. A chart
//! that fails the check (or fails to draw) is replaced by a note, logged, and counted in
//! [`CHART_FAILURES`]; its table is still rendered.

use maud::{html, Markup, PreEscaped};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// Charts that could not be drawn or failed the safety check since start.
pub static CHART_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Width and height of every chart's view box.
const SIZE: (u32, u32) = (640, 260);

/// One named series of a time chart: a count per step (aligned with [`TimeChart::steps`]).
#[derive(Debug, Clone)]
pub struct Series {
    /// The series' name (legend and table header).
    pub name: String,
    /// The count at each step.
    pub values: Vec<u64>,
}

/// A chart of counts over time.
#[derive(Debug, Clone)]
pub struct TimeChart<'a> {
    /// The `id` of the figure (and the prefix of its inner ids).
    pub id: &'a str,
    /// The caption.
    pub caption: &'a str,
    /// The start of each step, ms since the epoch, oldest first.
    pub steps: Vec<i64>,
    /// Whether labels show the date (long windows) or the time of day.
    pub dated: bool,
    /// The series, at most 4 drawn distinctly (more are still in the table).
    pub series: Vec<Series>,
}

/// A horizontal bar chart of named counts, most first.
#[derive(Debug, Clone)]
pub struct BarChart<'a> {
    /// The `id` of the figure.
    pub id: &'a str,
    /// The caption.
    pub caption: &'a str,
    /// The header of the name column in the table.
    pub key_header: &'a str,
    /// `(name, count)`, in the order drawn.
    pub items: Vec<(String, u64)>,
}

/// Ink for each series: dark, distinguishable in grey too (each also has its own marker and dash).
const INK: [RGBColor; 4] = [
    RGBColor(31, 78, 121),
    RGBColor(166, 54, 3),
    RGBColor(35, 110, 60),
    RGBColor(90, 50, 120),
];

/// `HH:MM` (UTC) or `MM-DD HH:00` of a time in ms.
pub fn label_time(ms: i64, dated: bool) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (h, m) = (tod / 3600, (tod % 3600) / 60);
    if dated {
        let (_, mo, d) = civil_from_days(days);
        format!("{mo:02}-{d:02} {h:02}:00")
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;

fn draw_time(root: &Area<'_>, c: &TimeChart<'_>) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let first = c.steps.first().copied().unwrap_or(0);
    let last = c.steps.last().copied().unwrap_or(first).max(first + 1);
    let top = c
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let y_max = (top + top / 10 + 1) as f64;
    let dated = c.dated;
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .margin_top(24)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(first..last, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|x| label_time(*x, dated))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in c.series.iter().take(INK.len()).enumerate() {
        let ink = INK[i];
        let pts: Vec<(i64, f64)> = c
            .steps
            .iter()
            .zip(&s.values)
            .map(|(x, y)| (*x, *y as f64))
            .collect();
        let line = ink.stroke_width(2);
        if i % 2 == 0 {
            chart
                .draw_series(std::iter::once(PathElement::new(pts.clone(), line)))
                .map_err(|e| e.to_string())?;
        } else {
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    pts.clone(),
                    6,
                    4,
                    line,
                )))
                .map_err(|e| e.to_string())?;
        }
        let style = ink.stroke_width(2);
        match i % 4 {
            0 => chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, style))),
            1 => chart.draw_series(
                pts.iter()
                    .map(|p| TriangleMarker::new(*p, 5, style.filled())),
            ),
            2 => chart.draw_series(pts.iter().map(|p| Cross::new(*p, 4, style))),
            _ => chart.draw_series(pts.iter().map(|p| {
                EmptyElement::at(*p) + Rectangle::new([(-4, -4), (4, 4)], style.filled())
            })),
        }
        .map_err(|e| e.to_string())?;
        // The legend, above the plot: the series' marker, then its name.
        let at = (70 + i as i32 * 140, 6);
        let key = (at.0 + 4, at.1 + 6);
        match i % 4 {
            0 => root.draw(&Circle::new(key, 4, style)),
            1 => root.draw(&TriangleMarker::new(key, 5, style.filled())),
            2 => root.draw(&Cross::new(key, 4, style)),
            _ => root.draw(&Rectangle::new(
                [(key.0 - 4, key.1 - 4), (key.0 + 4, key.1 + 4)],
                style.filled(),
            )),
        }
        .map_err(|e| e.to_string())?;
        let shown: String = s.name.chars().take(18).collect();
        root.draw(&Text::new(
            shown,
            (at.0 + 14, at.1),
            ("sans-serif", 12).into_font().color(&BLACK),
        ))
        .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

fn draw_bars(root: &Area<'_>, c: &BarChart<'_>) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (w, h) = SIZE;
    let n = c.items.len().max(1) as i32;
    let row = ((h as i32 - 10) / n).clamp(12, 40);
    let label_w = 230;
    let bar_max = w as i32 - label_w - 70;
    let top = c.items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let text = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, (name, v)) in c.items.iter().enumerate() {
        let y = 5 + i as i32 * row;
        let shown: String = if name.chars().count() > 34 {
            name.chars().take(33).chain(std::iter::once('…')).collect()
        } else {
            name.clone()
        };
        root.draw(&Text::new(shown, (4, y + row / 2 - 7), text.clone()))
            .map_err(|e| e.to_string())?;
        let len = ((*v as f64 / top as f64) * bar_max as f64).round() as i32;
        root.draw(&Rectangle::new(
            [(label_w, y + 3), (label_w + len.max(1), y + row - 3)],
            INK[0].filled(),
        ))
        .map_err(|e| e.to_string())?;
        root.draw(&Text::new(
            v.to_string(),
            (label_w + len.max(1) + 6, y + row / 2 - 7),
            text.clone(),
        ))
        .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Renders with `draw` into an SVG string, checked by [`svg_is_safe`], with `role="img"`, the
/// `aria-label` and a `<title>` added. `None` (logged and counted) when drawing or the check fails.
fn render(
    id: &str,
    label: &str,
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Option<String> {
    let mut buf = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        draw(&root)
    };
    if let Err(error) = drawn {
        tracing::warn!(evt = "ui_chart_failed", chart = id, %error);
        CHART_FAILURES.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if !svg_is_safe(&buf) {
        tracing::warn!(
            evt = "ui_chart_failed",
            chart = id,
            error = "unexpected markup in the SVG"
        );
        CHART_FAILURES.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let Some(rest) = buf.strip_prefix("<svg ") else {
        CHART_FAILURES.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    // `id` and `label` are escaped by maud; the rest is plotters' checked output.
    let head = html! { title id=(format!("{id}-title")) { (label) } }.into_string();
    let attrs = html! { span class="chart" role="img" aria-label=(label) aria-labelledby=(format!("{id}-title")) {} }
        .into_string();
    // `<span class="chart" role="img" …></span>` → ` class="chart" role="img" …`
    let attrs = attrs
        .strip_prefix("<span")
        .and_then(|a| a.strip_suffix("></span>"))
        .unwrap_or("");
    let (open, body) = rest.split_once('>')?;
    Some(format!("<svg{attrs} {open}>{head}{body}"))
}

/// Whether `svg` holds only the elements and attributes `plotters-svg` writes: `svg`, `circle`,
/// `line`, `polyline`, `polygon`, `rect`, `text` with presentation attributes, text content without
/// markup. Anything else (a `<script>`, a `style=`, an `on…=` handler) fails it.
pub fn svg_is_safe(svg: &str) -> bool {
    const TAGS: &[&str] = &[
        "svg", "circle", "line", "polyline", "polygon", "rect", "text",
    ];
    const ATTRS: &[&str] = &[
        "width",
        "height",
        "viewBox",
        "xmlns",
        "x",
        "y",
        "x1",
        "y1",
        "x2",
        "y2",
        "cx",
        "cy",
        "r",
        "points",
        "fill",
        "stroke",
        "stroke-width",
        "opacity",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "text-anchor",
        "dominant-baseline",
        "dy",
        "transform",
    ];
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            return false;
        };
        let tag = &after[..end];
        rest = &after[end + 1..];
        let tag = tag.strip_suffix('/').unwrap_or(tag);
        if let Some(name) = tag.strip_prefix('/') {
            if !TAGS.contains(&name.trim()) {
                return false;
            }
            continue;
        }
        let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
        if !TAGS.contains(&name) {
            return false;
        }
        // `name="value"` pairs; a value holds no `"` (plotters escapes it).
        loop {
            attrs = attrs.trim_start();
            if attrs.is_empty() {
                break;
            }
            let Some((key, value)) = attrs.split_once("=\"") else {
                return false;
            };
            if !ATTRS.contains(&key) {
                return false;
            }
            let Some((_, more)) = value.split_once('"') else {
                return false;
            };
            attrs = more;
        }
    }
    !svg.contains("style")
}

/// A time chart as a figure: caption, inline SVG, and the numbers as a table in `<details>`.
pub fn time_figure(c: &TimeChart<'_>) -> Markup {
    let svg = render(c.id, c.caption, |root| draw_time(root, c));
    html! {
        figure id=(c.id) class="chart" {
            figcaption { (c.caption) }
            (chart_or_note(svg))
            details {
                summary { "The numbers" }
                table {
                    caption { (c.caption) " (UTC)" }
                    thead { tr {
                        th scope="col" { "From" }
                        @for s in &c.series { th scope="col" { (s.name) } }
                    } }
                    tbody {
                        @for (i, at) in c.steps.iter().enumerate() {
                            tr {
                                th scope="row" { time datetime=(sentinel_core::Timestamp::from_millis(*at).to_rfc3339()) { (label_time(*at, c.dated)) } }
                                @for s in &c.series { td class="num" { (s.values.get(i).copied().unwrap_or(0)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A bar chart as a figure: caption, inline SVG (or a note when there is nothing), and the table
/// (`table#{table_id}`, shown: it is the list the chart draws). `link(name)` is where a name in the
/// table leads, if anywhere.
pub fn bar_figure(
    c: &BarChart<'_>,
    table_id: &str,
    link: impl Fn(&str) -> Option<String>,
) -> Markup {
    let svg = if c.items.is_empty() {
        None
    } else {
        render(c.id, c.caption, |root| draw_bars(root, c))
    };
    html! {
        figure id=(c.id) class="chart" {
            figcaption { (c.caption) }
            @if c.items.is_empty() {
                p class="empty" { "Nothing in this window." }
            } @else {
                (chart_or_note(svg))
                table id=(table_id) {
                    caption { (c.caption) }
                    thead { tr { th scope="col" { (c.key_header) } th scope="col" class="num" { "Count" } } }
                    tbody {
                        @for (name, v) in &c.items {
                            tr {
                                th scope="row" { @if let Some(href) = link(name) { a href=(href) { (name) } } @else { (name) } }
                                td class="num" { (v) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn chart_or_note(svg: Option<String>) -> Markup {
    match svg {
        // Checked by `svg_is_safe`; the only text in it is escaped by plotters-svg.
        Some(s) => PreEscaped(s),
        None => {
            html! { p class="chart-failed" role="status" { "The chart could not be drawn; the numbers are below." } }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hostile_names_are_escaped_and_no_style_is_written() {
        let hostile = [
            "<script>alert(1)</script>".to_string(),
            "\"><img src=x onerror=alert(1)>".to_string(),
        ];
        let bars = BarChart {
            id: "c1",
            caption: "Top <b>",
            key_header: "Name",
            items: hostile.iter().map(|h| (h.clone(), 3)).collect(),
        };
        let svg = render("c1", "Top <b>", |root| draw_bars(root, &bars)).unwrap();
        assert!(!svg.contains("<script") && !svg.contains("<img") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(!svg.contains("style"));
        let time = TimeChart {
            id: "c2",
            caption: "Over time",
            steps: vec![0, 300_000, 600_000],
            dated: false,
            series: hostile
                .iter()
                .map(|h| Series {
                    name: h.clone(),
                    values: vec![1, 5, 2],
                })
                .collect(),
        };
        let svg = render("c2", "Over time", |root| draw_time(root, &time)).unwrap();
        assert!(!svg.contains("<script") && !svg.contains("<img"), "{svg}");
        assert!(
            svg.starts_with("<svg class=\"chart\" role=\"img\""),
            "{svg}"
        );
        assert!(svg.contains("<title id=\"c2-title\">Over time</title>"));
    }

    #[test]
    fn the_check_refuses_markup_plotters_does_not_write() {
        assert!(svg_is_safe(
            "<svg width=\"1\"><rect x=\"1\"/><text x=\"2\">a &lt;b</text></svg>"
        ));
        assert!(!svg_is_safe("<svg><script>alert(1)</script></svg>"));
        assert!(!svg_is_safe("<svg onload=\"alert(1)\"></svg>"));
        assert!(!svg_is_safe("<svg><rect style=\"fill:red\"/></svg>"));
        assert!(!svg_is_safe("<svg><style>*{}</style></svg>"));
        assert!(!svg_is_safe("<svg><img src=x onerror=alert(1)></svg>"));
    }

    #[test]
    fn times_are_labelled_in_utc() {
        assert_eq!(label_time(0, false), "00:00");
        assert_eq!(label_time(1_780_000_000_000, true), "05-28 20:00");
        assert_eq!(label_time(1_780_000_000_000, false), "20:26");
    }
}
