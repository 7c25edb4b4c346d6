//! Inline SVG for the status page: a sparkline of a rate and a strip of states,
//! each drawn from a window of samples (newest at the right, a short history
//! right-aligned so every row's time matches). No axes: the sparkline labels its
//! maximum, and each chart's `<title>` (a browser's tooltip, a screen reader's
//! text) says the latest value.

use std::fmt::Write as _;

use super::page::esc;
use crate::status::si;

/// Width of the plotted area, and of a state strip (px).
const WIDTH: f64 = 120.0;
/// Sparkline height; room on its right for the maximum's label.
const SPARK_HEIGHT: f64 = 22.0;
const LABEL_WIDTH: f64 = 44.0;
/// State strip height.
const STRIP_HEIGHT: f64 = 10.0;
/// The narrowest run drawn in a strip (px).
const MIN_RUN: f64 = 2.0;
/// The window's background, so its extent shows while the history is short.
const WINDOW_FILL: &str = "#f0f0f0";

/// A sparkline of `values` (oldest first) in a window of `window` samples, with
/// `what` naming them in the title ("packets/s, last 10 min"). Values below zero
/// or not finite count as zero; all zero draws a flat line at the bottom.
pub fn sparkline(values: &[f64], window: usize, what: &str) -> String {
    let values = &values[values.len().saturating_sub(window)..];
    let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
    let max = values.iter().copied().map(clean).fold(0.0, f64::max);
    let (w, h) = (WIDTH + LABEL_WIDTH, SPARK_HEIGHT);
    let Some(&latest) = values.last() else {
        return open("spark", w, h, &format!("{what}: no samples yet")) + "</svg>";
    };
    let title = format!("{what}: latest {}, max {}", si(clean(latest)), si(max));
    let mut svg = open("spark", w, h, &title);
    let (top, bottom) = (2.0, SPARK_HEIGHT - 1.0);
    let point = |i: usize, v: f64| {
        let y = if max > 0.0 {
            bottom - clean(v) / max * (bottom - top)
        } else {
            bottom
        };
        (x_of(i, values.len(), window), y)
    };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (x, y) = point(i, *v);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let (lx, ly) = point(values.len() - 1, latest);
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#2a5db0\" stroke-width=\"1.2\"/>\
         <circle cx=\"{lx:.1}\" cy=\"{ly:.1}\" r=\"1.6\" fill=\"#2a5db0\"/>\
         <text x=\"{tx}\" y=\"9\" font-size=\"9\" fill=\"#555\">max {}</text></svg>",
        points.join(" "),
        si(max),
        tx = WIDTH + 4.0,
    );
    svg
}

/// A strip of `states` (oldest first, names such as "up" or "MASTER") in a window of
/// `window` samples: one rect per run of a state, with class `st-<state>` and its
/// colour. `what` names it in the title ("state, last 10 min").
pub fn strip(states: &[&str], window: usize, what: &str) -> String {
    let states = &states[states.len().saturating_sub(window)..];
    let (w, h) = (WIDTH, STRIP_HEIGHT);
    let Some(latest) = states.last() else {
        return open("strip", w, h, &format!("{what}: no samples yet")) + "</svg>";
    };
    let mut svg = open("strip", w, h, &format!("{what}: now {latest}"));
    let cell = WIDTH / window.max(1) as f64;
    let offset = window.saturating_sub(states.len());
    let mut start = 0;
    for i in 1..=states.len() {
        if i < states.len() && states[i] == states[start] {
            continue;
        }
        let state = states[start].to_lowercase();
        // At least MIN_RUN wide, reaching back over the run before: a state of a
        // few seconds (a cell is 0.4 px in 10 minutes) still shows.
        let end = (offset + i) as f64 * cell;
        let width = (cell * (i - start) as f64).max(MIN_RUN);
        let _ = write!(
            svg,
            "<rect class=\"st-{}\" x=\"{:.1}\" y=\"0\" width=\"{width:.1}\" height=\"{STRIP_HEIGHT}\" fill=\"{}\"/>",
            esc(&state),
            (end - width).max(0.0),
            colour(&state),
        );
        start = i;
    }
    svg.push_str("</svg>");
    svg
}

/// An `<svg>` of class `class`, `w` × `h` px, its title (escaped here) first, then
/// the window's background.
fn open(class: &str, w: f64, h: f64, title: &str) -> String {
    format!(
        "<svg class=\"{class}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">\
         <title>{}</title><rect class=\"bg\" width=\"{WIDTH}\" height=\"{h}\" fill=\"{WINDOW_FILL}\"/>",
        esc(title)
    )
}

/// x of point `i` of `n` in a window of `window`, right-aligned: the newest point is
/// at the right edge.
fn x_of(i: usize, n: usize, window: usize) -> f64 {
    let slot = window.saturating_sub(n) + i;
    if window <= 1 {
        return WIDTH;
    }
    slot as f64 * WIDTH / (window - 1) as f64
}

