//! The gateway's tables in a SQLite file (WAL): a writer connection for the trace writer and
//! admin changes, a reader connection for queries, so that neither waits for the other.

use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Backend, Cursor, KeyUpdate, Order, SCHEMA, TraceQuery, TraceRow};
use crate::Result;
use crate::sqlite::{connect, with};

/// The filter of [`TraceQuery`] (?1..?5) and a (time, id) cursor (?6, ?7); NULL means "any".
const TRACE_FILTER: &str = "(?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR time < ?2)
    AND (?3 IS NULL OR key_id = ?3) AND (?4 IS NULL OR model = ?4) AND (?5 IS NULL OR status = ?5)
    AND (?6 IS NULL OR time > ?6 OR (time = ?6 AND id > ?7))";

pub(crate) struct Sqlite {
    path: String,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl Sqlite {
    pub(crate) fn open(path: &str) -> Result<Self> {
        let writer = connect(path, SCHEMA)?;
        let reader = connect(path, "")?;
        Ok(Self {
            path: path.to_string(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        with(&self.path, &self.writer, f)
    }

    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        with(&self.path, &self.reader, f)
    }
}

impl Backend for Sqlite {
    fn insert_traces(&self, rows: &[TraceRow]) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO gateway_traces (id, time, key_id, model, status, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                )?;
                for r in rows {
                    stmt.execute(params![r.id, r.time, r.key_id, r.model, r.status, r.record])?;
                }
            }
            tx.commit()
        })
    }

    fn select_traces(&self, q: &TraceQuery, order: &Order, limit: usize) -> Result<Vec<String>> {
        let (sql_order, cursor): (&str, &Cursor) = match order {
            Order::NewestFirst => ("time DESC, id DESC", &None),
            Order::OldestAfter(cursor) => ("time ASC, id ASC", cursor),
        };
        let (after_time, after_id) = cursor.clone().unzip();
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT record FROM gateway_traces WHERE {TRACE_FILTER} ORDER BY {sql_order} LIMIT ?8"
            ))?;
            let rows = stmt.query_map(
                params![
                    q.since,
                    q.until,
                    q.key_id,
                    q.model,
                    q.status,
                    after_time,
                    after_id,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| r.get(0),
            )?;
            rows.collect()
        })
    }

    fn trace(&self, id: &str) -> Result<Option<String>> {
        self.read(|c| {
            c.query_row(
                "SELECT record FROM gateway_traces WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn delete_traces_before(&self, unix_secs: f64) -> Result<u64> {
        let n =
            self.write(|c| c.execute("DELETE FROM gateway_traces WHERE time < ?1", [unix_secs]))?;
        Ok(n as u64)
    }

    fn insert_key(&self, id: &str, doc: &str) -> Result<bool> {
        let n = self.write(|c| {
            c.execute(
                "INSERT INTO gateway_keys (id, record) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                [id, doc],
            )
        })?;
        Ok(n == 1)
    }

    fn keys(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT record FROM gateway_keys ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn update_key(&self, id: &str, update: &KeyUpdate<'_>) -> Result<bool> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let sqlite = |source| crate::StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let doc: Option<String> = tx
            .query_row("SELECT record FROM gateway_keys WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sqlite)?;
        let Some(doc) = doc else {
            return Ok(false);
        };
        let doc = update(&doc)?;
        tx.execute(
            "UPDATE gateway_keys SET record = ?2 WHERE id = ?1",
            [id, &doc],
        )
        .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        Ok(true)
    }

    fn set_active_version(&self, model: &str, version: &str) -> Result<()> {
        self.write(|c| {
            c.execute(
                "INSERT INTO gateway_active_versions (model, version) VALUES (?1, ?2)
                 ON CONFLICT (model) DO UPDATE SET version = excluded.version",
                [model, version],
            )
        })?;
        Ok(())
    }

    fn active_versions(&self) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT model, version FROM gateway_active_versions ORDER BY model",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }
}
