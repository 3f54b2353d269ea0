//! Continuous red-teaming (`emguard redteam --every`): each cycle's report is checked against
//! the limit, and a family over it opens an incident for the model version in the gateway's
//! monitor store, where `emguard incidents` and the admin API show it beside the online
//! monitor's. The monitor opens at most one incident per model version at a time, so a
//! version that stays over the limit cycle after cycle keeps its one open incident.

use emguard_store::monitor::{IncidentRecord, IncidentState, MonitorStore, TimelineEntry};
use serde_json::json;

use crate::RedteamError;
use crate::report::Report;

/// The breach an incident of a red-team cycle names: `redteam_attack_success`.
pub const BREACH: &str = "redteam_attack_success";

/// Where a cycle's findings go: the gateway's store, and the model version probed.
pub struct IncidentTarget<'a> {
    pub store: &'a MonitorStore,
    /// The model id at the gateway.
    pub model: &'a str,
    pub version: &'a str,
}

/// The model's active version in the gateway's store (the one its id reaches), if the
/// gateway has stored its rollout.
pub fn active_version(store: &MonitorStore, model: &str) -> Result<Option<String>, RedteamError> {
    Ok(store
        .rollouts()?
        .into_iter()
        .find(|r| r.model == model)
        .map(|r| r.active))
}

/// Opens an incident when a family's attack success is above `threshold` or regressed
/// against the earlier cycle; returns its id, or `None` when nothing breached or this
/// version already has an open incident.
pub fn record(
    target: &IncidentTarget<'_>,
    report: &Report,
    threshold: f64,
) -> Result<Option<String>, RedteamError> {
    let over: Vec<_> = report.over(threshold);
    let regressed: Vec<_> = report.comparisons.iter().filter(|c| c.regression).collect();
    if over.is_empty() && regressed.is_empty() {
        return Ok(None);
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
    Ok(target.store.open_incident(&incident)?.then_some(id))
}
