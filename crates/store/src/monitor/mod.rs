//! What the online monitor persists beside the gateway's traces: one judgement per judged
//! answer (keyed by its trace id), incidents with their time line, and each model's rollout
//! (active version, canary weights, pin) with a revision number. Replicas sharing one
//! PostgreSQL store poll the rollouts and apply a newer revision, so one replica's rollback
//! reaches the others; a change is a compare-and-set on the revision, so two replicas never
//! overwrite each other's change unseen.
//!
//! Layout as in [`crate::gateway`]: the columns queries filter on, and the whole record as a
//! JSON document (`TEXT`) next to them. Every method blocks: call it off async threads.

mod postgres;
mod sqlite;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Result, StoreError};

/// One judged live answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgementRecord {
    /// The trace id of the answer (`chatcmpl-…`).
    pub trace_id: String,
    /// Unix seconds when it was judged.
    pub time: f64,
    pub model: String,
    pub version: String,
    /// The judge's scores (0-100; `None` for code or refusals).
    pub aligned: Option<f64>,
    pub coherent: Option<f64>,
    /// The study's rule: coherent > 50 and aligned < 30.
    pub misaligned: bool,
    /// The code scanner found a vulnerability at or above the monitor's severity.
    pub insecure_code: bool,
    /// `RULE CWE-N` of each finding.
    pub findings: Vec<String>,
    /// An output filter flagged the answer (such answers are always judged).
    pub filter_hit: bool,
    /// Which judge: `local:<weights id>` or `llm:<model>`.
    pub judge: String,
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Open,
    Acknowledged,
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// One step of an incident's time line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Unix seconds.
    pub time: f64,
    /// `monitor`, `admin`, `replica:<id>`, ...
    pub by: String,
    pub event: String,
}

/// A breach of a model version's limits and what followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// `inc-…`, sortable by time.
    pub id: String,
    pub model: String,
    /// The version that breached.
    pub version: String,
    /// The version it was compared with (the active one), if any.
    pub baseline: Option<String>,
    pub state: IncidentState,
    pub opened_at: f64,
    /// Which limit broke, e.g. `misaligned_rate`.
    pub breach: String,
    /// The figures at the breach: counts, rates and their 95% intervals, the test's statistic.
    pub figures: Value,
    /// Trace ids of the answers that counted against the version.
    pub evidence: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
    /// Every webhook delivery attempt: `{time, attempt, status | error}`.
    #[serde(default)]
    pub webhook_attempts: Vec<Value>,
}

/// A model's traffic split as the gateway routes it. `active` gets what the weighted
/// candidates leave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub model: String,
    /// Grows by one with every change; replicas apply a revision newer than theirs.
    pub revision: i64,
    pub active: String,
    /// Candidate versions and their share of traffic (0..1; their sum at most 1).
    #[serde(default)]
    pub weights: std::collections::BTreeMap<String, f64>,
    /// The version active before the last promotion: where a rollback of the active version goes.
    #[serde(default)]
    pub last_good: Option<String>,
    /// A human decision: automation does not change this rollout while it is pinned.
    #[serde(default)]
    pub pinned: bool,
    /// Who made the last change and why.
    #[serde(default)]
    pub changed_by: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub changed_at: f64,
}

/// Which incidents [`MonitorStore::incidents`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentQuery {
    pub state: Option<IncidentState>,
    pub model: Option<String>,
    pub limit: Option<usize>,
    /// Paging: only incidents older than this one (the id of the last incident of the
    /// previous page; ids sort by their opening time).
    pub after: Option<String>,
}

