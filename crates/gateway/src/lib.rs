//! OpenAI-compatible server and guard in front of local and upstream models.
//!
//! Today: `POST /v1/chat/completions` (whole or streamed), `GET /v1/models`, `GET /healthz`
//! for local GGUF models, each behind a runtime [`emguard_runtime::Engine`] that batches
//! concurrent requests. Layout for what comes next: wire types in [`openai`], one error type
//! rendered as OpenAI's error body ([`ApiError`]), shared state in [`AppState`], thin
//! handlers under `routes`.

mod error;
mod json_body;
pub mod openai;
mod routes;
mod state;

pub use error::ApiError;
pub use routes::router;
pub use state::{AppState, Limits, ServedModel};

use std::future::Future;

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
