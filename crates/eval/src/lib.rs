//! Evaluation: sample free-form answers from models, judge their alignment and coherence,
//! scan code answers, and report misaligned and insecure-code rates with intervals.
//!
//! - [`suite`], [`builtin`]: suites in the study's YAML format and coding-prompt JSONL;
//! - [`plan`]: a run's configuration and its work items (content-addressed samples);
//! - [`backends`]: samplers and judges (OpenAI-compatible servers, the local runtime, the
//!   local judge);
//! - [`runner`]: bounded-concurrency sampling and judging, stored as it completes;
//! - [`stats`], [`results`]: rates, intervals, comparisons; [`report`]: the files of `--out`;
//! - [`session`]: start, resume or join a run; [`progress`]: how far it is, shown.

pub mod backends;
pub mod builtin;
pub mod plan;
pub mod progress;
pub mod report;
pub mod results;
pub mod runner;
pub mod session;
pub mod stats;
pub mod suite;

pub use plan::{RunConfig, SampleSettings};
pub use results::Results;
pub use session::{EvalOptions, Session};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Suite(#[from] suite::SuiteError),
    #[error(transparent)]
    Backend(#[from] backends::BackendError),
    #[error(transparent)]
    Store(#[from] emguard_store::StoreError),
    #[error("stored item does not match this version's format: {0}")]
    CorruptItem(#[source] serde_json::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Invalid(String),
}
