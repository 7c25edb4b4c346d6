//! Bar charts for the benchmark report, without dependencies: grouped horizontal bars
//! written as SVG, and a PNG of it rendered by headless Chromium.
//!
//! Layout, top to bottom: title, legend, one group per category (its name above, one
//! bar per series, the series' name to the left of each bar, the value at its end,
//! "n/a" where a series has no value), then the value axis with its ticks and unit.
//! Every group shares one axis: a chart holds one quantity in one unit.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// One series: a value per category, `None` where it does not apply (e.g. HAProxy
/// and UDP) or was not measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// Chart width in pixels (the height follows from the content).
pub const WIDTH: u32 = 900;

/// Series colours (Tableau 10: distinct, colour-blind friendly, print well).
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
const FONT: &str = "DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif";
const INK: &str = "#222222";
const MUTED: &str = "#666666";
const GRID: &str = "#e4e4e4";

// Geometry, in pixels.
const MARGIN: f64 = 24.0;
/// Left column for the series' names: at least this, wider for long names.
const LABEL_COL_MIN: f64 = 110.0;
/// Right of the plot area: room for the value at the end of the longest bar.
const VALUE_COL: f64 = 92.0;
const TITLE_H: f64 = 46.0;
const LEGEND_ROW: f64 = 24.0;
const GROUP_HEAD: f64 = 28.0;
const BAR: f64 = 20.0;
const BAR_GAP: f64 = 6.0;
const GROUP_GAP: f64 = 18.0;
const AXIS_H: f64 = 56.0;

