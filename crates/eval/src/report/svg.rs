//! Hand-written inline SVG: horizontal grouped bars with 95% interval whiskers. No scripts,
//! no external fonts: the report opens offline. Bars, whiskers and legend entries carry the
//! classes `bar`, `whisker` and `legend`, which the report's self-check counts.

use std::fmt::Write;

/// One bar: value and interval, all in 0..=1.
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

pub struct Series<'a> {
    pub name: &'a str,
    /// One per category; `None` = no data.
    pub bars: Vec<Option<Bar>>,
}

const PALETTE: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];
const LABEL_W: f64 = 250.0;
const PLOT_W: f64 = 520.0;
const BAR_H: f64 = 11.0;
const GAP: f64 = 8.0;
const TOP: f64 = 34.0;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Rates (0..=1) of several series per category, as percentages.
pub fn hbars(id: &str, title: &str, categories: &[String], series: &[Series<'_>]) -> String {
    let x_max = series
        .iter()
        .flat_map(|s| s.bars.iter().flatten())
        .map(|b| b.high.max(b.value))
        .fold(0.05_f64, f64::max)
        .min(1.0);
    let x_max = (x_max * 10.0).ceil() / 10.0;
    let group_h = series.len() as f64 * BAR_H + GAP;
    let legend_h = 18.0 * series.len() as f64;
    let height = TOP + categories.len() as f64 * group_h + 30.0 + legend_h;
    let width = LABEL_W + PLOT_W + 70.0;
    let x = |v: f64| LABEL_W + (v / x_max).clamp(0.0, 1.0) * PLOT_W;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="figure" id="{id}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{t}" font-family="sans-serif" font-size="11">"#,
        t = escape(title)
    );
    let _ = write!(
        s,
        r#"<text x="{LABEL_W}" y="16" font-size="13" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let plot_bottom = TOP + categories.len() as f64 * group_h;
    for tick in 0..=5 {
        let v = x_max * f64::from(tick) / 5.0;
        let tx = x(v);
        let _ = write!(
            s,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{plot_bottom}" stroke="#ddd"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{:.0}%</text>"##,
            plot_bottom + 14.0,
            v * 100.0
        );
    }
    for (c, category) in categories.iter().enumerate() {
        let y0 = TOP + c as f64 * group_h;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_W - 6.0,
            y0 + group_h / 2.0,
            escape(category)
        );
        for (k, serie) in series.iter().enumerate() {
            let Some(bar) = serie.bars.get(c).copied().flatten() else {
                continue;
            };
            let y = y0 + k as f64 * BAR_H;
            let colour = PALETTE[k % PALETTE.len()];
            let mid = y + BAR_H / 2.0 - 0.5;
            let _ = write!(
                s,
                r##"<rect class="bar" x="{LABEL_W}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.8"><title>{}: {:.1}% [{:.1}, {:.1}]</title></rect><line class="whisker" x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#222"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222"/>"##,
                (x(bar.value) - LABEL_W).max(0.5),
                BAR_H - 1.0,
                escape(serie.name),
                bar.value * 100.0,
                bar.low * 100.0,
                bar.high * 100.0,
                x(bar.low),
                x(bar.high),
                x(bar.low),
                y + 2.0,
                x(bar.low),
                y + BAR_H - 3.0,
                x(bar.high),
                y + 2.0,
                x(bar.high),
                y + BAR_H - 3.0,
            );
        }
    }
    for (k, serie) in series.iter().enumerate() {
        let y = plot_bottom + 28.0 + 18.0 * k as f64;
        let _ = write!(
            s,
            r#"<g class="legend"><rect x="{LABEL_W}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
            y - 10.0,
            PALETTE[k % PALETTE.len()],
            LABEL_W + 18.0,
            y,
            escape(serie.name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_bar_and_whisker_per_value_and_escapes_names() {
        let svg = hbars(
            "f",
            "t",
            &["q1".into(), "q2".into()],
            &[
                Series {
                    name: "a<b",
                    bars: vec![
                        Some(Bar {
                            value: 0.2,
                            low: 0.1,
                            high: 0.3,
                        }),
                        None,
                    ],
                },
                Series {
                    name: "c",
                    bars: vec![
                        Some(Bar {
                            value: 0.0,
                            low: 0.0,
                            high: 0.1,
                        }),
                        Some(Bar {
                            value: 0.5,
                            low: 0.4,
                            high: 0.6,
                        }),
                    ],
                },
            ],
        );
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
        assert_eq!(svg.matches("class=\"whisker\"").count(), 3);
        assert_eq!(svg.matches("class=\"legend\"").count(), 2);
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }
}
