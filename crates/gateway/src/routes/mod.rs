//! The HTTP surface: one small module per route group; anything else gets an OpenAI error.

mod admin;
mod budgets;
pub(crate) mod chat;
mod completions;
mod console;
mod embeddings;
mod health;
mod metrics;
mod models;
mod monitor;
pub(crate) mod review;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{delete, get, post};

use crate::error::ApiError;
use crate::state::AppState;

/// Every route on one listener.
pub fn router(state: AppState) -> Router {
    with_fallbacks(api_routes().merge(admin_routes()), state)
}

/// The API without the admin routes and `/metrics` (served by [`admin_router`] elsewhere).
pub fn public_router(state: AppState) -> Router {
    with_fallbacks(api_routes(), state)
}

/// The admin API, `/metrics` and `/healthz`, for their own listener.
pub fn admin_router(state: AppState) -> Router {
    with_fallbacks(
        admin_routes().route("/healthz", get(health::healthz)),
        state,
    )
}

fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
        // Reads its body itself (after the key, and answering 413 only once a large upload
        // is drained).
        .route(
            "/v1/chat/completions",
            post(chat::completions).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/completions",
            post(chat::generate::<completions::TextCompletionRequest>)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/embeddings",
            post(embeddings::embeddings).layer(DefaultBodyLimit::disable()),
        )
}

fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/admin/keys", post(admin::create_key).get(admin::list_keys))
        .route("/admin/keys/{id}", delete(admin::revoke_key))
        .route(
            "/admin/keys/{id}/budget",
            get(budgets::show).put(budgets::set).delete(budgets::remove),
        )
        .route("/admin/models", get(admin::list_models))
        .route("/admin/models/{id}/activate", post(admin::activate))
        .route("/admin/traces", get(admin::traces))
        .route("/admin/traces/{id}", get(admin::trace))
        .merge(review_routes())
}

/// Human review's admin API (see `review`).
fn review_routes() -> Router<AppState> {
    Router::new()
        .route("/admin/review/items", get(review::list))
        .route("/admin/review/items/{id}", get(review::show))
        .route("/admin/review/items/{id}/claim", post(review::claim))
        .route("/admin/review/items/{id}/approve", post(review::approve))
        .route("/admin/review/items/{id}/reject", post(review::reject))
        .route("/admin/review/claim", post(review::claim_next))
        .route("/admin/review/audit", get(review::audit))
        .route("/admin/review/verify", get(review::verify))
        .route("/admin/review/labels", get(review::labels))
        .route("/admin/review/agreement", get(review::agreement))
        .route(
            "/admin/review/keys",
            post(review::create_key).get(review::list_keys),
        )
        .merge(console::routes())
        .route("/admin/monitor", get(monitor::status))
        .route("/admin/models/{id}/rollout", post(monitor::set_weights))
        .route("/admin/models/{id}/promote", post(monitor::promote))
        .route("/admin/models/{id}/abort", post(monitor::abort))
        .route("/admin/models/{id}/pin", post(monitor::pin))
        .route("/admin/incidents", get(monitor::incidents))
        .route("/admin/incidents/{id}", get(monitor::incident))
        .route("/admin/incidents/{id}/ack", post(monitor::ack))
        .route("/admin/incidents/{id}/resolve", post(monitor::resolve))
}

fn with_fallbacks(routes: Router<AppState>, state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::bad_request(format!("Unknown request URL: {method} {}.", uri.path()))
        .with_status(StatusCode::NOT_FOUND)
        .with_code("unknown_url")
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::bad_request(format!(
        "Method {method} is not allowed for {}.",
        uri.path()
    ))
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
    .with_code("method_not_allowed")
}
