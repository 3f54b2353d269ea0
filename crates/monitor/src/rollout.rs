//! Canary rollouts: which version answers a request, and changes to a model's traffic split
//! that reach every replica.
//!
//! A request goes to a version by a stable hash of its API key and `user` field, so one user
//! keeps seeing one version while the weights stand (and every replica picks the same one).
//! Every change (promote, abort, rollback, new weights, pin) is a new revision of the model's
//! [`RolloutRecord`], written to the store by compare-and-set and applied here at once;
//! other replicas pick it up by polling the store ([`Rollouts::sync`]).

use std::sync::Arc;

use emguard_store::monitor::{MonitorStore, RolloutRecord};

/// The served models' routing state, as the gateway holds it.
pub trait RouteTable: Send + Sync {
    fn models(&self) -> Vec<String>;
    /// The model's rollout now; `None` for an unknown model.
    fn current(&self, model: &str) -> Option<RolloutRecord>;
    /// Whether the model has this version.
    fn has_version(&self, model: &str, version: &str) -> bool;
    /// Routes new requests by `rollout` from now on.
    fn apply(&self, rollout: RolloutRecord);
}

/// The version that serves a request with this routing key (the key id and the `user` field):
/// a candidate when the key's hash falls in its weight, else the active version.
pub fn assign<'r>(rollout: &'r RolloutRecord, routing_key: &str) -> &'r str {
    if rollout.weights.is_empty() {
        return &rollout.active;
    }
    // A fixed hash (FNV-1a 64), not a seeded one: every replica and restart must agree.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in routing_key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Mix the low bits into the high ones (FNV's high bits vary little for short keys).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    let point = (h >> 11) as f64 / (1u64 << 53) as f64;
    let mut edge = 0.0;
    for (version, weight) in &rollout.weights {
        edge += weight;
        if point < edge {
            return version;
        }
    }
    &rollout.active
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("no model `{0}`")]
    NoModel(String),
    #[error("model `{model}` has no version `{version}`")]
    NoVersion { model: String, version: String },
    #[error("{0}")]
    Refused(String),
    #[error("store: {0}")]
    Store(#[from] emguard_store::StoreError),
}

/// Changes to rollouts, through the store.
pub struct Rollouts {
    store: Arc<MonitorStore>,
    table: Arc<dyn RouteTable>,
}

/// Who asks for a change: automation is refused on a pinned rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Monitor,
    Admin,
}

impl Actor {
    pub fn name(self) -> &'static str {
        match self {
            Actor::Monitor => "monitor",
            Actor::Admin => "admin",
        }
    }
}

impl Rollouts {
    pub fn new(store: Arc<MonitorStore>, table: Arc<dyn RouteTable>) -> Rollouts {
        Rollouts { store, table }
    }

    pub fn table(&self) -> &Arc<dyn RouteTable> {
        &self.table
    }

