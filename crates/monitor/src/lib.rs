//! emguard's online monitor: watches the answers a gateway serves, per model version, and
//! acts when a version misbehaves.
//!
//! - [`Monitor`]: samples answers (a configured share; every answer a filter flagged) into a
//!   bounded queue that never blocks a request (drops are counted), judges them on a thread of
//!   its own with the local judge (or an LLM judge endpoint), scans their code, stores the
//!   judgements beside the traces, and keeps each version's figures with 95% intervals;
//! - [`assess`]: the decisions, by sequential probability ratio tests ([`stats`]) against the
//!   limits of the model's [`Playbook`];
//! - [`rollout`]: canary weights, stable assignment of users to versions, promote/abort,
//!   pins, shared by replicas through the store;
//! - incidents with evidence and a time line, and signed [`webhook`] alerts.
//!
//! The statistics and their guarantees are explained in docs/monitor.md.

pub mod assess;
pub mod config;
mod monitor;
pub mod playbook;
pub mod rollout;
pub mod stats;
pub mod webhook;

pub use config::{JudgeSetting, MonitorConfig};
pub use monitor::{Monitor, MonitorError, Sample};
pub use playbook::{Limits, Mode, Playbook, PlaybookError};
pub use rollout::{Actor, RolloutError, Rollouts, RouteTable, assign};

pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
