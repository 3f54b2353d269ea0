//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::Json;
use axum::extract::{Path, State};

use crate::error::ApiError;
use crate::openai::{ModelList, ModelObject};
use crate::state::{AppState, ServedModel};

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: state.models().map(|m| object(m)).collect(),
    })
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    state
        .model(&id)
        .map(|m| Json(object(m)))
        .ok_or_else(|| ApiError::model_not_found(&id))
}

fn object(model: &ServedModel) -> ModelObject {
    ModelObject {
        id: model.id.clone(),
        object: "model",
        created: model.created,
        owned_by: "emguard",
    }
}
