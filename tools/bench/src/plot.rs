//! PNG line charts of a scenario's series (plotters' bitmap backend, encoded with `png`).
//!
//! Text needs a font: plotters is built with `ab_glyph` (pure Rust) rather than `ttf`
//! (font-kit + FreeType), so a TrueType file is loaded at run time — `HERALD_BENCH_FONT`, or
//! the first of a few common system paths. Without one, charts are skipped with a note.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use crate::scenarios::Plot;

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a font once; false when none could be found.
fn font_ready() -> bool {
    *FONT.get_or_init(|| {
        let candidates = std::env::var("HERALD_BENCH_FONT")
            .ok()
            .into_iter()
            .chain(FONT_PATHS.iter().map(|p| (*p).to_owned()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps fonts for the life of the process; leaking one is the API.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

static FONT: OnceLock<bool> = OnceLock::new();

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 520;

/// Draws `plot` into `path` (PNG).
pub fn draw(plot: &Plot, path: &Path) -> anyhow::Result<()> {
    if !font_ready() {
        anyhow::bail!("no TrueType font found (set HERALD_BENCH_FONT)");
    }
    let points = plot.series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max) * 1.02;
    let y_max = points.map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut buf = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .caption(&plot.title, ("sans-serif", 20))
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc(&plot.x_label)
            .y_desc(&plot.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, (label, pts)) in plot.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    encode(&buf, path)
}

fn encode(rgb: &[u8], path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_a_png_when_a_font_exists() {
        if !super::font_ready() {
            return; // Nothing to check on a machine without fonts.
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.png");
        let plot = crate::scenarios::Plot {
            stem: "t".into(),
            title: "test".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![("a".into(), vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)])],
        };
        super::draw(&plot, &path).expect("draw");
        let bytes = std::fs::read(&path).expect("png written");
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
