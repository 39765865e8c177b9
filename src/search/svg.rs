//! The search drawn as one self-contained SVG: no scripts, fonts or stylesheets from elsewhere, so `report.svg`
//! reads the same opened from a bundle folder, a CI artifact or a ticket attachment. It is drawn from
//! `SearchReport` alone, so it can always be redrawn from `report.json`.
//!
//! Three parts, top to bottom: the outcome in words, every evaluated plan as latency against accuracy, and one row
//! per layer with its sensitivity and chosen precision. The plan scatter comes before the layer rows because its
//! height is fixed while the rows grow with the model; on a 200-layer model it would otherwise sit off screen.

use std::fmt::Write as _;

use crate::precision::Precision;
use crate::search::report::{EvaluatedPlan, LayerReport, SearchReport};
use crate::simulate::Metrics;

/// Writing into a `String` cannot fail; this drops the always-`Ok` result so that no `unwrap` sits in the drawing.
macro_rules! w {
    ($($arg:tt)*) => {{
        let _ = write!($($arg)*);
    }};
}

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 20.0;
const RIGHT: f64 = WIDTH - 20.0;

const INT8_COLOR: &str = "#3b7dd8";
const FP16_COLOR: &str = "#f28e2b";
const FP32_COLOR: &str = "#8e44ad";
const MET_COLOR: &str = "#2e9e44";
const MISSED_COLOR: &str = "#d43d3d";
const GRID: &str = "#e3e5e8";

/// Rows are one text line high; at 200 layers the picture is about 4,000 px tall, which a browser scrolls happily.
const ROW_H: f64 = 16.0;
/// What fits the name column in 11 px monospace (about 6.6 px a character).
const NAME_CHARS: usize = 44;
/// What fits the left column of the title block at 13 px before it meets the latency gauge.
const LINE_CHARS: usize = 106;

pub fn render_svg(report: &SearchReport) -> String {
    let mut body = String::new();
    let mut y = title_block(&mut body, report);
    y = plans_scatter(&mut body, report, y + 20.0);
    y = layer_rows(&mut body, report, y + 28.0);
    let height = y + 24.0;

    let mut svg = String::with_capacity(body.len() + 1200);
    w!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">"#,
        w = num(WIDTH),
        h = num(height)
    );
    w!(
        svg,
        "<title>{}</title>",
        escape(&format!("precisiond search report: {}", report.model))
    );
    // Text styles live in one place so that the many rows stay short; the hover rule is the only interaction and
    // needs no script.
    svg.push_str(concat!(
        "<style>",
        "text{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px;fill:#222}",
        ".mono{font-family:ui-monospace,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:11px}",
        ".h1{font-size:22px;font-weight:600}",
        ".h2{font-size:16px;font-weight:600}",
        ".b{font-weight:600}",
        ".s{font-size:11px}",
        ".m{fill:#666}",
        ".halo{stroke:#fff;stroke-width:3px;stroke-linejoin:round;paint-order:stroke}",
        ".row:hover .bg{fill:#ffd54a;fill-opacity:0.3}",
        ".pt:hover circle{stroke:#111}",
        "</style>"
    ));
    w!(
        svg,
        r##"<rect x="0" y="0" width="{}" height="{}" fill="#fff"/>"##,
        num(WIDTH),
        num(height)
    );
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

/// A minimal page around the picture, with the tables a reader wants to search or copy from: names in full.
pub fn render_html(report: &SearchReport) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    w!(
        h,
        "<title>{}</title>\n",
        escape(&format!("precisiond · {}", one_line(&report.model)))
    );
    h.push_str(concat!(
        "<style>\n",
        "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:16px;color:#222}\n",
        "svg{max-width:100%;height:auto}\n",
        "table{border-collapse:collapse;font-size:13px;margin-bottom:24px}\n",
        "th,td{padding:2px 10px;border-bottom:1px solid #e3e5e8;text-align:left;vertical-align:top}\n",
        "th{position:sticky;top:0;background:#fff}\n",
        "td.n{text-align:right;font-variant-numeric:tabular-nums}\n",
        "td.name{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}\n",
        "tr.met td.ok{color:#2e9e44}tr.missed td.ok{color:#d43d3d}tr.chosen{background:#fff6d6}\n",
        "</style>\n</head>\n<body>\n"
    ));
    h.push_str(&render_svg(report));

    w!(h, "<h2>Layers ({})</h2>\n<table>\n", report.layers.len());
    h.push_str(concat!(
        "<thead><tr><th>#</th><th>layer</th><th>op</th><th>MACs</th><th>precision</th><th>reason</th>",
        "<th>sensitivity</th><th>INT8 gain</th></tr></thead>\n<tbody>\n"
    ));
    for (i, layer) in report.layers.iter().enumerate() {
        w!(
            h,
            "<tr><td class=\"n\">{}</td><td class=\"name\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
             <td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
            i,
            escape(&layer.name),
            escape(&layer.op),
            layer.macs.map_or_else(|| "—".to_string(), fmt_macs),
            layer.precision.as_str(),
            escape(&layer.reason),
            sensitivity_text(layer.sensitivity),
            escape(&fmt_gain(layer.int8_gain_ms)),
        );
    }
    h.push_str("</tbody>\n</table>\n");

    let accuracy = Accuracy::pick(report);
    w!(
        h,
        "<h2>Evaluated plans ({})</h2>\n<table>\n",
        report.evaluated.len()
    );
    w!(
        h,
        "<thead><tr><th>#</th><th>step</th><th>int8 / fp16 / fp32</th><th>INT8 MACs</th><th>latency</th>\
         <th>{}</th><th>budget</th></tr></thead>\n<tbody>\n",
        accuracy.title()
    );
    for (i, plan) in report.evaluated.iter().enumerate() {
        let class = match (report.chosen == Some(i), plan.budget_met) {
            (true, _) => "chosen",
            (false, true) => "met",
            (false, false) => "missed",
        };
        w!(
            h,
            "<tr class=\"{}\"><td class=\"n\">{}</td><td>{}{}</td><td class=\"n\">{} / {} / {}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"ok\">{}</td></tr>\n",
            class,
            i,
            escape(&plan.label),
            if report.chosen == Some(i) {
                " <b>(chosen)</b>"
            } else {
                ""
            },
            plan.int8,
            plan.fp16,
            plan.fp32,
            escape(&fmt_pct(plan.int8_mac_fraction)),
            escape(&fmt_ms(plan.predicted_latency_ms)),
            escape(
                &accuracy
                    .of(&plan.metrics)
                    .map_or_else(|| "—".to_string(), |v| fmt_fixed(v, 5))
            ),
            if plan.budget_met { "met" } else { "missed" },
        );
    }
    h.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    h
}

// ---------------------------------------------------------------------------------------------------------------
// Title block

