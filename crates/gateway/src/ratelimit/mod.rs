//! Per-key rate limits: requests per minute and tokens per minute, by GCRA.
//!
//! [`RateLimiter::admit`] runs before a request reaches a model: it refuses while the key's
//! token budget is in debt and otherwise takes one request cell. [`RateLimiter::charge_tokens`]
//! runs after, with the tokens the request really used, which may overdraw the budget; later
//! admits are refused until the debt is repaid at the quota's rate.
//!
//! Burst: a key may use `limit × burst / 60 s` units at once (at least one), by default one
//! second's worth; over any window `W` at most `rate × W + burst` are admitted. The state lives
//! in this process ([`RateLimitBackend::Local`]) or in Redis, shared by replicas
//! ([`RateLimitBackend::Redis`]); when Redis fails, requests are admitted (fail open, counted in
//! [`RateLimitStats::failed_open`]) unless [`FailMode::Closed`] is set. See
//! docs/gateway-rate-limits.md.

mod gcra;
mod local;
mod redis_store;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use gcra::Lane;
use local::LocalStore;
use redis_store::RedisStore;

/// A key's limits; `None` is unlimited, `Some(0)` refuses everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quota {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

/// Where the limit state lives.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum RateLimitBackend {
    /// In this process: limits hold per replica.
    #[default]
    Local,
    /// In Redis: every replica that uses the same URL and prefix shares each key's limits.
    Redis {
        url: String,
        #[serde(default = "default_redis_prefix")]
        prefix: String,
    },
}

fn default_redis_prefix() -> String {
    "emguard:ratelimit".to_owned()
}

impl fmt::Debug for RateLimitBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitBackend::Local => f.write_str("Local"),
            RateLimitBackend::Redis { url, prefix } => f
                .debug_struct("Redis")
                .field("url", &redis_store::redact_password(url))
                .field("prefix", prefix)
                .finish(),
        }
    }
}

/// What to do with a request when the Redis backend errs or does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Admit it: an outage of the limiter does not become an outage of the gateway.
    #[default]
    Open,
    /// Refuse it with [`LimitKind::Unavailable`].
    Closed,
}

/// Settings beside the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitOptions {
    /// The burst as time at the quota's rate, in milliseconds (default 1000: a key may send one
    /// second's worth of its per-minute limit at once).
    pub burst_ms: u64,
    /// How long one Redis call may take before the request is failed open or closed.
    pub backend_timeout_ms: u64,
    pub on_backend_error: FailMode,
}

impl Default for RateLimitOptions {
    fn default() -> Self {
        RateLimitOptions {
            burst_ms: 1000,
            backend_timeout_ms: 250,
            on_backend_error: FailMode::Open,
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    /// The Redis backend failed and [`FailMode::Closed`] is set.
    Unavailable,
}

/// A refused request: answer 429 (503 for [`LimitKind::Unavailable`]) with
/// `Retry-After: {retry_after_secs()}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// When the request would be admitted (for tokens: once the debt is repaid).
    pub retry_after: Duration,
    pub limit: LimitKind,
    /// The per-minute limit that refused it (0 for [`LimitKind::Unavailable`]).
    pub quota: u32,
}

impl Denied {
    /// `retry_after` for the Retry-After header: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retry = self.retry_after_secs();
        match self.limit {
            LimitKind::Requests => write!(
                f,
                "Rate limit reached for requests: {} per minute. Try again in {retry} s.",
                self.quota
            ),
            LimitKind::Tokens => write!(
                f,
                "Rate limit reached for tokens: {} per minute. Try again in {retry} s.",
                self.quota
            ),
            LimitKind::Unavailable => {
                write!(f, "Rate limiting is unavailable. Try again in {retry} s.")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("cannot connect to the Redis rate-limit backend at {url}: {source}")]
    Connect {
        url: String,
        source: redis::RedisError,
    },
    #[error("cannot load the rate-limit script into Redis at {url}: {source}")]
    Script {
        url: String,
        source: redis::RedisError,
    },
    #[error("the Redis rate-limit backend at {url} failed: {source}")]
    Command {
        url: String,
        source: redis::RedisError,
    },
    #[error("the Redis rate-limit backend at {url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
}

/// Counters since start, for /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitStats {
    pub admitted: u64,
    pub denied_requests: u64,
    pub denied_tokens: u64,
    /// Redis calls (admits and charges) that failed or timed out.
    pub backend_errors: u64,
    /// Requests admitted without a limit check because Redis failed ([`FailMode::Open`]).
    pub failed_open: u64,
    /// Requests refused because Redis failed ([`FailMode::Closed`]).
    pub failed_closed: u64,
}

/// Checks and charges per-key limits; cheap to clone (shared state).
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    burst: Duration,
    on_backend_error: FailMode,
    counters: Counters,
    /// Set while Redis is failing, so an outage logs once when it starts and once when it ends.
    backend_failing: AtomicBool,
}

