//! Builds the gateway's [`AppState`] from a [`GatewayConfig`]: opens the store, loads local
//! models (one engine per GGUF, shared by the versions that name it), connects upstreams and
//! the rate-limit backend, restores the active versions and keys, starts the tracer.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use emguard_store::gateway::{Checkpoints, GatewayStore};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth::KeyRing;
use crate::auth_failures::FailedAuth;
use crate::backend::{Backend, EmbeddingBackend, LocalBackend, UpstreamBackend};
use crate::config::{BackendSpec, GatewayConfig};
use crate::filter::Filters;
use crate::ratelimit::{RateLimitBackend, RateLimitOptions, RateLimiter};
use crate::registry::{ModelEntry, Version};
use crate::signed_chain::SignedChain;
use crate::state::{AppState, Edge, Inner, Limits, ServedModel, unix_now};
use crate::trace::{TraceOptions, Tracer, WriterPriority};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("opening the store {location}: {source}")]
    Store {
        location: String,
        #[source]
        source: emguard_store::StoreError,
    },
    #[error("model `{model}` version `{version}`: {message}")]
    Version {
        model: String,
        version: String,
        message: String,
    },
    /// A version that would serve from the start (active or fallback) whose signed chain
    /// does not verify.
    #[error("model `{model}` version `{version}` was not activated: {refused}")]
    Chain {
        model: String,
        version: String,
        refused: crate::signed_chain::ChainRefused,
    },
    #[error("rate-limit backend: {0}")]
    RateLimit(String),
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("human review: {0}")]
    Review(String),
    #[error("monitor: {0}")]
    Monitor(#[from] emguard_monitor::MonitorError),
    #[error("server.text_model `{model}`: {message}")]
    TextModel { model: String, message: String },
}

/// The text filter's model, unless `off`.
fn text_filter_model(
    name: &str,
) -> Result<Option<Arc<dyn crate::filter::text::AnswerJudge>>, BuildError> {
    use emguard_judge::answer_harm::{AnswerHarmClassifier, ENCODER, Shipped};
    match name {
        "off" => Ok(None),
        ENCODER => {
            let classifier = AnswerHarmClassifier::shipped(Shipped::AnswerHarm).map_err(|e| {
                BuildError::TextModel {
                    model: name.to_string(),
                    message: e.to_string(),
                }
            })?;
            Ok(Some(Arc::new(classifier)))
        }
        _ => Err(BuildError::TextModel {
            model: name.to_string(),
            message: format!("unknown; known: {ENCODER}, off"),
        }),
    }
}

/// How often keys are reread from the store (revocations by another replica).
const KEY_REFRESH: Duration = Duration::from_secs(5);

/// Builds the state, with the admin token from the variable the config names; call inside a
/// tokio runtime.
pub async fn build(config: &GatewayConfig) -> Result<AppState, BuildError> {
    let admin_token = std::env::var(&config.auth.admin_token_env)
        .ok()
        .filter(|t| !t.is_empty());
    if admin_token.is_none() {
        tracing::warn!(
            var = %config.auth.admin_token_env,
            "the admin API is off: its token variable is not set"
        );
    }
    build_with_admin_token(config, admin_token).await
}