/// The colour of a state (lowercase): the table rows' colours, darker.
fn colour(state: &str) -> &'static str {
    match state {
        "up" | "master" => "#3a9a3a",
        "drain" => "#5b7fd6",
        "down" | "fault" => "#d04040",
        "standby" | "backup" => "#9a9a9a",
        _ => "#d8d8d8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (x, y) of the sparkline's points.
    fn points(svg: &str) -> Vec<(f64, f64)> {
        let at = svg.find("points=\"").expect("points") + 8;
        let end = at + svg[at..].find('"').expect("end");
        svg[at..end]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect()
    }

    #[test]
    fn a_sparkline_scales_to_its_max_and_labels_it() {
        let svg = sparkline(&[0.0, 50.0, 100.0], 3, "packets/s");
        let p = points(&svg);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], (0.0, SPARK_HEIGHT - 1.0), "zero at the bottom");
        assert_eq!(
            p[2],
            (WIDTH, 2.0),
            "the max at the top, newest at the right"
        );
        assert!((p[1].1 - (SPARK_HEIGHT + 1.0) / 2.0).abs() < 0.11, "{p:?}");
        assert!(
            svg.contains("<title>packets/s: latest 100, max 100</title>"),
            "{svg}"
        );
        assert!(svg.contains(">max 100</text>"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(
            svg.contains("role=\"img\"><title>"),
            "the title first: {svg}"
        );
    }

    #[test]
    fn a_short_history_is_right_aligned_and_a_long_one_cut() {
        let p = points(&sparkline(&[1.0, 2.0], 5, "x"));
        assert_eq!(p[0].0, 3.0 * WIDTH / 4.0);
        assert_eq!(p[1].0, WIDTH);
        let long: Vec<f64> = (0..10).map(f64::from).collect();
        let p = points(&sparkline(&long, 4, "x"));
        assert_eq!(p.len(), 4);
        let y = SPARK_HEIGHT - 1.0 - 6.0 / 9.0 * (SPARK_HEIGHT - 3.0);
        assert!(p[0].0 == 0.0 && (p[0].1 - y).abs() < 0.06, "{p:?}");
    }

    #[test]
    fn empty_and_all_zero_histories() {
        let svg = sparkline(&[], 300, "packets/s");
        assert!(
            svg.contains("<title>packets/s: no samples yet</title>"),
            "{svg}"
        );
        assert!(!svg.contains("polyline"));
        let svg = sparkline(&[0.0, 0.0, f64::NAN, -3.0], 300, "packets/s");
        assert!(
            points(&svg).iter().all(|&(_, y)| y == SPARK_HEIGHT - 1.0),
            "{svg}"
        );
        assert!(
            svg.contains("latest 0, max 0") && svg.contains(">max 0<"),
            "{svg}"
        );
        let svg = strip(&[], 300, "state");
        assert!(
            svg.contains("no samples yet") && !svg.contains("st-"),
            "{svg}"
        );
    }

    #[test]
    fn a_strip_draws_one_rect_per_run_ending_in_the_latest_state() {
        let svg = strip(&["up", "up", "down", "down", "down"], 10, "state");
        assert_eq!(svg.matches("<rect class=\"st-").count(), 2, "{svg}");
        let last = &svg[svg.rfind("<rect").expect("rect")..];
        assert!(
            last.contains("class=\"st-down\"") && last.contains("#d04040"),
            "{last}"
        );
        assert!(svg.contains("<title>state: now down</title>"));
        // Right-aligned: the five samples fill the last half.
        assert!(
            svg.contains("class=\"st-up\" x=\"60.0\" y=\"0\" width=\"24.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"st-down\" x=\"84.0\" y=\"0\" width=\"36.0\""),
            "{svg}"
        );
        // In a long window a run of one sample is still 2 px wide, at the right end.
        let svg = strip(&["up", "down"], 300, "state");
        assert!(
            svg.contains("class=\"st-down\" x=\"118.0\" y=\"0\" width=\"2.0\""),
            "{svg}"
        );
        let svg = strip(&["BACKUP", "MASTER"], 10, "vrrp");
        assert!(
            svg.contains("st-master") && svg.contains("now MASTER"),
            "{svg}"
        );
    }

    #[test]
    fn titles_and_states_are_escaped() {
        let svg = sparkline(&[1.0], 10, "<b>&\"x\"");
        assert!(
            svg.contains("<title>&lt;b&gt;&amp;&quot;x&quot;: latest 1"),
            "{svg}"
        );
        let svg = strip(&["<script>"], 10, "s");
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains("st-&lt;script&gt;") && svg.contains("#d8d8d8"),
            "{svg}"
        );
    }
}
