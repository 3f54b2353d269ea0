//! The release gate: what a team shows before a fine-tuned model ships.
//!
//! - [`card`]: a Hugging Face model card (README.md with YAML front matter and a
//!   `model-index`) written from an eval run, a dataset audit and user-written sections;
//! - [`gate`]: pass/fail conditions for CI read from a policy file, as a table and JUnit XML;
//! - [`attest`]: in-toto Statements in DSSE envelopes ([`dsse`], [`statement`]) signed with the
//!   audit's ed25519 keys, and the check of the whole chain: dataset, model file, eval run, card;
//! - [`model_signing`]: the model signature in the OpenSSF model-signing format (PyPI
//!   `model-signing`, key-based mode, ECDSA P-256).
//!
//! [`eval_run`] is the one module that reads an eval run's `results.json`; everything else
//! sees its [`eval_run::EvalRun`]. [`yaml`] reads the user's YAML files with errors that name
//! the file, line and field.

pub mod attest;
pub mod card;
pub mod digest;
pub mod dsse;
pub mod eval_run;
pub mod gate;
pub mod model_signing;
pub mod statement;
pub mod yaml;

use std::path::{Path, PathBuf};

/// Where predicate types and the card's provenance key point: the project's repository.
pub const PROJECT_URL: &str = env!("CARGO_PKG_REPOSITORY");

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A YAML file the user wrote; `line` is 0 when the parser could not place the error.
    #[error("{}", yaml_location(path, *line, *column, message))]
    Yaml {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    /// A file of the wrong shape (results.json, a card, an envelope, ...).
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Arguments that do not fit together (a model the run does not have, ...).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Audit(#[from] emguard_audit::AuditError),
}

fn yaml_location(path: &Path, line: u64, column: u64, message: &str) -> String {
    if line == 0 {
        format!("{}: {message}", path.display())
    } else {
        format!("{}:{line}:{column}: {message}", path.display())
    }
}

impl ReleaseError {
    pub fn io(path: &Path, source: std::io::Error) -> ReleaseError {
        ReleaseError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn invalid(path: &Path, message: impl Into<String>) -> ReleaseError {
        ReleaseError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
