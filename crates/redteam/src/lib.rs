//! Red-teaming: probe a model for misaligned behaviour that plain questions do not show.
//!
//! - [`probe`]: probe families, one YAML file each (format in docs/redteam.md); [`builtin`]:
//!   the shipped suite;
//! - [`mutate`]: operators applied to a probe's question (encodings, the attacker's
//!   paraphrases and translations);
//! - [`plan`]: a run's configuration, its variants and slots, the keys of stored answers;
//! - [`work`]: sampling through eval's [`Sampler`](emguard_eval::backends::Sampler)s, scoring
//!   with eval's [`Judge`](emguard_eval::backends::Judge) or the scanner, the attacker's refine
//!   loop, all stored in the store so a rerun resumes; [`share`]: several worker processes on
//!   one run in PostgreSQL, with eval's claims; [`continuous`]: cycles on each gateway
//!   model version opening incidents in the gateway's monitor store (`--every`, and the
//!   gateway config's `redteam:` section, [`section`]);
//! - [`report`]: attack success per family and probe with 95% intervals, the hits, and
//!   regression probes made from them; [`html`]: the report as a self-contained page.

pub mod builtin;
pub mod continuous;
pub mod html;
pub mod mutate;
pub mod plan;
pub mod probe;
pub mod report;
pub mod section;
pub mod session;
pub mod share;
pub mod work;

#[derive(Debug, thiserror::Error)]
pub enum RedteamError {
    #[error(transparent)]
    Probe(#[from] probe::ProbeError),
    #[error(transparent)]
    Backend(#[from] emguard_eval::backends::BackendError),
    #[error(transparent)]
    Store(#[from] emguard_store::StoreError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Invalid(String),
}
