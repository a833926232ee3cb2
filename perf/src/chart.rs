//! The PNG chart of a run: median Mpps per device per scenario with every round's figure as a dot,
//! and the per-round ratio to testpmd io against the target. Drawn with plotters' bitmap backend;
//! text uses a TrueType font read at run time (Debian `fonts-dejavu-core`), so no fontconfig.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::Error;
use crate::report::{RunReport, MIDOGW, TESTPMD_IO};

/// Where the font is looked for, first match wins; `MIDOGW_PERF_FONT` overrides.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

const FAMILY: &str = "sans-serif";

fn load_font() -> Result<(), Error> {
    use std::sync::OnceLock;
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let env = std::env::var("MIDOGW_PERF_FONT").ok();
            let candidates = env.iter().map(String::as_str).chain(FONT_PATHS.iter().copied());
            for path in candidates {
                if let Ok(bytes) = std::fs::read(path) {
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    return register_font(FAMILY, FontStyle::Normal, bytes)
                        .map_err(|_| format!("{path} is not a usable TrueType font"));
                }
            }
            Err(format!(
                "no TrueType font found ({}); install the Debian package fonts-dejavu-core or set MIDOGW_PERF_FONT",
                FONT_PATHS.join(", ")
            ))
        })
        .clone()
        .map_err(Error::Chart)
}

fn colour(dut: &str) -> RGBColor {
    match dut {
        MIDOGW => RGBColor(31, 119, 180),
        TESTPMD_IO => RGBColor(110, 110, 110),
        "testpmd-macswap" => RGBColor(180, 180, 180),
        _ => RGBColor(255, 127, 14),
    }
}

const SCENARIO_COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// Draws the chart of `report` into `path` (PNG).
pub fn draw(report: &RunReport, path: &Path) -> Result<(), Error> {
    load_font()?;
    let e = |err: &dyn std::fmt::Display| Error::Chart(err.to_string());
    let scenarios: Vec<_> = report.scenarios.iter().filter(|s| !s.duts.is_empty()).collect();
    if scenarios.is_empty() {
        return Err(Error::Chart("no throughput figures to draw".into()));
    }
    let width = 520 + 260 * scenarios.len() as u32;
    let root = BitMapBackend::new(path, (width, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (left, right) = root.split_horizontally(width * 3 / 5);

    // Left: median Mpps bars, rounds as dots.
    let duts: Vec<String> = {
        let mut names: Vec<String> = Vec::new();
        for s in &scenarios {
            for d in &s.duts {
                if !names.contains(&d.dut) {
                    names.push(d.dut.clone());
                }
            }
        }
        names
    };
    let ymax = scenarios
        .iter()
        .flat_map(|s| s.duts.iter().flat_map(|d| d.samples.iter().map(|x| x.gen.mpps)))
        .fold(1.0f64, f64::max)
        * 1.2;
    let n = scenarios.len() as f64;
    let mut chart = ChartBuilder::on(&left)
        .caption("Forwarded Mpps (bars: median, dots: rounds)", (FAMILY, 18))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..n, 0f64..ymax)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("Mpps")
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|x| e(&x))?;
    let slot = 0.8 / duts.len() as f64;
    for (i, sc) in scenarios.iter().enumerate() {
        for (j, name) in duts.iter().enumerate() {
            let Some(d) = sc.dut(name) else { continue };
            let x0 = i as f64 + 0.1 + j as f64 * slot;
            let x1 = x0 + slot * 0.9;
            chart
                .draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x1, d.median.mpps)], colour(name).filled())))
                .map_err(|x| e(&x))?;
            let mid = (x0 + x1) / 2.0;
            chart
                .draw_series(d.samples.iter().map(|s| Circle::new((mid, s.gen.mpps), 3, BLACK.filled())))
                .map_err(|x| e(&x))?;
            let label = if name == MIDOGW {
                sc.ratio_to_testpmd_io.as_ref().map(|r| format!("{:.2} x io", r.median))
            } else {
                Some(format!("{:.1}", d.median.mpps))
            };
            if let Some(label) = label {
                let (px, py) = chart.backend_coord(&(x0, d.median.mpps));
                root.draw(&Text::new(label, (px, py - 18), (FAMILY, 12).into_font().color(&BLACK)))
                    .map_err(|x| e(&x))?;
            }
        }
        let (px, py) = chart.backend_coord(&(i as f64 + 0.1, 0.0));
        root.draw(&Text::new(sc.scenario.clone(), (px, py + 8), (FAMILY, 14).into_font().color(&BLACK)))
            .map_err(|x| e(&x))?;
    }
    for (j, name) in duts.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(0.0, ymax));
        let y = py + 6 + 18 * j as i32;
        root.draw(&Rectangle::new([(px + 10, y), (px + 24, y + 12)], colour(name).filled())).map_err(|x| e(&x))?;
        root.draw(&Text::new(name.clone(), (px + 30, y), (FAMILY, 13).into_font().color(&BLACK))).map_err(|x| e(&x))?;
    }

    // Right: per-round ratio to testpmd io, target line.
    let rounds =
        scenarios.iter().map(|s| s.ratio_to_testpmd_io.as_ref().map_or(0, |r| r.per_round.len())).max().unwrap_or(0);
    let rmax = scenarios
        .iter()
        .flat_map(|s| s.ratio_to_testpmd_io.iter().flat_map(|r| r.per_round.iter().copied()))
        .fold(1.2f64, f64::max)
        * 1.1;
    let target = scenarios.first().map(|s| s.target_ratio_io).unwrap_or(0.9);
    let mut ratio = ChartBuilder::on(&right)
        .caption("midogw / testpmd io, per round", (FAMILY, 18))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(48)
        .build_cartesian_2d(0.5f64..(rounds.max(1) as f64 + 0.5), 0f64..rmax)
        .map_err(|x| e(&x))?;
    ratio
        .configure_mesh()
        .x_labels(rounds.max(1))
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .x_desc("round")
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|x| e(&x))?;
    ratio
        .draw_series(LineSeries::new([(0.5, target), (rounds as f64 + 0.5, target)], BLACK.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label(format!("target {target:.2}"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(2)));
    for (i, sc) in scenarios.iter().enumerate() {
        let Some(r) = &sc.ratio_to_testpmd_io else { continue };
        let c = SCENARIO_COLOURS[i % SCENARIO_COLOURS.len()];
        let points: Vec<(f64, f64)> = if r.rounds.len() == r.per_round.len() {
            r.rounds.iter().zip(&r.per_round).map(|(k, v)| (f64::from(*k), *v)).collect()
        } else {
            r.per_round.iter().enumerate().map(|(k, v)| ((k + 1) as f64, *v)).collect()
        };
        ratio
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(format!("{} (median {:.3})", sc.scenario, r.median))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
        ratio.draw_series(points.iter().map(|p| Circle::new(*p, 4, c.filled()))).map_err(|x| e(&x))?;
    }
    ratio
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 12))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::synthetic_report as report;

    #[test]
    fn draws_a_png() {
        if FONT_PATHS.iter().all(|p| !Path::new(p).exists()) && std::env::var("MIDOGW_PERF_FONT").is_err() {
            eprintln!("skipped: no font installed (fonts-dejavu-core)");
            return;
        }
        let r = report(&[9.0, 9.5, 9.2], &[10.0, 10.0, 9.8], None);
        let dir = std::env::temp_dir().join(format!("perf-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chart.png");
        draw(&r, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 5000);
    }
}