/// A grouped horizontal bar chart: one group per category, one bar per series.
/// Values are drawn from zero (negative ones as zero-length bars); `None`, NaN and
/// infinities are shown as "n/a". `unit` labels the axis.
pub fn bar_chart_svg(title: &str, unit: &str, categories: &[String], series: &[Series]) -> String {
    let width = f64::from(WIDTH);
    let longest = series
        .iter()
        .map(|s| text_width(&s.label, 13.0))
        .fold(0.0, f64::max);
    let plot_x = MARGIN + (longest + 16.0).clamp(LABEL_COL_MIN, width / 3.0);
    let plot_w = width - plot_x - VALUE_COL;
    let value = |s: &Series, c: usize| s.values.get(c).copied().flatten().filter(|v| v.is_finite());

    let max = series
        .iter()
        .flat_map(|s| (0..categories.len()).filter_map(move |c| value(s, c)))
        .fold(0.0f64, f64::max);
    let (step, top) = nice_axis(max);
    let decimals = decimals(max);
    let x_of = |v: f64| plot_x + (v.max(0.0) / top * plot_w).min(plot_w);
    let ticks: Vec<(f64, f64)> = (0..=(top / step).round() as usize)
        .map(|t| {
            let v = t as f64 * step;
            (v, x_of(v).round() + 0.5)
        })
        .collect();

    // Legend entries laid out left to right, wrapping.
    let mut legend = Vec::with_capacity(series.len());
    let (mut lx, mut rows) = (MARGIN, 1.0);
    for s in series {
        let w = 18.0 + text_width(&s.label, 13.0) + 20.0;
        if lx + w > width - MARGIN && lx > MARGIN {
            lx = MARGIN;
            rows += 1.0;
        }
        legend.push((lx, TITLE_H + (rows - 1.0) * LEGEND_ROW));
        lx += w;
    }
    let legend_h = if series.is_empty() {
        0.0
    } else {
        rows * LEGEND_ROW + 10.0
    };

    let bars_h = series.len() as f64 * (BAR + BAR_GAP) - BAR_GAP;
    let group_h = GROUP_HEAD + bars_h + GROUP_GAP;
    let plot_top = TITLE_H + legend_h;
    let plot_bottom = plot_top + categories.len() as f64 * group_h - GROUP_GAP;
    let height = (plot_bottom + AXIS_H).ceil();

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="13" fill="{INK}">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{MARGIN}" y="30" font-size="19" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for ((x, y), (i, s)) in legend.iter().zip(series.iter().enumerate()) {
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="13" height="13" rx="2" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y + 2.0,
            colour(i),
            x + 18.0,
            y + 13.5,
            esc(&s.label)
        );
    }

    for (c, category) in categories.iter().enumerate() {
        let gy = plot_top + c as f64 * group_h;
        let _ = writeln!(
            svg,
            r#"<text x="{MARGIN}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
            gy + 18.0,
            esc(category)
        );
        // Grid behind the group's bars; the zero line over their base, after them.
        let (y0, y1) = (
            gy + GROUP_HEAD - BAR_GAP,
            gy + GROUP_HEAD + bars_h + BAR_GAP,
        );
        let _ = writeln!(svg, r#"<g stroke="{GRID}" stroke-width="1">"#);
        for (_, x) in ticks.iter().skip(1) {
            let _ = writeln!(svg, r#"<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}"/>"#);
        }
        let _ = writeln!(svg, "</g>");
        for (i, s) in series.iter().enumerate() {
            let y = gy + GROUP_HEAD + i as f64 * (BAR + BAR_GAP);
            let mid = y + BAR / 2.0 + 4.5;
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{mid}" text-anchor="end" fill="{MUTED}">{}</text>"#,
                plot_x - 10.0,
                esc(&s.label)
            );
            match value(s, c) {
                Some(v) => {
                    let end = x_of(v);
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{plot_x}" y="{y}" width="{:.1}" height="{BAR}" fill="{}"/><text x="{}" y="{mid}">{}</text>"#,
                        (end - plot_x).max(0.0),
                        colour(i),
                        end + 6.0,
                        value_label(v, decimals)
                    );
                }
                None => {
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{}" y="{}" width="40" height="{}" fill="none" stroke="{}" stroke-dasharray="3 3"/><text x="{}" y="{mid}" fill="{MUTED}" font-style="italic">n/a</text>"#,
                        plot_x + 0.5,
                        y + 0.5,
                        BAR - 1.0,
                        colour(i),
                        plot_x + 48.0
                    );
                }
            }
        }
        let _ = writeln!(
            svg,
            r##"<line x1="{0}" y1="{y0}" x2="{0}" y2="{y1}" stroke="#888888" stroke-width="1"/>"##,
            plot_x.round() + 0.5
        );
    }

    // The value axis under the last group.
    let axis_y = plot_bottom + 10.0;
    let _ = writeln!(
        svg,
        r##"<g stroke="#888888" stroke-width="1"><line x1="{}" y1="{axis_y}" x2="{}" y2="{axis_y}"/>"##,
        plot_x.round() + 0.5,
        ticks.last().map_or(plot_x + plot_w, |t| t.1)
    );
    for (_, x) in &ticks {
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{axis_y}" x2="{x}" y2="{}"/>"#,
            axis_y + 4.0
        );
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(
        svg,
        r#"<g fill="{MUTED}" font-size="12" text-anchor="middle">"#
    );
    for (v, x) in &ticks {
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{}">{}</text>"#,
            axis_y + 18.0,
            tick_label(*v, step)
        );
    }
    let _ = writeln!(svg, "</g>");
    if !unit.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" fill="{MUTED}" text-anchor="middle">{}</text>"#,
            plot_x + plot_w / 2.0,
            axis_y + 38.0,
            esc(unit)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Renders `svg_path` into `png_path` with headless Chromium, at the SVG's size.
pub fn render_png(svg_path: &Path, png_path: &Path) -> Result<()> {
    let svg = std::fs::read_to_string(svg_path)
        .with_context(|| format!("read {}", svg_path.display()))?;
    let (w, h) = svg_size(&svg).with_context(|| {
        format!(
            "{}: no width/height on the <svg> element",
            svg_path.display()
        )
    })?;
    let svg_abs = svg_path
        .canonicalize()
        .with_context(|| format!("resolve {}", svg_path.display()))?;
    let png_abs = absolute(png_path)?;
    let profile = TempDir::new("lb-bench-chromium")?;
    // Chromium's log goes to a file: a pipe nobody reads while waiting could fill.
    let log_path = profile.0.join("chromium.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("create {}", log_path.display()))?;
    let _ = std::fs::remove_file(&png_abs);
    let mut child = match Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("--screenshot={}", png_abs.display()))
        .arg(file_url(&svg_abs))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "chromium is not installed (needed to render {} as PNG; e.g. apt-get install chromium)",
            svg_path.display()
        ),
        Err(e) => return Err(e).context("start chromium"),
    };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("wait for chromium")? {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "chromium did not finish rendering {} within 60 s",
                svg_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() || !png_abs.is_file() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!(
            "chromium could not render {} ({status}): {}",
            svg_path.display(),
            log.trim()
        );
    }
    Ok(())
}

