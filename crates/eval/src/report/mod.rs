//! The files of `--out DIR`: `results.json`, `samples.jsonl`, `report.html`.

mod html;
pub mod svg;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::EvalError;
use crate::results::{Results, SampleRow};

pub use html::render_html;

/// Writes the three files; returns the report's path.
pub fn write_all(dir: &Path, results: &Results, rows: &[SampleRow]) -> Result<PathBuf, EvalError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| EvalError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(results)?).map_err(io(&json))?;
    let samples = dir.join("samples.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&samples).map_err(io(&samples))?);
    for row in rows {
        serde_json::to_writer(&mut out, row)?;
        out.write_all(b"\n").map_err(io(&samples))?;
    }
    out.flush().map_err(io(&samples))?;
    let html = dir.join("report.html");
    std::fs::write(&html, render_html(results)).map_err(io(&html))?;
    Ok(html)
}
