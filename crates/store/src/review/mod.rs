//! What human review persists: the queue of review items, the role keys of reviewers, the
//! console's login sessions, and the append-only audit log whose rows are hash chained. SQLite by default, PostgreSQL when
//! several gateway replicas share one queue. The review crate owns the meaning (states,
//! decisions, the chain's hash); this module only stores and fetches, with the two guarantees
//! that need the database: an item changes only from the revision its writer read (so two
//! replicas never both decide or claim one item), and audit rows get consecutive numbers with
//! the previous row's hash read in the same transaction.
//!
//! Layout like [`crate::gateway`]: the columns a query filters on, the whole record as JSON.
//! Every method blocks: call them from a thread of their own or `spawn_blocking`.

mod postgres;
mod sqlite;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// One answer waiting for (or having had) a person's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// `rev_…`; unique.
    pub id: String,
    /// The request's trace id (`chatcmpl-…`).
    pub trace_id: String,
    pub model: String,
    /// The version that answered.
    pub version: Option<String>,
    pub stream: bool,
    /// `hold` (the client waits) or `flag` (released already).
    pub action: String,
    /// The names of the conditions that fired.
    pub conditions: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// Findings, scores, tool calls: what the conditions saw.
    pub evidence: Value,
    /// The user's last message.
    pub question: String,
    /// The answer as the model gave it (after the output filters).
    pub answer: String,
    /// `pending`, `flagged`, `client_gone`, `approved`, `rejected` or `expired`.
    pub state: String,
    pub created_at: f64,
    /// When a held item's timeout outcome applies (unix seconds).
    pub deadline: Option<f64>,
    /// What happens at the deadline: `reject` or `release`.
    pub on_timeout: String,
    /// The reviewer who claimed it.
    pub assignee: Option<String>,
    /// Distinct reviewers' approvals needed to release (2 under the two-person rule).
    pub approvals_needed: u32,
    /// Reviewers who approved so far.
    pub approvals: Vec<String>,
    /// `approve`, `edit`, `reject`, `timeout_reject` or `timeout_release`.
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<f64>,
    /// The reviewer's reason text.
    pub reason_text: Option<String>,
    /// The answer as a reviewer edited it (released instead of `answer`).
    pub edited_answer: Option<String>,
    /// The reviewer's labels, for judge calibration (0-100).
    pub aligned: Option<f64>,
    pub coherent: Option<f64>,
    /// The gateway replica that holds the waiting client.
    pub replica: String,
}

/// An item with the revision it was read at (pass it back to [`ReviewStore::update_item`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Revised {
    pub item: ReviewItem,
    pub rev: i64,
}

/// Which items [`ReviewStore::items`] returns, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemQuery {
    /// Any of these states; empty: all.
    pub states: Vec<String>,
    pub model: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

/// A reviewer's key: the hash of its secret and its role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleKeyRecord {
    /// Public id, e.g. `rk_3f9a…`.
    pub id: String,
    /// Hex sha256 of the secret.
    pub hash: String,
    pub name: String,
    /// `viewer`, `reviewer` or `admin`.
    pub role: String,
    pub created_at: f64,
    pub revoked_at: Option<f64>,
}

/// One row of the audit log as stored. `hash` covers every other field and `prev_hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    /// 1, 2, 3, … with no gap.
    pub seq: i64,
    pub time: f64,
    /// Who: a role key's name and id, `admin-token` or `gateway`.
    pub actor: String,
    /// What: `approve`, `reject`, `claim`, `create_key`, …
    pub action: String,
    /// The item it concerns, if any.
    pub item_id: Option<String>,
    /// The rest, as JSON text.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A console login as stored, so that it survives a restart and works on every replica: the
/// sha256 of the session's cookie value (the cookie itself is never stored), who logged in,
/// their role, the CSRF token its forms carry, and when it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub token_hash: String,
    /// The audit log's name of who logged in (`alice (rk_…)`, `admin-token`).
    pub actor: String,
    pub role: String,
    pub csrf: String,
    /// Unix seconds; the session is gone from then on.
    pub expires_at: f64,
}

/// Rewrites one stored document inside the backend's transaction.
type DocUpdate<'a> = dyn Fn(&str) -> Result<String> + Sync + 'a;