/// A profile directory of its own for one Chromium run, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("current directory")?
        .join(p))
}

/// `file://` URL of an absolute path (the characters a URL reserves escaped).
fn file_url(p: &Path) -> String {
    let mut url = String::from("file://");
    for ch in p.to_string_lossy().chars() {
        match ch {
            ' ' => url.push_str("%20"),
            '#' => url.push_str("%23"),
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            c => url.push(c),
        }
    }
    url
}

/// Width and height (whole pixels) of the root `<svg>` element.
fn svg_size(svg: &str) -> Option<(u32, u32)> {
    let start = svg.find("<svg")?;
    let tag = &svg[start..start + svg[start..].find('>')?];
    let attr = |name: &str| -> Option<u32> {
        let pat = format!(" {name}=\"");
        let from = tag.find(&pat)? + pat.len();
        let v = &tag[from..from + tag[from..].find('"')?];
        let v: f64 = v.trim_end_matches("px").parse().ok()?;
        Some(v.ceil() as u32)
    };
    Some((attr("width")?, attr("height")?))
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Tick step (1, 2, 2.5 or 5 times a power of ten) giving 4 to 8 intervals, and the
/// axis end (a whole number of steps at or above `max`).
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 5.0);
    }
    let raw = max / 5.0;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| max / s <= 8.0)
        .unwrap_or(10.0 * pow);
    let top = (max / step).ceil().max(1.0) * step;
    (step, top)
}

/// A tick value, short: 0, 250, 2.5k, 40k, 1.5M, 2G.
fn tick_label(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let (div, suffix) = if step >= 1e9 || v >= 1e9 && step >= 1e8 {
        (1e9, "G")
    } else if step >= 1e6 || v >= 1e6 && step >= 1e5 {
        (1e6, "M")
    } else if step >= 1e3 || v >= 1e3 && step >= 1e2 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / div;
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{suffix}")
}

/// Decimals of the value labels of a chart whose largest value is `max`: the same
/// for every bar, at least three significant digits on the largest.
fn decimals(max: f64) -> usize {
    match max {
        m if m >= 1000.0 => 0,
        m if m >= 10.0 => 1,
        m if m >= 1.0 => 2,
        _ => 3,
    }
}

/// A bar's value with `decimals` decimals; whole numbers from 10,000 on grouped.
fn value_label(v: f64, decimals: usize) -> String {
    if decimals == 0 && v.abs() >= 1e4 {
        group_thousands(v.round() as i64)
    } else {
        format!("{v:.decimals$}")
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Rough width of `s` in the chart's sans-serif at `size` px (for the legend layout).
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.56
}

/// XML text escaping.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_axis(0.0), (1.0, 5.0));
        assert_eq!(nice_axis(9.4), (2.0, 10.0));
        assert_eq!(nice_axis(123_456.0), (20_000.0, 140_000.0));
        assert_eq!(nice_axis(1000.0), (200.0, 1000.0));
    }

    #[test]
    fn labels() {
        assert_eq!(tick_label(2500.0, 500.0), "2.5k");
        assert_eq!(tick_label(0.0, 500.0), "0");
        assert_eq!(tick_label(1_500_000.0, 500_000.0), "1.5M");
        assert_eq!(value_label(123_456.4, decimals(200_000.0)), "123,456");
        assert_eq!(value_label(9.412, decimals(9.9)), "9.41");
        assert_eq!(value_label(100.0, decimals(100.0)), "100.0");
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn size_is_read_back() {
        let svg = bar_chart_svg(
            "t",
            "u",
            &["a".to_string()],
            &[Series {
                label: "s".into(),
                values: vec![None],
            }],
        );
        let (w, h) = svg_size(&svg).expect("size");
        assert_eq!(w, WIDTH);
        assert!(h > 100, "{h}");
        assert!(svg.contains("n/a"));
    }
}
