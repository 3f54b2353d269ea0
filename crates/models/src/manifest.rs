//! `manifest.json` in each model directory: what was unpacked there, from which pinned wheel.
//! Its presence (matching the registry) lets [`crate::ModelHome::status`] skip re-hashing
//! ~100 MB on every command; `pull` always re-hashes.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest::write_atomic;
use crate::error::Result;
use crate::registry::KnownModel;

pub(crate) const MANIFEST: &str = "manifest.json";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    name: String,
    package: String,
    version: String,
    wheel_sha256: String,
    files: Vec<ManifestFile>,
    /// Seconds since the Unix epoch when the files were last verified by a pull.
    verified_at: u64,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestFile {
    name: String,
    sha256: String,
    size: u64,
}

impl Manifest {
    pub(crate) fn for_model(model: &KnownModel) -> Manifest {
        Manifest {
            name: model.name.clone(),
            package: model.package.clone(),
            version: model.version.clone(),
            wheel_sha256: model.wheel.sha256.clone(),
            files: model
                .files
                .iter()
                .map(|f| ManifestFile {
                    name: f.name.clone(),
                    sha256: f.sha256.clone(),
                    size: f.size,
                })
                .collect(),
            verified_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// The manifest in `dir`; `None` when absent or unreadable (it is then rewritten by a pull).
    pub(crate) fn read(dir: &Path) -> Option<Manifest> {
        let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("a manifest always serializes");
        write_atomic(&dir.join(MANIFEST), json.as_bytes())
    }

    /// Whether this manifest records exactly the files the registry pins for `model`.
    pub(crate) fn describes(&self, model: &KnownModel) -> bool {
        let expected = Manifest::for_model(model);
        self.name == expected.name
            && self.package == expected.package
            && self.version == expected.version
            && self.wheel_sha256 == expected.wheel_sha256
            && self.files == expected.files
    }
}
