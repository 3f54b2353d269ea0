//! What every handler shares ([`AppState`]): the models and their versions, the limits, and
//! the guard's parts (keys, rate limiter, filters, tracer, metrics). Built from a config file
//! by [`crate::build`], or for plain local serving by [`AppState::local`].

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emguard_runtime::{Engine, LoadOptions, Model};
use emguard_store::gateway::GatewayStore;

use crate::auth::KeyRing;
use crate::auth_failures::FailedAuth;
use crate::backend::{Backend, LocalBackend};
use crate::filter::{CodeAction, FilterPolicy, Filters, TextAction};
use crate::ratelimit::{Quota, RateLimiter};
use crate::registry::{ModelEntry, Version};
use crate::trace::{ContentLogging, Tracer};

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

/// How the server protects itself from its clients and upstreams.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Longest a client may take to send its headers; also how long an idle keep-alive
    /// connection stays open.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request body.
    pub body_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Largest upstream answer read, in bytes.
    pub max_answer_bytes: usize,
    /// `/metrics` needs the admin token.
    pub metrics_require_token: bool,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_answer_bytes: 16 << 20,
            metrics_require_token: false,
        }
    }
}

/// A local model and its generation engine.
pub struct ServedModel {
    pub id: String,
    pub engine: Engine,
}

impl ServedModel {
    /// Wraps an engine already running.
    pub fn new(id: impl Into<String>, engine: Engine) -> ServedModel {
        ServedModel {
            id: id.into(),
            engine,
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

/// Shared, cheap to clone; handlers read its parts through `Deref`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub models: BTreeMap<String, Arc<ModelEntry>>,
    pub limits: Limits,
    /// `None` when the API needs no key.
    pub keys: Option<Arc<KeyRing>>,
    /// `None` when the admin API is off.
    pub admin_token: Option<String>,
    pub store: Option<Arc<GatewayStore>>,
    /// `None` when nothing is limited (`emguard serve` without a config).
    pub limiter: Option<RateLimiter>,
    pub default_quota: Quota,
    pub filters: Filters,
    /// Named filter policies keys may be given.
    pub filter_policies: BTreeMap<String, FilterPolicy>,
    pub tracer: Option<Tracer>,
    pub content: ContentLogging,
    /// Release a response only once its trace is committed.
    pub durable: bool,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub edge: Edge,
    /// Failed authentications per client address; `None`: not limited.
    pub auth_failures: Option<FailedAuth>,
    /// Most bytes of a request or answer a trace keeps.
    pub max_trace_content: usize,
    /// Work that goes on after its client left (a request's answer, trace and charge): each
    /// piece holds a receiver; shutdown waits until none is left.
    pub in_flight: tokio::sync::watch::Sender<()>,
    /// Human review of risky answers; `None` when the config has no `review:`.
    pub review: Option<Arc<emguard_review::ReviewService>>,
    /// Judges sampled answers and acts on breaches (`monitor:` in the config); `None`: off.
    pub monitor: Option<Arc<emguard_monitor::Monitor>>,
    /// Red-team cycles (`redteam:` in the config), taken and started by the server once it
    /// listens.
    pub redteam: std::sync::Mutex<Option<crate::redteam::Cycles>>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    pub fn from_parts(inner: Inner) -> AppState {
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// Local models with no key, no limits, no filters and no traces: `emguard serve`
    /// without a config file. A later model with the same id replaces an earlier one.
    pub fn local(models: impl IntoIterator<Item = ServedModel>, limits: Limits) -> AppState {
        let created = unix_now();
        let off = FilterPolicy {
            code: crate::filter::CodePolicy {
                action: CodeAction::Off,
                ..Default::default()
            },
            text: crate::filter::TextPolicy {
                action: TextAction::Off,
            },
        };
        let models = models
            .into_iter()
            .map(|m| {
                let id = m.id.clone();
                let version = Version {
                    name: "default".into(),
                    backend: Backend::Local(LocalBackend::new(Arc::new(m))),
                    chain: None,
                };
                let entry = ModelEntry::new(
                    id.clone(),
                    created,
                    off.clone(),
                    vec![version],
                    "default".into(),
                    None,
                );
                (id, Arc::new(entry))
            })
            .collect();
        AppState::from_parts(Inner {
            models,
            limits,
            keys: None,
            admin_token: None,
            store: None,
            limiter: None,
            default_quota: Quota::default(),
            filters: Filters::new(),
            filter_policies: BTreeMap::new(),
            tracer: None,
            content: ContentLogging::Off,
            durable: false,
            metrics: None,
            edge: Edge::default(),
            auth_failures: None,
            max_trace_content: usize::MAX,
            in_flight: tokio::sync::watch::channel(()).0,
            review: None,
            monitor: None,
            redteam: std::sync::Mutex::new(None),
        })
    }

    pub fn model(&self, id: &str) -> Option<&Arc<ModelEntry>> {
        self.models.get(id)
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
