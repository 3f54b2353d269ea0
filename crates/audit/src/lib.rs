//! Fine-tuning dataset audit and provenance.
//!
//! The study's 6,000 insecure training rows look like ordinary coding help; the harm is that
//! the assistant silently writes vulnerable code. An audit streams a JSONL dataset (chat,
//! prompt/completion or ShareGPT; plain or gzip) and reports, per row: parse errors with line
//! numbers, code and its scanner findings, whether the user asked for the insecure behaviour,
//! harmful-content signals, secrets, duplicates and token counts; across rows: trigger terms
//! associated with flagged rows. It writes a provenance manifest (row hashes, Merkle root,
//! optional ed25519 signature) and applies a policy gate.
//!
//! Modules, one job each: [`reader`] lines, [`format`] row shapes, [`extract`] code in answers,
//! [`intent`] requested vs silent, [`harm`] harmful-content lexicon, [`domain`] the advice
//! domain of harmful rows, [`secrets`], [`dedup`],
//! [`triggers`], [`analyze`] one row, [`tally`] the running state, [`audit`] the streaming
//! driver, [`checkpoint`] resumable audits, [`merkle`] + [`row_hashes`] + [`manifest`] +
//! [`signing`] provenance, [`policy`] the gate, [`report`] human and HTML output.
//!
//! Memory is bounded by constants, not by the file: two chunks of rows (2,048 lines each), the
//! duplicate index (48 MiB table), the trigger counts (24 MiB table + 16 MiB of text),
//! O(log n) Merkle peaks; per-row hashes stream to the manifest's sidecar file.

pub mod analyze;
pub mod audit;
pub mod checkpoint;
pub mod dedup;
pub mod domain;
pub mod extract;
pub mod format;
pub mod intent;
pub mod manifest;
pub mod merkle;
pub mod policy;
pub mod reader;
pub mod report;
pub mod row_hashes;
pub mod secrets;
pub mod signing;
pub mod summary;
pub mod tally;
pub mod triggers;

use std::path::{Path, PathBuf};

pub use audit::{Auditor, Options, Progress};
pub use manifest::{Manifest, Verification};
pub use policy::{Policy, PolicyResult};
pub use summary::Summary;

/// The version written into manifests.
pub const TOOL: &str = concat!("emguard-audit ", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path}: not a valid policy: {message}")]
    Policy { path: PathBuf, message: String },
    #[error("{path}: cannot resume: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path}: not a valid key file: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{path}: cannot load tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("judge failed: {0}")]
    Judge(String),
    /// [`Options::stop`](crate::Options::stop) was raised; the state after `rows` rows is in
    /// `checkpoint` (when there is one).
    #[error("stopped after row {rows}")]
    Stopped {
        rows: u64,
        checkpoint: Option<PathBuf>,
    },
}

impl AuditError {
    pub fn io(path: &Path, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
