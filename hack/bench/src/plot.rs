//! Line charts in a PNG for the benchmarks' time series (the soak's
//! resources, the density run's pod counts): panels in a grid, each with
//! named series. Text is drawn with an embedded font (DejaVu Sans Mono,
//! `soak/DejaVuSansMono.LICENSE`) through `ab_glyph`, so no fontconfig or
//! freetype is needed.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("soak/DejaVuSansMono.ttf");

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One chart: its title and named series of (x, y) points.
pub struct Panel {
    /// Printed above the chart.
    pub title: String,
    /// Each line's legend and points.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws `panels` row by row into a `rows` × `columns` grid under `title`,
/// every x axis labelled `x_desc`, into a PNG at `path`.
pub fn draw(
    path: &Path,
    title: &str,
    x_desc: &str,
    (rows, columns): (usize, usize),
    panels: &[Panel],
) -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded font is not a font"))?;
    let width = u32::try_from(columns.max(1) * 800).unwrap_or(1600);
    let height = u32::try_from(rows.max(1) * 550).unwrap_or(1100);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(title, ("sans-serif", 26))
        .map_err(|e| anyhow!("{e}"))?;
    for (area, panel) in root.split_evenly((rows, columns)).iter().zip(panels) {
        draw_panel(area, x_desc, panel)?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    x_desc: &str,
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
        .x_desc(x_desc)
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
