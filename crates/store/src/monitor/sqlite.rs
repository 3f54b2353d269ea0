//! The monitor's tables in the gateway's SQLite file, on connections of their own (WAL: the
//! trace writer and the monitor do not wait for each other's reads).

use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Backend, IncidentUpdate, JudgementRow, JudgementTally, SCHEMA};
use crate::Result;
use crate::sqlite::{connect, with};

pub(crate) struct Sqlite {
    path: String,
    conn: Mutex<Connection>,
}

impl Sqlite {
    pub(crate) fn open(path: &str) -> Result<Self> {
        Ok(Self {
            path: path.to_string(),
            conn: Mutex::new(connect(path, SCHEMA)?),
        })
    }

    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        with(&self.path, &self.conn, f)
    }
}

impl Backend for Sqlite {
    fn insert_judgements(&self, rows: &[JudgementRow]) -> Result<()> {
        self.run(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO monitor_judgements (trace_id, time, model, version, record)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for r in rows {
                    stmt.execute(params![r.trace_id, r.time, r.model, r.version, r.record])?;
                }
            }
            tx.commit()
        })
    }

    fn judgements(&self, model: &str, version: Option<&str>, limit: usize) -> Result<Vec<String>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT record FROM monitor_judgements WHERE model = ?1 AND (?2 IS NULL OR version = ?2)
                 ORDER BY time DESC, trace_id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![model, version, limit as i64], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn tallies(&self) -> Result<Vec<JudgementTally>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT model, version, COUNT(*),
                        SUM(json_extract(record, '$.misaligned')),
                        SUM(json_extract(record, '$.insecure_code')),
                        SUM(json_extract(record, '$.filter_hit'))
                 FROM monitor_judgements GROUP BY model, version",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(JudgementTally {
                    model: r.get(0)?,
                    version: r.get(1)?,
                    judged: r.get::<_, i64>(2)? as u64,
                    misaligned: r.get::<_, i64>(3)? as u64,
                    insecure_code: r.get::<_, i64>(4)? as u64,
                    filter_hits: r.get::<_, i64>(5)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    fn insert_incident(
        &self,
        id: &str,
        model: &str,
        version: &str,
        opened_at: f64,
        doc: &str,
    ) -> Result<bool> {
        self.run(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let open: i64 = tx.query_row(
                "SELECT COUNT(*) FROM monitor_incidents WHERE model = ?1 AND version = ?2 AND state != 'resolved'",
                params![model, version],
                |r| r.get(0),
            )?;
            if open > 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO monitor_incidents (id, model, version, state, opened_at, record)
                 VALUES (?1, ?2, ?3, 'open', ?4, ?5)",
                params![id, model, version, opened_at, doc],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn update_incident(&self, id: &str, update: &IncidentUpdate<'_>) -> Result<Option<String>> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let err = |source| crate::StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let Some(doc) = tx
            .query_row(
                "SELECT record FROM monitor_incidents WHERE id = ?1",
                [id],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(err)?
        else {
            return Ok(None);
        };
        let (state, doc) = update(&doc)?;
        tx.execute(
            "UPDATE monitor_incidents SET state = ?2, record = ?3 WHERE id = ?1",
            params![id, state, doc],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Some(doc))
    }

    fn incidents(
        &self,
        state: Option<&str>,
        model: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT record FROM monitor_incidents WHERE (?1 IS NULL OR state = ?1)
                 AND (?2 IS NULL OR model = ?2)
                 AND (?3 IS NULL OR (opened_at, id) < (SELECT opened_at, id FROM monitor_incidents WHERE id = ?3))
                 ORDER BY opened_at DESC, id DESC LIMIT ?4",
            )?;
            let rows =
                stmt.query_map(params![state, model, after, limit as i64], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn unresolved_incidents(&self) -> Result<Vec<String>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT record FROM monitor_incidents WHERE state != 'resolved' ORDER BY opened_at",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn incident(&self, id: &str) -> Result<Option<String>> {
        self.run(|c| {
            c.query_row(
                "SELECT record FROM monitor_incidents WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn rollouts(&self) -> Result<Vec<String>> {
        self.run(|c| {
            let mut stmt =
                c.prepare_cached("SELECT record FROM monitor_rollouts ORDER BY model")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn put_rollout(
        &self,
        model: &str,
        expected: Option<i64>,
        revision: i64,
        doc: &str,
    ) -> Result<bool> {
        self.run(|c| {
            let changed = match expected {
                None => c.execute(
                    "INSERT OR IGNORE INTO monitor_rollouts (model, revision, record) VALUES (?1, ?2, ?3)",
                    params![model, revision, doc],
                )?,
                Some(expected) => c.execute(
                    "UPDATE monitor_rollouts SET revision = ?3, record = ?4 WHERE model = ?1 AND revision = ?2",
                    params![model, expected, revision, doc],
                )?,
            };
            Ok(changed == 1)
        })
    }
}