fn title_block(out: &mut String, r: &SearchReport) -> f64 {
    text_fit(
        out,
        LEFT,
        36.0,
        "h1",
        &format!("precisiond · {}", r.model),
        60,
    );

    let (color, verdict) = if r.budget_met {
        (MET_COLOR, "BUDGET MET")
    } else {
        (MISSED_COLOR, "BUDGET MISSED")
    };
    w!(
        out,
        r##"<rect x="{}" y="14" width="210" height="32" rx="6" fill="{}"/><text x="{}" y="35" text-anchor="middle" class="b" style="fill:#fff;font-size:15px">{}</text>"##,
        num(RIGHT - 210.0),
        color,
        num(RIGHT - 105.0),
        verdict
    );
    text_fit(out, LEFT, 58.0, "s m", &format!("bundle {}", r.bundle), 120);

    let plan = &r.plan;
    let speedup = match (r.reference_latency_ms.all_fp16_ms, r.predicted_latency_ms) {
        (fp16, p) if fp16.is_finite() && p.is_finite() && p > 0.0 => {
            format!(" · {:.2}× the speed of all-FP16", fp16 / p)
        }
        _ => String::new(),
    };
    let budget = if r.budget.is_empty() {
        "none given".to_string()
    } else {
        r.budget.join("; ")
    };
    let mut lines: Vec<(String, &str)> = vec![
        (
            format!(
                "Strategy {} · {} plan evaluations · {} sensitivity probes · wall time {}",
                r.strategy,
                r.evaluations,
                r.probes,
                fmt_wall(r.wall_s)
            ),
            "",
        ),
        (
            format!(
                "INT8 share of MACs {} · layers int8 {} · fp16 {} · fp32 {}",
                fmt_pct(plan.int8_mac_fraction),
                plan.int8,
                plan.fp16,
                plan.fp32
            ),
            "",
        ),
        (
            format!(
                "Predicted latency {}{} ({}) · all-FP16 {} · all-INT8 {}",
                fmt_ms(r.predicted_latency_ms),
                speedup,
                r.latency_source,
                fmt_ms(r.reference_latency_ms.all_fp16_ms),
                fmt_ms(r.reference_latency_ms.all_int8_ms)
            ),
            "",
        ),
        (format!("Budget: {budget}"), ""),
        (format!("Chosen plan: {}", metrics_text(&r.metrics)), ""),
    ];
    if !r.misses.is_empty() {
        lines.push((format!("Misses: {}", r.misses.join("; ")), MISSED_COLOR));
    }
    let mut y = 86.0;
    for (line, color) in &lines {
        let class = if color.is_empty() { "" } else { "b" };
        let style = if color.is_empty() {
            String::new()
        } else {
            format!(r#" style="fill:{color}""#)
        };
        text_fit_styled(out, LEFT, y, class, &style, line, LINE_CHARS);
        y += 20.0;
    }
    let gauge_bottom = latency_gauge(out, r, 790.0, RIGHT - 10.0, 76.0);
    y.max(gauge_bottom)
}

/// Where the chosen plan's latency falls between the two extremes the search could have picked; the ratio in words
/// is easy to misread, the position on a line is not.
fn latency_gauge(out: &mut String, r: &SearchReport, x0: f64, x1: f64, top: f64) -> f64 {
    w!(
        out,
        r#"<text x="{}" y="{}" class="b s">Predicted latency</text>"#,
        num(x0),
        num(top)
    );
    let marks = [
        ("all-INT8", r.reference_latency_ms.all_int8_ms),
        ("all-FP16", r.reference_latency_ms.all_fp16_ms),
        ("chosen", r.predicted_latency_ms),
    ];
    let Some((lo, hi)) = finite_range(marks.iter().map(|m| m.1)) else {
        w!(
            out,
            r#"<text x="{}" y="{}" class="s m">not available</text>"#,
            num(x0),
            num(top + 22.0)
        );
        return top + 30.0;
    };
    let (lo, hi) = pad_range(lo, hi, 0.0);
    let scale = Linear {
        d0: lo,
        d1: hi,
        r0: x0 + 4.0,
        r1: x1 - 4.0,
    };
    let track_y = top + 34.0;
    w!(
        out,
        r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{GRID}" stroke-width="6" stroke-linecap="round"/>"#,
        num(x0),
        num(x1),
        y = num(track_y)
    );
    let mid = (x0 + x1) / 2.0;
    for (i, (name, ms)) in marks.iter().enumerate() {
        if !ms.is_finite() {
            continue;
        }
        let x = scale.at(*ms);
        let anchor = if x < mid { "start" } else { "end" };
        if *name == "chosen" {
            let color = if r.budget_met {
                MET_COLOR
            } else {
                MISSED_COLOR
            };
            w!(
                out,
                r##"<circle cx="{}" cy="{}" r="6" fill="{color}" stroke="#111" stroke-width="1.5"/>"##,
                num(x),
                num(track_y)
            );
            w!(
                out,
                r#"<text x="{}" y="{}" text-anchor="{anchor}" class="s b halo">this plan {}</text>"#,
                num(x),
                num(track_y - 11.0),
                escape(&fmt_ms(*ms))
            );
        } else {
            w!(
                out,
                r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#555" stroke-width="2"/>"##,
                num(track_y - 7.0),
                num(track_y + 7.0),
                x = num(x)
            );
            // The two references sit on separate lines so that they never overprint when they are close.
            w!(
                out,
                r#"<text x="{}" y="{}" text-anchor="{anchor}" class="s m">{name} {}</text>"#,
                num(x),
                num(track_y + 21.0 + 14.0 * i as f64),
                escape(&fmt_ms(*ms))
            );
        }
    }
    track_y + 42.0
}

// ---------------------------------------------------------------------------------------------------------------
// Plan scatter

fn plans_scatter(out: &mut String, r: &SearchReport, top: f64) -> f64 {
    let accuracy = Accuracy::pick(r);
    let bound = bound_for(&r.budget, accuracy.key());
    w!(
        out,
        r#"<text x="{}" y="{}" class="h2">Evaluated plans</text>"#,
        num(LEFT),
        num(top + 16.0)
    );
    w!(
        out,
        r#"<text x="{}" y="{}" class="s m">{} in evaluation order · x: predicted latency · y: {} (the budget's accuracy metric)</text>"#,
        num(LEFT),
        num(top + 34.0),
        plural(r.evaluated.len(), "plan"),
        accuracy.title()
    );
    scatter_legend(out, top + 16.0);

    let (x0, x1) = (90.0, RIGHT - 10.0);
    // An empty search still gets its frame, so that the absence reads as a result rather than a rendering fault.
    let plot_h = if r.evaluated.is_empty() { 60.0 } else { 300.0 };
    let (y0, y1) = (top + 72.0, top + 72.0 + plot_h);
    w!(
        out,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#fcfcfd" stroke="{GRID}"/>"##,
        num(x0),
        num(y0),
        num(x1 - x0),
        num(y1 - y0)
    );
    if r.evaluated.is_empty() {
        w!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" class="m">no plans evaluated</text>"#,
            num((x0 + x1) / 2.0),
            num((y0 + y1) / 2.0)
        );
        return y1 + 12.0;
    }

    let references = [
        r.reference_latency_ms.all_int8_ms,
        r.reference_latency_ms.all_fp16_ms,
    ];
    let xs = r
        .evaluated
        .iter()
        .map(|p| p.predicted_latency_ms)
        .chain(references);
    let (xlo, xhi) = finite_range(xs).unwrap_or((0.0, 1.0));
    let (xlo, xhi) = pad_range(xlo, xhi, 0.05);
    let ys = r
        .evaluated
        .iter()
        .filter_map(|p| accuracy.of(&p.metrics))
        .chain(bound.as_ref().map(|b| b.value));
    let (ylo, yhi) = finite_range(ys).unwrap_or((0.0, 1.0));
    let (ylo, yhi) = pad_range(ylo, yhi, 0.08);
    let sx = Linear {
        d0: xlo,
        d1: xhi,
        r0: x0,
        r1: x1,
    };
    let sy = Linear {
        d0: ylo,
        d1: yhi,
        r0: y1,
        r1: y0,
    };

    // The failing side of the budget, lightly shaded, so that "above the line" needs no reading.
    if let Some(b) = &bound {
        let ly = sy.at(b.value);
        let (ry, rh) = if b.at_least {
            (ly, y1 - ly)
        } else {
            (y0, ly - y0)
        };
        w!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{MISSED_COLOR}" fill-opacity="0.06"/>"#,
            num(x0),
            num(ry),
            num(x1 - x0),
            num(rh.max(0.0))
        );
    }

    for t in nice_ticks(xlo, xhi, 10) {
        let x = sx.at(t.value);
        w!(
            out,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{GRID}"/>"#,
            num(y0),
            num(y1),
            x = num(x)
        );
        w!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" class="s m">{}</text>"#,
            num(x),
            num(y1 + 16.0),
            t.label
        );
    }
    for t in nice_ticks(ylo, yhi, 7) {
        let y = sy.at(t.value);
        w!(
            out,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{GRID}"/>"#,
            num(x0),
            num(x1),
            y = num(y)
        );
        w!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" class="s m">{}</text>"#,
            num(x0 - 6.0),
            num(y + 4.0),
            t.label
        );
    }
    w!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" class="s">predicted latency (ms)</text>"#,
        num((x0 + x1) / 2.0),
        num(y1 + 34.0)
    );
    let cy = (y0 + y1) / 2.0;
    w!(
        out,
        r#"<text x="30" y="{cy}" transform="rotate(-90 30 {cy})" text-anchor="middle" class="s">{}</text>"#,
        accuracy.title(),
        cy = num(cy)
    );

    if let Some(b) = &bound {
        let ly = num(sy.at(b.value));
        w!(
            out,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{MISSED_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
            num(x0),
            num(x1)
        );
        let label_y = if b.at_least {
            sy.at(b.value) - 5.0
        } else {
            sy.at(b.value) + 13.0
        };
        w!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" class="s b halo" style="fill:{MISSED_COLOR}">budget {} {} {}</text>"#,
            num(x1 - 6.0),
            num(label_y),
            accuracy.key(),
            if b.at_least { "≥" } else { "≤" },
            fmt_general(b.value)
        );
    }

    // The references are what the search traded between; their labels sit above the frame, on two lines, so they
    // never cover a plan or each other.
    let mid = (x0 + x1) / 2.0;
    for (i, (name, ms)) in [("all-INT8", references[0]), ("all-FP16", references[1])]
        .into_iter()
        .enumerate()
    {
        if !ms.is_finite() {
            continue;
        }
        let x = sx.at(ms);
        let label_y = y0 - 20.0 + 14.0 * i as f64;
        w!(
            out,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#888" stroke-dasharray="2 3"/>"##,
            num(label_y + 3.0),
            num(y1),
            x = num(x)
        );
        let (anchor, dx) = if x < mid {
            ("start", 4.0)
        } else {
            ("end", -4.0)
        };
        w!(
            out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" class="s m">{name} {}</text>"#,
            num(x + dx),
            num(label_y),
            escape(&fmt_ms(ms))
        );
    }

    let point = |p: &EvaluatedPlan| -> (f64, f64, bool) {
        let lat = p.predicted_latency_ms;
        let acc = accuracy.of(&p.metrics).filter(|v| v.is_finite());
        // A plan without a usable value still happened; it is pinned to the edge of the frame and drawn as a cross.
        let x = if lat.is_finite() { sx.at(lat) } else { x1 };
        let y = acc.map_or(y1, |v| sy.at(v));
        (x, y, lat.is_finite() && acc.is_some())
    };

    let path: Vec<String> = r
        .evaluated
        .iter()
        .map(point)
        .filter(|(_, _, ok)| *ok)
        .map(|(x, y, _)| format!("{},{}", num(x), num(y)))
        .collect();
    if path.len() > 1 {
        w!(
            out,
            r##"<polyline points="{}" fill="none" stroke="#b8bec6" stroke-width="1"/>"##,
            path.join(" ")
        );
    }

    let chosen = r.chosen.filter(|&i| i < r.evaluated.len());
    for (i, p) in r.evaluated.iter().enumerate() {
        let (x, y, ok) = point(p);
        let color = if p.budget_met {
            MET_COLOR
        } else {
            MISSED_COLOR
        };
        w!(
            out,
            r#"<g class="pt"><title>{}</title>"#,
            escape(&plan_tooltip(i, p, chosen == Some(i), accuracy))
        );
        if ok {
            w!(
                out,
                r##"<circle cx="{}" cy="{}" r="4.5" fill="{color}" stroke="#fff" stroke-width="1"/>"##,
                num(x),
                num(y)
            );
        } else {
            w!(
                out,
                r#"<path d="M{} {}l8 8m0 -8l-8 8" stroke="{color}" stroke-width="2"/>"#,
                num(x - 4.0),
                num(y - 4.0)
            );
        }
        out.push_str("</g>");
    }

    if let Some(i) = chosen {
        let p = &r.evaluated[i];
        let (x, y, _) = point(p);
        w!(
            out,
            r##"<g class="chosen"><title>{}</title><circle cx="{}" cy="{}" r="10" fill="none" stroke="#111" stroke-width="2"/>"##,
            escape(&plan_tooltip(i, p, true, accuracy)),
            num(x),
            num(y)
        );
        let value = accuracy
            .of(&p.metrics)
            .map_or_else(|| "n/a".to_string(), |v| fmt_fixed(v, 5));
        let label = format!(
            "chosen #{i}: {} · {} · {} {}",
            ellipsize_end(&one_line(&p.label), 40),
            fmt_ms(p.predicted_latency_ms),
            accuracy.key(),
            value
        );
        let (anchor, lx) = if x > x0 + (x1 - x0) * 0.55 {
            ("end", x - 14.0)
        } else {
            ("start", x + 14.0)
        };
        let ly = if y - 14.0 > y0 + 12.0 {
            y - 14.0
        } else {
            y + 24.0
        };
        w!(
            out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" class="b halo">{}</text></g>"#,
            num(lx),
            num(ly),
            escape(&label)
        );
    }
    y1 + 44.0
}

