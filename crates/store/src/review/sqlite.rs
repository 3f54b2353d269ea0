//! The review tables in a SQLite file. One connection behind a mutex: review traffic is a
//! few writes per decision, and one writer makes every read-modify-write atomic.

use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{AuditRow, Backend, DocUpdate, ItemQuery, NextAuditRow, SCHEMA};
use crate::Result;
use crate::sqlite::{connect, with};

pub(crate) struct Sqlite {
    path: String,
    conn: Mutex<Connection>,
}

impl Sqlite {
    pub(crate) fn open(path: &str) -> Result<Self> {
        Ok(Sqlite {
            path: path.to_string(),
            conn: Mutex::new(connect(path, SCHEMA)?),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        with(&self.path, &self.conn, f)
    }
}

/// `(?, ?, …)` for `n` states, numbered from `first`.
fn placeholders(first: usize, n: usize) -> String {
    let list: Vec<String> = (first..first + n).map(|i| format!("?{i}")).collect();
    list.join(", ")
}

fn state_filter(states: &[String], first: usize) -> String {
    if states.is_empty() {
        "1 = 1".to_string()
    } else {
        format!("state IN ({})", placeholders(first, states.len()))
    }
}

impl Backend for Sqlite {
    fn insert_item(
        &self,
        id: &str,
        state: &str,
        model: &str,
        created: f64,
        doc: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO review_items (id, state, model, created_at, assignee, rev, record)
                 VALUES (?1, ?2, ?3, ?4, NULL, 0, ?5)",
                params![id, state, model, created, doc],
            )
            .map(drop)
        })
    }

    fn item(&self, id: &str) -> Result<Option<(String, i64)>> {
        self.with(|c| {
            c.query_row(
                "SELECT record, rev FROM review_items WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
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
        self.with(|c| {
            c.execute(
                "UPDATE review_items SET state = ?3, assignee = ?4, record = ?5, rev = rev + 1
                 WHERE id = ?1 AND rev = ?2",
                params![id, rev, state, assignee, doc],
            )
            .map(|n| n == 1)
        })
    }

    fn claim_next(
        &self,
        states: &[String],
        assignee: &str,
        assign: &DocUpdate<'_>,
    ) -> Result<Option<(String, i64)>> {
        let found: Option<(String, String, i64)> = self.with(|c| {
            let sql = format!(
                "SELECT id, record, rev FROM review_items WHERE assignee IS NULL AND {}
                 ORDER BY created_at, id LIMIT 1",
                state_filter(states, 1)
            );
            c.query_row(&sql, rusqlite::params_from_iter(states), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })?;
        let Some((id, doc, rev)) = found else {
            return Ok(None);
        };
        let doc = assign(&doc)?;
        let updated = self.with(|c| {
            c.execute(
                "UPDATE review_items SET assignee = ?3, record = ?4, rev = rev + 1
                 WHERE id = ?1 AND rev = ?2 AND assignee IS NULL",
                params![id, rev, assignee, doc],
            )
        })?;
        if updated == 1 {
            Ok(Some((doc, rev + 1)))
        } else {
            // Claimed meanwhile by another connection to this file: take the next one.
            self.claim_next(states, assignee, assign)
        }
    }

    fn items(&self, q: &ItemQuery) -> Result<Vec<(String, i64)>> {
        self.with(|c| {
            let n = q.states.len();
            let sql = format!(
                "SELECT record, rev FROM review_items WHERE {} AND (?{} IS NULL OR model = ?{})
                 ORDER BY created_at, id LIMIT ?{} OFFSET ?{}",
                state_filter(&q.states, 1),
                n + 1,
                n + 1,
                n + 2,
                n + 3
            );
            let mut values: Vec<rusqlite::types::Value> = q
                .states
                .iter()
                .map(|s| rusqlite::types::Value::Text(s.clone()))
                .collect();
            values.push(match &q.model {
                Some(m) => rusqlite::types::Value::Text(m.clone()),
                None => rusqlite::types::Value::Null,
            });
            values.push(rusqlite::types::Value::Integer(q.limit as i64));
            values.push(rusqlite::types::Value::Integer(q.offset as i64));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect()
        })
    }

    fn count_items(&self, states: &[String]) -> Result<u64> {
        self.with(|c| {
            let sql = format!(
                "SELECT COUNT(*) FROM review_items WHERE {}",
                state_filter(states, 1)
            );
            c.query_row(&sql, rusqlite::params_from_iter(states), |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
        })
    }

    fn insert_role_key(&self, id: &str, hash: &str, doc: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO review_role_keys (id, hash, record) VALUES (?1, ?2, ?3)",
                params![id, hash, doc],
            )
            .map(drop)
        })
    }

    fn role_key_by_hash(&self, hash: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT record FROM review_role_keys WHERE hash = ?1",
                [hash],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn role_keys(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT record FROM review_role_keys ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn append_audit(&self, next: &NextAuditRow<'_>) -> Result<AuditRow> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let last = tx
                .query_row(
                    &format!("{AUDIT_SELECT} ORDER BY seq DESC LIMIT 1"),
                    [],
                    audit_row,
                )
                .optional()?;
            let row = next(last.as_ref());
            tx.execute(
                "INSERT INTO review_audit (seq, time, actor, action, item_id, detail, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    row.seq,
                    row.time,
                    row.actor,
                    row.action,
                    row.item_id,
                    row.detail,
                    row.prev_hash,
                    row.hash
                ],
            )?;
            tx.commit()?;
            Ok(row)
        })
    }

    fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRow>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "{AUDIT_SELECT} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, limit as i64], audit_row)?;
            rows.collect()
        })
    }

    fn save_session(&self, token_hash: &str, expires_at: f64, doc: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO review_sessions (token_hash, expires_at, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (token_hash) DO UPDATE
                 SET expires_at = excluded.expires_at, record = excluded.record",
                params![token_hash, expires_at, doc],
            )
            .map(drop)
        })
    }

    fn session(&self, token_hash: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT record FROM review_sessions WHERE token_hash = ?1",
                [token_hash],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM review_sessions WHERE token_hash = ?1",
                [token_hash],
            )
            .map(drop)
        })
    }

    fn delete_expired_sessions(&self, now: f64) -> Result<u64> {
        self.with(|c| {
            c.execute("DELETE FROM review_sessions WHERE expires_at <= ?1", [now])
                .map(|n| n as u64)
        })
    }
}

const AUDIT_SELECT: &str =
    "SELECT seq, time, actor, action, item_id, detail, prev_hash, hash FROM review_audit";

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get(0)?,
        time: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        item_id: r.get(4)?,
        detail: r.get(5)?,
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}
