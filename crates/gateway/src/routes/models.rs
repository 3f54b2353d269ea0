//! `GET /v1/models` and `GET /v1/models/{id}`: the models the caller's key may use (all of
//! them when the API needs no key).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};

use crate::auth;
use crate::error::ApiError;
use crate::openai::{ModelList, ModelObject};
use crate::registry::ModelEntry;
use crate::state::{AppState, unix_now_f64};

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ModelList>, ApiError> {
    let key = caller(&state, &headers)?;
    Ok(Json(ModelList {
        object: "list",
        data: state
            .models
            .values()
            .filter(|m| {
                key.as_ref()
                    .is_none_or(|k| auth::authorize(k, &m.id).is_ok())
            })
            .map(|m| object(m))
            .collect(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let key = caller(&state, &headers)?;
    let model = state
        .model(&id)
        .ok_or_else(|| ApiError::model_not_found(&id))?;
    if let Some(key) = &key {
        auth::authorize(key, &model.id)?;
    }
    Ok(Json(object(model)))
}

fn caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<emguard_store::gateway::ApiKeyRecord>, ApiError> {
    let Some(keys) = &state.keys else {
        return Ok(None);
    };
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    keys.authenticate(header, unix_now_f64()).map(Some)
}

fn object(model: &ModelEntry) -> ModelObject {
    ModelObject {
        id: model.id.clone(),
        object: "model",
        created: model.created,
        owned_by: "emguard",
    }
}
