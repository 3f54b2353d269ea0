//! Served models: each has named versions (each a backend), one active, maybe a fallback.
//! Activating another version (a rollback is activating the previous one) is atomic for
//! new requests; requests in flight finish on the version they started with.

use std::sync::RwLock;

use crate::backend::Backend;
use crate::filter::FilterPolicy;

pub struct Version {
    pub name: String,
    pub backend: Backend,
}

pub struct ModelEntry {
    pub id: String,
    /// Unix seconds when the gateway started serving it (`created` in `/v1/models`).
    pub created: u64,
    pub policy: FilterPolicy,
    versions: Vec<Version>,
    active: RwLock<String>,
    fallback: Option<String>,
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
