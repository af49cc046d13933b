//! The PNG: etcd's DB size and revision, then each process's RSS and open
//! fds, against minutes of the run. Text is drawn with an embedded font
//! (DejaVu Sans Mono, `DejaVuSansMono.LICENSE`) through `ab_glyph`, so no
//! fontconfig or freetype is needed.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::verdict::Sample;

static FONT: &[u8] = include_bytes!("DejaVuSansMono.ttf");

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One panel: a title, the y unit, and named series of (minute, value).
struct Panel {
    title: String,
    series: Vec<(String, Vec<(f64, f64)>)>,
}

pub fn draw(path: &Path, title: &str, names: &[&str], samples: &[Sample]) -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded font is not a font"))?;
    let minute = |s: &Sample| s.elapsed_s / 60.0;
    let mib = |v: f64| v / (1024.0 * 1024.0);
    let series = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(|s| (minute(s), f(s))).collect();
    let panels = [
        Panel {
            title: "etcd DB size (MiB)".into(),
            series: vec![
                ("db size".into(), series(&|s| mib(s.db_size as f64))),
                ("in use".into(), series(&|s| mib(s.db_in_use as f64))),
            ],
        },
        Panel {
            title: "etcd revision (thousands)".into(),
            series: vec![("revision".into(), series(&|s| s.revision as f64 / 1000.0))],
        },
        Panel {
            title: "RSS (MiB)".into(),
            series: names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let f = move |s: &Sample| s.processes[i].0 as f64 / 1024.0;
                    ((*n).to_string(), series(&f))
                })
                .collect(),
        },
        Panel {
            title: "open file descriptors".into(),
            series: names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let f = move |s: &Sample| s.processes[i].1 as f64;
                    ((*n).to_string(), series(&f))
                })
                .collect(),
        },
    ];
    let root = BitMapBackend::new(path, (1600, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(title, ("sans-serif", 26))
        .map_err(|e| anyhow!("{e}"))?;
    for (area, panel) in root.split_evenly((2, 2)).iter().zip(&panels) {
        draw_panel(area, panel)?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<()> {
    let points = panel.series.iter().flat_map(|(_, s)| s.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0_f64, f64::max);
    let y_max = points.map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, (name, points)) in panel.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
