//! The `redteam:` section: the gateway hands the red-team loop ([`emguard_redteam::section`])
//! its listener, a key of its own that may pin versions, its store for incidents and its
//! live routes (each model's active version and canaries), and shows each version's latest
//! attack success per family as the Prometheus gauge `emguard_redteam_attack_success_rate`.

use std::net::SocketAddr;
use std::sync::Arc;

use emguard_redteam::continuous::{VersionRun, rollout_versions};
use emguard_redteam::section::{Gateway, RedteamSection, Target};
use emguard_store::monitor::MonitorStore;

use crate::auth::{KeyRing, REDTEAM_SCOPE};
use crate::backend::Backend;
use crate::registry::ModelEntry;

/// The cycles, ready to start once the gateway listens.
pub struct Cycles {
    section: RedteamSection,
    key: Option<String>,
    incidents: Arc<MonitorStore>,
    models: Vec<Arc<ModelEntry>>,
}

impl Cycles {
    /// `keys`: the gateway's (its own key is made there); `None` when it has none.
    pub(crate) fn new(
        section: RedteamSection,
        keys: Option<&KeyRing>,
        incidents: Arc<MonitorStore>,
        models: &std::collections::BTreeMap<String, Arc<ModelEntry>>,
    ) -> Cycles {
        let chat: Vec<&str> = models
            .values()
            .filter(|m| {
                m.versions()
                    .iter()
                    .any(|v| !matches!(v.backend, Backend::Embedding(_)))
            })
            .map(|m| m.id.as_str())
            .collect();
        let models = section
            .models(&chat)
            .into_iter()
            .filter_map(|id| models.get(id).cloned())
            .collect();
        let key = keys.map(|k| {
            k.create_internal(
                "emguard red-team cycles",
                &[REDTEAM_SCOPE],
                crate::state::unix_now_f64(),
            )
        });
        Cycles {
            section,
            key,
            incidents,
            models,
        }
    }

    /// Starts the cycles against the gateway listening at `addr`.
    pub fn start(self, addr: SocketAddr) -> std::io::Result<()> {
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let targets = self
            .models
            .into_iter()
            .map(|entry| Target {
                model: entry.id.clone(),
                versions: Box::new(move || Ok(rollout_versions(entry.rollout()))),
            })
            .collect();
        let gateway = Gateway {
            base_url: format!("http://{addr}/v1"),
            key: self.key,
            incidents: self.incidents,
            targets,
        };
        tracing::info!(base_url = %gateway.base_url, "red-team cycles start");
        emguard_redteam::section::start(self.section, gateway, record)?;
        Ok(())
    }
}

/// Each version's latest result on `/metrics`; failures counted and logged.
fn record(model: &str, run: &VersionRun) {
    let version = run.version.clone().unwrap_or_default();
    match &run.result {
        Ok(finished) => {
            for family in &finished.report.families {
                metrics::gauge!("emguard_redteam_attack_success_rate",
                    "model" => model.to_string(), "version" => version.clone(),
                    "family" => family.id.clone())
                .set(family.tally.rate);
            }
            tracing::info!(model, version, run = %finished.run_id, incident = ?finished.incident,
                "red-team cycle {} done", run.cycle);
        }
        Err(e) => {
            metrics::counter!("emguard_redteam_failed_runs_total",
                "model" => model.to_string(), "version" => version.clone())
            .increment(1);
            tracing::warn!(model, version, error = %e, "red-team cycle {} failed; the next one goes on", run.cycle);
        }
    }
}
