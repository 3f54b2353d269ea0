//! `/admin/keys/{id}/budget`: a key's token budget (see [`crate::budget`]): `GET` shows it
//! with what was spent this period and when it resets, `PUT {"tokens": N, "period": "day"}`
//! sets it, `DELETE` removes it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use emguard_store::gateway::TokenBudget;
use serde_json::{Value, json};

use super::admin::Admin;
use crate::auth::KeyRing;
use crate::budget::{self, rfc3339};
use crate::error::ApiError;
use crate::json_body::JsonBody;
use crate::state::{AppState, unix_now_f64};

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ring = ring(&state)?;
    let key = ring.get(&id).ok_or_else(|| no_key(&id))?;
    let Some(budget) = key.token_budget else {
        return Ok(Json(json!({"key_id": id, "token_budget": null})));
    };
    let store = Arc::clone(ring.store());
    let now = unix_now_f64();
    let usage = tokio::task::spawn_blocking(move || budget::usage(&store, &id, budget, now))
        .await
        .map_err(|e| ApiError::server(format!("reading the budget failed: {e}")))?
        .map_err(|e| ApiError::server(format!("reading the budget failed: {e}")))?;
    Ok(Json(json!({
        "key_id": usage.key_id, "token_budget": usage.budget, "used": usage.used,
        "remaining": usage.budget.tokens.saturating_sub(usage.used),
        "period_start": rfc3339(usage.period_start), "resets_at": rfc3339(usage.resets_at),
    })))
}

pub async fn set(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(budget): JsonBody<TokenBudget>,
) -> Result<Json<Value>, ApiError> {
    if !ring(&state)?.set_budget(&id, Some(budget))? {
        return Err(no_key(&id));
    }
    tracing::info!(key_id = %id, tokens = budget.tokens, period = ?budget.period, "token budget set");
    show(admin, State(state), Path(id)).await
}

pub async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !ring(&state)?.set_budget(&id, None)? {
        return Err(no_key(&id));
    }
    tracing::info!(key_id = %id, "token budget removed");
    Ok(Json(json!({"key_id": id, "token_budget": null})))
}

fn ring(state: &AppState) -> Result<&KeyRing, ApiError> {
    state.keys.as_deref().ok_or_else(|| {
        ApiError::bad_request("API keys are off in this gateway (auth.required = false).")
            .with_code("auth_disabled")
    })
}

fn no_key(id: &str) -> ApiError {
    ApiError::invalid("id", format!("no key `{id}`"))
        .with_status(StatusCode::NOT_FOUND)
        .with_code("key_not_found")
}
