//! The gateway's tables in a SQLite file (WAL): a writer connection for the trace writer and
//! admin changes, a reader connection for queries, so that neither waits for the other, and a
//! checkpointer thread with a connection of its own.
//!
//! Checkpoints (copying the WAL into the database file, with its `fsync`) would otherwise run
//! inside a commit every 1000 WAL pages (SQLite's auto-checkpoint), stalling the commit, and
//! so in durable mode every answer waiting for it, by the length of an `fsync`. The writer
//! connection has auto-checkpoints off; the checkpointer runs a passive checkpoint (one that
//! never blocks the writer) every [`CHECKPOINT_EVERY`].
//!
//! A passive checkpoint alone lets the WAL grow without end under steady writes: the WAL
//! starts over from its beginning only when a write transaction begins after a checkpoint has
//! copied every frame, and a writer committing every few milliseconds always appends more
//! while the checkpoint copies (measured: 144 MB of WAL after 90,000 traces in 18 s, never
//! reset). So when the WAL holds more than [`WAL_RESTART_FRAMES`] after the passive
//! checkpoint, the checkpointer runs a RESTART checkpoint, which holds the writer back while
//! it copies the few frames left (the passive one just copied the rest) and makes the next
//! write start the WAL over; `journal_size_limit` then truncates the file to that size.

use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Backend, Checkpoints, Cursor, KeyUpdate, Order, SCHEMA, TraceQuery, TraceRow};
use crate::Result;
use crate::sqlite::{connect, with};

/// The filter of [`TraceQuery`] (?1..?5) and a (time, id) cursor (?6, ?7); NULL means "any".
const TRACE_FILTER: &str = "(?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR time < ?2)
    AND (?3 IS NULL OR key_id = ?3) AND (?4 IS NULL OR model = ?4) AND (?5 IS NULL OR status = ?5)
    AND (?6 IS NULL OR time > ?6 OR (time = ?6 AND id > ?7))";

/// How often the checkpointer copies the WAL into the database file. Between two, the WAL
/// grows by what was committed meanwhile (a few MB at 5,000 traces/s).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// WAL frames (pages, 4 KiB by default) beyond which the checkpointer makes the WAL start
/// over: 16 MiB, about 10,000 traces with full content.
const WAL_RESTART_FRAMES: i64 = 4096;

pub(crate) struct Sqlite {
    path: String,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// `None` with [`Checkpoints::InCommits`] or when its thread could not start: the writer
    /// then checkpoints as SQLite does by default, inside its commits.
    _checkpointer: Option<Checkpointer>,
}

impl Sqlite {
    pub(crate) fn open(path: &str, checkpoints: Checkpoints) -> Result<Self> {
        let writer = connect(path, SCHEMA)?;
        let reader = connect(path, "")?;
        let checkpointer = match checkpoints {
            Checkpoints::OnThread => Checkpointer::start(connect(path, "")?),
            Checkpoints::InCommits => None,
        };
        let err = |source| crate::StoreError::Sqlite {
            path: path.to_string(),
            source,
        };
        // With the checkpointer: none in commits. Without: one in the commit that takes the
        // WAL past WAL_RESTART_FRAMES (not SQLite's default 1,000 pages: each checkpoint ends
        // in an `fsync`, whose disk interrupts land on whatever core they land on).
        let in_commits = if checkpointer.is_some() {
            0
        } else {
            WAL_RESTART_FRAMES
        };
        writer
            .pragma_update(None, "wal_autocheckpoint", in_commits)
            .map_err(err)?;
        // When the WAL starts over, its file is cut back to this size.
        writer
            .pragma_update(None, "journal_size_limit", WAL_RESTART_FRAMES * 4096)
            .map_err(err)?;
        Ok(Self {
            path: path.to_string(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            _checkpointer: checkpointer,
        })
    }

    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        with(&self.path, &self.writer, f)
    }

    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        with(&self.path, &self.reader, f)
    }
}

