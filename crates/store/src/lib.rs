//! Persistence for evaluation runs: SQLite by default (one file), PostgreSQL for teams
//! (several workers share one run).
//!
//! The model is deliberately small and content-addressed so that finished work is never redone:
//! - a **sample** is one generated answer, keyed by a hash of everything that determines it
//!   (model, prompt, sampling parameters, seed, sample index): any run that needs the same
//!   sample finds it already stored;
//! - a **judgement** is a JSON verdict on a sample by one judge, keyed by (sample key, judge key);
//! - a **run** is a configuration plus an ordered list of **items** (sample key, judge key and
//!   the caller's JSON spec of how to produce them). An item is done when its judgement exists.
//!
//! Workers [`Store::claim`] pending items with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`),
//! write samples and judgements as each completes, and a crashed worker's items become
//! claimable again when its lease runs out.

pub mod gateway;
pub mod monitor;
mod postgres;
pub mod review;
mod sqlite;

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite store {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("PostgreSQL store: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("run `{0}` does not exist in this store")]
    NoSuchRun(String),
    #[error("run `{0}` already exists in this store")]
    RunExists(String),
    #[error("API key `{0}` already exists in this store")]
    KeyExists(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A run's identity and the configuration it was started with.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub id: String,
    pub config: Value,
    /// Unix seconds.
    pub created_at: f64,
}

/// One unit of work of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    /// Position in the run (stable order for reports).
    pub seq: i64,
    pub sample_key: String,
    pub judge_key: String,
    /// Everything the caller needs to produce the sample and its judgement.
    pub spec: Value,
}

/// An item with whatever is stored for it so far.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemState {
    pub seq: i64,
    pub sample_key: String,
    pub judge_key: String,
    pub spec: Value,
    pub answer: Option<String>,
    pub judgement: Option<Value>,
}

/// How far a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub total: u64,
    pub judged: u64,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// A store handle. `Send + Sync`; every method blocks (call it from `spawn_blocking` in async
/// code: the PostgreSQL client runs its own runtime).
pub struct Store {
    backend: Backend,
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sqlite($b) => $e,
            Backend::Postgres($b) => $e,
        }
    };
}

impl Store {
    /// `postgres://...` or `postgresql://...` opens PostgreSQL; anything else is a SQLite file
    /// path (created with its tables when missing).
    pub fn open(location: &str) -> Result<Store> {
        let backend =
            if location.starts_with("postgres://") || location.starts_with("postgresql://") {
                Backend::Postgres(postgres::Postgres::connect(location)?)
            } else {
                Backend::Sqlite(sqlite::Sqlite::open(location)?)
            };
        Ok(Store { backend })
    }

    /// Whether several processes may work on one run at once.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    pub fn create_run(&self, id: &str, config: &Value) -> Result<()> {
        dispatch!(self, b => b.create_run(id, config))
    }

    pub fn run(&self, id: &str) -> Result<RunInfo> {
        dispatch!(self, b => b.run(id))?.ok_or_else(|| StoreError::NoSuchRun(id.to_string()))
    }

    /// Adds items; ones already present (same run and seq) are left as they are.
    pub fn add_items(&self, run_id: &str, items: &[NewItem]) -> Result<()> {
        dispatch!(self, b => b.add_items(run_id, items))
    }

    /// Claims up to `limit` items that have no judgement yet and are unclaimed or whose claim
    /// is older than `lease`, for `worker`. Returns them with any stored answer.
    pub fn claim(
        &self,
        run_id: &str,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ItemState>> {
        dispatch!(self, b => b.claim(run_id, worker, limit, lease))
    }

    /// Renews `worker`'s claims on these items (their lease starts again now): a worker
    /// calls it while it works on them, so a lease shorter than a queued item's wait does
    /// not hand the item to another worker. Items claimed by someone else are left alone.
    pub fn renew_claims(&self, run_id: &str, worker: &str, seqs: &[i64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        dispatch!(self, b => b.renew_claims(run_id, worker, seqs))
    }

    /// Drops every claim on the run (a single-process resume: nobody else holds them).
    pub fn release_claims(&self, run_id: &str) -> Result<()> {
        dispatch!(self, b => b.release_claims(run_id))
    }

    /// Stores an answer; the first stored answer for a key wins.
    pub fn put_sample(&self, key: &str, answer: &str, meta: &Value) -> Result<()> {
        dispatch!(self, b => b.put_sample(key, answer, meta))
    }

    pub fn sample(&self, key: &str) -> Result<Option<String>> {
        dispatch!(self, b => b.sample(key))
    }

    /// Stores a judgement; the first stored one for (sample, judge) wins.
    pub fn put_judgement(&self, sample_key: &str, judge_key: &str, value: &Value) -> Result<()> {
        dispatch!(self, b => b.put_judgement(sample_key, judge_key, value))
    }

    /// Every item of the run in `seq` order, with answers and judgements where stored.
    pub fn items(&self, run_id: &str) -> Result<Vec<ItemState>> {
        dispatch!(self, b => b.items(run_id))
    }

    pub fn progress(&self, run_id: &str) -> Result<Progress> {
        dispatch!(self, b => b.progress(run_id))
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
