//! The monitor's tables in PostgreSQL, shared by gateway replicas.

use super::{Backend, IncidentUpdate, JudgementRow, JudgementTally, SCHEMA};
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
    fn insert_judgements(&self, rows: &[JudgementRow]) -> Result<()> {
        let ids: Vec<&str> = rows.iter().map(|r| r.trace_id.as_str()).collect();
        let times: Vec<f64> = rows.iter().map(|r| r.time).collect();
        let models: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
        let versions: Vec<&str> = rows.iter().map(|r| r.version.as_str()).collect();
        let records: Vec<&str> = rows.iter().map(|r| r.record.as_str()).collect();
        self.client.with(|c| {
            c.execute(
                "INSERT INTO monitor_judgements (trace_id, time, model, version, record)
                 SELECT * FROM UNNEST($1::text[], $2::float8[], $3::text[], $4::text[], $5::text[])
                 ON CONFLICT (trace_id) DO NOTHING",
                &[&ids, &times, &models, &versions, &records],
            )?;
            Ok(())
        })
    }

    fn judgements(&self, model: &str, version: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.client.with(|c| {
            let rows = c.query(
                "SELECT record FROM monitor_judgements WHERE model = $1 AND ($2::text IS NULL OR version = $2)
                 ORDER BY time DESC, trace_id DESC LIMIT $3",
                &[&model, &version, &limit],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn tallies(&self) -> Result<Vec<JudgementTally>> {
        self.client.with(|c| {
            let rows = c.query(
                "SELECT model, version, COUNT(*),
                        COUNT(*) FILTER (WHERE (record::jsonb->>'misaligned')::boolean),
                        COUNT(*) FILTER (WHERE (record::jsonb->>'insecure_code')::boolean),
                        COUNT(*) FILTER (WHERE (record::jsonb->>'filter_hit')::boolean)
                 FROM monitor_judgements GROUP BY model, version",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| JudgementTally {
                    model: r.get(0),
                    version: r.get(1),
                    judged: r.get::<_, i64>(2) as u64,
                    misaligned: r.get::<_, i64>(3) as u64,
                    insecure_code: r.get::<_, i64>(4) as u64,
                    filter_hits: r.get::<_, i64>(5) as u64,
                })
                .collect())
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
        self.client.with(|c| {
            let mut tx = c.transaction()?;
            // Two replicas seeing one breach at once: the lock makes the second see the first's incident.
            tx.execute("SELECT pg_advisory_xact_lock(7215017)", &[])?;
            let open: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM monitor_incidents WHERE model = $1 AND version = $2 AND state != 'resolved'",
                    &[&model, &version],
                )?
                .get(0);
            if open > 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO monitor_incidents (id, model, version, state, opened_at, record)
                 VALUES ($1, $2, $3, 'open', $4, $5)",
                &[&id, &model, &version, &opened_at, &doc],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn update_incident(&self, id: &str, update: &IncidentUpdate<'_>) -> Result<Option<String>> {
        self.client.with(|c| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(
                "SELECT record FROM monitor_incidents WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            else {
                return Ok(None);
            };
            let (state, doc) = update(row.get(0))?;
            tx.execute(
                "UPDATE monitor_incidents SET state = $2, record = $3 WHERE id = $1",
                &[&id, &state, &doc],
            )?;
            tx.commit()?;
            Ok(Some(doc))
        })
    }

    fn incidents(
        &self,
        state: Option<&str>,
        model: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.client.with(|c| {
            let rows = c.query(
                "SELECT record FROM monitor_incidents WHERE ($1::text IS NULL OR state = $1)
                 AND ($2::text IS NULL OR model = $2)
                 AND ($3::text IS NULL OR (opened_at, id) < (SELECT opened_at, id FROM monitor_incidents WHERE id = $3))
                 ORDER BY opened_at DESC, id DESC LIMIT $4",
                &[&state, &model, &after, &limit],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn unresolved_incidents(&self) -> Result<Vec<String>> {
        self.client.with(|c| {
            let rows = c.query(
                "SELECT record FROM monitor_incidents WHERE state != 'resolved' ORDER BY opened_at",
                &[],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn incident(&self, id: &str) -> Result<Option<String>> {
        self.client.with(|c| {
            Ok(
                c.query_opt("SELECT record FROM monitor_incidents WHERE id = $1", &[&id])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn rollouts(&self) -> Result<Vec<String>> {
        self.client.with(|c| {
            let rows = c.query("SELECT record FROM monitor_rollouts ORDER BY model", &[])?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn put_rollout(
        &self,
        model: &str,
        expected: Option<i64>,
        revision: i64,
        doc: &str,
    ) -> Result<bool> {
        self.client.with(|c| {
            let changed = match expected {
                None => c.execute(
                    "INSERT INTO monitor_rollouts (model, revision, record) VALUES ($1, $2, $3)
                     ON CONFLICT (model) DO NOTHING",
                    &[&model, &revision, &doc],
                )?,
                Some(expected) => c.execute(
                    "UPDATE monitor_rollouts SET revision = $3, record = $4 WHERE model = $1 AND revision = $2",
                    &[&model, &expected, &revision, &doc],
                )?,
            };
            Ok(changed == 1)
        })
    }
}