    /// At start: a stored rollout replaces the configured one (if its versions still exist);
    /// a model with none stored gets the configured one as revision 1.
    pub fn restore(&self) -> Result<(), RolloutError> {
        let stored = self.store.rollouts()?;
        for model in self.table.models() {
            match stored.iter().find(|r| r.model == model) {
                Some(r) if self.valid(r) => self.table.apply(r.clone()),
                Some(r) => tracing::warn!(
                    model,
                    revision = r.revision,
                    "the stored rollout names versions the config no longer has: the configured one is kept"
                ),
                None => {
                    if let Some(mut r) = self.table.current(&model) {
                        r.revision = 1;
                        r.changed_by = "config".into();
                        self.store.put_rollout(&r)?;
                        self.table.apply(r);
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies every stored rollout newer than the one routing now; returns how many.
    pub fn sync(&self) -> Result<usize, RolloutError> {
        let mut applied = 0;
        for r in self.store.rollouts()? {
            let newer = self
                .table
                .current(&r.model)
                .is_some_and(|now| r.revision > now.revision);
            if newer && self.valid(&r) {
                tracing::info!(model = %r.model, revision = r.revision, active = %r.active,
                    weights = ?r.weights, by = %r.changed_by, "applying a rollout changed elsewhere");
                self.table.apply(r);
                applied += 1;
            }
        }
        Ok(applied)
    }

    fn valid(&self, r: &RolloutRecord) -> bool {
        std::iter::once(&r.active)
            .chain(r.weights.keys())
            .all(|v| self.table.has_version(&r.model, v))
    }

    /// Changes the model's rollout with `edit` as a new revision (retried on a newer revision
    /// written by another replica meanwhile). A pinned rollout refuses automation.
    pub fn change(
        &self,
        model: &str,
        actor: Actor,
        reason: &str,
        edit: impl Fn(&mut RolloutRecord) -> Result<(), RolloutError>,
    ) -> Result<RolloutRecord, RolloutError> {
        for _ in 0..5 {
            let now = self
                .table
                .current(model)
                .ok_or_else(|| RolloutError::NoModel(model.to_string()))?;
            if now.pinned && actor == Actor::Monitor {
                return Err(RolloutError::Refused(format!(
                    "the rollout of `{model}` is pinned by an admin: automation does not change it"
                )));
            }
            let mut next = now.clone();
            edit(&mut next)?;
            for v in std::iter::once(&next.active).chain(next.weights.keys()) {
                if !self.table.has_version(model, v) {
                    return Err(RolloutError::NoVersion {
                        model: model.to_string(),
                        version: v.clone(),
                    });
                }
            }
            next.weights.retain(|v, w| *w > 0.0 && *v != next.active);
            if next.weights.values().sum::<f64>() > 1.0 + 1e-9 {
                return Err(RolloutError::Refused(
                    "the weights add up to more than 1".into(),
                ));
            }
            next.revision = now.revision + 1;
            next.changed_by = actor.name().to_string();
            next.reason = reason.to_string();
            next.changed_at = crate::unix_now();
            if self.store.put_rollout(&next)? {
                tracing::info!(model, revision = next.revision, active = %next.active,
                    weights = ?next.weights, pinned = next.pinned, by = actor.name(), reason, "rollout changed");
                self.table.apply(next.clone());
                return Ok(next);
            }
            // Another replica changed it first: take its revision and try again.
            self.sync()?;
        }
        Err(RolloutError::Refused(format!(
            "the rollout of `{model}` kept changing under this change; try again"
        )))
    }

    /// Makes `version` active; the previous active version becomes the last good one.
    pub fn promote(
        &self,
        model: &str,
        version: &str,
        actor: Actor,
        reason: &str,
    ) -> Result<RolloutRecord, RolloutError> {
        self.change(model, actor, reason, |r| {
            if r.active != version {
                r.last_good = Some(std::mem::replace(&mut r.active, version.to_string()));
            }
            r.weights.remove(version);
            Ok(())
        })
    }

    /// Takes a candidate's traffic away, or, for the active version, rolls back to the last
    /// good one.
    pub fn abort(
        &self,
        model: &str,
        version: &str,
        actor: Actor,
        reason: &str,
    ) -> Result<RolloutRecord, RolloutError> {
        self.change(model, actor, reason, |r| {
            if r.weights.remove(version).is_some() {
                return Ok(());
            }
            if r.active == version {
                let Some(good) = r.last_good.clone().filter(|g| g != version) else {
                    return Err(RolloutError::Refused(format!(
                        "`{version}` is active and no earlier good version is known to roll back to"
                    )));
                };
                r.active = good;
                r.last_good = None;
                r.weights.clear();
                return Ok(());
            }
            Err(RolloutError::Refused(format!(
                "`{version}` gets no traffic"
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(weights: &[(&str, f64)]) -> RolloutRecord {
        RolloutRecord {
            model: "m".into(),
            revision: 1,
            active: "v1".into(),
            weights: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
            last_good: None,
            pinned: false,
            changed_by: String::new(),
            reason: String::new(),
            changed_at: 0.0,
        }
    }

    #[test]
    fn assignment_is_stable_and_follows_the_weights() {
        let r = rollout(&[("v2", 0.2)]);
        let keys: Vec<String> = (0..10_000).map(|i| format!("key_1/user-{i}")).collect();
        let to_v2 = keys.iter().filter(|k| assign(&r, k) == "v2").count();
        assert!((1800..2200).contains(&to_v2), "{to_v2} of 10000");
        // One user, one version, every time.
        for k in &keys[..100] {
            assert_eq!(assign(&r, k), assign(&r.clone(), k));
        }
        assert_eq!(assign(&rollout(&[]), "anyone"), "v1");
    }
}
