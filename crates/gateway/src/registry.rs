//! Served models: each has named versions (each a backend), one active, maybe a fallback.
//! Activating another version (a rollback is activating the previous one) is atomic for
//! new requests; requests in flight finish on the version they started with. A version with
//! a signed release chain is activated only once the chain verifies ([`Version::check_chain`]).
//! Candidate versions may take a share of traffic (a canary: the model's [`RolloutRecord`]);
//! each request goes to one version by a stable hash of its key and user.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use emguard_store::monitor::RolloutRecord;

use crate::backend::Backend;
use crate::filter::FilterPolicy;
use crate::signed_chain::{ChainRefused, SignedChain};

pub struct Version {
    pub name: String,
    pub backend: Backend,
    /// Its signed release chain (`attestation` in the config), if one is configured.
    pub chain: Option<SignedChain>,
}

impl Version {
    /// Whether the version may become active: its chain verifies, or none is configured (said
    /// in the log, since nothing then shows that the served file is the measured one).
    pub async fn check_chain(&self, model: &str) -> Result<(), ChainRefused> {
        match &self.chain {
            Some(chain) => {
                chain.verify_blocking().await?;
                tracing::info!(model, version = %self.name, chain = %chain.bundle.display(),
                    "the version's signed chain verifies");
                Ok(())
            }
            None => {
                tracing::warn!(
                    model,
                    version = %self.name,
                    "no signed chain is configured for this version (`attestation`): it is activated unverified"
                );
                Ok(())
            }
        }
    }
}

pub struct ModelEntry {
    pub id: String,
    /// Unix seconds when the gateway started serving it (`created` in `/v1/models`).
    pub created: u64,
    pub policy: FilterPolicy,
    versions: Vec<Version>,
    /// The active version, the canaries' weights, the pin.
    rollout: RwLock<RolloutRecord>,
    fallback: Option<String>,
    /// The exact-match response cache, when the model's config turns it on.
    pub cache: Option<crate::cache::ResponseCache>,
}

impl ModelEntry {
    /// `active` and `fallback` must name versions (the config validation checks it).
    pub fn new(
        id: String,
        created: u64,
        policy: FilterPolicy,
        versions: Vec<Version>,
        active: String,
        fallback: Option<String>,
    ) -> ModelEntry {
        ModelEntry {
            rollout: RwLock::new(RolloutRecord {
                model: id.clone(),
                revision: 0,
                active,
                weights: BTreeMap::new(),
                last_good: None,
                pinned: false,
                changed_by: "config".into(),
                reason: String::new(),
                changed_at: 0.0,
            }),
            id,
            created,
            policy,
            versions,
            fallback,
            cache: None,
        }
    }

    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    pub fn version(&self, name: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.name == name)
    }

    pub fn active(&self) -> String {
        self.rollout
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .active
            .clone()
    }

    pub fn rollout(&self) -> RolloutRecord {
        self.rollout
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Routes new requests by `rollout` (its versions must exist).
    pub fn set_rollout(&self, rollout: RolloutRecord) {
        *self.rollout.write().unwrap_or_else(|e| e.into_inner()) = rollout;
    }

    /// Whether `version` is a canary now (takes a weighted share beside the active version).
    pub fn is_candidate(&self, version: &str) -> bool {
        self.rollout
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .weights
            .contains_key(version)
    }

    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Makes `name` the active version; false when there is no such version.
    pub fn activate(&self, name: &str) -> bool {
        if self.version(name).is_none() {
            return false;
        }
        let mut rollout = self.rollout.write().unwrap_or_else(|e| e.into_inner());
        rollout.active = name.to_string();
        rollout.weights.remove(name);
        true
    }

    /// The versions to try, in order: the active one, then the fallback when it differs.
    pub fn plan(&self) -> Vec<&Version> {
        self.plan_for("")
    }

    /// The versions to try for a request with this routing key (key id and user): the version
    /// the rollout assigns it, then the active one when that was a canary, then the fallback.
    pub fn plan_for(&self, routing_key: &str) -> Vec<&Version> {
        let (assigned, active) = {
            let rollout = self.rollout.read().unwrap_or_else(|e| e.into_inner());
            (
                emguard_monitor::assign(&rollout, routing_key).to_string(),
                rollout.active.clone(),
            )
        };
        let mut plan: Vec<&Version> = self.version(&assigned).into_iter().collect();
        for next in [Some(active.as_str()), self.fallback.as_deref()]
            .into_iter()
            .flatten()
        {
            if !plan.iter().any(|v| v.name == next) {
                plan.extend(self.version(next));
            }
        }
        plan
    }
}

/// The served models as the monitor sees them: where it reads and changes rollouts.
pub struct ModelRoutes(pub BTreeMap<String, Arc<ModelEntry>>);

impl emguard_monitor::RouteTable for ModelRoutes {
    fn models(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    fn current(&self, model: &str) -> Option<RolloutRecord> {
        self.0.get(model).map(|m| m.rollout())
    }

    fn has_version(&self, model: &str, version: &str) -> bool {
        self.0
            .get(model)
            .is_some_and(|m| m.version(version).is_some())
    }

    fn apply(&self, rollout: RolloutRecord) {
        if let Some(m) = self.0.get(&rollout.model) {
            m.set_rollout(rollout);
        }
    }
}
