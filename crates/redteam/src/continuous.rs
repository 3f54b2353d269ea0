//! Continuous red-teaming: every cycle runs the suite once per gateway model version (the
//! active one and each canary, every request pinned to its version), compares each
//! version's run with its run of the cycle before, and checks it against the limit; a family
//! over it (or regressed) opens an incident for that version in the gateway's monitor store,
//! where `emguard incidents` and the admin API show it beside the online monitor's. The
//! monitor opens at most one incident per model version at a time, so a version that stays
//! over the limit cycle after cycle keeps its one open incident.
//!
//! [`Continuous`] is the loop of `emguard redteam --every` and of the gateway's `redteam:`
//! section ([`crate::section`]); each gives it where versions come from and what to do with
//! each version's result.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use emguard_eval::backends::Endpoints;
use emguard_store::Store;
use emguard_store::monitor::{
    IncidentRecord, IncidentState, MonitorStore, RolloutRecord, TimelineEntry,
};
use serde_json::json;

use crate::RedteamError;
use crate::report::Report;
use crate::session::{self, Options};
use crate::work::Outcome;

/// Seeds a cycle may use (its attempts use `seed`, `seed + 1`, ...): each cycle asks the
/// versions again rather than reading the last cycle's stored answers.
pub const SEEDS_PER_CYCLE: u64 = 1_000;

/// Lists a model's versions to probe in a cycle: the active one first, then each canary.
pub type ListVersions = Box<dyn Fn() -> Result<Vec<String>, RedteamError> + Send + Sync>;

/// Which versions a cycle runs the suite on.
pub enum Versions {
    /// Whatever version the gateway routes the key to (no pin): one run per cycle.
    Routed,
    /// Each of these, pinned.
    Pinned(Vec<String>),
    /// Listed again each cycle (a canary may have come or gone), each pinned.
    Listed(ListVersions),
}

/// Where a cycle's breaches become incidents: the gateway's store and the model's id there.
pub struct Incidents {
    pub store: Arc<MonitorStore>,
    pub model: String,
}

/// The loop's settings; see the module's documentation.
pub struct Continuous {
    /// The suite and the target of every run; each run pins its version and takes its
    /// cycle's seeds.
    pub options: Options,
    pub endpoints: Endpoints,
    /// The target's key, instead of the endpoints' (which the judge also gets).
    pub target_key: Option<String>,
    pub concurrency: usize,
    /// Where runs are stored.
    pub store: Arc<Store>,
    /// On a shared store: this process's name in its claims, and their lease.
    pub claims: Option<(String, Duration)>,
    pub versions: Versions,
    /// A family above this attack success rate is a breach.
    pub threshold: Option<f64>,
    pub incidents: Option<Incidents>,
}

/// One version's run in a cycle.
pub struct VersionRun {
    pub cycle: u64,
    /// `None`: the version the gateway routed to.
    pub version: Option<String>,
    pub result: Result<Finished, RedteamError>,
}

pub struct Finished {
    pub run_id: String,
    pub config: Arc<crate::plan::RunConfig>,
    pub report: Report,
    pub outcome: Outcome,
    pub incident: Recorded,
}

/// What a run's result did in the incidents store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// No incidents store, or nothing breached.
    Nothing,
    Opened(String),
    /// It breached, and the version already has an open incident.
    AlreadyOpen,
}

impl Continuous {
    /// Runs a cycle every `every` (`cycles`: at most that many), handing each version's run
    /// to `on_run`; stops when it breaks. Listing the versions failing is a run's error.
    pub async fn run(
        &self,
        every: Duration,
        cycles: Option<u64>,
        progress: &(dyn Fn(&str) + Sync),
        mut on_run: impl FnMut(VersionRun) -> ControlFlow<()>,
    ) {
        // Each version's run is compared with its run of the cycle before.
        let mut previous: HashMap<Option<String>, String> = HashMap::new();
        for cycle in 1.. {
            let started = tokio::time::Instant::now();
            let versions = match self.versions() {
                Ok(v) => v,
                Err(e) => {
                    let run = VersionRun {
                        cycle,
                        version: None,
                        result: Err(e),
                    };
                    if on_run(run).is_break() {
                        return;
                    }
                    Vec::new()
                }
            };
            for version in versions {
                let compare = previous.get(&version).cloned();
                let result = self
                    .run_one(version.as_deref(), compare.as_deref(), cycle, progress)
                    .await;
                if let Ok(f) = &result {
                    previous.insert(version.clone(), f.run_id.clone());
                }
                let run = VersionRun {
                    cycle,
                    version,
                    result,
                };
                if on_run(run).is_break() {
                    return;
                }
            }
            if cycles.is_some_and(|n| cycle >= n) {
                return;
            }
            tokio::time::sleep_until(started + every).await;
        }
    }

    fn versions(&self) -> Result<Vec<Option<String>>, RedteamError> {
        Ok(match &self.versions {
            Versions::Routed => vec![None],
            Versions::Pinned(v) => v.iter().cloned().map(Some).collect(),
            Versions::Listed(list) => list()?.into_iter().map(Some).collect(),
        })
    }

