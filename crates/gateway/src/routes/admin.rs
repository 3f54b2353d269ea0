//! The admin API under `/admin`, behind its own bearer token (the `auth.admin_token_env`
//! variable; the API is off when it is unset): API keys, model versions, traces.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use emguard_store::gateway::{ApiKeyRecord, TraceQuery};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{self, KeyRing, NewKey};
use crate::error::ApiError;
use crate::json_body::JsonBody;
use crate::state::{AppState, unix_now_f64};

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let Some(expected) = &state.admin_token else {
            return Err(ApiError::bad_request(
                "The admin API is off: set the admin token variable (auth.admin_token_env) and restart.",
            )
            .with_status(StatusCode::FORBIDDEN)
            .with_code("admin_disabled"));
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if auth::admin_token_matches(presented, expected) {
            Ok(Admin)
        } else {
            Err(auth::unauthorized(
                "The admin API needs `Authorization: Bearer ADMIN_TOKEN`.",
                "invalid_admin_token",
            ))
        }
    }
}

fn keys(state: &AppState) -> Result<&KeyRing, ApiError> {
    state.keys.as_deref().ok_or_else(|| {
        ApiError::bad_request("API keys are off in this gateway (auth.required = false).")
            .with_code("auth_disabled")
    })
}

/// A key as the admin API shows it: never the hash.
fn key_json(key: &ApiKeyRecord) -> Value {
    json!({
        "id": key.id, "name": key.name, "scopes": key.scopes,
        "created_at": key.created_at, "expires_at": key.expires_at, "revoked_at": key.revoked_at,
        "requests_per_minute": key.requests_per_minute, "tokens_per_minute": key.tokens_per_minute,
        "filter_policy": key.filter_policy, "token_budget": key.token_budget,
    })
}

pub async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewKey>,
) -> Result<Response, ApiError> {
    let ring = keys(&state)?;
    for scope in &new.scopes {
        if scope != crate::auth::REDTEAM_SCOPE && state.model(scope).is_none() {
            return Err(ApiError::invalid(
                "scopes",
                format!(
                    "no model `{scope}` is served here (a scope is a model id, or `{}`)",
                    crate::auth::REDTEAM_SCOPE
                ),
            ));
        }
    }
    if let Some(policy) = &new.filter_policy
        && !state.filter_policies.contains_key(policy)
    {
        return Err(ApiError::invalid(
            "filter_policy",
            format!("no filter policy `{policy}` in the config's `filter_policies`"),
        ));
    }
    let (record, secret) = ring.create(&new, unix_now_f64())?;
    let mut body = key_json(&record);
    body["key"] = Value::String(secret);
    // Debug-quoted: a name cannot forge log lines (names with control characters are refused
    // anyway; keys stored before that rule may have them).
    tracing::info!(key_id = %record.id, name = ?record.name, "API key created");
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn list_keys(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list: Vec<Value> = keys(&state)?.list().iter().map(key_json).collect();
    Ok(Json(json!({ "data": list })))
}

pub async fn revoke_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if keys(&state)?.revoke(&id, unix_now_f64())? {
        tracing::info!(key_id = %id, "API key revoked");
        Ok(Json(json!({ "id": id, "revoked": true })))
    } else {
        Err(ApiError::invalid("id", format!("no key `{id}`"))
            .with_status(StatusCode::NOT_FOUND)
            .with_code("key_not_found"))
    }
}

pub async fn list_models(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state
        .models
        .values()
        .map(|m| {
            json!({
                "id": m.id,
                "active": m.active(),
                "fallback": m.fallback(),
                "filters": m.policy,
                "versions": m.versions().iter().map(|v| json!({
                    "name": v.name, "backend": v.backend.describe(),
                    "signed_chain": v.chain.as_ref().map(|c| c.bundle.display().to_string()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "data": data }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    version: String,
}

/// Makes a version active (a rollback is activating the previous one); stored, so it
/// survives a restart.
pub async fn activate(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Activate>,
) -> Result<Json<Value>, ApiError> {
    let model = state
        .model(&id)
        .ok_or_else(|| ApiError::model_not_found(&id))?;
    let Some(version) = model.version(&body.version) else {
        return Err(ApiError::invalid(
            "version",
            format!("model `{id}` has no version `{}`", body.version),
        )
        .with_status(StatusCode::NOT_FOUND)
        .with_code("version_not_found"));
    };
    if let Err(refused) = version.check_chain(&id).await {
        let message = format!(
            "model `{id}` version `{}` was not activated: {refused}",
            body.version
        );
        tracing::warn!(model = %id, version = %body.version, active = %model.active(), "{message}");
        return Err(ApiError::invalid("version", message)
            .with_status(StatusCode::CONFLICT)
            .with_code("signed_chain_not_verified"));
    }
    if let Some(store) = state.store.clone() {
        let (m, v) = (id.clone(), body.version.clone());
        tokio::task::spawn_blocking(move || store.set_active_version(&m, &v))
            .await
            .map_err(|e| ApiError::server(e.to_string()))?
            .map_err(|e| ApiError::server(format!("storing the active version failed: {e}")))?;
    }
    let previous = model.active();
    if let Some(monitor) = state.monitor.clone() {
        // Through the monitor's rollouts: stored with a new revision, so replicas follow.
        let (m, v) = (id.clone(), body.version.clone());
        tokio::task::spawn_blocking(move || {
            monitor.rollouts().promote(
                &m,
                &v,
                emguard_monitor::Actor::Admin,
                "activated by an admin",
            )
        })
        .await
        .map_err(|e| ApiError::server(e.to_string()))?
        .map_err(|e| ApiError::server(format!("storing the rollout failed: {e}")))?;
    }
    model.activate(&body.version);
    tracing::info!(model = %id, from = %previous, to = %body.version, "version activated");
    Ok(Json(
        json!({ "id": id, "active": body.version, "previous": previous }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceParams {
    since: Option<f64>,
    until: Option<f64>,
    model: Option<String>,
    key_id: Option<String>,
    status: Option<u16>,
    limit: Option<usize>,
}

pub async fn traces(
    _: Admin,
    State(state): State<AppState>,
    Query(params): Query<TraceParams>,
) -> Result<Json<Value>, ApiError> {
    let store = state
        .store
        .clone()
        .ok_or_else(|| ApiError::bad_request("this gateway keeps no traces (no store)"))?;
    let query = TraceQuery {
        since: params.since,
        until: params.until,
        key_id: params.key_id,
        model: params.model,
        status: params.status,
        limit: params.limit.unwrap_or(100).min(10_000),
    };
    let found = tokio::task::spawn_blocking(move || store.traces(&query))
        .await
        .map_err(|e| ApiError::server(e.to_string()))?
        .map_err(|e| ApiError::server(format!("reading traces failed: {e}")))?;
    Ok(Json(json!({ "data": found })))
}

pub async fn trace(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state
        .store
        .clone()
        .ok_or_else(|| ApiError::bad_request("this gateway keeps no traces (no store)"))?;
    let wanted = id.clone();
    let found = tokio::task::spawn_blocking(move || store.trace(&wanted))
        .await
        .map_err(|e| ApiError::server(e.to_string()))?
        .map_err(|e| ApiError::server(format!("reading the trace failed: {e}")))?;
    match found {
        Some(t) => Ok(Json(serde_json::to_value(t).unwrap_or(Value::Null))),
        None => Err(ApiError::invalid("id", format!("no trace `{id}`"))
            .with_status(StatusCode::NOT_FOUND)
            .with_code("trace_not_found")),
    }
}