fn scatter_legend(out: &mut String, y: f64) {
    let my = num(y - 4.0);
    let mut x = 560.0;
    for (label, width) in [
        ("budget met", 100.0),
        ("missed", 76.0),
        ("chosen", 76.0),
        ("budget line", 96.0),
        ("no value", 0.0),
    ] {
        let cx = num(x);
        match label {
            "budget met" => w!(
                out,
                r#"<circle cx="{cx}" cy="{my}" r="4.5" fill="{MET_COLOR}"/>"#
            ),
            "missed" => w!(
                out,
                r#"<circle cx="{cx}" cy="{my}" r="4.5" fill="{MISSED_COLOR}"/>"#
            ),
            "chosen" => w!(
                out,
                r##"<circle cx="{cx}" cy="{my}" r="7" fill="none" stroke="#111" stroke-width="2"/>"##
            ),
            "budget line" => w!(
                out,
                r#"<line x1="{}" y1="{my}" x2="{}" y2="{my}" stroke="{MISSED_COLOR}" stroke-width="1.5" stroke-dasharray="4 2"/>"#,
                num(x - 6.0),
                num(x + 6.0)
            ),
            _ => w!(
                out,
                r##"<path d="M{} {}l8 8m0 -8l-8 8" stroke="#666" stroke-width="2"/>"##,
                num(x - 4.0),
                num(y - 8.0)
            ),
        }
        w!(
            out,
            r#"<text x="{}" y="{}" class="s">{label}</text>"#,
            num(x + 12.0),
            num(y)
        );
        x += width;
    }
}

