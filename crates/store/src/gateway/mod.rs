//! What the gateway persists: one trace per request, API keys (their hashes, never the
//! secrets) and which version of each model is active. SQLite (WAL) by default, PostgreSQL
//! when several gateway replicas share one store.
//!
//! Layout: the fields a query filters on (`time`, `key_id`, `model`, `status`) are indexed
//! columns; the whole record is one JSON document next to them. Both backends then share one
//! mapping (here), and a field added to a record needs no migration. In PostgreSQL the
//! document is `TEXT` rather than `jsonb` because `jsonb` rejects `\u0000`, which a client may
//! well send; query it with `record::jsonb ->> 'version'`.
//!
//! Every method blocks: call them from a thread of their own or `spawn_blocking`.

mod postgres;
mod sqlite;

use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};

/// Everything the gateway knows about one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Request id (e.g. `chatcmpl-…`); unique.
    pub id: String,
    /// Unix seconds at request start.
    pub time: f64,
    pub key_id: Option<String>,
    /// The model id the client asked for.
    pub model: String,
    /// The version that answered (after any fallback).
    pub version: Option<String>,
    /// E.g. `local:smollm2-135m-instruct` or `upstream:http://…`.
    pub backend: Option<String>,
    pub stream: bool,
    /// Request content per the logging mode: the JSON text, `sha256:<hex>`, or none.
    pub request: Option<String>,
    /// Response content, like `request`.
    pub response: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Total latency.
    pub latency_ms: f64,
    /// Time to first token (streaming).
    pub ttft_ms: Option<f64>,
    pub upstream_ms: Option<f64>,
    /// HTTP status returned to the client.
    pub status: u16,
    /// Filter verdicts (an array of objects), `[]` when none.
    pub filters: serde_json::Value,
    /// Upstream attempts `[{version, outcome, ms}]`, `[]` when none.
    pub attempts: serde_json::Value,
    pub error: Option<String>,
}

/// Which traces [`GatewayStore::traces`] returns. `since` is inclusive, `until` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceQuery {
    pub since: Option<f64>,
    pub until: Option<f64>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    pub limit: usize,
}

impl Default for TraceQuery {
    /// Every trace, the newest 100.
    fn default() -> Self {
        TraceQuery {
            since: None,
            until: None,
            key_id: None,
            model: None,
            status: None,
            limit: 100,
        }
    }
}

/// An API key as stored: its public id and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public id, e.g. `key_3f9a…` (shown in traces and logs).
    pub id: String,
    /// Hex sha256 of the secret.
    pub hash: String,
    pub name: String,
    /// Model ids the key may use; empty means all.
    pub scopes: Vec<String>,
    pub created_at: f64,
    pub expires_at: Option<f64>,
    pub revoked_at: Option<f64>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    /// A named output-filter policy of the gateway's config that replaces the model's for
    /// this key's requests.
    #[serde(default)]
    pub filter_policy: Option<String>,
    /// Most tokens (prompt + completion) the key may spend per calendar period; `None`:
    /// no budget.
    #[serde(default)]
    pub token_budget: Option<TokenBudget>,
}

/// A key's allowance of tokens per calendar period (UTC), counted in the store so that every
/// replica sees one count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBudget {
    pub tokens: u64,
    pub period: BudgetPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Day,
    Month,
}

/// A trace as the backends write it: the indexed columns and the JSON document.
struct TraceRow {
    id: String,
    time: f64,
    key_id: Option<String>,
    model: String,
    status: i32,
    record: String,
}

impl TraceRow {
    fn new(rec: &TraceRecord) -> Result<TraceRow> {
        Ok(TraceRow {
            id: column_text(&rec.id),
            time: rec.time,
            key_id: rec.key_id.as_deref().map(column_text),
            model: column_text(&rec.model),
            status: i32::from(rec.status),
            record: serde_json::to_string(rec)?,
        })
    }
}

/// PostgreSQL text cannot hold NUL, and a client chooses the model name: the columns (used for
/// filtering only) get U+FFFD instead; the JSON document keeps the exact text, escaped.
fn column_text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Where to resume a scan in (time, id) order.
type Cursor = Option<(f64, String)>;