enum Store {
    Local(LocalStore),
    Redis(RedisSlot),
}

/// The Redis store, or where to connect to it: with `on_backend_error: open` the gateway
/// starts while Redis is down and connects on the first request that finds it up.
struct RedisSlot {
    url: String,
    prefix: String,
    timeout: Duration,
    store: tokio::sync::OnceCell<RedisStore>,
}

impl RedisSlot {
    async fn get(&self) -> Result<&RedisStore, RateLimitError> {
        self.store
            .get_or_try_init(|| RedisStore::connect(&self.url, &self.prefix, self.timeout))
            .await
    }
}

#[derive(Default)]
struct Counters {
    admitted: AtomicU64,
    denied_requests: AtomicU64,
    denied_tokens: AtomicU64,
    backend_errors: AtomicU64,
    failed_open: AtomicU64,
    failed_closed: AtomicU64,
}

/// A quota's limits as GCRA lanes; a lane is `None` when that limit is off.
#[derive(Debug, Clone, Copy)]
struct Lanes {
    requests: Option<Lane>,
    tokens: Option<Lane>,
}

impl Lanes {
    /// Zero limits must be refused before: they have no lane.
    fn new(quota: &Quota, burst: Duration) -> Lanes {
        let lane = |limit: Option<u32>| limit.filter(|&l| l > 0).map(|l| Lane::new(l, burst));
        Lanes {
            requests: lane(quota.requests_per_minute),
            tokens: lane(quota.tokens_per_minute),
        }
    }
}

/// A backend's answer to an admit: the wait is in microseconds.
enum Verdict {
    Admitted,
    Limited(LimitKind, u64),
}