/// [`build`] with the admin token given (`None`: the admin API is off).
pub async fn build_with_admin_token(
    config: &GatewayConfig,
    admin_token: Option<String>,
) -> Result<AppState, BuildError> {
    let store = match &config.store {
        Some(location) => {
            let location = location.clone();
            // An idle writer checkpoints in its own commits, at its own priority; a normal one
            // (durable traces) leaves them to the store's thread, off its commits.
            let checkpoints = match config.traces.writer_priority() {
                WriterPriority::Idle => Checkpoints::InCommits,
                WriterPriority::Normal => Checkpoints::OnThread,
            };
            let opened = tokio::task::spawn_blocking({
                let location = location.clone();
                move || GatewayStore::open_with(&location, checkpoints)
            })
            .await
            .expect("opening the store does not panic")
            .map_err(|source| BuildError::Store {
                location: location.clone(),
                source,
            })?;
            Some(Arc::new(opened))
        }
        None => None,
    };
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| BuildError::Client(e.to_string()))?;
    let stored_active: HashMap<String, String> = match &store {
        Some(s) => {
            let s = Arc::clone(s);
            tokio::task::spawn_blocking(move || s.active_versions())
                .await
                .expect("reading versions does not panic")
                .map_err(|source| BuildError::Store {
                    location: config.store.clone().unwrap_or_default(),
                    source,
                })?
                .into_iter()
                .collect()
        }
        None => HashMap::new(),
    };
    let created = unix_now();
    let mut engines: HashMap<(PathBuf, usize), Arc<ServedModel>> = HashMap::new();
    let mut embedders: HashMap<PathBuf, Arc<emguard_embed::Embedder>> = HashMap::new();
    let mut models = BTreeMap::new();
    for model in &config.models {
        let mut versions = Vec::new();
        for v in &model.versions {
            let fail = |message: String| BuildError::Version {
                model: model.id.clone(),
                version: v.name.clone(),
                message,
            };
            let mut served_file = None;
            let backend = match v.backend() {
                BackendSpec::Local(name) => {
                    let path = emguard_models::resolve(&name).map_err(|e| fail(e.to_string()))?;
                    served_file = Some(path.clone());
                    let key = (path.clone(), v.max_batch);
                    let served = match engines.get(&key) {
                        Some(served) => Arc::clone(served),
                        None => {
                            let (id, batch) = (name.clone(), v.max_batch);
                            let loaded = tokio::task::spawn_blocking(move || {
                                ServedModel::load(id, &path, batch)
                            })
                            .await
                            .expect("loading a model does not panic")
                            .map_err(|e| fail(e.to_string()))?;
                            let served = Arc::new(loaded);
                            engines.insert(key, Arc::clone(&served));
                            served
                        }
                    };
                    Backend::Local(LocalBackend::new(served))
                }
                BackendSpec::Embedding(name) => {
                    let path = emguard_models::resolve(&name).map_err(|e| fail(e.to_string()))?;
                    let embedder = match embedders.get(&path) {
                        Some(loaded) => Arc::clone(loaded),
                        None => {
                            let dir = path.clone();
                            let loaded = tokio::task::spawn_blocking(move || {
                                emguard_embed::Embedder::load(&dir)
                            })
                            .await
                            .expect("loading an embedding model does not panic")
                            .map_err(|e| fail(e.to_string()))?;
                            let loaded = Arc::new(loaded);
                            embedders.insert(path, Arc::clone(&loaded));
                            loaded
                        }
                    };
                    Backend::Embedding(EmbeddingBackend::new(name, embedder))
                }
                BackendSpec::Upstream(url) => {
                    let api_key = match &v.api_key_env {
                        Some(var) => Some(std::env::var(var).map_err(|_| {
                            fail(format!(
                                "the environment variable `{var}` (api_key_env) is not set"
                            ))
                        })?),
                        None => None,
                    };
                    Backend::Upstream(
                        UpstreamBackend::new(
                            client.clone(),
                            &url,
                            v.upstream_model.clone().unwrap_or_else(|| model.id.clone()),
                            api_key,
                            Duration::from_secs_f64(v.timeout_secs),
                            v.retries,
                            config.server.max_answer_bytes,
                        )
                        .map_err(fail)?,
                    )
                }
            };
            versions.push(Version {
                name: v.name.clone(),
                backend,
                chain: v
                    .attestation
                    .as_ref()
                    .map(|a| SignedChain::new(a, served_file.as_deref())),
            });
        }
        // A version activated through the admin API survives restarts, if it still exists.
        let active = stored_active
            .get(&model.id)
            .filter(|name| model.versions.iter().any(|v| &v.name == *name))
            .cloned()
            .unwrap_or_else(|| model.active.clone());
        // The versions that serve from the start: each must pass its chain check, or the
        // gateway does not start (serving an unverified file is what the chain prevents).
        for name in std::iter::once(&active).chain(model.fallback.as_ref()) {
            let version = versions
                .iter()
                .find(|v| &v.name == name)
                .expect("config validation: active and fallback name versions");
            version
                .check_chain(&model.id)
                .await
                .map_err(|refused| BuildError::Chain {
                    model: model.id.clone(),
                    version: name.clone(),
                    refused,
                })?;
        }
        let mut entry = ModelEntry::new(
            model.id.clone(),
            created,
            model
                .filters
                .clone()
                .unwrap_or_else(|| config.filters.clone()),
            versions,
            active,
            model.fallback.clone(),
        );
        entry.cache = model.cache.map(crate::cache::ResponseCache::new);
        // Canary weights from the config (a rollout stored by the monitor replaces them).
        let mut rollout = entry.rollout();
        rollout.weights = model
            .versions
            .iter()
            .filter_map(|v| v.weight.filter(|w| *w > 0.0).map(|w| (v.name.clone(), w)))
            .collect();
        entry.set_rollout(rollout);
        models.insert(model.id.clone(), Arc::new(entry));
    }
    let monitor = match (&config.monitor, &config.store) {
        (Some(settings), Some(location)) => {
            let location = location.clone();
            let store = tokio::task::spawn_blocking({
                let location = location.clone();
                move || emguard_store::monitor::MonitorStore::open(&location)
            })
            .await
            .expect("opening the store does not panic")
            .map_err(|source| BuildError::Store { location, source })?;
            let table = Arc::new(crate::registry::ModelRoutes(models.clone()));
            let settings = settings.clone();
            // Loading the judge and reading the store block: off the async threads, but
            // inside the runtime (the monitor starts its poller on it).
            let runtime = tokio::runtime::Handle::current();
            let started = tokio::task::spawn_blocking(move || {
                let _entered = runtime.enter();
                emguard_monitor::Monitor::start(settings, Arc::new(store), table)
            })
            .await
            .expect("starting the monitor does not panic")?;
            Some(Arc::new(started))
        }
        _ => None,
    };
    let keys = match (&store, config.auth.required) {
        (Some(store), true) => {
            let ring = KeyRing::load(Arc::clone(store)).map_err(|source| BuildError::Store {
                location: config.store.clone().unwrap_or_default(),
                source,
            })?;
            ring.refresh_every(KEY_REFRESH);
            Some(ring)
        }
        _ => None,
    };
    let redteam = match (&config.redteam, &config.store) {
        (Some(section), Some(location)) => {
            let location = location.clone();
            let incidents = tokio::task::spawn_blocking({
                let location = location.clone();
                move || emguard_store::monitor::MonitorStore::open(&location)
            })
            .await
            .expect("opening the store does not panic")
            .map_err(|source| BuildError::Store { location, source })?;
            Some(crate::redteam::Cycles::new(
                section.clone(),
                keys.as_deref(),
                Arc::new(incidents),
                &models,
            ))
        }
        _ => None,
    };
    let backend = if config.rate_limits.backend == "local" {
        RateLimitBackend::Local
    } else {
        RateLimitBackend::Redis {
            url: config.rate_limits.backend.clone(),
            prefix: "emguard:ratelimit".into(),
        }
    };
    let options = RateLimitOptions {
        burst_ms: config.rate_limits.burst_ms,
        on_backend_error: config.rate_limits.on_backend_error,
        backend_timeout_ms: config.rate_limits.backend_timeout_ms,
    };
    let limiter = RateLimiter::connect_or_defer(&backend, options)
        .await
        .map_err(|e| BuildError::RateLimit(e.to_string()))?;
    let tracer = match (&store, config.traces.enabled) {
        (Some(store), true) => Some(Tracer::start(
            Arc::clone(store),
            TraceOptions {
                queue: config.traces.queue,
                retention_days: config.traces.retention_days,
                otlp_endpoint: config.traces.otlp_endpoint.clone(),
                priority: config.traces.writer_priority(),
                ..TraceOptions::default()
            },
        )),
        _ => None,
    };
    let review = match (&config.review, &config.store) {
        (Some(review), Some(location)) => Some(crate::review::open(review, location).await?),
        _ => None,
    };
    // A playbook that holds a breaching version's answers for review needs the queue.
    if review.is_none()
        && let Some((model, origin)) = monitor
            .as_ref()
            .and_then(|m| m.holding_playbooks().into_iter().next())
    {
        return Err(BuildError::Monitor(
            emguard_monitor::MonitorError::HoldWithoutReview { origin, model },
        ));
    }
    Ok(AppState::from_parts(Inner {
        models,
        limits: Limits {
            max_body_bytes: config.server.max_body_bytes,
            max_n: config.server.max_n,
            max_tokens: config.server.max_tokens,
            default_max_tokens: config.server.default_max_tokens,
        },
        keys,
        admin_token,
        store,
        limiter: Some(limiter),
        default_quota: config.rate_limits.default,
        filters: text_filter_model(&config.server.text_model)?
            .into_iter()
            .fold(
                Filters::with_scan_cache(config.server.scan_cache),
                |f, judge| f.with_answer_judge(judge),
            ),
        filter_policies: config.filter_policies.clone(),
        tracer,
        content: config.traces.content,
        durable: config.traces.durable,
        metrics: Some(prometheus()),
        edge: Edge {
            header_read_timeout: Duration::from_millis(config.server.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(config.server.body_read_timeout_ms),
            max_connections: config.server.max_connections,
            max_answer_bytes: config.server.max_answer_bytes,
            metrics_require_token: config.server.metrics_require_token,
        },
        auth_failures: (config.auth.max_failures_per_minute > 0)
            .then(|| FailedAuth::new(config.auth.max_failures_per_minute)),
        max_trace_content: config.traces.max_content_bytes,
        in_flight: tokio::sync::watch::channel(()).0,
        review,
        monitor,
        redteam: std::sync::Mutex::new(redteam),
    }))
}

/// The process's Prometheus recorder (installed once: `metrics` has one global recorder),
/// with a thread that runs its upkeep every 5 s: without it, histogram samples pile up
/// between scrapes and memory grows with traffic.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning the metrics upkeep thread");
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_text_model_is_refused_naming_the_setting_and_the_choices() {
        let error = text_filter_model("gpt-guard").expect_err("refused");
        assert_eq!(
            error.to_string(),
            "server.text_model `gpt-guard`: unknown; known: use-multilingual-v3, off"
        );
        assert!(text_filter_model("off").expect("off is a choice").is_none());
    }
}