fn plan_tooltip(i: usize, p: &EvaluatedPlan, chosen: bool, accuracy: Accuracy) -> String {
    let mut t = format!("#{i} {}", one_line(&p.label));
    if chosen {
        t.push_str(" (chosen)");
    }
    t.push_str(if p.budget_met {
        "\nbudget met"
    } else {
        "\nbudget missed"
    });
    w!(
        t,
        "\npredicted {} · int8 {} / fp16 {} / fp32 {} · INT8 MACs {}\n{}",
        fmt_ms(p.predicted_latency_ms),
        p.int8,
        p.fp16,
        p.fp32,
        fmt_pct(p.int8_mac_fraction),
        metrics_text(&p.metrics)
    );
    if accuracy.of(&p.metrics).is_none_or(|v| !v.is_finite()) || !p.predicted_latency_ms.is_finite()
    {
        t.push_str("\n(no finite value to place: pinned to the frame)");
    }
    t
}

// ---------------------------------------------------------------------------------------------------------------
// Layer rows

const COL_INDEX: f64 = 50.0;
const COL_NAME: f64 = 58.0;
const BAR_X0: f64 = 372.0;
const BAR_X1: f64 = 822.0;
const COL_VALUE: f64 = 832.0;
const COL_PRECISION: f64 = 892.0;
const COL_REASON: f64 = 960.0;

fn layer_rows(out: &mut String, r: &SearchReport, top: f64) -> f64 {
    let measured = r.layers.iter().filter(|l| l.sensitivity.is_some()).count();
    w!(
        out,
        r#"<text x="{}" y="{}" class="h2">Per-layer sensitivity</text>"#,
        num(LEFT),
        num(top + 16.0)
    );
    let note = if r.layers.is_empty() {
        "no quantizable layers".to_string()
    } else if measured == 0 {
        format!(
            "{} in topological order · this strategy measured no per-layer sensitivity",
            plural(r.layers.len(), "layer")
        )
    } else {
        format!(
            "{} in topological order · bar: share of the accuracy budget used with only that layer in INT8 (1 = all of it), log scale",
            plural(r.layers.len(), "layer")
        )
    };
    w!(
        out,
        r#"<text x="{}" y="{}" class="s m">{}</text>"#,
        num(LEFT),
        num(top + 34.0),
        escape(&note)
    );
    if r.layers.is_empty() {
        return top + 40.0;
    }
    layer_legend(out, top + 56.0);

    let axis = LogAxis::of(&r.layers);
    let head = top + 84.0;
    for (x, label, anchor) in [
        (COL_INDEX, "#", "end"),
        (COL_NAME, "layer", "start"),
        (COL_VALUE, "value", "start"),
        (COL_PRECISION, "precision", "start"),
        (COL_REASON, "reason", "start"),
        (RIGHT - 4.0, "INT8 gain", "end"),
    ] {
        w!(
            out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" class="s b">{label}</text>"#,
            num(x),
            num(head)
        );
    }
    let rows_top = head + 8.0;
    let rows_bottom = rows_top + ROW_H * r.layers.len() as f64;
    axis.draw(out, head, rows_top, rows_bottom);

    for (i, layer) in r.layers.iter().enumerate() {
        layer_row(out, &axis, i, layer, rows_top + ROW_H * i as f64);
    }
    // A second scale at the bottom: on a long model the top one has scrolled away.
    if r.layers.len() > 25 {
        axis.labels(out, rows_bottom + 14.0);
        return rows_bottom + 20.0;
    }
    rows_bottom
}

fn layer_row(out: &mut String, axis: &LogAxis, i: usize, layer: &LayerReport, y: f64) {
    let baseline = y + ROW_H - 4.0;
    w!(
        out,
        r#"<g class="row"><title>{}</title>"#,
        escape(&layer_tooltip(i, layer))
    );
    // Transparent on odd rows rather than absent: an unfilled rect would not catch the hover.
    let shade = if i.is_multiple_of(2) { "0.07" } else { "0" };
    w!(
        out,
        r##"<rect class="bg" x="{}" y="{}" width="{}" height="{}" fill="#6b7a90" fill-opacity="{shade}"/>"##,
        num(LEFT),
        num(y),
        num(RIGHT - LEFT),
        num(ROW_H)
    );
    w!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" class="s m">{i}</text>"#,
        num(COL_INDEX),
        num(baseline)
    );
    w!(
        out,
        r#"<text x="{}" y="{}" class="mono">{}</text>"#,
        num(COL_NAME),
        num(baseline),
        escape(&ellipsize_middle(&one_line(&layer.name), NAME_CHARS))
    );

    let color = precision_color(layer.precision);
    match layer.sensitivity {
        Some(s) if s > 0.0 => {
            let end = axis.at(s);
            // The smallest measurable values still get a sliver, so that "tiny" never reads as "zero".
            let width = (end - BAR_X0).max(2.0);
            w!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" rx="1.5" fill="{color}"/>"#,
                num(BAR_X0),
                num(y + 3.0),
                num(width),
                num(ROW_H - 6.0)
            );
        }
        Some(0.0) => {
            w!(
                out,
                r#"<circle cx="{}" cy="{}" r="2.5" fill="none" stroke="{color}" stroke-width="1.5"/>"#,
                num(BAR_X0 + 3.0),
                num(y + ROW_H / 2.0)
            );
        }
        _ => {}
    }
    let value_class = if layer.sensitivity.is_some_and(|s| s.is_finite() && s >= 0.0) {
        "s"
    } else {
        "s m"
    };
    w!(
        out,
        r#"<text x="{}" y="{}" class="{value_class}">{}</text>"#,
        num(COL_VALUE),
        num(baseline),
        escape(&sensitivity_text(layer.sensitivity))
    );

    w!(
        out,
        r#"<rect x="{}" y="{}" width="10" height="10" rx="2" fill="{color}"/><text x="{}" y="{}" class="s">{}</text>"#,
        num(COL_PRECISION),
        num(y + 3.0),
        num(COL_PRECISION + 14.0),
        num(baseline),
        layer.precision.as_str().to_uppercase()
    );

    let cx = COL_REASON + 4.0;
    let cy = y + ROW_H / 2.0;
    match layer.reason.as_str() {
        "search" => {}
        "keep" => {
            w!(out, "{}", keep_marker(cx, cy));
            w!(
                out,
                r#"<text x="{}" y="{}" class="s">keep</text>"#,
                num(cx + 9.0),
                num(baseline)
            );
        }
        "fixed" => {
            w!(out, "{}", fixed_marker(cx, cy));
            w!(
                out,
                r#"<text x="{}" y="{}" class="s">fixed</text>"#,
                num(cx + 9.0),
                num(baseline)
            );
        }
        other => {
            w!(
                out,
                r#"<text x="{}" y="{}" class="s m">{}</text>"#,
                num(cx + 9.0),
                num(baseline),
                escape(&ellipsize_end(&one_line(other), 8))
            );
        }
    }
    w!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" class="s m">{}</text>"#,
        num(RIGHT - 4.0),
        num(baseline),
        escape(&fmt_gain(layer.int8_gain_ms))
    );
    out.push_str("</g>");
}

