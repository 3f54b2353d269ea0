//! emguard's gateway: an OpenAI-compatible guard in front of local and upstream models.
//!
//! A request to `POST /v1/chat/completions` goes through, in order: the API key
//! ([`auth`]), the body and the model's scope, the parameters, the key's rate limits
//! ([`ratelimit`]), the model's versions ([`registry`]: the active one with its retries,
//! then the fallback) on their backends ([`backend`]: a local GGUF or an upstream server),
//! the output filters ([`filter`]), and the trace ([`trace`]), before the answer leaves.
//! The admin API manages keys, versions and traces; a version with a signed release chain
//! ([`signed_chain`]) becomes active only when the chain verifies. `/metrics` is Prometheus text.
//!
//! Layout: the config file in [`config`], state assembly in [`build`], wire types in
//! [`openai`], one error type rendered as OpenAI's error body ([`ApiError`]), shared state in
//! [`AppState`], thin handlers under `routes`.

pub mod auth;
pub mod auth_failures;
pub mod backend;
pub mod budget;
mod build;
pub mod cache;
pub mod config;
mod error;
pub mod filter;
mod json_body;
pub mod openai;
pub mod ratelimit;
pub mod redteam;
pub mod registry;
mod review;
mod routes;
mod server;
pub mod signed_chain;
mod state;
pub mod trace;

pub use build::{BuildError, build, build_with_admin_token, prometheus};
pub use config::GatewayConfig;
pub use error::ApiError;
pub use routes::router;
pub use server::{serve, serve_with_admin};
pub use state::{AppState, Edge, Inner, Limits, ServedModel};
