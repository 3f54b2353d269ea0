//! The gateway's configuration file (TOML or YAML, by extension): models and their versions,
//! keys and limits, output filters, traces. Parsing rejects unknown fields; [`GatewayConfig::
//! validate`] then checks what serde cannot (one backend per version, the active and fallback
//! versions exist, ...). Every error names the file and the field.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::trace::WriterPriority;
use serde::Deserialize;

use crate::filter::FilterPolicy;
use crate::ratelimit::{FailMode, Quota, RateLimitOptions};
use crate::trace::ContentLogging;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: `{field}`: {message}")]
    Invalid {
        path: String,
        field: String,
        message: String,
    },
    /// An error of a section that knows its lines (`redteam:`).
    #[error("{path}:{line}: `{field}`: {message}")]
    InvalidAt {
        path: String,
        line: usize,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Where keys, active versions and traces live: a SQLite file path or `postgres://…`.
    /// Relative paths are relative to the config file.
    #[serde(default)]
    pub store: Option<String>,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    #[serde(default)]
    pub traces: TraceConfig,
    /// The default output-filter policy; a model's `filters` replaces it for that model.
    #[serde(default)]
    pub filters: FilterPolicy,
    /// Named policies an API key can be given (`filter_policy` when the key is created); a
    /// key's policy replaces the model's for its requests.
    #[serde(default)]
    pub filter_policies: std::collections::BTreeMap<String, FilterPolicy>,
    /// Human review: which answers wait for a person (see docs/review.md).
    #[serde(default)]
    pub review: Option<emguard_review::ReviewConfig>,
    /// Online monitoring of the versions' answers, canary rollouts and incidents (docs/monitor.md).
    #[serde(default)]
    pub monitor: Option<emguard_monitor::MonitorConfig>,
    /// Red-team cycles on each model's active and canary versions, run by the gateway in the
    /// background (docs/redteam.md); breaches open incidents.
    #[serde(default)]
    pub redteam: Option<emguard_redteam::section::RedteamSection>,
    pub models: Vec<ModelConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_n: usize,
    pub max_tokens: usize,
    pub default_max_tokens: usize,
    /// Code blocks whose scan results the code filter remembers (0: scan every block).
    pub scan_cache: usize,
    /// Longest a client may take to send a request's headers (and longest an idle
    /// keep-alive connection stays open), in ms: slow clients cannot hold connections.
    pub header_read_timeout_ms: u64,
    /// Longest a client may take to send a request's body, in ms (408 after it).
    pub body_read_timeout_ms: u64,
    /// Connections served at once; more wait until one closes (each is a file descriptor:
    /// keep it under `ulimit -n`).
    pub max_connections: usize,
    /// Largest answer read from an upstream, in bytes (whole, or a stream in all); a larger
    /// one is refused with 502 `upstream_answer_too_large`.
    pub max_answer_bytes: usize,
    /// Serve the admin API and `/metrics` on this address only (e.g. `127.0.0.1:9090`),
    /// not on `listen`. Unset: both on `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `/metrics` needs the admin token (`Authorization: Bearer ADMIN_TOKEN`).
    pub metrics_require_token: bool,
    /// The model the text filter reads answers with, beside its lexicons (every language the
    /// model knows): `use-multilingual-v3` (the default; pulled when missing) or `off`
    /// (lexicons only: about 2-20 ms less CPU per answer judged, see docs/gateway.md).
    pub text_model: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = crate::Limits::default();
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: limits.max_body_bytes,
            max_n: limits.max_n,
            max_tokens: limits.max_tokens,
            default_max_tokens: limits.default_max_tokens,
            scan_cache: crate::filter::scan_cache::DEFAULT_ENTRIES,
            header_read_timeout_ms: crate::Edge::default().header_read_timeout.as_millis() as u64,
            body_read_timeout_ms: crate::Edge::default().body_read_timeout.as_millis() as u64,
            max_connections: crate::Edge::default().max_connections,
            max_answer_bytes: crate::Edge::default().max_answer_bytes,
            admin_listen: None,
            metrics_require_token: false,
            text_model: emguard_judge::answer_harm::ENCODER.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether `/v1` needs an API key. Off only for a local, single-user server.
    pub required: bool,
    /// Environment variable holding the admin token; the admin API is off when it is unset.
    pub admin_token_env: String,
    /// Failed authentications a client address may make per minute; past it, its requests
    /// get 429 before any key is checked (0: no limit).
    pub max_failures_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            required: true,
            admin_token_env: "EMGUARD_ADMIN_TOKEN".into(),
            max_failures_per_minute: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// `local` (this process) or a `redis://` URL shared by replicas.
    pub backend: String,
    /// Quota of keys that do not set their own.
    pub default: Quota,
    /// How much a key may send at once, as time at its rate (default 1000 ms: one second's
    /// worth of its per-minute limit).
    pub burst_ms: u64,
    /// When Redis fails: `open` admits (the limiter's outage is not the gateway's), `closed`
    /// refuses.
    pub on_backend_error: FailMode,
    /// Bound on one Redis call, in ms.
    pub backend_timeout_ms: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            backend: "local".into(),
            default: Quota::default(),
            burst_ms: RateLimitOptions::default().burst_ms,
            on_backend_error: FailMode::default(),
            backend_timeout_ms: RateLimitOptions::default().backend_timeout_ms,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    pub enabled: bool,
    /// What of the request and response text is kept: `full`, `hashed` or `off`.
    pub content: ContentLogging,
    /// Release a response only after its trace is committed.
    pub durable: bool,
    pub queue: usize,
    pub retention_days: Option<u32>,
    /// OTLP/HTTP endpoint, e.g. `http://127.0.0.1:4318`.
    pub otlp_endpoint: Option<String>,
    /// CPU priority of the trace writer: `idle` runs it only when request handling leaves the
    /// core idle, `normal` shares the core fairly. Unset: `idle`, or `normal` with `durable`
    /// (where an answer waits for its commit). See [`TraceConfig::writer_priority`].
    #[serde(rename = "writer_priority")]
    pub writer_priority_setting: Option<WriterPriority>,
    /// Most bytes of a request or answer a trace keeps (`content: full`); longer text is cut
    /// with a marker saying how long it was.
    pub max_content_bytes: usize,
}

