//! API keys and the admin token.
//!
//! A key is `emg_<id>_<secret>`: the id (public, named in traces and the admin API as
//! `key_<id>`) finds the record in one lookup, and the SHA-256 of the whole key is compared
//! in constant time with the stored hash. The key itself is shown once, at creation, and
//! never stored or logged.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use emguard_store::gateway::{ApiKeyRecord, GatewayStore, TokenBudget};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Longest a key may live, in days (`expires_in_days: 1e308` is not "never").
const MAX_LIFETIME_DAYS: f64 = 3650.0;

/// The scope that lets a key pin a request to a model version (`x-emguard-version`), as
/// red-teaming a canary needs. Not a model: a key's model scopes are its other scopes (none:
/// every model), and no model may have this id.
pub const REDTEAM_SCOPE: &str = "redteam";

/// The keys, cached from the store (one lookup per request, no I/O).
pub struct KeyRing {
    keys: RwLock<HashMap<String, ApiKeyRecord>>,
    /// Keys of this process only, never stored (the gateway's own red-team cycles'); kept
    /// across reloads.
    internal: RwLock<Vec<ApiKeyRecord>>,
    store: Arc<GatewayStore>,
}

/// What a new key's creator chooses.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Unix seconds; or give `expires_in_days`.
    #[serde(default)]
    pub expires_at: Option<f64>,
    #[serde(default)]
    pub expires_in_days: Option<f64>,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
    /// A policy of the config's `filter_policies`, replacing the model's for this key.
    #[serde(default)]
    pub filter_policy: Option<String>,
    /// Most tokens per day or month (see [`crate::budget`]).
    #[serde(default)]
    pub token_budget: Option<TokenBudget>,
}

impl KeyRing {
    pub fn load(store: Arc<GatewayStore>) -> Result<Arc<KeyRing>, emguard_store::StoreError> {
        let ring = Arc::new(KeyRing {
            keys: RwLock::new(HashMap::new()),
            internal: RwLock::new(Vec::new()),
            store,
        });
        ring.reload()?;
        Ok(ring)
    }

    /// Rereads the keys (another replica may have created or revoked some).
    pub fn reload(&self) -> Result<(), emguard_store::StoreError> {
        let keys = self.store.keys()?;
        let internal = self
            .internal
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let map = keys
            .into_iter()
            .chain(internal)
            .map(|k| (k.id.clone(), k))
            .collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(())
    }

    /// Rereads the keys every `period` until the process ends.
    pub fn refresh_every(self: &Arc<Self>, period: Duration) {
        let ring = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let r = Arc::clone(&ring);
                match tokio::task::spawn_blocking(move || r.reload()).await {
                    Ok(Err(e)) => tracing::warn!(error = %e, "reloading API keys failed"),
                    Err(e) => tracing::warn!(error = %e, "reloading API keys panicked"),
                    Ok(Ok(())) => {}
                }
            }
        });
    }

    /// A key for this process's own use (`emg_internal…`), never stored nor listed by the
    /// admin API, valid until the process ends; returns the key.
    pub fn create_internal(&self, name: &str, scopes: &[&str], now: f64) -> String {
        let id = format!("internal{}", hex::encode(rand::random::<[u8; 6]>()));
        let (mut record, secret) = new_record(&id, name, now);
        record.scopes = scopes.iter().map(|s| s.to_string()).collect();
        self.internal
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.id.clone(), record);
        secret
    }

    fn is_internal(&self, id: &str) -> bool {
        self.internal
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|k| k.id == id)
    }

    /// Creates a key: stored hashed; the returned secret is the only copy.
    pub fn create(&self, new: &NewKey, now: f64) -> Result<(ApiKeyRecord, String), ApiError> {
        if new.name.trim().is_empty() {
            return Err(ApiError::invalid("name", "`name` must not be empty"));
        }
        // A name is written to logs: no line breaks or terminal escapes to forge lines with.
        if new.name.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "name",
                "`name` must not contain control characters (line breaks, escapes)",
            ));
        }
        let expires_at = match (new.expires_at, new.expires_in_days) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "expires_at",
                    "give `expires_at` or `expires_in_days`, not both",
                ));
            }
            (Some(t), None) if t.is_finite() && t <= now + MAX_LIFETIME_DAYS * 86_400.0 => Some(t),
            (Some(_), None) => {
                return Err(ApiError::invalid(
                    "expires_at",
                    format!("must be a Unix time at most {MAX_LIFETIME_DAYS} days from now"),
                ));
            }
            (None, Some(days)) if days > 0.0 && days <= MAX_LIFETIME_DAYS => {
                Some(now + days * 86_400.0)
            }
            (None, Some(_)) => {
                return Err(ApiError::invalid(
                    "expires_in_days",
                    format!("must be more than 0 and at most {MAX_LIFETIME_DAYS}"),
                ));
            }
            (None, None) => None,
        };
        let (mut record, secret) =
            new_record(&hex::encode(rand::random::<[u8; 6]>()), &new.name, now);
        record.scopes = new.scopes.clone();
        record.expires_at = expires_at;
        record.requests_per_minute = new.requests_per_minute;
        record.tokens_per_minute = new.tokens_per_minute;
        record.filter_policy = new.filter_policy.clone();
        record.token_budget = checked_budget(new.token_budget)?;
        self.store
            .insert_key(&record)
            .map_err(|e| ApiError::server(format!("storing the key failed: {e}")))?;
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.id.clone(), record.clone());
        Ok((record, secret))
    }

    /// The store the keys (and their budgets' counts) live in.
    pub fn store(&self) -> &Arc<GatewayStore> {
        &self.store
    }

    /// One key, revoked or not.
    pub fn get(&self, id: &str) -> Option<ApiKeyRecord> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Sets (`None`: removes) a key's token budget; false when there is no such key. Other
    /// replicas see it at their next reload.
    pub fn set_budget(&self, id: &str, budget: Option<TokenBudget>) -> Result<bool, ApiError> {
        let budget = checked_budget(budget)?;
        let found = self
            .store
            .set_key_budget(id, budget)
            .map_err(|e| ApiError::server(format!("storing the budget failed: {e}")))?;
        if let Some(key) = self
            .keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            key.token_budget = budget;
        }
        Ok(found)
    }

    pub fn list(&self) -> Vec<ApiKeyRecord> {
        let mut keys: Vec<ApiKeyRecord> = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|k| !self.is_internal(&k.id))
            .cloned()
            .collect();
        keys.sort_by(|a, b| a.created_at.total_cmp(&b.created_at).then(a.id.cmp(&b.id)));
        keys
    }

    /// Revokes a key; false when there is none with that id.
    pub fn revoke(&self, id: &str, now: f64) -> Result<bool, ApiError> {
        let found = self
            .store
            .revoke_key(id, now)
            .map_err(|e| ApiError::server(format!("revoking the key failed: {e}")))?;
        if let Some(key) = self
            .keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            key.revoked_at.get_or_insert(now);
        }
        Ok(found)
    }

    /// The key record for an `Authorization` header value, or the 401 to answer.
    pub fn authenticate(&self, header: Option<&str>, now: f64) -> Result<ApiKeyRecord, ApiError> {
        let Some(presented) = header.and_then(bearer_token) else {
            return Err(unauthorized(
                "You didn't provide an API key. Send it as `Authorization: Bearer KEY`.",
                "missing_api_key",
            ));
        };
        let invalid = || unauthorized("Incorrect API key provided.", "invalid_api_key");
        let id = presented
            .strip_prefix("emg_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| format!("key_{id}"))
            .ok_or_else(invalid)?;
        let key = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .ok_or_else(invalid)?;
        if !bool::from(hash(presented).as_bytes().ct_eq(key.hash.as_bytes())) {
            return Err(invalid());
        }
        if key.revoked_at.is_some() {
            return Err(unauthorized(
                "This API key has been revoked.",
                "revoked_api_key",
            ));
        }
        if key.expires_at.is_some_and(|t| t <= now) {
            return Err(unauthorized("This API key has expired.", "expired_api_key"));
        }
        Ok(key)
    }
}