fn layer_legend(out: &mut String, y: f64) {
    let mut x = LEFT;
    for (p, label) in [
        (Precision::Int8, "INT8"),
        (Precision::Fp16, "FP16"),
        (Precision::Fp32, "FP32"),
    ] {
        w!(
            out,
            r#"<rect x="{}" y="{}" width="12" height="12" rx="2" fill="{}"/><text x="{}" y="{}" class="s">{label}</text>"#,
            num(x),
            num(y - 10.0),
            precision_color(p),
            num(x + 16.0),
            num(y)
        );
        x += 62.0;
    }
    x += 12.0;
    w!(out, "{}", keep_marker(x + 4.0, y - 4.0));
    w!(
        out,
        r#"<text x="{}" y="{}" class="s">keep (the spec's keep list)</text>"#,
        num(x + 13.0),
        num(y)
    );
    x += 186.0;
    w!(out, "{}", fixed_marker(x + 4.0, y - 4.0));
    w!(
        out,
        r#"<text x="{}" y="{}" class="s">fixed ([precision.layers])</text>"#,
        num(x + 13.0),
        num(y)
    );
    x += 176.0;
    w!(
        out,
        r##"<circle cx="{}" cy="{}" r="2.5" fill="none" stroke="#555" stroke-width="1.5"/><text x="{}" y="{}" class="s">0: harmless</text>"##,
        num(x + 4.0),
        num(y - 4.0),
        num(x + 13.0),
        num(y)
    );
    x += 92.0;
    w!(
        out,
        r#"<text x="{}" y="{}" class="s">—: not measured</text>"#,
        num(x),
        num(y)
    );
}

fn keep_marker(cx: f64, cy: f64) -> String {
    format!(
        r##"<path d="M{} {}l4.5 4.5l-4.5 4.5l-4.5 -4.5z" fill="#222"/>"##,
        num(cx),
        num(cy - 4.5)
    )
}

fn fixed_marker(cx: f64, cy: f64) -> String {
    format!(
        r##"<rect x="{}" y="{}" width="8" height="8" fill="#222"/>"##,
        num(cx - 4.0),
        num(cy - 4.0)
    )
}

fn layer_tooltip(i: usize, l: &LayerReport) -> String {
    format!(
        "{}\n#{i} · {} · MACs {}\nprecision {} ({})\nsensitivity {}\nINT8 gain {}",
        one_line(&l.name),
        one_line(&l.op),
        l.macs.map_or_else(|| "unknown".to_string(), fmt_macs),
        l.precision.as_str(),
        one_line(&l.reason),
        match l.sensitivity {
            None => "not measured".to_string(),
            Some(s) => sensitivity_text(Some(s)),
        },
        fmt_gain(l.int8_gain_ms)
    )
}

fn precision_color(p: Precision) -> &'static str {
    match p {
        Precision::Int8 => INT8_COLOR,
        Precision::Fp16 => FP16_COLOR,
        Precision::Fp32 => FP32_COLOR,
    }
}

/// Sensitivities span about 1e-6 (harmless) to 1 (the output is noise), so only a log scale shows both ends. The
/// span widens to whole decades around values outside it, within 1e-12..1e3 so that one odd value cannot squeeze
/// the rest into a few pixels; values beyond are drawn at the edge and their number says the rest.
struct LogAxis {
    lo: i32,
    hi: i32,
}

impl LogAxis {
    fn of(layers: &[LayerReport]) -> LogAxis {
        let positive = layers
            .iter()
            .filter_map(|l| l.sensitivity)
            .filter(|s| s.is_finite() && *s > 0.0);
        let (mut lo, mut hi) = (-6, 0);
        for s in positive {
            let e = s.log10();
            lo = lo.min(e.floor().max(-12.0) as i32);
            hi = hi.max(e.ceil().min(3.0) as i32);
        }
        LogAxis { lo, hi }
    }

    fn at(&self, v: f64) -> f64 {
        if v == f64::INFINITY {
            return BAR_X1;
        }
        let t = (v.log10() - self.lo as f64) / (self.hi - self.lo) as f64;
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        BAR_X0 + t * (BAR_X1 - BAR_X0)
    }

    /// Every decade gets a grid line; labels thin out when there are more decades than fit.
    fn step(&self) -> usize {
        if self.hi - self.lo > 10 { 2 } else { 1 }
    }

    fn draw(&self, out: &mut String, label_y: f64, top: f64, bottom: f64) {
        for e in self.lo..=self.hi {
            let x = num(self.at(10f64.powi(e)));
            w!(
                out,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{GRID}"/>"#,
                num(top),
                num(bottom)
            );
        }
        self.labels(out, label_y);
    }

    fn labels(&self, out: &mut String, y: f64) {
        for e in (self.lo..=self.hi).rev().step_by(self.step()) {
            w!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle" class="s m">{}</text>"#,
                num(self.at(10f64.powi(e))),
                num(y),
                decade_label(e)
            );
        }
    }
}

fn decade_label(e: i32) -> String {
    match e {
        0 => "1".to_string(),
        1..=3 => format!("{}", 10i32.pow(e as u32)),
        _ => format!("1e{e}"),
    }
}