impl TraceConfig {
    /// The priority to run the trace writer at: as set, else `idle` unless traces are
    /// durable. Non-durable traces are off the request path, so their
    /// writing should take no CPU a request wants (the writer is relieved by one at normal
    /// priority when it falls behind); a durable answer waits for its commit, so there the
    /// writer is on the request path and runs at normal priority.
    pub fn writer_priority(&self) -> WriterPriority {
        match (self.writer_priority_setting, self.durable) {
            (Some(set), _) => set,
            (None, false) => WriterPriority::Idle,
            (None, true) => WriterPriority::Normal,
        }
    }
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            enabled: true,
            content: ContentLogging::Full,
            durable: false,
            queue: 10_000,
            retention_days: None,
            otlp_endpoint: None,
            writer_priority_setting: None,
            max_content_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The id clients send as `model`.
    pub id: String,
    /// The version answering now (the admin API can switch it; the switch is stored).
    pub active: String,
    /// Tried when the active version fails after its retries.
    #[serde(default)]
    pub fallback: Option<String>,
    #[serde(default)]
    pub filters: Option<FilterPolicy>,
    /// Every version must name its signed chain (`attestation`): a version without one is a
    /// config error, not a warning in the log.
    #[serde(default)]
    pub require_attestation: bool,
    /// The exact-match response cache (off unless set; see [`crate::cache`]).
    #[serde(default)]
    pub cache: Option<crate::cache::CacheConfig>,
    pub versions: Vec<VersionConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionConfig {
    pub name: String,
    /// A local GGUF: a model name (`smollm2-135m-instruct`) or a path.
    #[serde(default)]
    pub local: Option<String>,
    /// An OpenAI-compatible base URL, e.g. `http://10.0.0.5:8000/v1`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// A local sentence-embedding model (`minilm-l6-v2`, or its folder): the version answers
    /// `/v1/embeddings` only.
    #[serde(default)]
    pub embedding: Option<String>,
    /// The model name sent upstream (default: the model's id).
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Environment variable holding the upstream's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Extra attempts on timeouts, refused connections, 429 and 5xx before the fallback.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Local models: most sequences decoded together.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// The version's signed release chain (`emguard attest sign`): the gateway activates the
    /// version only when the chain verifies (at start-up and through the admin API).
    #[serde(default)]
    pub attestation: Option<AttestationConfig>,
    /// A candidate's share of the model's traffic (a canary), 0..1; the active version gets
    /// what the candidates leave. A stored rollout (the monitor's) replaces it at start.
    #[serde(default)]
    pub weight: Option<f64>,
}

/// The files of a release chain, as `emguard attest verify` takes them. Relative paths are
/// relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationConfig {
    /// The bundle `emguard attest sign` wrote (`release.intoto.jsonl`).
    pub bundle: PathBuf,
    /// The ed25519 public key every statement must be signed with (`KEY.pub`).
    pub public_key: PathBuf,
    /// The training data and its audit manifest.
    pub dataset: PathBuf,
    pub manifest: PathBuf,
    /// The eval run's results.json (or its folder) and the model card.
    pub results: PathBuf,
    pub card: PathBuf,
    /// The run's name of the served model [default: its last untriggered model].
    #[serde(default)]
    pub run_model: Option<String>,
    /// The attested model file of an upstream version (the file its server loads). A local
    /// version's attested file is always the GGUF it serves, so it must not set this.
    #[serde(default)]
    pub model: Option<PathBuf>,
}

