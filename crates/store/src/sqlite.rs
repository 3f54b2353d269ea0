//! The SQLite backend: one file, WAL journal, one connection behind a mutex.

use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use crate::{ItemState, NewItem, Progress, Result, RunInfo, StoreError, now};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    answer TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judgements (
    sample_key TEXT NOT NULL,
    judge_key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (sample_key, judge_key)
);
CREATE TABLE IF NOT EXISTS run_items (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    sample_key TEXT NOT NULL,
    judge_key TEXT NOT NULL,
    spec TEXT NOT NULL,
    claimed_by TEXT,
    claimed_at REAL,
    PRIMARY KEY (run_id, seq)
);
";

const ITEM_COLUMNS: &str = "i.seq, i.sample_key, i.judge_key, i.spec, s.answer, j.value
    FROM run_items i
    LEFT JOIN samples s ON s.key = i.sample_key
    LEFT JOIN judgements j ON j.sample_key = i.sample_key AND j.judge_key = i.judge_key";

pub(crate) struct Sqlite {
    path: String,
    conn: Mutex<Connection>,
}

impl Sqlite {
    pub(crate) fn open(path: &str) -> Result<Self> {
        let conn = connect(path, SCHEMA)?;
        Ok(Self {
            path: path.to_string(),
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        with(&self.path, &self.conn, f)
    }

    pub(crate) fn create_run(&self, id: &str, config: &Value) -> Result<()> {
        let inserted = self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO runs (id, config, created_at) VALUES (?1, ?2, ?3)",
                params![id, config.to_string(), now()],
            )
        })?;
        if inserted == 0 {
            return Err(StoreError::RunExists(id.to_string()));
        }
        Ok(())
    }

    pub(crate) fn run(&self, id: &str) -> Result<Option<RunInfo>> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT config, created_at FROM runs WHERE id = ?1",
                [id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)),
            )
            .optional()
        })?;
        row.map(|(config, created_at)| {
            Ok(RunInfo {
                id: id.to_string(),
                config: serde_json::from_str(&config)?,
                created_at,
            })
        })
        .transpose()
    }

    pub(crate) fn add_items(&self, run_id: &str, items: &[NewItem]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare(
                    "INSERT OR IGNORE INTO run_items (run_id, seq, sample_key, judge_key, spec) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for item in items {
                    stmt.execute(params![run_id, item.seq, item.sample_key, item.judge_key, item.spec.to_string()])?;
                }
            }
            tx.commit()
        })
    }

    pub(crate) fn claim(
        &self,
        run_id: &str,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ItemState>> {
        let now = now();
        let expired = now - lease.as_secs_f64();
        let rows = self.with(|c| {
            // IMMEDIATE: take the write lock before reading, so two processes sharing the file
            // cannot claim the same rows.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {ITEM_COLUMNS}
                     WHERE i.run_id = ?1 AND j.value IS NULL
                       AND (i.claimed_by IS NULL OR i.claimed_at < ?2)
                     ORDER BY i.seq LIMIT ?3"
                ))?;
                let rows = stmt.query_map(params![run_id, expired, limit as i64], raw_item)?.collect::<rusqlite::Result<Vec<_>>>()?;
                let mut mark = tx.prepare("UPDATE run_items SET claimed_by = ?1, claimed_at = ?2 WHERE run_id = ?3 AND seq = ?4")?;
                for row in &rows {
                    mark.execute(params![worker, now, run_id, row.0])?;
                }
                rows
            };
            tx.commit()?;
            Ok(rows)
        })?;
        rows.into_iter().map(into_item).collect()
    }

    pub(crate) fn renew_claims(&self, run_id: &str, worker: &str, seqs: &[i64]) -> Result<()> {
        let now = now();
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut renew = tx.prepare(
                    "UPDATE run_items SET claimed_at = ?1 WHERE run_id = ?2 AND seq = ?3 AND claimed_by = ?4",
                )?;
                for seq in seqs {
                    renew.execute(params![now, run_id, seq, worker])?;
                }
            }
            tx.commit()
        })
    }

    pub(crate) fn release_claims(&self, run_id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE run_items SET claimed_by = NULL, claimed_at = NULL WHERE run_id = ?1",
                [run_id],
            )
        })?;
        Ok(())
    }

    pub(crate) fn put_sample(&self, key: &str, answer: &str, meta: &Value) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO samples (key, answer, meta, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![key, answer, meta.to_string(), now()],
            )
        })?;
        Ok(())
    }

    pub(crate) fn sample(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT answer FROM samples WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    pub(crate) fn put_judgement(
        &self,
        sample_key: &str,
        judge_key: &str,
        value: &Value,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO judgements (sample_key, judge_key, value, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![sample_key, judge_key, value.to_string(), now()],
            )
        })?;
        Ok(())
    }

    pub(crate) fn items(&self, run_id: &str) -> Result<Vec<ItemState>> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ITEM_COLUMNS} WHERE i.run_id = ?1 ORDER BY i.seq"
            ))?;
            stmt.query_map([run_id], raw_item)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(into_item).collect()
    }

    pub(crate) fn progress(&self, run_id: &str) -> Result<Progress> {
        let (total, judged) = self.with(|c| {
            c.query_row(
                "SELECT COUNT(*), COUNT(j.value) FROM run_items i
                 LEFT JOIN judgements j ON j.sample_key = i.sample_key AND j.judge_key = i.judge_key
                 WHERE i.run_id = ?1",
                [run_id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
        })?;
        Ok(Progress {
            total: total as u64,
            judged: judged as u64,
        })
    }
}

/// Opens (or creates) the database file at `path` for shared use and creates `schema`.
pub(crate) fn connect(path: &str, schema: &str) -> Result<Connection> {
    let err = |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
    // WAL + NORMAL: every committed row survives a process crash, at a fraction of the
    // cost of FULL (which only adds safety against power loss).
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    conn.execute_batch(schema).map_err(err)?;
    Ok(conn)
}

/// Runs `f` on the connection behind `conn`, naming the file in any error.
pub(crate) fn with<T>(
    path: &str,
    conn: &Mutex<Connection>,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut conn).map_err(|source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    })
}

type RawItem = (i64, String, String, String, Option<String>, Option<String>);

fn raw_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawItem> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn into_item((seq, sample_key, judge_key, spec, answer, judgement): RawItem) -> Result<ItemState> {
    Ok(ItemState {
        seq,
        sample_key,
        judge_key,
        spec: serde_json::from_str(&spec)?,
        answer,
        judgement: judgement.map(|j| serde_json::from_str(&j)).transpose()?,
    })
}
