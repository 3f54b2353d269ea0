//! `GET /healthz`: the process is up and these models are loaded.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(
        json!({ "status": "ok", "models": state.models.keys().map(String::as_str).collect::<Vec<_>>() }),
    )
}