impl AttestationConfig {
    fn paths_mut(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        [
            &mut self.bundle,
            &mut self.public_key,
            &mut self.dataset,
            &mut self.manifest,
            &mut self.results,
            &mut self.card,
        ]
        .into_iter()
        .chain(self.model.as_mut())
    }
}

fn default_timeout_secs() -> f64 {
    60.0
}
fn default_retries() -> u32 {
    1
}
fn default_max_batch() -> usize {
    8
}

/// Which backend a version is, once validated.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendSpec {
    Local(String),
    Upstream(String),
    Embedding(String),
}

impl VersionConfig {
    pub fn backend(&self) -> BackendSpec {
        match (&self.local, &self.upstream, &self.embedding) {
            (Some(local), _, _) => BackendSpec::Local(local.clone()),
            (None, Some(url), _) => BackendSpec::Upstream(url.clone()),
            (None, None, Some(name)) => BackendSpec::Embedding(name.clone()),
            (None, None, None) => unreachable!("validate() requires one backend per version"),
        }
    }
}

impl GatewayConfig {
    /// Reads, parses (`.toml`, or `.yaml`/`.yml`) and validates a config file. A relative
    /// SQLite `store` path becomes relative to the file's directory.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        let mut config = GatewayConfig::parse(&text, is_toml, &shown)?;
        if let (Some(store), Some(dir)) = (&config.store, path.parent())
            && !store.contains("://")
            && Path::new(store).is_relative()
        {
            config.store = Some(dir.join(store).display().to_string());
        }
        if let (Some(monitor), Some(dir)) = (&mut config.monitor, path.parent()) {
            monitor.resolve_paths(dir);
        }
        if let Some(redteam) = &mut config.redteam {
            redteam.resolve_paths(path.parent().unwrap_or(Path::new(".")));
            redteam.check_probes().map_err(|e| ConfigError::Parse {
                path: shown.clone(),
                message: format!("`redteam.probes`: {e}"),
            })?;
        }
        if let Some(dir) = path.parent() {
            let chains = config.models.iter_mut().flat_map(|m| &mut m.versions);
            for path in chains
                .flat_map(|v| v.attestation.as_mut().map(|a| a.paths_mut()))
                .flatten()
            {
                if path.is_relative() {
                    *path = dir.join(&*path);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, toml: bool, origin: &str) -> Result<GatewayConfig, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: origin.to_string(),
            message,
        };
        let config: GatewayConfig = if toml {
            toml::from_str(text).map_err(|e| parse_error(e.to_string()))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| parse_error(e.to_string()))?
        };
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field: String, message: &str| ConfigError::Invalid {
            path: origin.to_string(),
            field,
            message: message.to_string(),
        };
        if self.models.is_empty() {
            return Err(invalid("models".into(), "at least one model is needed"));
        }
        let mut ids = BTreeSet::new();
        for (m, model) in self.models.iter().enumerate() {
            let at = format!("models[{m}]");
            if model.id.trim().is_empty() {
                return Err(invalid(format!("{at}.id"), "must not be empty"));
            }
            if model.id == crate::auth::REDTEAM_SCOPE {
                return Err(invalid(
                    format!("{at}.id"),
                    "`redteam` is a key scope (it lets a key pin versions), not a model id",
                ));
            }
            if !ids.insert(model.id.as_str()) {
                return Err(invalid(
                    format!("{at}.id"),
                    &format!("`{}` is configured twice", model.id),
                ));
            }
            let mut names = BTreeSet::new();
            for (v, version) in model.versions.iter().enumerate() {
                let at = format!("{at}.versions[{v}]");
                if !names.insert(version.name.as_str()) {
                    return Err(invalid(
                        format!("{at}.name"),
                        &format!("version `{}` is configured twice", version.name),
                    ));
                }
                let backends = [&version.local, &version.upstream, &version.embedding];
                if backends.iter().filter(|b| b.is_some()).count() != 1 {
                    return Err(invalid(
                        at,
                        "give exactly one of `local`, `upstream` or `embedding`",
                    ));
                }
                match (&version.local, &version.upstream) {
                    (None, Some(url))
                        if !(url.starts_with("http://") || url.starts_with("https://")) =>
                    {
                        return Err(invalid(
                            format!("{at}.upstream"),
                            "must be an http:// or https:// URL",
                        ));
                    }
                    _ => {}
                }
                if !(version.timeout_secs > 0.0 && version.timeout_secs.is_finite()) {
                    return Err(invalid(
                        format!("{at}.timeout_secs"),
                        "must be a positive number",
                    ));
                }
                if version.max_batch == 0 {
                    return Err(invalid(format!("{at}.max_batch"), "must be at least 1"));
                }
                match &version.attestation {
                    None if model.require_attestation => {
                        return Err(invalid(
                            format!("{at}.attestation"),
                            "is required: the model sets `require_attestation` (name the version's signed chain from `emguard attest sign`)",
                        ));
                    }
                    Some(chain) if chain.model.is_none() && version.local.is_none() => {
                        return Err(invalid(
                            format!("{at}.attestation.model"),
                            "a version that is not `local` must name the attested model file it serves",
                        ));
                    }
                    Some(chain) if chain.model.is_some() && version.local.is_some() => {
                        return Err(invalid(
                            format!("{at}.attestation.model"),
                            "a local version's attested file is the GGUF it serves (`local`): remove `model`",
                        ));
                    }
                    _ => {}
                }
            }
            let mut weights = 0.0;
            for (v, version) in model.versions.iter().enumerate() {
                let Some(weight) = version.weight else {
                    continue;
                };
                let field = format!("{at}.versions[{v}].weight");
                if !(0.0..=1.0).contains(&weight) {
                    return Err(invalid(field, "must be between 0 and 1"));
                }
                if version.name == model.active && weight > 0.0 {
                    return Err(invalid(
                        field,
                        "the active version gets what the candidates leave: give weights to candidates only",
                    ));
                }
                weights += weight;
                if weights > 1.0 + 1e-9 {
                    return Err(invalid(field, "the model's weights add up to more than 1"));
                }
            }
            if !names.contains(model.active.as_str()) {
                return Err(invalid(
                    format!("{at}.active"),
                    &format!("no version named `{}`", model.active),
                ));
            }
            if let Some(fallback) = &model.fallback
                && !names.contains(fallback.as_str())
            {
                return Err(invalid(
                    format!("{at}.fallback"),
                    &format!("no version named `{fallback}`"),
                ));
            }
        }
        if self
            .filter_policies
            .keys()
            .any(|name| name.trim().is_empty())
        {
            return Err(invalid(
                "filter_policies".into(),
                "a policy name must not be empty",
            ));
        }
        if self.auth.required && self.store.is_none() {
            return Err(invalid(
                "store".into(),
                "API keys are stored there: set `store` (a SQLite path or postgres:// URL) or `auth.required = false`",
            ));
        }
        if self.traces.enabled && self.store.is_none() {
            return Err(invalid(
                "store".into(),
                "traces are written there: set `store` or `traces.enabled = false`",
            ));
        }
        if let Some(review) = &self.review {
            if self.store.is_none() {
                return Err(invalid(
                    "store".into(),
                    "the review queue is kept there: set `store` or remove `review`",
                ));
            }
            if let Err((field, message)) = emguard_review::policy::Policies::build(review) {
                return Err(invalid(field, &message));
            }
        }
        let server = &self.server;
        for (field, value) in [
            (
                "server.header_read_timeout_ms",
                server.header_read_timeout_ms,
            ),
            ("server.body_read_timeout_ms", server.body_read_timeout_ms),
            ("server.max_connections", server.max_connections as u64),
            ("server.max_answer_bytes", server.max_answer_bytes as u64),
        ] {
            if value == 0 {
                return Err(invalid(field.into(), "must be at least 1"));
            }
        }
        if let Some(monitor) = &self.monitor {
            if let Some((field, message)) = monitor.problems() {
                return Err(invalid(field, &message));
            }
            if self.store.is_none() {
                return Err(invalid(
                    "store".into(),
                    "the monitor keeps judgements, incidents and rollouts there: set `store`",
                ));
            }
            if let Some(model) = monitor.playbooks.keys().find(|m| !ids.contains(m.as_str())) {
                return Err(invalid(
                    format!("monitor.playbooks.{model}"),
                    "no model with this id is configured",
                ));
            }
        }
        if let Some(redteam) = &self.redteam {
            let ids: Vec<&str> = ids.iter().copied().collect();
            if let Some(p) = redteam.problems(&ids) {
                return Err(match p.line {
                    0 => ConfigError::Invalid {
                        path: origin.to_string(),
                        field: p.field,
                        message: p.message,
                    },
                    line => ConfigError::InvalidAt {
                        path: origin.to_string(),
                        line,
                        field: p.field,
                        message: p.message,
                    },
                });
            }
            if self.store.is_none() {
                return Err(invalid(
                    "store".into(),
                    "red-team cycles open incidents there: set `store`",
                ));
            }
        }
        if self.rate_limits.burst_ms == 0 {
            return Err(invalid("rate_limits.burst_ms".into(), "must be at least 1"));
        }
        let backend = &self.rate_limits.backend;
        if backend != "local"
            && !backend.starts_with("redis://")
            && !backend.starts_with("rediss://")
        {
            return Err(invalid(
                "rate_limits.backend".into(),
                "must be `local` or a redis:// URL",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "
store: gw.db
models:
  - id: assistant
    active: v2
    fallback: v1
    versions:
      - name: v1
        local: smollm2-135m-instruct
      - name: v2
        upstream: http://127.0.0.1:9/v1
        retries: 2
";

    #[test]
    fn yaml_and_toml_give_the_same_config() {
        let yaml = GatewayConfig::parse(YAML, false, "gw.yaml").unwrap();
        let toml = GatewayConfig::parse(
            r#"
store = "gw.db"
[[models]]
id = "assistant"
active = "v2"
fallback = "v1"
[[models.versions]]
name = "v1"
local = "smollm2-135m-instruct"
[[models.versions]]
name = "v2"
upstream = "http://127.0.0.1:9/v1"
retries = 2
"#,
            true,
            "gw.toml",
        )
        .unwrap();
        assert_eq!(format!("{yaml:?}"), format!("{toml:?}"));
        assert_eq!(yaml.models[0].versions[1].retries, 2);
        assert_eq!(
            yaml.models[0].versions[0].backend(),
            BackendSpec::Local("smollm2-135m-instruct".into())
        );
    }

    fn error(text: &str) -> String {
        GatewayConfig::parse(text, false, "gw.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = error(&YAML.replace("active: v2", "active: v3"));
        assert!(
            e.contains("gw.yaml") && e.contains("models[0].active") && e.contains("v3"),
            "{e}"
        );
        let e = error(&YAML.replace("        retries: 2\n", "        local: x\n"));
        assert!(
            e.contains("models[0].versions[1]") && e.contains("exactly one"),
            "{e}"
        );
        let e = error(&YAML.replace("fallback: v1", "fallbak: v1"));
        assert!(e.contains("gw.yaml") && e.contains("fallbak"), "{e}");
        let e = error(&YAML.replace("retries: 2", "retries: many"));
        assert!(e.contains("retries"), "{e}");
        let e = error(&YAML.replace("store: gw.db\n", ""));
        assert!(e.contains("`store`"), "{e}");
        let e = error(&YAML.replace("http://127.0.0.1:9/v1", "127.0.0.1:9"));
        assert!(e.contains("models[0].versions[1].upstream"), "{e}");
        let e = error(&format!("{YAML}traces: {{writer_priority: low}}\n"));
        assert!(
            e.contains("line 13") && e.contains("`low`") && e.contains("idle"),
            "{e}"
        );
    }

    #[test]
    fn signed_chains_are_checked_for_what_serde_cannot_see() {
        let chain = "{bundle: r.intoto.jsonl, public_key: k.pub, dataset: d.jsonl, manifest: d.manifest.json, results: run, card: README.md}";
        // A policy that requires a chain names the version that lacks one.
        let e = error(&YAML.replace(
            "    fallback: v1\n",
            "    fallback: v1\n    require_attestation: true\n",
        ));
        assert!(
            e.contains("models[0].versions[0].attestation") && e.contains("require_attestation"),
            "{e}"
        );
        // An upstream version names the file its server loads; a local one must not.
        let upstream = YAML.replace(
            "retries: 2",
            &format!("retries: 2\n        attestation: {chain}"),
        );
        let e = error(&upstream);
        assert!(e.contains("models[0].versions[1].attestation.model"), "{e}");
        let named = upstream.replace("card: README.md}", "card: README.md, model: m.gguf}");
        assert!(GatewayConfig::parse(&named, false, "gw.yaml").is_ok());
        let local = YAML.replace(
            "local: smollm2-135m-instruct",
            &format!(
                "local: smollm2-135m-instruct\n        attestation: {}",
                chain.replace('}', ", model: m.gguf}")
            ),
        );
        let e = error(&local);
        assert!(
            e.contains("models[0].versions[0].attestation.model") && e.contains("remove"),
            "{e}"
        );
        let e = error(&YAML.replace("retries: 2", "retries: 2\n        attestation: {bundle: r}"));
        assert!(e.contains("public_key"), "{e}");
    }

    #[test]
    fn chain_paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = YAML.replace(
            "local: smollm2-135m-instruct",
            "local: smollm2-135m-instruct\n        attestation: {bundle: release/r.intoto.jsonl, public_key: /keys/k.pub, dataset: d.jsonl, manifest: d.manifest.json, results: run, card: README.md}",
        );
        let path = dir.path().join("gw.yaml");
        std::fs::write(&path, text).unwrap();
        let config = GatewayConfig::load(&path).unwrap();
        let chain = config.models[0].versions[0].attestation.as_ref().unwrap();
        assert_eq!(chain.bundle, dir.path().join("release/r.intoto.jsonl"));
        assert_eq!(chain.public_key, Path::new("/keys/k.pub"));
        assert_eq!(chain.card, dir.path().join("README.md"));
    }

    #[test]
    fn the_trace_writer_runs_at_idle_priority_unless_durable_or_set() {
        let priority = |traces: &str| {
            let text = format!("{YAML}traces: {{{traces}}}\n");
            let config = GatewayConfig::parse(&text, false, "gw.yaml").unwrap();
            config.traces.writer_priority()
        };
        assert_eq!(priority(""), WriterPriority::Idle);
        assert_eq!(priority("durable: true"), WriterPriority::Normal);
        assert_eq!(priority("writer_priority: normal"), WriterPriority::Normal);
        assert_eq!(
            priority("durable: true, writer_priority: idle"),
            WriterPriority::Idle
        );
    }
}