/// A new key `emg_ID_SECRET` (its record's id `key_ID`) with no scope, limit or expiry, and
/// its record.
fn new_record(id: &str, name: &str, now: f64) -> (ApiKeyRecord, String) {
    let secret = format!("emg_{id}_{}", hex::encode(rand::random::<[u8; 24]>()));
    let record = ApiKeyRecord {
        id: format!("key_{id}"),
        hash: hash(&secret),
        name: name.to_string(),
        scopes: Vec::new(),
        created_at: now,
        expires_at: None,
        revoked_at: None,
        requests_per_minute: None,
        tokens_per_minute: None,
        filter_policy: None,
        token_budget: None,
    };
    (record, secret)
}

/// A budget of no tokens would refuse every request: almost surely a mistake.
fn checked_budget(budget: Option<TokenBudget>) -> Result<Option<TokenBudget>, ApiError> {
    match budget {
        Some(b) if b.tokens == 0 => Err(ApiError::invalid(
            "token_budget.tokens",
            "`token_budget.tokens` must be at least 1 (revoke the key to stop it)",
        )),
        other => Ok(other),
    }
}

/// Whether `key` may use `model` (403 when not): its model scopes (every scope but
/// [`REDTEAM_SCOPE`]) name it, or it has none.
pub fn authorize(key: &ApiKeyRecord, model: &str) -> Result<(), ApiError> {
    let mut models = key.scopes.iter().filter(|s| *s != REDTEAM_SCOPE).peekable();
    if models.peek().is_none() || key.scopes.iter().any(|s| s == model) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "The API key `{}` may not use the model `{model}`.",
        key.id
    ))
    .with_status(axum::http::StatusCode::FORBIDDEN)
    .with_code("model_not_allowed"))
}

/// Whether `key` may pin a request to a model version: it has [`REDTEAM_SCOPE`], or the
/// gateway has no keys (a local, single-user server). 403 `version_pin_not_allowed` when not.
pub fn may_pin_version(key: Option<&ApiKeyRecord>) -> Result<(), ApiError> {
    match key {
        Some(k) if !k.scopes.iter().any(|s| s == REDTEAM_SCOPE) => Err(ApiError::bad_request(
            format!(
                "The API key `{}` may not choose a model version (`x-emguard-version`): that needs a key with the `{REDTEAM_SCOPE}` scope.",
                k.id
            ),
        )
        .with_status(axum::http::StatusCode::FORBIDDEN)
        .with_code("version_pin_not_allowed")),
        _ => Ok(()),
    }
}

/// Compares a presented admin token with the configured one in constant time.
pub fn admin_token_matches(presented: Option<&str>, expected: &str) -> bool {
    let presented = presented.and_then(bearer_token).unwrap_or("");
    bool::from(hash(presented).as_bytes().ct_eq(hash(expected).as_bytes()))
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme is case-insensitive
/// (RFC 9110), so `bearer` and `BEARER` are accepted too.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

pub fn unauthorized(message: &str, code: &'static str) -> ApiError {
    ApiError::bad_request(message)
        .with_status(axum::http::StatusCode::UNAUTHORIZED)
        .with_code(code)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