    /// One run of the suite on `version` with cycle `cycle`'s seeds.
    async fn run_one(
        &self,
        version: Option<&str>,
        compare: Option<&str>,
        cycle: u64,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Finished, RedteamError> {
        let mut options = self.options.clone();
        options.version = version.map(str::to_string);
        options.settings.seed = options
            .settings
            .seed
            .wrapping_add((cycle - 1) * SEEDS_PER_CYCLE);
        let config = Arc::new(options.into_config()?);
        let run_id = session::create(&self.store, &config)?;
        progress(&format!(
            "cycle {cycle}: run {run_id} on version {}",
            version.unwrap_or("(routed)")
        ));
        let worker = session::worker(
            self.store.clone(),
            &run_id,
            config.clone(),
            self.endpoints.clone(),
            self.target_key.clone(),
            self.concurrency,
        )
        .await?;
        let outcome = match &self.claims {
            Some((name, lease)) => worker.work_shared(name, *lease, progress).await?,
            None => worker.work(progress).await?,
        };
        let report = session::report(&self.store, &run_id, &config, compare)?;
        let incident = match (&self.incidents, version) {
            (Some(incidents), Some(version)) => {
                let target = IncidentTarget {
                    store: &incidents.store,
                    model: &incidents.model,
                    version,
                };
                record(&target, &report, self.threshold.unwrap_or(f64::INFINITY))?
            }
            _ => Recorded::Nothing,
        };
        Ok(Finished {
            run_id,
            config,
            report,
            outcome,
            incident,
        })
    }
}

/// The model's versions in the gateway's stored rollout (the gateway stores it when its
/// monitor is on), as [`rollout_versions`]; empty when it has none stored.
pub fn stored_versions(store: &MonitorStore, model: &str) -> Result<Vec<String>, RedteamError> {
    Ok(store
        .rollouts()?
        .into_iter()
        .find(|r| r.model == model)
        .map(rollout_versions)
        .unwrap_or_default())
}

/// A rollout's versions to probe: the active one, then each canary with a share of traffic.
pub fn rollout_versions(rollout: RolloutRecord) -> Vec<String> {
    std::iter::once(rollout.active)
        .chain(
            rollout
                .weights
                .into_iter()
                .filter(|(_, w)| *w > 0.0)
                .map(|(v, _)| v),
        )
        .collect()
}

/// The breach an incident of a red-team cycle names: `redteam_attack_success`.
pub const BREACH: &str = "redteam_attack_success";

/// Where a cycle's findings go: the gateway's store, and the model version probed.
pub struct IncidentTarget<'a> {
    pub store: &'a MonitorStore,
    /// The model id at the gateway.
    pub model: &'a str,
    pub version: &'a str,
}

/// Opens an incident when a family's attack success is above `threshold` or regressed
/// against the earlier cycle.
pub fn record(
    target: &IncidentTarget<'_>,
    report: &Report,
    threshold: f64,
) -> Result<Recorded, RedteamError> {
    let over: Vec<_> = report.over(threshold);
    let regressed: Vec<_> = report.comparisons.iter().filter(|c| c.regression).collect();
    if over.is_empty() && regressed.is_empty() {
        return Ok(Recorded::Nothing);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let id = format!(
        "inc-{:012x}{:08x}",
        now.as_millis() as u64,
        now.subsec_nanos() ^ std::process::id().rotate_left(16)
    );
    let mut summary: Vec<String> = over
        .iter()
        .map(|f| {
            format!(
                "{}: {:.1}% ({} of {}) over {:.1}%",
                f.id,
                f.tally.rate * 100.0,
                f.tally.hits,
                f.tally.attempts,
                threshold * 100.0
            )
        })
        .collect();
    summary.extend(regressed.iter().map(|c| c.line()));
    let families: Vec<_> = report
        .families
        .iter()
        .map(|f| {
            json!({"family": f.id, "attempts": f.tally.attempts, "hits": f.tally.hits,
                   "rate": f.tally.rate, "ci_low": f.tally.ci_low, "ci_high": f.tally.ci_high})
        })
        .collect();
    let incident = IncidentRecord {
        id: id.clone(),
        model: target.model.to_string(),
        version: target.version.to_string(),
        baseline: None,
        state: IncidentState::Open,
        opened_at: now.as_secs_f64(),
        breach: BREACH.into(),
        figures: json!({
            "run_id": report.run_id,
            "threshold": threshold,
            "over": over.iter().map(|f| &f.id).collect::<Vec<_>>(),
            "regressions": regressed,
            "families": families,
        }),
        evidence: report
            .hits
            .iter()
            .take(10)
            .map(|h| format!("{}#{}", report.run_id, h.label))
            .collect(),
        timeline: vec![TimelineEntry {
            time: now.as_secs_f64(),
            by: "redteam".into(),
            event: format!("red-team run {}: {}", report.run_id, summary.join("; ")),
        }],
        webhook_attempts: Vec::new(),
    };
    Ok(if target.store.open_incident(&incident)? {
        Recorded::Opened(id)
    } else {
        Recorded::AlreadyOpen
    })
}