/// How long a zero limit asks clients to wait: nothing changes before an operator does.
const ZERO_LIMIT_RETRY: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// A limiter with default [`RateLimitOptions`].
    pub async fn connect(backend: &RateLimitBackend) -> Result<RateLimiter, RateLimitError> {
        Self::connect_with(backend, RateLimitOptions::default()).await
    }

    /// Connects to Redis and loads the script there (for the local backend, nothing to do);
    /// an unreachable Redis is an error.
    pub async fn connect_with(
        backend: &RateLimitBackend,
        options: RateLimitOptions,
    ) -> Result<RateLimiter, RateLimitError> {
        Self::start(backend, options, false).await
    }

    /// [`RateLimiter::connect_with`], but with `on_backend_error: open` an unreachable Redis
    /// is not an error: the limiter starts (admitting, as when Redis fails later) and the first
    /// call that finds Redis up connects. What a gateway does at start.
    pub async fn connect_or_defer(
        backend: &RateLimitBackend,
        options: RateLimitOptions,
    ) -> Result<RateLimiter, RateLimitError> {
        Self::start(backend, options, true).await
    }

    async fn start(
        backend: &RateLimitBackend,
        options: RateLimitOptions,
        may_defer: bool,
    ) -> Result<RateLimiter, RateLimitError> {
        let store = match backend {
            RateLimitBackend::Local => Store::Local(LocalStore::new()),
            RateLimitBackend::Redis { url, prefix } => {
                let slot = RedisSlot {
                    url: url.clone(),
                    prefix: prefix.clone(),
                    timeout: Duration::from_millis(options.backend_timeout_ms.max(1)),
                    store: tokio::sync::OnceCell::new(),
                };
                match slot.get().await {
                    Ok(_) => {}
                    // Failing open, the limiter's outage is not the gateway's: start anyway.
                    Err(e) if may_defer && options.on_backend_error == FailMode::Open => {
                        tracing::warn!(error = %e, "the rate-limit backend is unreachable; starting anyway (on_backend_error: open) and connecting on a later request");
                    }
                    Err(e) => return Err(e),
                }
                Store::Redis(slot)
            }
        };
        Ok(RateLimiter {
            inner: Arc::new(Inner {
                store,
                burst: Duration::from_millis(options.burst_ms),
                on_backend_error: options.on_backend_error,
                counters: Counters::default(),
                backend_failing: AtomicBool::new(false),
            }),
        })
    }

    /// Admit one request for `key_id` under `quota`: consumes one request cell (GCRA), and
    /// refuses when the key's token budget is in debt.
    pub async fn admit(&self, key_id: &str, quota: &Quota) -> Result<(), Denied> {
        let inner = &*self.inner;
        let verdict = if let Some(denied) = zero_limit(quota) {
            Verdict::Limited(denied.limit, denied.retry_after.as_micros() as u64)
        } else {
            let lanes = Lanes::new(quota, inner.burst);
            if lanes.requests.is_none() && lanes.tokens.is_none() {
                Verdict::Admitted
            } else {
                match &inner.store {
                    Store::Local(store) => store.admit(key_id, &lanes),
                    // Boxed: the Redis call's state is large, and inline it would be moved
                    // around with every local admit's future too.
                    Store::Redis(slot) => {
                        match Box::pin(async { slot.get().await?.admit(key_id, &lanes).await })
                            .await
                        {
                            Ok(verdict) => {
                                inner.backend_answered();
                                verdict
                            }
                            Err(error) => return inner.backend_failed_on_admit(&error),
                        }
                    }
                }
            }
        };
        let counters = &inner.counters;
        match verdict {
            Verdict::Admitted => {
                counters.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Verdict::Limited(limit, wait_us) => {
                let (counter, quota) = match limit {
                    LimitKind::Tokens => (&counters.denied_tokens, quota.tokens_per_minute),
                    _ => (&counters.denied_requests, quota.requests_per_minute),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(Denied {
                    retry_after: Duration::from_micros(wait_us),
                    limit,
                    quota: quota.unwrap_or(0),
                })
            }
        }
    }

    /// Charge the tokens a finished request actually used (prompt + completion). May put the
    /// key's token budget into debt; later admits get 429 until it is repaid at the quota's rate.
    pub async fn charge_tokens(&self, key_id: &str, quota: &Quota, tokens: u64) {
        let inner = &*self.inner;
        let Some(lane) = Lanes::new(quota, inner.burst).tokens else {
            return;
        };
        if tokens == 0 {
            return;
        }
        match &inner.store {
            Store::Local(store) => store.charge_tokens(key_id, &lane, tokens),
            Store::Redis(slot) => match Box::pin(async {
                slot.get().await?.charge_tokens(key_id, &lane, tokens).await
            })
            .await
            {
                Ok(()) => inner.backend_answered(),
                // The tokens go uncharged: the request already ran, nothing to refuse.
                Err(error) => inner.backend_failed(&error),
            },
        }
    }

    pub fn stats(&self) -> RateLimitStats {
        let c = &self.inner.counters;
        RateLimitStats {
            admitted: c.admitted.load(Ordering::Relaxed),
            denied_requests: c.denied_requests.load(Ordering::Relaxed),
            denied_tokens: c.denied_tokens.load(Ordering::Relaxed),
            backend_errors: c.backend_errors.load(Ordering::Relaxed),
            failed_open: c.failed_open.load(Ordering::Relaxed),
            failed_closed: c.failed_closed.load(Ordering::Relaxed),
        }
    }
}

/// A `Some(0)` limit refuses every request without asking the backend.
fn zero_limit(quota: &Quota) -> Option<Denied> {
    let refuse = |limit| Denied {
        retry_after: ZERO_LIMIT_RETRY,
        limit,
        quota: 0,
    };
    if quota.tokens_per_minute == Some(0) {
        Some(refuse(LimitKind::Tokens))
    } else if quota.requests_per_minute == Some(0) {
        Some(refuse(LimitKind::Requests))
    } else {
        None
    }
}

impl Inner {
    fn backend_failed_on_admit(&self, error: &RateLimitError) -> Result<(), Denied> {
        self.backend_failed(error);
        match self.on_backend_error {
            FailMode::Open => {
                self.counters.failed_open.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            FailMode::Closed => {
                self.counters.failed_closed.fetch_add(1, Ordering::Relaxed);
                Err(Denied {
                    retry_after: Duration::from_secs(1),
                    limit: LimitKind::Unavailable,
                    quota: 0,
                })
            }
        }
    }

    fn backend_failed(&self, error: &RateLimitError) {
        self.counters.backend_errors.fetch_add(1, Ordering::Relaxed);
        if !self.backend_failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %error,
                fail_mode = ?self.on_backend_error,
                "rate limiting degraded: requests are failed open or closed until Redis answers"
            );
        }
    }

    fn backend_answered(&self) {
        if self.backend_failing.load(Ordering::Relaxed)
            && self.backend_failing.swap(false, Ordering::Relaxed)
        {
            tracing::info!("rate limiting restored: Redis answers again");
        }
    }
}
