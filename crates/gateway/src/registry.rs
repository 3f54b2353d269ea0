//! Served models: each has named versions (each a backend), one active, maybe a fallback.
//! Activating another version (a rollback is activating the previous one) is atomic for
//! new requests; requests in flight finish on the version they started with. A version with
//! a signed release chain is activated only once the chain verifies ([`Version::check_chain`]).

use std::sync::RwLock;

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
    active: RwLock<String>,
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
            id,
            created,
            policy,
            versions,
            active: RwLock::new(active),
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
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Makes `name` the active version; false when there is no such version.
    pub fn activate(&self, name: &str) -> bool {
        if self.version(name).is_none() {
            return false;
        }
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = name.to_string();
        true
    }

    /// The versions to try, in order: the active one, then the fallback when it differs.
    pub fn plan(&self) -> Vec<&Version> {
        let active = self.active();
        let mut plan: Vec<&Version> = self.version(&active).into_iter().collect();
        if let Some(fallback) = self.fallback.as_deref().filter(|f| *f != active) {
            plan.extend(self.version(fallback));
        }
        plan
    }
}
