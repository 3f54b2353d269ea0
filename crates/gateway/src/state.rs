//! What every handler shares: the served models and the request limits. Later gateway
//! features (keys, rate limits, filters, traces) hang off [`AppState`] too.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use emguard_runtime::{Engine, LoadOptions, Model};

/// Bounds on what one request may ask for; over them the request gets a 400 (413 for the body).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_n: usize,
    /// Upper bound of `max_tokens` (the model's context bounds it further).
    pub max_tokens: usize,
    /// `max_tokens` when a request does not say.
    pub default_max_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_n: 16,
            max_tokens: 4096,
            default_max_tokens: 512,
        }
    }
}

/// Whatever the runtime needs to answer for one model id.
pub struct ServedModel {
    pub id: String,
    pub engine: Engine,
    /// Unix seconds when it was loaded (`created` in `/v1/models`).
    pub created: u64,
}

impl ServedModel {
    /// Wraps an engine already running.
    pub fn new(id: impl Into<String>, engine: Engine) -> ServedModel {
        ServedModel {
            id: id.into(),
            engine,
            created: unix_now(),
        }
    }

    /// Loads the GGUF at `path` and starts its generation engine.
    pub fn load(
        id: impl Into<String>,
        path: &Path,
        max_batch: usize,
    ) -> Result<ServedModel, emguard_runtime::RuntimeError> {
        let model = Model::load(path, &LoadOptions::default())?;
        Ok(ServedModel::new(
            id,
            Engine::spawn(Arc::new(model), max_batch),
        ))
    }
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    models: BTreeMap<String, Arc<ServedModel>>,
    limits: Limits,
}

impl AppState {
    /// A later model with the same id replaces an earlier one.
    pub fn new(models: impl IntoIterator<Item = ServedModel>, limits: Limits) -> AppState {
        let models = models
            .into_iter()
            .map(|m| (m.id.clone(), Arc::new(m)))
            .collect();
        AppState {
            inner: Arc::new(Inner { models, limits }),
        }
    }

    pub fn model(&self, id: &str) -> Option<&Arc<ServedModel>> {
        self.inner.models.get(id)
    }

    pub fn models(&self) -> impl Iterator<Item = &Arc<ServedModel>> {
        self.inner.models.values()
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