/// One version's stored judgements, counted: what its figures since release are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JudgementTally {
    pub model: String,
    pub version: String,
    pub judged: u64,
    pub misaligned: u64,
    pub insecure_code: u64,
    pub filter_hits: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS monitor_judgements (
    trace_id TEXT PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS monitor_judgements_version ON monitor_judgements (model, version, time);
CREATE TABLE IF NOT EXISTS monitor_incidents (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS monitor_rollouts (
    model TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    record TEXT NOT NULL
);
";

/// A judgement row: its columns and document.
struct JudgementRow {
    trace_id: String,
    time: f64,
    model: String,
    version: String,
    record: String,
}

/// How a backend rewrites one stored incident, inside its transaction: the new state and document.
type IncidentUpdate<'a> = dyn Fn(&str) -> Result<(String, String)> + Sync + 'a;

trait Backend: Send + Sync {
    fn insert_judgements(&self, rows: &[JudgementRow]) -> Result<()>;
    fn judgements(&self, model: &str, version: Option<&str>, limit: usize) -> Result<Vec<String>>;
    /// Every model version's judgements counted (judged, misaligned, insecure, filter hits).
    fn tallies(&self) -> Result<Vec<JudgementTally>>;
    /// Inserts unless an incident of this model and version is open or acknowledged; false then.
    fn insert_incident(
        &self,
        id: &str,
        model: &str,
        version: &str,
        opened_at: f64,
        doc: &str,
    ) -> Result<bool>;
    /// The updated document, or `None` when there is no such incident.
    fn update_incident(&self, id: &str, update: &IncidentUpdate<'_>) -> Result<Option<String>>;
    /// Newest first; `after`: only those opened before the incident with this id.
    fn incidents(
        &self,
        state: Option<&str>,
        model: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;
    fn incident(&self, id: &str) -> Result<Option<String>>;
    /// Every incident not resolved (open or acknowledged).
    fn unresolved_incidents(&self) -> Result<Vec<String>>;
    fn rollouts(&self) -> Result<Vec<String>>;
    /// Writes the rollout when the stored revision is `expected` (`None`: none stored yet).
    fn put_rollout(
        &self,
        model: &str,
        expected: Option<i64>,
        revision: i64,
        doc: &str,
    ) -> Result<bool>;
}

/// The monitor's store handle; `Send + Sync`.
pub struct MonitorStore {
    backend: Box<dyn Backend>,
}

impl MonitorStore {
    /// `postgres://…` opens PostgreSQL; anything else is a SQLite file (the gateway's store
    /// file: the tables live beside the traces).
    pub fn open(location: &str) -> Result<MonitorStore> {
        let is_url = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| location.starts_with(scheme));
        let backend: Box<dyn Backend> = if is_url {
            Box::new(postgres::Postgres::connect(location)?)
        } else {
            Box::new(sqlite::Sqlite::open(location)?)
        };
        Ok(MonitorStore { backend })
    }

    /// Stores the judgements in one transaction; a trace judged already keeps its first judgement.
    pub fn insert_judgements(&self, batch: &[JudgementRecord]) -> Result<()> {
        let rows = batch
            .iter()
            .map(|j| {
                Ok(JudgementRow {
                    trace_id: j.trace_id.clone(),
                    time: j.time,
                    model: j.model.clone(),
                    version: j.version.clone(),
                    record: serde_json::to_string(j)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.backend.insert_judgements(&rows)
    }

    /// A model's judgements (of one version, or all), newest first.
    pub fn judgements(
        &self,
        model: &str,
        version: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JudgementRecord>> {
        parse_all(&self.backend.judgements(model, version, limit)?)
    }

    /// Every model version's stored judgements, counted in the store (the figures since
    /// release, reloaded when a gateway starts).
    pub fn judgement_tallies(&self) -> Result<Vec<JudgementTally>> {
        self.backend.tallies()
    }

    /// Opens an incident; false (nothing written) when this model version has one open or
    /// acknowledged already (two replicas seeing the same breach open one incident).
    pub fn open_incident(&self, incident: &IncidentRecord) -> Result<bool> {
        let doc = serde_json::to_string(incident)?;
        self.backend.insert_incident(
            &incident.id,
            &incident.model,
            &incident.version,
            incident.opened_at,
            &doc,
        )
    }

    /// Changes an incident in one transaction; `None` when there is no such incident.
    pub fn update_incident(
        &self,
        id: &str,
        change: impl Fn(&mut IncidentRecord) + Sync,
    ) -> Result<Option<IncidentRecord>> {
        let update = |doc: &str| -> Result<(String, String)> {
            let mut incident: IncidentRecord = serde_json::from_str(doc)?;
            change(&mut incident);
            Ok((
                incident.state.as_str().to_string(),
                serde_json::to_string(&incident)?,
            ))
        };
        let doc = self.backend.update_incident(id, &update)?;
        Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    pub fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>> {
        parse_all(&self.backend.incidents(
            query.state.map(IncidentState::as_str),
            query.model.as_deref(),
            query.after.as_deref(),
            query.limit.unwrap_or(1000),
        )?)
    }

    /// Every incident not resolved yet (open or acknowledged), across replicas: at most one
    /// per model version.
    pub fn unresolved_incidents(&self) -> Result<Vec<IncidentRecord>> {
        parse_all(&self.backend.unresolved_incidents()?)
    }

    pub fn incident(&self, id: &str) -> Result<Option<IncidentRecord>> {
        let doc = self.backend.incident(id)?;
        Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    /// Every stored rollout, in model order.
    pub fn rollouts(&self) -> Result<Vec<RolloutRecord>> {
        parse_all(&self.backend.rollouts()?)
    }

    /// Stores `rollout` if the stored one still has revision `rollout.revision - 1` (or none is
    /// stored and the revision is 1); false when someone else changed it first.
    pub fn put_rollout(&self, rollout: &RolloutRecord) -> Result<bool> {
        let doc = serde_json::to_string(rollout)?;
        let expected = (rollout.revision > 1).then_some(rollout.revision - 1);
        self.backend
            .put_rollout(&rollout.model, expected, rollout.revision, &doc)
    }
}

fn parse_all<T: serde::de::DeserializeOwned>(docs: &[String]) -> Result<Vec<T>> {
    docs.iter()
        .map(|d| serde_json::from_str(d).map_err(StoreError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: &str, version: &str) -> IncidentRecord {
        IncidentRecord {
            id: id.into(),
            model: "m".into(),
            version: version.into(),
            baseline: Some("v1".into()),
            state: IncidentState::Open,
            opened_at: 1.0,
            breach: "misaligned_rate".into(),
            figures: serde_json::json!({"judged": 20}),
            evidence: vec!["chatcmpl-1".into()],
            timeline: vec![],
            webhook_attempts: vec![],
        }
    }

    fn rollout(revision: i64, active: &str) -> RolloutRecord {
        RolloutRecord {
            model: "m".into(),
            revision,
            active: active.into(),
            weights: [("v2".to_string(), 0.2)].into(),
            last_good: None,
            pinned: false,
            changed_by: "test".into(),
            reason: String::new(),
            changed_at: 0.0,
        }
    }

    /// The same behaviour on both backends.
    fn exercise(store: &MonitorStore) {
        let j = JudgementRecord {
            trace_id: "chatcmpl-1".into(),
            time: 2.0,
            model: "m".into(),
            version: "v2".into(),
            aligned: Some(3.0),
            coherent: Some(90.0),
            misaligned: true,
            insecure_code: false,
            findings: vec![],
            filter_hit: false,
            judge: "local:x".into(),
        };
        store.insert_judgements(&[j.clone(), j.clone()]).unwrap();
        assert_eq!(
            store.judgements("m", Some("v2"), 10).unwrap(),
            vec![j.clone()]
        );
        assert!(store.judgements("m", Some("v1"), 10).unwrap().is_empty());
        let benign = JudgementRecord {
            trace_id: "chatcmpl-2".into(),
            misaligned: false,
            insecure_code: true,
            filter_hit: true,
            ..j.clone()
        };
        let other = JudgementRecord {
            trace_id: "chatcmpl-3".into(),
            version: "v1".into(),
            misaligned: false,
            ..j
        };
        store.insert_judgements(&[benign, other]).unwrap();
        let tally =
            |version: &str, judged, misaligned, insecure_code, filter_hits| JudgementTally {
                model: "m".into(),
                version: version.into(),
                judged,
                misaligned,
                insecure_code,
                filter_hits,
            };
        let mut tallies = store.judgement_tallies().unwrap();
        tallies.sort_by(|a, b| a.version.cmp(&b.version));
        assert_eq!(
            tallies,
            vec![tally("v1", 1, 0, 0, 0), tally("v2", 2, 1, 1, 1)]
        );

        assert!(store.open_incident(&incident("inc-1", "v2")).unwrap());
        // One open incident per model version.
        assert!(!store.open_incident(&incident("inc-2", "v2")).unwrap());
        let unresolved = store.unresolved_incidents().unwrap();
        assert_eq!(unresolved.len(), 1);
        assert_eq!(unresolved[0].id, "inc-1");
        let acked = store
            .update_incident("inc-1", |i| i.state = IncidentState::Acknowledged)
            .unwrap()
            .unwrap();
        assert_eq!(acked.state, IncidentState::Acknowledged);
        assert!(store.update_incident("nope", |_| {}).unwrap().is_none());
        let open = IncidentQuery {
            state: Some(IncidentState::Acknowledged),
            ..Default::default()
        };
        assert_eq!(store.incidents(&open).unwrap().len(), 1);
        store
            .update_incident("inc-1", |i| i.state = IncidentState::Resolved)
            .unwrap();
        assert!(store.unresolved_incidents().unwrap().is_empty());
        // Resolved: the version may have a new incident.
        let mut later = incident("inc-3", "v2");
        later.opened_at = 3.0;
        assert!(store.open_incident(&later).unwrap());
        assert_eq!(store.incidents(&IncidentQuery::default()).unwrap().len(), 2);
        assert_eq!(store.incident("inc-3").unwrap().unwrap().version, "v2");
        // Paging: one at a time, newest first, each page after the last id of the one before.
        let page = |after: Option<&str>| {
            store
                .incidents(&IncidentQuery {
                    limit: Some(1),
                    after: after.map(str::to_string),
                    ..Default::default()
                })
                .unwrap()
                .into_iter()
                .map(|i| i.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(page(None), vec!["inc-3"]);
        assert_eq!(page(Some("inc-3")), vec!["inc-1"]);
        assert!(page(Some("inc-1")).is_empty());

        assert!(store.put_rollout(&rollout(1, "v1")).unwrap());
        assert!(
            !store.put_rollout(&rollout(1, "v1")).unwrap(),
            "revision 1 exists"
        );
        assert!(store.put_rollout(&rollout(2, "v2")).unwrap());
        assert!(
            !store.put_rollout(&rollout(2, "v1")).unwrap(),
            "a stale change is refused"
        );
        let stored = store.rollouts().unwrap();
        assert_eq!(stored, vec![rollout(2, "v2")]);
    }

    #[test]
    fn sqlite_keeps_judgements_incidents_and_rollouts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.db").display().to_string();
        exercise(&MonitorStore::open(&path).unwrap());
        // Reopened: still there.
        let again = MonitorStore::open(&path).unwrap();
        assert_eq!(again.rollouts().unwrap()[0].revision, 2);
    }

    #[test]
    fn postgres_keeps_judgements_incidents_and_rollouts() {
        let Some(pg) = emguard_testkit::TestPostgres::start(
            "postgres_keeps_judgements_incidents_and_rollouts",
        ) else {
            return;
        };
        exercise(&MonitorStore::open(&pg.url).unwrap());
    }
}
