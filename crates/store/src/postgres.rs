//! The PostgreSQL backend: several worker processes share one run; claims use
//! `FOR UPDATE SKIP LOCKED` so no two workers take the same item.

use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, NoTls};
use serde_json::Value;

use crate::{ItemState, NewItem, Progress, Result, RunInfo, StoreError, now};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    answer TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS judgements (
    sample_key TEXT NOT NULL,
    judge_key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sample_key, judge_key)
);
CREATE TABLE IF NOT EXISTS run_items (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq BIGINT NOT NULL,
    sample_key TEXT NOT NULL,
    judge_key TEXT NOT NULL,
    spec TEXT NOT NULL,
    claimed_by TEXT,
    claimed_at DOUBLE PRECISION,
    PRIMARY KEY (run_id, seq)
);
";

const ITEM_COLUMNS: &str = "i.seq, i.sample_key, i.judge_key, i.spec, s.answer, j.value
    FROM run_items i
    LEFT JOIN samples s ON s.key = i.sample_key
    LEFT JOIN judgements j ON j.sample_key = i.sample_key AND j.judge_key = i.judge_key";

pub(crate) struct Postgres {
    client: Connection,
}

impl Postgres {
    pub(crate) fn connect(url: &str) -> Result<Self> {
        Ok(Self {
            client: Connection::open(url, SCHEMA)?,
        })
    }

    fn with<T: Send>(&self, f: impl FnOnce(&mut Client) -> Result<T> + Send) -> Result<T> {
        self.client.with(f)
    }

    pub(crate) fn create_run(&self, id: &str, config: &Value) -> Result<()> {
        let inserted = self.with(|c| {
            Ok(c.execute(
                "INSERT INTO runs (id, config, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&id, &config.to_string(), &now()],
            )?)
        })?;
        if inserted == 0 {
            return Err(StoreError::RunExists(id.to_string()));
        }
        Ok(())
    }

    pub(crate) fn run(&self, id: &str) -> Result<Option<RunInfo>> {
        let row = self.with(|c| {
            Ok(c.query_opt("SELECT config, created_at FROM runs WHERE id = $1", &[&id])?)
        })?;
        row.map(|r| {
            Ok(RunInfo {
                id: id.to_string(),
                config: serde_json::from_str(r.get::<_, &str>(0))?,
                created_at: r.get(1),
            })
        })
        .transpose()
    }

