//! The gateway's tables in PostgreSQL, shared by gateway replicas. Like SQLite, a writer and a
//! reader connection; a trace batch is one `INSERT … SELECT FROM UNNEST` (one round trip).

use super::{Backend, KeyUpdate, Order, SCHEMA, TraceQuery, TraceRow};
use crate::Result;
use crate::postgres::Connection;

/// The filter of [`TraceQuery`] ($1..$5) and a (time, id) cursor ($6, $7); NULL means "any".
const TRACE_FILTER: &str =
    "($1::float8 IS NULL OR time >= $1) AND ($2::float8 IS NULL OR time < $2)
    AND ($3::text IS NULL OR key_id = $3) AND ($4::text IS NULL OR model = $4)
    AND ($5::int4 IS NULL OR status = $5)
    AND ($6::float8 IS NULL OR time > $6 OR (time = $6 AND id > $7::text))";

pub(crate) struct Postgres {
    writer: Connection,
    reader: Connection,
}

impl Postgres {
    pub(crate) fn connect(url: &str) -> Result<Self> {
        Ok(Self {
            writer: Connection::open(url, SCHEMA)?,
            reader: Connection::open(url, "")?,
        })
    }
}

impl Backend for Postgres {
    fn insert_traces(&self, rows: &[TraceRow]) -> Result<()> {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let times: Vec<f64> = rows.iter().map(|r| r.time).collect();
        let key_ids: Vec<Option<&str>> = rows.iter().map(|r| r.key_id.as_deref()).collect();
        let models: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
        let statuses: Vec<i32> = rows.iter().map(|r| r.status).collect();
        let records: Vec<&str> = rows.iter().map(|r| r.record.as_str()).collect();
        self.writer.with(|c| {
            // One statement is one transaction: all rows commit together or none do.
            c.execute(
                "INSERT INTO gateway_traces (id, time, key_id, model, status, record)
                 SELECT * FROM UNNEST($1::text[], $2::float8[], $3::text[], $4::text[], $5::int4[], $6::text[])
                 ON CONFLICT (id) DO NOTHING",
                &[&ids, &times, &key_ids, &models, &statuses, &records],
            )?;
            Ok(())
        })
    }

    fn select_traces(&self, q: &TraceQuery, order: &Order, limit: usize) -> Result<Vec<String>> {
        let (sql_order, cursor) = match order {
            Order::NewestFirst => ("time DESC, id DESC", None),
            Order::OldestAfter(cursor) => ("time ASC, id ASC", cursor.clone()),
        };
        let (after_time, after_id) = cursor.unzip();
        let status = q.status.map(i32::from);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.reader.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT record FROM gateway_traces WHERE {TRACE_FILTER} ORDER BY {sql_order} LIMIT $8"
                ),
                &[&q.since, &q.until, &q.key_id, &q.model, &status, &after_time, &after_id, &limit],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn trace(&self, id: &str) -> Result<Option<String>> {
        self.reader.with(|c| {
            Ok(
                c.query_opt("SELECT record FROM gateway_traces WHERE id = $1", &[&id])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn delete_traces_before(&self, unix_secs: f64) -> Result<u64> {
        self.writer
            .with(|c| Ok(c.execute("DELETE FROM gateway_traces WHERE time < $1", &[&unix_secs])?))
    }

    fn insert_key(&self, id: &str, doc: &str) -> Result<bool> {
        let n = self.writer.with(|c| {
            Ok(c.execute(
                "INSERT INTO gateway_keys (id, record) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                &[&id, &doc],
            )?)
        })?;
        Ok(n == 1)
    }

    fn keys(&self) -> Result<Vec<String>> {
        self.reader.with(|c| {
            let rows = c.query("SELECT record FROM gateway_keys ORDER BY id", &[])?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn update_key(&self, id: &str, update: &KeyUpdate<'_>) -> Result<bool> {
        self.writer.with(|c| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(
                "SELECT record FROM gateway_keys WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            else {
                return Ok(false);
            };
            let doc = update(row.get(0))?;
            tx.execute(
                "UPDATE gateway_keys SET record = $2 WHERE id = $1",
                &[&id, &doc],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn set_active_version(&self, model: &str, version: &str) -> Result<()> {
        self.writer.with(|c| {
            c.execute(
                "INSERT INTO gateway_active_versions (model, version) VALUES ($1, $2)
                 ON CONFLICT (model) DO UPDATE SET version = excluded.version",
                &[&model, &version],
            )?;
            Ok(())
        })
    }

    fn add_key_tokens(&self, key_id: &str, day_start: i64, tokens: i64) -> Result<()> {
        self.writer.with(|c| {
            c.execute(
                "INSERT INTO gateway_key_usage (key_id, day_start, tokens) VALUES ($1, $2, $3)
                 ON CONFLICT (key_id, day_start)
                 DO UPDATE SET tokens = gateway_key_usage.tokens + excluded.tokens",
                &[&key_id, &day_start, &tokens],
            )?;
            Ok(())
        })
    }

    fn key_tokens(&self, key_id: &str, from: i64, until: i64) -> Result<i64> {
        self.reader.with(|c| {
            let row = c.query_one(
                "SELECT COALESCE(SUM(tokens), 0)::BIGINT FROM gateway_key_usage
                 WHERE key_id = $1 AND day_start >= $2 AND day_start < $3",
                &[&key_id, &from, &until],
            )?;
            Ok(row.get(0))
        })
    }

    fn active_versions(&self) -> Result<Vec<(String, String)>> {
        self.reader.with(|c| {
            let rows = c.query(
                "SELECT model, version FROM gateway_active_versions ORDER BY model",
                &[],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}
