//! `POST /v1/chat/completions`, the guarded path: key (from the headers, before the body is
//! read) → body → model and scope → parameters → rate limit → the model's versions in order (retries, then the fallback) → filters →
//! trace → the answer, whole or as server-sent events.

pub(crate) mod draft;
mod incident_hold;
pub(crate) mod params;
mod review;
mod sse;
mod whole;

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::backend::{BackendError, Call, Generated, Reply, backoff};
use crate::error::ApiError;
use crate::filter::FilterPolicy;
use crate::json_body::{parse_with_value, read_limited};
use crate::openai::ChatCompletionRequest;
use crate::ratelimit::{LimitKind, Quota};
use crate::registry::ModelEntry;
use crate::state::{AppState, Limits, unix_now_f64};
use draft::{Draft, Tokens};
use emguard_runtime::CancelToken;
use emguard_store::gateway::{ApiKeyRecord, TokenBudget};
use params::{Api, ChatJob};

pub async fn completions(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    generate::<ChatCompletionRequest>(State(state), request).await
}

/// A request of one of the generating APIs (chat, the legacy text completions): parsed from
/// the body, then checked into a job. Both go through the same guard (this module); they
/// differ in their request and in their answer's shape (see `super::completions`).
pub(crate) trait Generating: serde::de::DeserializeOwned + Send + Sync + 'static {
    fn model(&self) -> &str;
    fn stream(&self) -> bool;
    /// The job, and the text the text filter reads answers against (the user's words).
    fn validate(&self, raw: &Value, limits: &Limits) -> Result<(ChatJob, String), ApiError>;
}

impl Generating for ChatCompletionRequest {
    fn model(&self) -> &str {
        &self.model
    }

    fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    fn validate(&self, _raw: &Value, limits: &Limits) -> Result<(ChatJob, String), ApiError> {
        let job = params::validate(self, limits)?;
        let user = last_user_message(&job);
        Ok((job, user))
    }
}

/// The guarded path for a request of API `R`.
pub(crate) async fn generate<R: Generating>(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let key = match admit_key(&state, &parts).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let pin = match pinned_version(&parts.headers) {
        Ok(pin) => pin,
        Err(e) => return e.into_response(),
    };
    // The rest runs on its own task: a client that hangs up does not cancel it, so its
    // answer is still traced and its tokens still charged. A local generation is stopped
    // though (`cancel`): nobody will read the rest.
    let (alive, gone) = tokio::sync::oneshot::channel::<()>();
    let cancel = CancelToken::new();
    let hang_up = CancelOnDrop(Some(cancel.clone()));
    let work = state.in_flight.subscribe();
    let task = tokio::spawn(async move {
        let _work = work;
        respond::<R>(state, body, key, pin, gone, cancel).await
    });
    let response = task.await;
    // Answered (a stream's relay watches its client itself from here on).
    hang_up.disarm();
    drop(alive);
    response.unwrap_or_else(|e| {
        ApiError::server(format!("the request's task failed: {e}")).into_response()
    })
}

/// The request's key, from the headers alone (shared by the API routes): a request without
/// a valid key costs no body read and leaves a trace of its metadata only.
pub(crate) async fn admit_key(
    state: &AppState,
    parts: &axum::http::request::Parts,
) -> Result<Option<ApiKeyRecord>, Response> {
    let client = crate::server::client_address(&parts.extensions).map(|a| a.ip());
    match authenticate(state, &parts.headers, client) {
        Ok(key) => Ok(key),
        Err(Refused::Limited(e)) => Err(e.into_response()),
        Err(Refused::Unauthorized(e)) => {
            let draft = Draft::default();
            let message = e.message.clone();
            draft
                .finish(
                    state,
                    e.status.as_u16(),
                    None,
                    None,
                    Vec::new(),
                    Some(message),
                )
                .await;
            Err(e.into_response())
        }
    }
}