    pub(crate) fn add_items(&self, run_id: &str, items: &[NewItem]) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let stmt = tx.prepare(
                "INSERT INTO run_items (run_id, seq, sample_key, judge_key, spec) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
            )?;
            for item in items {
                tx.execute(&stmt, &[&run_id, &item.seq, &item.sample_key, &item.judge_key, &item.spec.to_string()])?;
            }
            tx.commit()?;
            Ok(())
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
            let mut tx = c.transaction()?;
            let seqs: Vec<i64> = tx
                .query(
                    "UPDATE run_items SET claimed_by = $1, claimed_at = $2
                     WHERE run_id = $3 AND seq IN (
                        SELECT i.seq FROM run_items i
                        WHERE i.run_id = $3
                          AND (i.claimed_by IS NULL OR i.claimed_at < $4)
                          AND NOT EXISTS (SELECT 1 FROM judgements j
                                          WHERE j.sample_key = i.sample_key AND j.judge_key = i.judge_key)
                        ORDER BY i.seq LIMIT $5
                        FOR UPDATE SKIP LOCKED)
                     RETURNING seq",
                    &[&worker, &now, &run_id, &expired, &(limit as i64)],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let rows = tx.query(
                &format!("SELECT {ITEM_COLUMNS} WHERE i.run_id = $1 AND i.seq = ANY($2) ORDER BY i.seq"),
                &[&run_id, &seqs],
            )?;
            tx.commit()?;
            Ok(rows)
        })?;
        rows.iter().map(into_item).collect()
    }

    pub(crate) fn renew_claims(&self, run_id: &str, worker: &str, seqs: &[i64]) -> Result<()> {
        let now = now();
        self.with(|c| {
            c.execute(
                "UPDATE run_items SET claimed_at = $1 WHERE run_id = $2 AND seq = ANY($3) AND claimed_by = $4",
                &[&now, &run_id, &seqs, &worker],
            )?;
            Ok(())
        })
    }

    pub(crate) fn release_claims(&self, run_id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE run_items SET claimed_by = NULL, claimed_at = NULL WHERE run_id = $1",
                &[&run_id],
            )?;
            Ok(())
        })
    }

    pub(crate) fn put_sample(&self, key: &str, answer: &str, meta: &Value) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO samples (key, answer, meta, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&key, &answer, &meta.to_string(), &now()],
            )?;
            Ok(())
        })
    }

    pub(crate) fn sample(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(
                c.query_opt("SELECT answer FROM samples WHERE key = $1", &[&key])?
                    .map(|r| r.get(0)),
            )
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
                "INSERT INTO judgements (sample_key, judge_key, value, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&sample_key, &judge_key, &value.to_string(), &now()],
            )?;
            Ok(())
        })
    }

    pub(crate) fn items(&self, run_id: &str) -> Result<Vec<ItemState>> {
        let rows = self.with(|c| {
            Ok(c.query(
                &format!("SELECT {ITEM_COLUMNS} WHERE i.run_id = $1 ORDER BY i.seq"),
                &[&run_id],
            )?)
        })?;
        rows.iter().map(into_item).collect()
    }

    pub(crate) fn progress(&self, run_id: &str) -> Result<Progress> {
        let row = self.with(|c| {
            Ok(c.query_one(
                "SELECT COUNT(*), COUNT(j.value) FROM run_items i
                 LEFT JOIN judgements j ON j.sample_key = i.sample_key AND j.judge_key = i.judge_key
                 WHERE i.run_id = $1",
                &[&run_id],
            )?)
        })?;
        Ok(Progress {
            total: row.get::<_, i64>(0) as u64,
            judged: row.get::<_, i64>(1) as u64,
        })
    }
}

/// Connects to `url` and creates `schema` (tables `IF NOT EXISTS`).
pub(crate) fn connect(url: &str, schema: &str) -> Result<Client> {
    off_async_threads(|| {
        let mut client = Client::connect(url, NoTls)?;
        // Serialise schema creation across workers starting together.
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(7215001)", &[])?;
        tx.batch_execute(schema)?;
        tx.commit()?;
        Ok(client)
    })
}

/// One PostgreSQL connection that sync and async callers share: each call, and closing it,
/// runs off the async worker threads (see [`off_async_threads`]). Every table family of the
/// store (runs, gateway, review, monitor) holds its connections as these.
pub(crate) struct Connection {
    /// `None` only while being dropped.
    client: Mutex<Option<Client>>,
}

impl Connection {
    /// Connects to `url` and creates `schema` (`""` for none).
    pub(crate) fn open(url: &str, schema: &str) -> Result<Connection> {
        Ok(Connection {
            client: Mutex::new(Some(connect(url, schema)?)),
        })
    }

    /// Runs `f` with the client, off any async worker thread.
    pub(crate) fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T> + Send,
    ) -> Result<T> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let client = guard.as_mut().expect("the client lives until drop");
        off_async_threads(|| f(client))
    }
}

impl Drop for Connection {
    /// Closing a connection blocks on the client's own runtime, which panics on an async
    /// worker thread: the last handle may well be dropped on one.
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let _ = off_async_threads(move || {
            drop(client);
            Ok(())
        });
    }
}

/// Runs `f` on a scoped thread. The synchronous client blocks on a runtime of its own, which
/// panics on a thread that drives async tasks (the CLI calls the store from async code); a
/// fresh thread never is one, and a thread start costs far less than a round trip.
pub(crate) fn off_async_threads<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn into_item(r: &postgres::Row) -> Result<ItemState> {
    Ok(ItemState {
        seq: r.get(0),
        sample_key: r.get(1),
        judge_key: r.get(2),
        spec: serde_json::from_str(r.get::<_, &str>(3))?,
        answer: r.get(4),
        judgement: r
            .get::<_, Option<&str>>(5)
            .map(serde_json::from_str)
            .transpose()?,
    })
}