/// The checkpointer thread; dropping this stops it (after the checkpoint it may be running).
struct Checkpointer {
    /// Dropped to stop the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Option<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("emguard-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    // PASSIVE copies what it can without waiting for readers or the writer.
                    // It fails only when the file cannot be written (the writer's commits
                    // report that) or another checkpoint runs: either way the next one, a
                    // second later, copies what this one could not.
                    // Its row: (busy, frames in the WAL, frames copied); see the module docs.
                    let frames = conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                        .unwrap_or(0);
                    if frames > WAL_RESTART_FRAMES {
                        let _ = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
                    }
                }
            })
            .ok()?;
        Some(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

    fn add_key_tokens(&self, key_id: &str, day_start: i64, tokens: i64) -> Result<()> {
        self.write(|c| {
            c.execute(
                "INSERT INTO gateway_key_usage (key_id, day_start, tokens) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key_id, day_start) DO UPDATE SET tokens = tokens + excluded.tokens",
                rusqlite::params![key_id, day_start, tokens],
            )
        })?;
        Ok(())
    }

    fn key_tokens(&self, key_id: &str, from: i64, until: i64) -> Result<i64> {
        self.read(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(tokens), 0) FROM gateway_key_usage
                 WHERE key_id = ?1 AND day_start >= ?2 AND day_start < ?3",
                rusqlite::params![key_id, from, until],
                |r| r.get(0),
            )
        })
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn row(i: usize) -> TraceRow {
        TraceRow {
            id: format!("chatcmpl-{i:08}"),
            time: i as f64,
            key_id: Some("key_1".into()),
            model: "assistant".into(),
            status: 200,
            record: format!(
                "{{\"id\": \"chatcmpl-{i:08}\", \"pad\": \"{}\"}}",
                "x".repeat(400)
            ),
        }
    }

    /// Rows in the database file alone, as a process would see it after losing the WAL: what
    /// has been checkpointed.
    fn checkpointed_rows(path: &std::path::Path, scratch: &std::path::Path) -> i64 {
        std::fs::copy(path, scratch).unwrap();
        let _ = std::fs::remove_file(scratch.with_extension("db-wal"));
        let c = Connection::open(scratch).unwrap();
        // Before the first checkpoint the file has not even the table.
        c.query_row("SELECT COUNT(*) FROM gateway_traces", [], |r| r.get(0))
            .unwrap_or(0)
    }

    #[test]
    fn the_checkpointer_copies_commits_into_the_file_that_commits_leave_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.db");
        let store = Sqlite::open(path.to_str().unwrap(), Checkpoints::OnThread).unwrap();
        let autocheckpoint: i64 = store
            .writer
            .lock()
            .unwrap()
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(autocheckpoint, 0, "commits must not checkpoint");
        let rows: Vec<TraceRow> = (0..2000).map(row).collect();
        for batch in rows.chunks(100) {
            store.insert_traces(batch).unwrap();
        }
        // The checkpointer runs every second; allow a loaded machine ten.
        let scratch = dir.path().join("copy.db");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = checkpointed_rows(&path, &scratch);
        while seen < 2000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            seen = checkpointed_rows(&path, &scratch);
        }
        assert_eq!(seen, 2000, "rows in the database file after checkpoints");
        // Dropping the store stops the checkpointer (a thread left running would hold the
        // file open): the file can be opened exclusively afterwards.
        drop(store);
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;")
            .unwrap();
    }

    #[test]
    fn the_wal_stays_bounded_under_steady_writes_checkpointed_on_a_thread() {
        the_wal_stays_bounded_under_steady_writes(Checkpoints::OnThread);
    }

    #[test]
    fn the_wal_stays_bounded_under_steady_writes_checkpointed_in_commits() {
        the_wal_stays_bounded_under_steady_writes(Checkpoints::InCommits);
    }

    fn the_wal_stays_bounded_under_steady_writes(checkpoints: Checkpoints) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.db");
        let wal = dir.path().join("gateway.db-wal");
        let store = Sqlite::open(path.to_str().unwrap(), checkpoints).unwrap();
        let wal_bytes = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        // The bound plus what a second of these writes adds, with room to spare.
        let bound = 3 * WAL_RESTART_FRAMES as u64 * 4096;
        // A batch every 10 ms, as the trace writer commits under load, until more than twice
        // the bound was written (a fixed amount of writing, not a time: a busy machine takes
        // longer but writes as much). With passive checkpoints alone the WAL never starts over.
        let (mut written, mut largest) = (0, 0);
        while written as u64 * 450 <= 2 * bound {
            let rows: Vec<TraceRow> = (written..written + 500).map(row).collect();
            store.insert_traces(&rows).unwrap();
            written += rows.len();
            largest = largest.max(wal_bytes());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            largest <= bound,
            "{checkpoints:?}: the WAL reached {largest} bytes (bound {bound}) after {written} rows"
        );
    }
}