/// Makes the next audit row from the last one (`None` for the first), inside the append's
/// transaction.
pub type NextAuditRow<'a> = dyn Fn(Option<&AuditRow>) -> AuditRow + Sync + 'a;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS review_items (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    assignee TEXT,
    rev BIGINT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_items_state ON review_items (state, created_at);
CREATE TABLE IF NOT EXISTS review_role_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS review_sessions (
    token_hash TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS review_audit (
    seq BIGINT PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    item_id TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
";

trait Backend: Send + Sync {
    fn insert_item(
        &self,
        id: &str,
        state: &str,
        model: &str,
        created: f64,
        doc: &str,
    ) -> Result<()>;
    fn item(&self, id: &str) -> Result<Option<(String, i64)>>;
    /// Writes `doc` when the stored revision is still `rev`; false otherwise.
    fn update_item(
        &self,
        id: &str,
        rev: i64,
        state: &str,
        assignee: Option<&str>,
        doc: &str,
    ) -> Result<bool>;
    /// The oldest unassigned item in `states`, assigned to `assignee` (skipping rows another
    /// transaction holds) with its document rewritten by `assign`; the new document and
    /// revision.
    fn claim_next(
        &self,
        states: &[String],
        assignee: &str,
        assign: &DocUpdate<'_>,
    ) -> Result<Option<(String, i64)>>;
    fn items(&self, q: &ItemQuery) -> Result<Vec<(String, i64)>>;
    fn count_items(&self, states: &[String]) -> Result<u64>;
    fn insert_role_key(&self, id: &str, hash: &str, doc: &str) -> Result<()>;
    fn role_key_by_hash(&self, hash: &str) -> Result<Option<String>>;
    fn role_keys(&self) -> Result<Vec<String>>;
    fn append_audit(&self, next: &NextAuditRow<'_>) -> Result<AuditRow>;
    /// Audit rows in `seq` order, from `after` (exclusive), at most `limit`.
    fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRow>>;
    /// Inserts the session, or replaces the one with this hash (a new expiry).
    fn save_session(&self, token_hash: &str, expires_at: f64, doc: &str) -> Result<()>;
    fn session(&self, token_hash: &str) -> Result<Option<String>>;
    fn delete_session(&self, token_hash: &str) -> Result<()>;
    /// Deletes the sessions expired at `now`; how many.
    fn delete_expired_sessions(&self, now: f64) -> Result<u64>;
}

/// The review store handle; `Send + Sync`.
pub struct ReviewStore {
    backend: Box<dyn Backend>,
}

impl ReviewStore {
    /// `postgres://…` or `postgresql://…` opens PostgreSQL; anything else is a SQLite file
    /// path (created with its tables when missing).
    pub fn open(location: &str) -> Result<ReviewStore> {
        let is_url = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| location.starts_with(scheme));
        let backend: Box<dyn Backend> = match is_url {
            true => Box::new(postgres::Postgres::connect(location)?),
            false => Box::new(sqlite::Sqlite::open(location)?),
        };
        Ok(ReviewStore { backend })
    }

    pub fn insert_item(&self, item: &ReviewItem) -> Result<()> {
        let doc = serde_json::to_string(item)?;
        self.backend
            .insert_item(&item.id, &item.state, &item.model, item.created_at, &doc)
    }

    pub fn item(&self, id: &str) -> Result<Option<Revised>> {
        self.backend.item(id)?.map(revised).transpose()
    }

    /// Stores `item` if nobody changed it since it was read at `rev`; false when somebody did
    /// (read it again and decide anew).
    pub fn update_item(&self, item: &ReviewItem, rev: i64) -> Result<bool> {
        let doc = serde_json::to_string(item)?;
        self.backend
            .update_item(&item.id, rev, &item.state, item.assignee.as_deref(), &doc)
    }

    /// Assigns the oldest unassigned item in one of `states` to `assignee`: two callers, on
    /// any replicas, never get the same item. The returned item shows the assignee.
    pub fn claim_next(&self, states: &[String], assignee: &str) -> Result<Option<Revised>> {
        let assign = |doc: &str| -> Result<String> {
            let mut item: ReviewItem = serde_json::from_str(doc)?;
            item.assignee = Some(assignee.to_string());
            Ok(serde_json::to_string(&item)?)
        };
        self.backend
            .claim_next(states, assignee, &assign)?
            .map(revised)
            .transpose()
    }

    pub fn items(&self, q: &ItemQuery) -> Result<Vec<Revised>> {
        self.backend.items(q)?.into_iter().map(revised).collect()
    }

    pub fn count_items(&self, states: &[String]) -> Result<u64> {
        self.backend.count_items(states)
    }

    pub fn insert_role_key(&self, key: &RoleKeyRecord) -> Result<()> {
        let doc = serde_json::to_string(key)?;
        self.backend.insert_role_key(&key.id, &key.hash, &doc)
    }

    pub fn role_key_by_hash(&self, hash: &str) -> Result<Option<RoleKeyRecord>> {
        let doc = self.backend.role_key_by_hash(hash)?;
        Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    pub fn role_keys(&self) -> Result<Vec<RoleKeyRecord>> {
        self.backend
            .role_keys()?
            .iter()
            .map(|d| Ok(serde_json::from_str(d)?))
            .collect()
    }

    /// Appends the row `next` makes from the last one, in one transaction (replicas that
    /// append at once are serialised; none overwrites another's row).
    pub fn append_audit(&self, next: &NextAuditRow<'_>) -> Result<AuditRow> {
        self.backend.append_audit(next)
    }

    /// Audit rows after `after` (exclusive) in `seq` order, at most `limit`.
    pub fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRow>> {
        self.backend.audit(after, limit)
    }

    /// Stores a console session, or its new expiry.
    pub fn save_session(&self, session: &SessionRecord) -> Result<()> {
        let doc = serde_json::to_string(session)?;
        self.backend
            .save_session(&session.token_hash, session.expires_at, &doc)
    }

    /// The session of this token hash, expired or not (the caller compares the expiry).
    pub fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        let doc = self.backend.session(token_hash)?;
        Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.backend.delete_session(token_hash)
    }

    /// Deletes every session expired at `now` (Unix seconds); how many.
    pub fn delete_expired_sessions(&self, now: f64) -> Result<u64> {
        self.backend.delete_expired_sessions(now)
    }
}

fn revised((doc, rev): (String, i64)) -> Result<Revised> {
    Ok(Revised {
        item: serde_json::from_str(&doc)?,
        rev,
    })
}