/// Which end of the time order a selection starts from.
enum Order {
    NewestFirst,
    /// Oldest first, strictly after the cursor.
    OldestAfter(Cursor),
}

/// The tables, in SQL that both backends accept (SQLite reads `DOUBLE PRECISION` as REAL).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway_traces (
    id TEXT PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    key_id TEXT,
    model TEXT NOT NULL,
    status INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gateway_traces_time ON gateway_traces (time, id);
CREATE TABLE IF NOT EXISTS gateway_keys (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gateway_key_usage (
    key_id TEXT NOT NULL,
    day_start BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    PRIMARY KEY (key_id, day_start)
);
CREATE TABLE IF NOT EXISTS gateway_active_versions (
    model TEXT PRIMARY KEY,
    version TEXT NOT NULL
);
";

/// How many traces [`GatewayStore::export_traces`] reads at a time.
const EXPORT_PAGE: usize = 1000;

/// What each backend does, in SQL of its dialect; the records' mapping stays here.
trait Backend: Send + Sync {
    fn insert_traces(&self, rows: &[TraceRow]) -> Result<()>;
    /// Record documents of the matching traces in `order`, at most `limit`.
    fn select_traces(&self, q: &TraceQuery, order: &Order, limit: usize) -> Result<Vec<String>>;
    fn trace(&self, id: &str) -> Result<Option<String>>;
    fn delete_traces_before(&self, unix_secs: f64) -> Result<u64>;
    /// False when a key with this id exists.
    fn insert_key(&self, id: &str, doc: &str) -> Result<bool>;
    /// Key documents in id order.
    fn keys(&self) -> Result<Vec<String>>;
    /// Rewrites the key's document in one transaction; false when there is no such key.
    fn update_key(&self, id: &str, update: &KeyUpdate<'_>) -> Result<bool>;
    fn set_active_version(&self, model: &str, version: &str) -> Result<()>;
    /// Adds to the key's count for the day starting at `day_start` (one atomic upsert).
    fn add_key_tokens(&self, key_id: &str, day_start: i64, tokens: i64) -> Result<()>;
    /// The key's count over the days starting in `[from, until)` (0 when none).
    fn key_tokens(&self, key_id: &str, from: i64, until: i64) -> Result<i64>;
    fn active_versions(&self) -> Result<Vec<(String, String)>>;
}

/// Where a SQLite store copies its WAL into the database file (PostgreSQL: no effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoints {
    /// On a thread of the store's own, every second, so that no commit waits for a
    /// checkpoint's copy and `fsync`: for a writer that someone waits on (durable traces).
    OnThread,
    /// Inside the commit that fills the WAL past 16 MiB: for a writer
    /// that nobody waits on, such as one at idle CPU priority, whose checkpoints then take
    /// only idle CPU time too. One writer that checkpoints between its own commits keeps the
    /// WAL short by itself.
    InCommits,
}

/// The gateway's store handle; `Send + Sync`. Each backend keeps a writer and a reader
/// connection, so that admin queries never wait behind a trace batch.
pub struct GatewayStore {
    backend: Box<dyn Backend>,
}

impl GatewayStore {
    /// `postgres://…` or `postgresql://…` opens PostgreSQL; anything else is a SQLite file
    /// path (created with its tables when missing; WAL journal).
    pub fn open(location: &str) -> Result<GatewayStore> {
        Self::open_with(location, Checkpoints::OnThread)
    }

    /// [`GatewayStore::open`], choosing where a SQLite store checkpoints.
    pub fn open_with(location: &str, checkpoints: Checkpoints) -> Result<GatewayStore> {
        let is_url = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| location.starts_with(scheme));
        let backend: Box<dyn Backend> = match is_url {
            true => Box::new(postgres::Postgres::connect(location)?),
            false => Box::new(sqlite::Sqlite::open(location, checkpoints)?),
        };
        Ok(GatewayStore { backend })
    }

    /// Writes the batch in one transaction (group commit). Once this returns the traces
    /// survive a kill of the process. A trace whose id is already stored is left as it was,
    /// so a batch retried after an unclear failure is harmless.
    pub fn insert_traces(&self, batch: &[TraceRecord]) -> Result<()> {
        let rows = batch
            .iter()
            .map(TraceRow::new)
            .collect::<Result<Vec<_>>>()?;
        self.backend.insert_traces(&rows)
    }

    /// Matching traces, newest first, at most `query.limit`.
    pub fn traces(&self, query: &TraceQuery) -> Result<Vec<TraceRecord>> {
        let docs = self
            .backend
            .select_traces(query, &Order::NewestFirst, query.limit)?;
        parse_all(&docs)
    }

    /// Every matching trace, oldest first, read a page at a time (`query.limit` is ignored):
    /// for exports larger than memory.
    pub fn export_traces<E: From<StoreError>>(
        &self,
        query: &TraceQuery,
        mut sink: impl FnMut(TraceRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut cursor: Cursor = None;
        loop {
            let order = Order::OldestAfter(cursor.take());
            let docs = self.backend.select_traces(query, &order, EXPORT_PAGE)?;
            let page_len = docs.len();
            for doc in docs {
                let rec: TraceRecord = serde_json::from_str(&doc).map_err(StoreError::from)?;
                cursor = Some((rec.time, column_text(&rec.id)));
                sink(rec)?;
            }
            if page_len < EXPORT_PAGE {
                return Ok(());
            }
        }
    }

    pub fn trace(&self, id: &str) -> Result<Option<TraceRecord>> {
        let doc = self.backend.trace(id)?;
        Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    /// Deletes traces that started before `unix_secs`; returns how many.
    pub fn delete_traces_before(&self, unix_secs: f64) -> Result<u64> {
        self.backend.delete_traces_before(unix_secs)
    }

    /// Fails with [`StoreError::KeyExists`] when a key with this id is stored already.
    pub fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let doc = serde_json::to_string(key)?;
        if self.backend.insert_key(&key.id, &doc)? {
            Ok(())
        } else {
            Err(StoreError::KeyExists(key.id.clone()))
        }
    }

    /// Every key, revoked and expired ones included, in id order.
    pub fn keys(&self) -> Result<Vec<ApiKeyRecord>> {
        parse_all(&self.backend.keys()?)
    }

    /// Marks the key revoked at `at` (a key revoked already keeps its first time). False when
    /// there is no such key.
    pub fn revoke_key(&self, id: &str, at: f64) -> Result<bool> {
        let revoke = |doc: &str| -> Result<String> {
            let mut key: ApiKeyRecord = serde_json::from_str(doc)?;
            key.revoked_at.get_or_insert(at);
            Ok(serde_json::to_string(&key)?)
        };
        self.backend.update_key(id, &revoke)
    }

    /// Sets (or with `None` removes) the key's token budget. False when there is no such key.
    pub fn set_key_budget(&self, id: &str, budget: Option<TokenBudget>) -> Result<bool> {
        let set = |doc: &str| -> Result<String> {
            let mut key: ApiKeyRecord = serde_json::from_str(doc)?;
            key.token_budget = budget;
            Ok(serde_json::to_string(&key)?)
        };
        self.backend.update_key(id, &set)
    }

    /// Charges `tokens` to the key's count of the (UTC) day starting at `day_start` (Unix
    /// seconds). Atomic across replicas sharing the store. Counted per day, so that a budget
    /// changed from daily to monthly keeps what was spent.
    pub fn add_key_tokens(&self, key_id: &str, day_start: i64, tokens: u64) -> Result<()> {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        self.backend.add_key_tokens(key_id, day_start, tokens)
    }

    /// Tokens charged to the key over the days starting in `[from, until)`.
    pub fn key_tokens(&self, key_id: &str, from: i64, until: i64) -> Result<u64> {
        let total = self.backend.key_tokens(key_id, from, until)?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    pub fn set_active_version(&self, model: &str, version: &str) -> Result<()> {
        self.backend.set_active_version(model, version)
    }

    /// (model, version) pairs in model order.
    pub fn active_versions(&self) -> Result<Vec<(String, String)>> {
        self.backend.active_versions()
    }
}

/// How a backend rewrites one stored key document, inside its transaction.
type KeyUpdate<'a> = dyn Fn(&str) -> Result<String> + Sync + 'a;

fn parse_all<T: serde::de::DeserializeOwned>(docs: &[String]) -> Result<Vec<T>> {
    docs.iter()
        .map(|d| serde_json::from_str(d).map_err(StoreError::from))
        .collect()
}
