//! The review tables in PostgreSQL, shared by gateway replicas. Claims take the oldest free
//! row with `FOR UPDATE SKIP LOCKED` (two replicas claiming at once get different rows);
//! audit appends lock the table for their transaction, so rows get consecutive numbers.

use super::{AuditRow, Backend, DocUpdate, ItemQuery, NextAuditRow, SCHEMA};
use crate::Result;
use crate::postgres::Connection;

pub(crate) struct Postgres {
    client: Connection,
}

impl Postgres {
    pub(crate) fn connect(url: &str) -> Result<Self> {
        Ok(Self {
            client: Connection::open(url, SCHEMA)?,
        })
    }
}

impl Backend for Postgres {
    fn insert_item(
        &self,
        id: &str,
        state: &str,
        model: &str,
        created: f64,
        doc: &str,
    ) -> Result<()> {
        self.client.with(|c| {
            c.execute(
                "INSERT INTO review_items (id, state, model, created_at, assignee, rev, record)
                 VALUES ($1, $2, $3, $4, NULL, 0, $5)",
                &[&id, &state, &model, &created, &doc],
            )?;
            Ok(())
        })
    }

    fn item(&self, id: &str) -> Result<Option<(String, i64)>> {
        self.client.with(|c| {
            let row = c.query_opt("SELECT record, rev FROM review_items WHERE id = $1", &[&id])?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn update_item(
        &self,
        id: &str,
        rev: i64,
        state: &str,
        assignee: Option<&str>,
        doc: &str,
    ) -> Result<bool> {
        self.client.with(|c| {
            let n = c.execute(
                "UPDATE review_items SET state = $3, assignee = $4, record = $5, rev = rev + 1
                 WHERE id = $1 AND rev = $2",
                &[&id, &rev, &state, &assignee, &doc],
            )?;
            Ok(n == 1)
        })
    }

    fn claim_next(
        &self,
        states: &[String],
        assignee: &str,
        assign: &DocUpdate<'_>,
    ) -> Result<Option<(String, i64)>> {
        self.client.with(|c| {
            let mut tx = c.transaction()?;
            let row = tx.query_opt(
                "SELECT id, record, rev FROM review_items
                 WHERE assignee IS NULL AND (cardinality($1::text[]) = 0 OR state = ANY($1))
                 ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&states],
            )?;
            let Some(row) = row else {
                return Ok(None);
            };
            let (id, doc, rev): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
            let doc = assign(&doc)?;
            tx.execute(
                "UPDATE review_items SET assignee = $2, record = $3, rev = rev + 1 WHERE id = $1",
                &[&id, &assignee, &doc],
            )?;
            tx.commit()?;
            Ok(Some((doc, rev + 1)))
        })
    }

    fn items(&self, q: &ItemQuery) -> Result<Vec<(String, i64)>> {
        self.client.with(|c| {
            let rows = c.query(
                "SELECT record, rev FROM review_items
                 WHERE (cardinality($1::text[]) = 0 OR state = ANY($1))
                   AND ($2::text IS NULL OR model = $2)
                 ORDER BY created_at, id LIMIT $3 OFFSET $4",
                &[&q.states, &q.model, &(q.limit as i64), &(q.offset as i64)],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn count_items(&self, states: &[String]) -> Result<u64> {
        self.client.with(|c| {
            let row = c.query_one(
                "SELECT COUNT(*) FROM review_items
                 WHERE cardinality($1::text[]) = 0 OR state = ANY($1)",
                &[&states],
            )?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn insert_role_key(&self, id: &str, hash: &str, doc: &str) -> Result<()> {
        self.client.with(|c| {
            c.execute(
                "INSERT INTO review_role_keys (id, hash, record) VALUES ($1, $2, $3)",
                &[&id, &hash, &doc],
            )?;
            Ok(())
        })
    }

    fn role_key_by_hash(&self, hash: &str) -> Result<Option<String>> {
        self.client.with(|c| {
            let row = c.query_opt(
                "SELECT record FROM review_role_keys WHERE hash = $1",
                &[&hash],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn role_keys(&self) -> Result<Vec<String>> {
        self.client.with(|c| {
            let rows = c.query("SELECT record FROM review_role_keys ORDER BY id", &[])?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn append_audit(&self, next: &NextAuditRow<'_>) -> Result<AuditRow> {
        self.client.with(|c| {
            let mut tx = c.transaction()?;
            // Appends from every replica, one after the other.
            tx.execute("LOCK TABLE review_audit IN EXCLUSIVE MODE", &[])?;
            let last = tx
                .query_opt(&format!("{AUDIT_SELECT} ORDER BY seq DESC LIMIT 1"), &[])?
                .map(|r| audit_row(&r));
            let row = next(last.as_ref());
            tx.execute(
                "INSERT INTO review_audit (seq, time, actor, action, item_id, detail, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &row.seq,
                    &row.time,
                    &row.actor,
                    &row.action,
                    &row.item_id,
                    &row.detail,
                    &row.prev_hash,
                    &row.hash,
                ],
            )?;
            tx.commit()?;
            Ok(row)
        })
    }

    fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRow>> {
        self.client.with(|c| {
            let rows = c.query(
                &format!("{AUDIT_SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &(limit as i64)],
            )?;
            Ok(rows.iter().map(audit_row).collect())
        })
    }

    fn save_session(&self, token_hash: &str, expires_at: f64, doc: &str) -> Result<()> {
        self.client.with(|c| {
            c.execute(
                "INSERT INTO review_sessions (token_hash, expires_at, record) VALUES ($1, $2, $3)
                 ON CONFLICT (token_hash) DO UPDATE
                 SET expires_at = excluded.expires_at, record = excluded.record",
                &[&token_hash, &expires_at, &doc],
            )?;
            Ok(())
        })
    }

    fn session(&self, token_hash: &str) -> Result<Option<String>> {
        self.client.with(|c| {
            let row = c.query_opt(
                "SELECT record FROM review_sessions WHERE token_hash = $1",
                &[&token_hash],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.client.with(|c| {
            c.execute(
                "DELETE FROM review_sessions WHERE token_hash = $1",
                &[&token_hash],
            )?;
            Ok(())
        })
    }

    fn delete_expired_sessions(&self, now: f64) -> Result<u64> {
        self.client.with(|c| {
            Ok(c.execute(
                "DELETE FROM review_sessions WHERE expires_at <= $1",
                &[&now],
            )?)
        })
    }
}

const AUDIT_SELECT: &str =
    "SELECT seq, time, actor, action, item_id, detail, prev_hash, hash FROM review_audit";

fn audit_row(r: &postgres::Row) -> AuditRow {
    AuditRow {
        seq: r.get(0),
        time: r.get(1),
        actor: r.get(2),
        action: r.get(3),
        item_id: r.get(4),
        detail: r.get(5),
        prev_hash: r.get(6),
        hash: r.get(7),
    }
}