/// The version a request pins (`x-emguard-version`); checked against its key and model in
/// [`check_pin`].
pub(crate) fn pinned_version(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get(emguard_redteam::session::VERSION_HEADER)
        .map(|v| {
            v.to_str()
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request("`x-emguard-version` must name a version")
                        .with_code("invalid_version")
                })
        })
        .transpose()
}

/// A pinned version needs a key that may pin (403 first: a key that may not learns no
/// version names) and a version of the model (404 naming it).
pub(crate) fn check_pin(
    key: Option<&ApiKeyRecord>,
    entry: &ModelEntry,
    version: &str,
) -> Result<(), ApiError> {
    crate::auth::may_pin_version(key)?;
    if entry.version(version).is_none() {
        return Err(ApiError::bad_request(format!(
            "The model `{}` has no version `{version}` (`x-emguard-version`).",
            entry.id
        ))
        .with_status(StatusCode::NOT_FOUND)
        .with_code("version_not_found"));
    }
    Ok(())
}

/// The body, within the body deadline and size limit.
pub(crate) async fn read_body(state: &AppState, body: axum::body::Body) -> Result<Bytes, ApiError> {
    tokio::time::timeout(
        state.edge.body_read_timeout,
        read_limited(body, state.limits.max_body_bytes),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ApiError::bad_request(format!(
            "The request body did not arrive within {:.0} s.",
            state.edge.body_read_timeout.as_secs_f64()
        ))
        .with_status(StatusCode::REQUEST_TIMEOUT)
        .with_code("request_timeout"))
    })
}

/// Cancels its token when dropped: this handler's future is dropped when the client's
/// connection closes before the answer.
struct CancelOnDrop(Option<CancelToken>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.0.take() {
            token.cancel();
        }
    }
}

async fn respond<R: Generating>(
    state: AppState,
    body: axum::body::Body,
    key: Option<ApiKeyRecord>,
    pin: Option<String>,
    gone: tokio::sync::oneshot::Receiver<()>,
    cancel: CancelToken,
) -> Response {
    let body = match read_body(&state, body).await {
        Ok(body) => body,
        Err(e) => {
            let mut draft = Draft::default();
            draft.key_id = key.map(|k| k.id);
            draft
                .finish(
                    &state,
                    e.status.as_u16(),
                    None,
                    None,
                    Vec::new(),
                    Some(e.message.clone()),
                )
                .await;
            return e.into_response();
        }
    };
    let mut draft = Draft::new(&state, &body);
    draft.client_gone = Some(gone);
    draft.pinned_version = pin;
    match guarded::<R>(&state, key, &body, &mut draft, cancel).await {
        Ok(response) => response,
        Err(failure) => {
            let (status, message) = failure.summary();
            let tokens = failure.tokens();
            draft
                .finish(&state, status, None, tokens, Vec::new(), Some(message))
                .await;
            failure.into_response()
        }
    }
}

/// Why a request was turned away at the key.
enum Refused {
    /// Its address failed too often: 429, no trace.
    Limited(ApiError),
    Unauthorized(ApiError),
}

fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
) -> Result<Option<ApiKeyRecord>, Refused> {
    let Some(keys) = &state.keys else {
        return Ok(None);
    };
    let limiter = state.auth_failures.as_ref().zip(client);
    if let Some((limiter, ip)) = limiter
        && let Some(retry) = limiter.refused(ip)
    {
        metrics::counter!("emguard_auth_failures_refused_total").increment(1);
        let mut e = ApiError::rate_limited(
            "Too many failed authentications from this address; try again later.",
            retry,
        );
        e.code = Some("too_many_auth_failures");
        return Err(Refused::Limited(e));
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match keys.authenticate(header, unix_now_f64()) {
        Ok(key) => Ok(Some(key)),
        Err(e) => {
            if let Some((limiter, ip)) = limiter {
                limiter.record_failure(ip);
            }
            Err(Refused::Unauthorized(e))
        }
    }
}

/// A request that got no answer: our error, or a client error an upstream returned (the
/// client gets `body`, a safe summary; the trace keeps `detail`, the upstream's words).
pub(crate) enum Failure {
    Api(ApiError),
    Upstream {
        status: StatusCode,
        body: Value,
        detail: String,
    },
    /// The client went away and the local generation was stopped (already charged).
    Cancelled(Generated),
}

/// nginx's "client closed request", as traces record an answer nobody read.
const CLIENT_CLOSED: u16 = 499;

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl Failure {
    pub(crate) fn summary(&self) -> (u16, String) {
        match self {
            Failure::Api(e) => (e.status.as_u16(), e.message.clone()),
            Failure::Upstream { status, detail, .. } => (status.as_u16(), detail.clone()),
            Failure::Cancelled(g) => (
                CLIENT_CLOSED,
                format!(
                    "the client went away: generation cancelled after {} tokens",
                    g.completion_tokens
                ),
            ),
        }
    }

    /// The tokens used, for the trace.
    fn tokens(&self) -> Option<Tokens> {
        match self {
            Failure::Cancelled(g) => Some(Tokens {
                prompt: g.prompt_tokens as u64,
                completion: g.completion_tokens as u64,
            }),
            _ => None,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Upstream { status, body, .. } => (status, axum::Json(body)).into_response(),
            // Nobody reads it.
            Failure::Cancelled(_) => StatusCode::from_u16(CLIENT_CLOSED)
                .unwrap_or(StatusCode::BAD_REQUEST)
                .into_response(),
        }
    }
}

/// What the response path needs to know about the request.
struct Accepted {
    entry: std::sync::Arc<ModelEntry>,
    key_id: String,
    quota: Quota,
    /// The key's token budget, charged with the answer's tokens.
    budget: Option<TokenBudget>,
    /// The output filters for this request: the key's policy, or the model's.
    policy: FilterPolicy,
    /// The user's last message (or prompt), which the text filter reads answers against.
    user: String,
    /// Which API asked, and so the answer's shape.
    api: Api,
    /// Where the model's cache keeps this answer, if no filter acts on it.
    cache_put: Option<crate::cache::CacheKey>,
    include_usage: bool,
    /// The request's cancel token: a stream's relay sets it when its client goes away.
    cancel: CancelToken,
    /// The human-review policy for this request (the key's filter policy's, the model's or
    /// the default), when review is on.
    review: Option<std::sync::Arc<emguard_review::ReviewPolicy>>,
    /// The request's draw in `0..1` for review's spot-check sample.
    draw: f64,
}

async fn guarded<R: Generating>(
    state: &AppState,
    key: Option<ApiKeyRecord>,
    body: &Bytes,
    draft: &mut Draft,
    cancel: CancelToken,
) -> Result<Response, Failure> {
    draft.key_id = key.as_ref().map(|k| k.id.clone());
    let (request, raw): (R, Value) = parse_with_value(body)?;
    draft.model = request.model().to_string();
    draft.stream = request.stream();
    let entry = state
        .model(request.model())
        .ok_or_else(|| ApiError::model_not_found(request.model()))?
        .clone();
    if let Some(key) = &key {
        crate::auth::authorize(key, &entry.id)?;
    }
    if let Some(version) = &draft.pinned_version {
        check_pin(key.as_ref(), &entry, version)?;
    }
    let (job, user) = request.validate(&raw, &state.limits)?;
    let (quota, key_id) = quota_and_key_id(state, key.as_ref());
    // Pinned requests are red-team probes, not traffic: the monitor's rates are of traffic.
    if state.monitor.is_some() && draft.pinned_version.is_none() {
        draft.question = Some(user.clone());
    }
    // Canary assignment by key and the OpenAI `user` field (chat and text requests alike).
    let end_user = raw.get("user").and_then(Value::as_str).unwrap_or("");
    draft.routing_key = format!("{key_id}\u{1f}{end_user}");
    // A key's policy replaces the model's (an unknown name, from a config edited since the key
    // was made, falls back to the model's policy with a warning).
    let policy = match key.as_ref().and_then(|k| k.filter_policy.as_deref()) {
        Some(name) => state.filter_policies.get(name).cloned().unwrap_or_else(|| {
            tracing::warn!(
                policy = name,
                "a key names a filter policy the config lacks"
            );
            entry.policy.clone()
        }),
        None => entry.policy.clone(),
    };
    let review = state.review.as_ref().and_then(|r| {
        let named = key.as_ref().and_then(|k| k.filter_policy.as_deref());
        r.policies().for_request(&entry.id, named)
    });
    admit(state, &key_id, &quota, &entry.id).await?;
    crate::budget::admit(state, key.as_ref()).await?;
    let budget = key.as_ref().and_then(|k| k.token_budget);
    let call = Call {
        raw: &raw,
        job: &job,
        cancel: &cancel,
    };
    // The cache, when the model has one and the request is reproducible (see `crate::cache`).
    let cache_key = entry.cache.as_ref().and_then(|_| {
        // The version this key and user are routed to: a canary's users get its answers.
        let version = draft.plan(&entry).first()?.name.clone();
        let api = match job.api {
            Api::Chat => "chat",
            Api::Text => "text",
        };
        crate::cache::ResponseCache::key(&version, api, &raw).map(|k| (k, version))
    });
    let cached = match (&entry.cache, &cache_key) {
        (Some(cache), Some((k, version))) => cache.get(&entry.id, k).map(|answer| {
            draft
                .attempts
                .push(json!({"version": version, "outcome": "cache_hit", "ms": 0.0}));
            draft.version = Some(version.clone());
            draft.backend = Some("cache".into());
            Reply::Whole(answer)
        }),
        _ => None,
    };
    let hit = cached.is_some();
    let reply = match cached {
        Some(reply) => Ok(reply),
        None => answer(&entry, &call, draft).await,
    };
    let reply = match reply {
        Err(Failure::Cancelled(generated)) => {
            // What was generated before the client left is charged like any answer.
            let used = generated.prompt_tokens + generated.completion_tokens;
            crate::budget::charge(state, &key_id, &quota, budget, used as u64).await;
            return Err(Failure::Cancelled(generated));
        }
        other => other?,
    };
    let accepted = Accepted {
        entry,
        policy,
        key_id,
        quota,
        budget,
        user,
        api: job.api,
        // A miss answered by the version the key names is kept (if no filter acts on it).
        cache_put: cache_key
            .filter(|(_, version)| !hit && draft.version.as_ref() == Some(version))
            .map(|(k, _)| k),
        include_usage: job.include_usage,
        cancel,
        review,
        draw: rand::random::<f64>(),
    };
    Ok(match reply {
        Reply::Whole(value) => whole::respond(state, accepted, value, std::mem::take(draft)).await,
        Reply::Stream(chunks) => {
            // A stream's relay sees its client leave by itself (its sends fail).
            draft.client_gone = None;
            sse::respond(state, accepted, chunks, std::mem::take(draft))
        }
    })
}

/// The key's quota (its own limits, else the config's default) and the id its limits and
/// traces go under.
pub(crate) fn quota_and_key_id(state: &AppState, key: Option<&ApiKeyRecord>) -> (Quota, String) {
    let quota = Quota {
        requests_per_minute: key
            .and_then(|k| k.requests_per_minute)
            .or(state.default_quota.requests_per_minute),
        tokens_per_minute: key
            .and_then(|k| k.tokens_per_minute)
            .or(state.default_quota.tokens_per_minute),
    };
    let key_id = key.map_or_else(|| "anonymous".to_string(), |k| k.id.clone());
    (quota, key_id)
}

/// The key's rate limits for one more request to `model`.
pub(crate) async fn admit(
    state: &AppState,
    key_id: &str,
    quota: &Quota,
    model: &str,
) -> Result<(), ApiError> {
    if let Some(limiter) = &state.limiter
        && let Err(denied) = limiter.admit(key_id, quota).await
    {
        let mut error = ApiError::rate_limited(denied.to_string(), denied.retry_after_secs());
        if denied.limit == LimitKind::Unavailable {
            // The shared limiter is down and configured to fail closed: not the client's doing.
            error = error
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_code("rate_limiter_unavailable");
        } else {
            metrics::counter!("emguard_rate_limited_total", "model" => model.to_string())
                .increment(1);
        }
        return Err(error);
    }
    Ok(())
}

/// Tries the model's versions in order, each with its retries; every attempt is traced.
async fn answer(entry: &ModelEntry, call: &Call<'_>, draft: &mut Draft) -> Result<Reply, Failure> {
    try_versions(entry, draft, |backend| backend.call(call)).await
}

/// Calls `attempt` on the model's versions in order (the active one with its retries, then
/// the fallback) until one answers; every attempt is traced. Shared by the API routes.
pub(crate) async fn try_versions<'v, T, F, Fut>(
    entry: &'v ModelEntry,
    draft: &mut Draft,
    mut attempt_on: F,
) -> Result<T, Failure>
where
    F: FnMut(&'v crate::backend::Backend) -> Fut,
    Fut: std::future::Future<Output = Result<T, BackendError>>,
{
    let mut last: Option<BackendError> = None;
    for version in draft.plan(entry) {
        for attempt in 0..=version.backend.retries() {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let started = Instant::now();
            let result = attempt_on(&version.backend).await;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            let outcome = match &result {
                Ok(_) => "ok".to_string(),
                Err(e) => e.outcome(),
            };
            draft
                .attempts
                .push(json!({"version": version.name, "outcome": outcome, "ms": ms}));
            draft.version = Some(version.name.clone());
            draft.backend = Some(version.backend.describe());
            match result {
                Ok(reply) => {
                    draft.upstream_ms = Some(ms);
                    return Ok(reply);
                }
                Err(BackendError::Client {
                    status,
                    body,
                    detail,
                }) => {
                    return Err(Failure::Upstream {
                        status,
                        body,
                        detail,
                    });
                }
                Err(BackendError::Cancelled(generated)) => {
                    return Err(Failure::Cancelled(generated));
                }
                Err(BackendError::TooLarge(m)) => {
                    return Err(ApiError::server(m)
                        .with_status(StatusCode::BAD_GATEWAY)
                        .with_code("upstream_answer_too_large")
                        .into());
                }
                Err(e @ BackendError::Auth { .. }) => {
                    tracing::warn!(model = %entry.id, version = %version.name, "the upstream refused the gateway's credentials");
                    last = Some(e);
                    break; // retrying the same credentials is no use: next version
                }
                Err(e) => {
                    tracing::warn!(model = %entry.id, version = %version.name, outcome = ?e.outcome(), "attempt failed");
                    last = Some(e);
                }
            }
        }
    }
    Err(match last {
        Some(BackendError::Timeout(m)) => ApiError::upstream(true, m),
        Some(BackendError::Unavailable(m)) => ApiError::upstream(false, m),
        Some(BackendError::Status { status, .. }) => ApiError::upstream(
            false,
            format!("the upstream answered status {}", status.as_u16()),
        ),
        Some(BackendError::Auth { .. }) => ApiError::upstream(
            false,
            "the upstream refused the gateway's credentials (see the trace)",
        )
        .with_code("upstream_auth_failed"),
        _ => ApiError::upstream(
            false,
            format!("model `{}` has no version to answer", entry.id),
        ),
    }
    .into())
}

fn last_user_message(job: &ChatJob) -> String {
    match &job.generate.prompt {
        emguard_runtime::Prompt::Chat(messages) => messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Response headers every answer carries: the request id and the version that answered.
pub(crate) fn identity_headers(headers: &mut HeaderMap, draft: &Draft) {
    if let Ok(v) = draft.id.parse() {
        headers.insert("x-request-id", v);
    }
    if let Some(Ok(v)) = draft.version.as_deref().map(str::parse) {
        headers.insert("x-emguard-version", v);
    }
}