fn sensitivity_text(s: Option<f64>) -> String {
    match s {
        None => "—".to_string(),
        Some(0.0) => "0".to_string(),
        Some(v) if v.is_finite() && v > 0.0 => format!("{v:.1e}"),
        Some(f64::INFINITY) => "∞".to_string(),
        Some(_) => "invalid".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The accuracy axis and the budget

/// The one accuracy number the plan scatter plots: the metric that most directly says whether a plan is usable.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Accuracy {
    MaskIou,
    Argmax,
    Cosine,
}

impl Accuracy {
    fn pick(r: &SearchReport) -> Accuracy {
        if r.evaluated.iter().any(|p| p.metrics.mask_iou.is_some()) || r.metrics.mask_iou.is_some()
        {
            Accuracy::MaskIou
        } else if r
            .budget
            .iter()
            .any(|b| b.trim_start().starts_with("argmax_agreement"))
        {
            Accuracy::Argmax
        } else {
            Accuracy::Cosine
        }
    }

    fn key(self) -> &'static str {
        match self {
            Accuracy::MaskIou => "mask_iou",
            Accuracy::Argmax => "argmax_agreement",
            Accuracy::Cosine => "cosine",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Accuracy::MaskIou => "mask IoU",
            Accuracy::Argmax => "argmax agreement",
            Accuracy::Cosine => "cosine similarity",
        }
    }

    fn of(self, m: &Metrics) -> Option<f64> {
        match self {
            Accuracy::MaskIou => m.mask_iou,
            Accuracy::Argmax => m.argmax_agreement,
            Accuracy::Cosine => Some(m.cosine),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Bound {
    /// `>=` (true) or `<=` (false).
    at_least: bool,
    value: f64,
}

/// Reads a bound back from the budget said in words (`cosine >= 0.99`, `mask_iou >= 0.95 (threshold 0.3)`): the
/// report keeps only the words, and a bound that does not parse simply goes undrawn.
fn bound_for(budget: &[String], key: &str) -> Option<Bound> {
    budget.iter().find_map(|entry| {
        let rest = entry.trim_start().strip_prefix(key)?.trim_start();
        let (at_least, rest) = [
            (">=", true),
            ("≥", true),
            (">", true),
            ("<=", false),
            ("≤", false),
            ("<", false),
        ]
        .into_iter()
        .find_map(|(op, at_least)| rest.strip_prefix(op).map(|r| (at_least, r)))?;
        let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
        value.is_finite().then_some(Bound { at_least, value })
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Scales and ticks

struct Linear {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Linear {
    /// Clamped to the range: a value outside the domain is drawn at the frame's edge rather than off the picture.
    fn at(&self, v: f64) -> f64 {
        let t = (v - self.d0) / (self.d1 - self.d0);
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.r0 + t * (self.r1 - self.r0)
    }
}

fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Widens a range by `frac` of its span on each side, and a degenerate one (a single plan, all plans equal) to a
/// visible width around its value; falls back to 0..1 where the arithmetic would overflow.
fn pad_range(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    let (lo, hi) = if span > f64::EPSILON * lo.abs().max(hi.abs()).max(1e-300) {
        (lo - span * frac, hi + span * frac)
    } else {
        let d = if lo.abs() > 1e-12 {
            lo.abs() * 0.05
        } else {
            1.0
        };
        (lo - d, hi + d)
    };
    if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

struct Tick {
    value: f64,
    label: String,
}

/// Ticks at 1, 2 or 5 times a power of ten, labelled with just enough decimals to tell them apart.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<Tick> {
    let raw = (hi - lo) / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return Vec::new();
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalized = raw / magnitude;
    let step = magnitude
        * if normalized < 1.5 {
            1.0
        } else if normalized < 3.0 {
            2.0
        } else if normalized < 7.0 {
            5.0
        } else {
            10.0
        };
    if !(step.is_finite() && step > 0.0) {
        return Vec::new();
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
    let first = (lo / step).ceil();
    let last = (hi / step).floor();
    if !(first.is_finite() && last.is_finite()) || last < first {
        return Vec::new();
    }
    let count = ((last - first) as usize).min(50);
    (0..=count)
        .map(|k| {
            let value = (first + k as f64) * step;
            // Rounding leaves -0.0 and 1e-17 where zero is meant.
            let value = if value.abs() < step * 1e-9 {
                0.0
            } else {
                value
            };
            Tick {
                value,
                label: format!("{value:.decimals$}"),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Text

/// For XML text and attribute values alike. XML 1.0 forbids most control characters even as character references,
/// so they become U+FFFD instead of making the whole file unreadable; newlines stay, since tooltips use them.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Labels are one line; a newline or tab in a name would otherwise break the row layout.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn ellipsize_end(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Layer names carry their scope at the start and the op at the end (`/backbone/stage3/block2/conv1/Conv`), so the
/// middle is what goes. Cut by characters, never bytes, so a multi-byte name cannot split.
fn ellipsize_middle(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(1);
    let head = keep * 2 / 5;
    let tail = keep - head;
    let mut cut: String = s.chars().take(head).collect();
    cut.push('…');
    cut.extend(s.chars().skip(n - tail));
    cut
}

fn text_fit(out: &mut String, x: f64, y: f64, class: &str, s: &str, max_chars: usize) {
    text_fit_styled(out, x, y, class, "", s, max_chars);
}

/// A one-line `<text>` cut to `max_chars`; when cut, the full text stays as its tooltip.
fn text_fit_styled(
    out: &mut String,
    x: f64,
    y: f64,
    class: &str,
    style: &str,
    s: &str,
    max_chars: usize,
) {
    let line = one_line(s);
    let shown = ellipsize_end(&line, max_chars);
    let class = if class.is_empty() {
        String::new()
    } else {
        format!(r#" class="{class}""#)
    };
    w!(out, r#"<text x="{}" y="{}"{class}{style}>"#, num(x), num(y));
    if shown != line {
        w!(out, "<title>{}</title>", escape(s));
    }
    w!(out, "{}</text>", escape(&shown));
}

/// Every coordinate goes through here. Callers clamp first; this is the last guard, since one `NaN` in an
/// attribute makes a browser drop the element.
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "0".to_string()
    }
}

fn not_finite(v: f64) -> String {
    if v.is_nan() {
        "n/a".to_string()
    } else if v > 0.0 {
        "∞".to_string()
    } else {
        "−∞".to_string()
    }
}

fn fmt_fixed(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        not_finite(v)
    }
}

/// A budget bound as the spec wrote it: `0.99`, `30`, `0.05`, without padding zeros.
fn fmt_general(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        not_finite(v)
    }
}

fn fmt_ms(v: f64) -> String {
    if !v.is_finite() {
        return not_finite(v);
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0} ms")
    } else if a >= 10.0 {
        format!("{v:.1} ms")
    } else if a >= 0.1 || a == 0.0 {
        format!("{v:.2} ms")
    } else if a >= 0.001 {
        format!("{v:.3} ms")
    } else {
        format!("{v:.1e} ms")
    }
}

/// Per-layer gains are small and read down a column, so they share one number of decimals.
fn fmt_gain(v: f64) -> String {
    if v.is_finite() && v.abs() < 100.0 {
        format!("{v:.3} ms")
    } else {
        fmt_ms(v)
    }
}

fn fmt_pct(f: Option<f64>) -> String {
    match f {
        Some(v) if v.is_finite() => format!("{:.1} %", v * 100.0),
        Some(v) => not_finite(v),
        None => "unknown (no MAC counts)".to_string(),
    }
}

fn fmt_wall(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "n/a".to_string();
    }
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else {
        format!("{m} min {sec:02} s")
    }
}

fn fmt_macs(macs: u64) -> String {
    let v = macs as f64;
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{macs}")
    }
}

fn metrics_text(m: &Metrics) -> String {
    let mut t = format!(
        "cosine {} · SQNR {} dB · max_abs {}",
        fmt_fixed(m.cosine, 5),
        fmt_fixed(m.sqnr_db, 1),
        if m.max_abs.is_finite() && m.max_abs != 0.0 && m.max_abs.abs() < 1e-3 {
            format!("{:.2e}", m.max_abs)
        } else {
            fmt_fixed(m.max_abs, 4)
        }
    );
    if let Some(a) = m.argmax_agreement {
        w!(t, " · argmax {}", fmt_fixed(a, 5));
    }
    if let Some(iou) = m.mask_iou {
        w!(t, " · mask IoU {}", fmt_fixed(iou, 5));
    }
    t
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precision::plan::PlanSummary;
    use crate::search::report::ReferenceLatency;

    fn metrics(cosine: f64) -> Metrics {
        Metrics {
            cosine,
            sqnr_db: 30.0,
            max_abs: 0.01,
            argmax_agreement: Some(0.999),
            mask_iou: None,
        }
    }

    fn plan(label: &str, latency: f64, cosine: f64, met: bool) -> EvaluatedPlan {
        EvaluatedPlan {
            label: label.to_string(),
            int8: 2,
            fp16: 1,
            fp32: 0,
            int8_mac_fraction: Some(0.7),
            predicted_latency_ms: latency,
            metrics: metrics(cosine),
            budget_met: met,
        }
    }

    fn layer(
        name: &str,
        precision: Precision,
        reason: &str,
        sensitivity: Option<f64>,
    ) -> LayerReport {
        LayerReport {
            name: name.to_string(),
            op: "Conv".to_string(),
            macs: Some(1_000_000),
            precision,
            reason: reason.to_string(),
            sensitivity,
            int8_gain_ms: 0.12,
        }
    }

    fn empty_report() -> SearchReport {
        SearchReport {
            bundle: String::new(),
            model: String::new(),
            strategy: String::new(),
            evaluations: 0,
            probes: 0,
            wall_s: 0.0,
            budget_met: false,
            budget: Vec::new(),
            misses: Vec::new(),
            plan: PlanSummary {
                int8: 0,
                fp16: 0,
                fp32: 0,
                int8_mac_fraction: None,
            },
            metrics: metrics(1.0),
            predicted_latency_ms: 0.0,
            reference_latency_ms: ReferenceLatency {
                all_fp16_ms: 0.0,
                all_int8_ms: 0.0,
            },
            latency_source: "macs".to_string(),
            layers: Vec::new(),
            evaluated: Vec::new(),
            chosen: None,
        }
    }

    fn small_report() -> SearchReport {
        SearchReport {
            bundle: "bundles/yolo".to_string(),
            model: "yolo <nano> & \"friends\"".to_string(),
            strategy: "sensitivity".to_string(),
            evaluations: 4,
            probes: 3,
            wall_s: 12.5,
            budget_met: true,
            budget: vec!["cosine >= 0.99".to_string(), "max_abs <= 0.05".to_string()],
            misses: Vec::new(),
            plan: PlanSummary {
                int8: 2,
                fp16: 1,
                fp32: 0,
                int8_mac_fraction: Some(0.72),
            },
            metrics: metrics(0.995),
            predicted_latency_ms: 3.2,
            reference_latency_ms: ReferenceLatency {
                all_fp16_ms: 5.0,
                all_int8_ms: 2.8,
            },
            latency_source: "macs".to_string(),
            layers: vec![
                layer("conv<1>&co", Precision::Int8, "search", Some(3e-5)),
                layer("head \"cls\" 'x'", Precision::Fp16, "keep", Some(0.2)),
                layer("neck/a<b", Precision::Fp32, "fixed", None),
            ],
            evaluated: vec![
                plan("all-int8", 2.8, 0.95, false),
                plan("fall back top 1", 3.2, 0.995, true),
                plan("fall back <top 2>", 3.9, 0.998, true),
                plan("all-fp16", 5.0, 0.9999, true),
            ],
            chosen: Some(1),
        }
    }

    /// A small XML well-formedness check: one root, balanced and properly nested tags, quoted attributes with
    /// no raw `<`, and `&` only as a known or numeric entity.
    fn check_xml(doc: &str) -> Result<(), String> {
        fn check_entities(s: &str) -> Result<(), String> {
            let mut rest = s;
            while let Some(i) = rest.find('&') {
                let after = &rest[i + 1..];
                let end = after
                    .find(';')
                    .ok_or_else(|| format!("unterminated entity in {s:?}"))?;
                let name = &after[..end];
                let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                    || name
                        .strip_prefix('#')
                        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
                if !ok {
                    return Err(format!("bad entity &{name}; in {s:?}"));
                }
                rest = &after[end + 1..];
            }
            Ok(())
        }
        fn is_name(s: &str) -> bool {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        }
        let mut stack: Vec<&str> = Vec::new();
        let mut roots = 0;
        let mut rest = doc;
        loop {
            let Some(lt) = rest.find('<') else {
                check_entities(rest)?;
                if !rest.trim().is_empty() && stack.is_empty() {
                    return Err("text after the root".into());
                }
                break;
            };
            let text = &rest[..lt];
            check_entities(text)?;
            if stack.is_empty() && !text.trim().is_empty() {
                return Err(format!("text outside the root: {text:?}"));
            }
            let tag_start = &rest[lt..];
            let gt = tag_start.find('>').ok_or("unterminated tag")?;
            let tag = &tag_start[1..gt];
            if tag.contains('<') {
                return Err(format!("`<` inside tag {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack
                    .pop()
                    .ok_or_else(|| format!("close {name} without open"))?;
                if open != name.trim() {
                    return Err(format!("</{name}> closes <{open}>"));
                }
            } else {
                let self_closing = tag.ends_with('/');
                let body = tag.trim_end_matches('/');
                let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
                let name = &body[..name_end];
                if !is_name(name) {
                    return Err(format!("bad element name {name:?}"));
                }
                let mut attrs = body[name_end..].trim();
                while !attrs.is_empty() {
                    let eq = attrs
                        .find('=')
                        .ok_or_else(|| format!("attribute without value in {tag:?}"))?;
                    if !is_name(attrs[..eq].trim()) {
                        return Err(format!("bad attribute name in {tag:?}"));
                    }
                    let value = &attrs[eq + 1..];
                    let quote = value
                        .chars()
                        .next()
                        .filter(|c| *c == '"' || *c == '\'')
                        .ok_or("unquoted attribute")?;
                    let close = value[1..].find(quote).ok_or("unterminated attribute")?;
                    check_entities(&value[1..1 + close])?;
                    attrs = value[close + 2..].trim_start();
                }
                if stack.is_empty() {
                    roots += 1;
                }
                if !self_closing {
                    stack.push(name);
                }
            }
            rest = &tag_start[gt + 1..];
        }
        if !stack.is_empty() {
            return Err(format!("unclosed: {stack:?}"));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(())
    }

    /// Every numeric attribute (coordinates, sizes, point lists, path data) must be a finite number.
    fn check_coordinates(svg: &str) -> Result<(), String> {
        for attr in [
            "x",
            "y",
            "x1",
            "y1",
            "x2",
            "y2",
            "cx",
            "cy",
            "r",
            "width",
            "height",
            "points",
            "d",
            "transform",
        ] {
            let needle = format!(" {attr}=\"");
            let mut rest = svg;
            while let Some(i) = rest.find(&needle) {
                let value = &rest[i + needle.len()..];
                let end = value.find('"').ok_or("unterminated")?;
                let value = &value[..end];
                let lower = value.to_ascii_lowercase();
                if lower.contains("nan") || lower.contains("inf") {
                    return Err(format!("{attr}=\"{value}\" is not finite"));
                }
                let numbers = value
                    .split(|c: char| {
                        !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
                    })
                    .filter(|t| t.chars().any(|c| c.is_ascii_digit()));
                for n in numbers {
                    let v: f64 = n
                        .parse()
                        .map_err(|_| format!("{attr}=\"{value}\": `{n}` is not a number"))?;
                    if !v.is_finite() {
                        return Err(format!("{attr}=\"{value}\" is not finite"));
                    }
                }
                rest = &rest[i + needle.len() + end..];
            }
        }
        Ok(())
    }

    #[test]
    fn small_report_is_well_formed_and_names_are_escaped() {
        let svg = render_svg(&small_report());
        check_xml(&svg).unwrap();
        check_coordinates(&svg).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        for name in [
            "conv&lt;1&gt;&amp;co",
            "head &quot;cls&quot; &#39;x&#39;",
            "neck/a&lt;b",
        ] {
            assert!(svg.contains(name), "missing {name}");
        }
        assert!(!svg.contains("conv<1>"));
        assert!(svg.contains("yolo &lt;nano&gt; &amp; &quot;friends&quot;"));
        assert!(svg.contains("BUDGET MET"));
    }

    #[test]
    fn chosen_plan_is_ringed_and_labelled() {
        let svg = render_svg(&small_report());
        assert_eq!(svg.matches("<g class=\"chosen\">").count(), 1);
        assert!(svg.contains("chosen #1: fall back top 1"));
        let mut report = small_report();
        report.chosen = Some(99);
        let svg = render_svg(&report);
        check_xml(&svg).unwrap();
        assert!(
            !svg.contains("<g class=\"chosen\">"),
            "an index past the plans marks nothing"
        );
    }

    #[test]
    fn empty_report_renders() {
        let report = empty_report();
        let svg = render_svg(&report);
        check_xml(&svg).unwrap();
        check_coordinates(&svg).unwrap();
        assert!(svg.contains("no plans evaluated"));
        assert!(svg.contains("no quantizable layers"));
        assert!(svg.contains("BUDGET MISSED"));
        let html = render_html(&report);
        assert!(html.contains("<svg") && html.contains("</html>"));
    }

    #[test]
    fn non_finite_values_never_reach_coordinates() {
        let mut report = small_report();
        report.evaluated[0].metrics.cosine = f64::NAN;
        report.evaluated[1].predicted_latency_ms = f64::INFINITY;
        report.evaluated[2].metrics = Metrics {
            cosine: f64::NEG_INFINITY,
            sqnr_db: f64::NAN,
            max_abs: f64::INFINITY,
            argmax_agreement: Some(f64::NAN),
            mask_iou: None,
        };
        report.reference_latency_ms = ReferenceLatency {
            all_fp16_ms: f64::NAN,
            all_int8_ms: f64::NEG_INFINITY,
        };
        report.predicted_latency_ms = f64::NAN;
        report.wall_s = f64::NAN;
        report.metrics.cosine = f64::NAN;
        report.plan.int8_mac_fraction = Some(f64::NAN);
        report.layers[0].sensitivity = Some(f64::NAN);
        report.layers[1].sensitivity = Some(f64::INFINITY);
        report.layers[2].sensitivity = Some(-1.0);
        report.layers[2].int8_gain_ms = f64::NAN;
        let svg = render_svg(&report);
        check_xml(&svg).unwrap();
        check_coordinates(&svg).unwrap();
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");

        // All plans without a finite value: the axes fall back instead of dividing by nothing.
        for p in &mut report.evaluated {
            p.metrics.cosine = f64::NAN;
            p.predicted_latency_ms = f64::NAN;
        }
        let svg = render_svg(&report);
        check_xml(&svg).unwrap();
        check_coordinates(&svg).unwrap();
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn single_plan_and_equal_values_render() {
        let mut report = small_report();
        report.evaluated.truncate(1);
        report.chosen = Some(0);
        report.reference_latency_ms = ReferenceLatency {
            all_fp16_ms: 2.8,
            all_int8_ms: 2.8,
        };
        report.budget.clear();
        let svg = render_svg(&report);
        check_xml(&svg).unwrap();
        check_coordinates(&svg).unwrap();
        assert!(svg.contains("<g class=\"chosen\">"));
        assert!(!svg.contains("<polyline"), "one plan has no path");
    }

    #[test]
    fn many_long_layers_grow_the_picture_and_keep_full_names() {
        let mut report = small_report();
        let long = format!("/backbone/{}/conv_<last>", "stage/".repeat(30));
        report.layers = (0..200)
            .map(|i| {
                let s = if i % 7 == 0 {
                    None
                } else if i % 5 == 0 {
                    Some(0.0)
                } else {
                    Some(10f64.powi(-(i % 9)))
                };
                layer(&format!("{long}{i}"), Precision::Int8, "search", s)
            })
            .collect();
        let svg = render_svg(&report);
        check_xml(&svg).unwrap();
        check_coordinates(&svg).unwrap();
        let height: f64 = svg
            .split("height=\"")
            .nth(1)
            .and_then(|h| h.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(height > 200.0 * ROW_H, "height {height}");
        assert!(svg.contains('…'));
        assert!(
            svg.contains(&escape(&format!("{long}199"))),
            "full name kept in the tooltip"
        );
        assert_eq!(svg.matches("<g class=\"row\">").count(), 200);
    }

    #[test]
    fn accuracy_axis_follows_the_budget() {
        let mut report = small_report();
        assert_eq!(Accuracy::pick(&report), Accuracy::Cosine);
        report.budget.push("argmax_agreement >= 0.995".to_string());
        assert_eq!(Accuracy::pick(&report), Accuracy::Argmax);
        report.evaluated[2].metrics.mask_iou = Some(0.9);
        assert_eq!(Accuracy::pick(&report), Accuracy::MaskIou);
        let svg = render_svg(&report);
        check_xml(&svg).unwrap();
        check_coordinates(&svg).unwrap();
        assert!(svg.contains("y: mask IoU"));
    }

    #[test]
    fn budget_bounds_parse_from_words() {
        let budget: Vec<String> = [
            "cosine >= 0.99",
            "mask_iou >= 0.95 (threshold 0.3)",
            "max_abs <= 0.05",
            "sqnr_db >= 30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            bound_for(&budget, "cosine"),
            Some(Bound {
                at_least: true,
                value: 0.99
            })
        );
        assert_eq!(
            bound_for(&budget, "mask_iou"),
            Some(Bound {
                at_least: true,
                value: 0.95
            })
        );
        assert_eq!(
            bound_for(&budget, "max_abs"),
            Some(Bound {
                at_least: false,
                value: 0.05
            })
        );
        assert_eq!(
            bound_for(&budget, "sqnr_db"),
            Some(Bound {
                at_least: true,
                value: 30.0
            })
        );
        assert_eq!(bound_for(&budget, "argmax_agreement"), None);
        assert_eq!(
            bound_for(
                &["cosine_x >= 1".to_string(), "cosine >= nan".to_string()],
                "cosine"
            ),
            None
        );
        let svg = render_svg(&small_report());
        assert!(svg.contains("budget cosine ≥ 0.99"));
    }

    #[test]
    fn control_characters_and_long_text_stay_valid() {
        let mut report = small_report();
        report.model = format!("m\u{0}\u{1b}\u{FFFF}{}", "é".repeat(300));
        report.layers[0].name = "a\nb\tc\u{7}<".to_string();
        report.evaluated[1].label = "é".repeat(100);
        report.budget.push("\u{2}".repeat(3));
        let svg = render_svg(&report);
        check_xml(&svg).unwrap();
        assert!(
            !svg.chars()
                .any(|c| (c as u32) < 0x20 && c != '\n' && c != '\t')
        );
        assert!(svg.contains("a b c"));
        assert_eq!(ellipsize_middle("abcdefghij", 5), "a…hij");
        assert_eq!(ellipsize_end("abcdef", 4), "abc…");
        assert_eq!(ellipsize_middle("", 0), "");
        assert_eq!(ellipsize_end("abc", 0), "…");
    }

    #[test]
    fn html_wraps_the_svg_and_lists_layers() {
        let report = small_report();
        let html = render_html(&report);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(&render_svg(&report)));
        assert!(html.contains("<td class=\"name\">conv&lt;1&gt;&amp;co</td>"));
        assert_eq!(html.matches("<td class=\"name\">").count(), 3);
        assert!(html.contains("(chosen)"));
        let body = html
            .split("<body>\n")
            .nth(1)
            .unwrap()
            .trim_end()
            .trim_end_matches("</html>");
        check_xml(&format!("<body>{body}")).unwrap();
    }

    #[test]
    fn ticks_are_nice_and_bounded() {
        let t = nice_ticks(0.0, 1.0, 5);
        assert_eq!(
            t.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        assert!(nice_ticks(1.0, 1.0, 5).is_empty());
        assert!(nice_ticks(0.0, f64::MAX, 5).len() <= 51);
        assert!(nice_ticks(-1e-300, 1e300, 5).len() <= 51);
        assert_eq!(pad_range(2.0, 2.0, 0.05), (1.9, 2.1));
        assert_eq!(pad_range(0.0, 0.0, 0.05), (-1.0, 1.0));
        assert_eq!(pad_range(-f64::MAX, f64::MAX, 0.05), (0.0, 1.0));
    }
}
