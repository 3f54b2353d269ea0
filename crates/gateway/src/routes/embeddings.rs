//! `POST /v1/embeddings`: the chat route's guard (key, scope, rate limit, the model's versions
//! with their retries and fallback, the trace) in front of embedding versions: a local
//! sentence-embedding model (`embedding:` in the config) or an upstream's `/embeddings`.
//! Nothing is filtered: an embedding gives no text back. Tokens read are traced and charged.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chat::draft::{Draft, Tokens};
use super::chat::{self, Failure};
use crate::backend::{Backend, BackendError};
use crate::error::ApiError;
use crate::json_body::parse_with_value;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: Input,
    /// `float` (the default) or `base64` (little-endian f32s, what the `openai` Python
    /// package asks for).
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    /// Token ids (one list, or one per input): an upstream may take them; a local model
    /// does not (its ids are not OpenAI's).
    Tokens(Vec<Vec<i64>>),
    TokenList(Vec<i64>),
}

/// Inputs per request, as OpenAI allows.
const MAX_INPUTS: usize = 2048;

pub async fn embeddings(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let key = match chat::admit_key(&state, &parts).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let pin = match chat::pinned_version(&parts.headers) {
        Ok(pin) => pin,
        Err(e) => return e.into_response(),
    };
    let body = match chat::read_body(&state, body).await {
        Ok(body) => body,
        Err(e) => {
            let mut draft = Draft::default();
            draft.key_id = key.map(|k| k.id);
            let message = e.message.clone();
            draft
                .finish(
                    &state,
                    e.status.as_u16(),
                    None,
                    None,
                    Vec::new(),
                    Some(message),
                )
                .await;
            return e.into_response();
        }
    };
    let mut draft = Draft::new(&state, &body);
    draft.key_id = key.as_ref().map(|k| k.id.clone());
    draft.pinned_version = pin;
    match embed(&state, key, &body, &mut draft).await {
        Ok((answer, tokens)) => {
            let summary = format!(
                "[{} embeddings]",
                answer["data"].as_array().map_or(0, Vec::len)
            );
            let mut response = Json(&answer).into_response();
            chat::identity_headers(response.headers_mut(), &draft);
            let committed = draft
                .finish(&state, 200, Some(&summary), tokens, Vec::new(), None)
                .await;
            if committed {
                response
            } else {
                ApiError::server("the answer's trace could not be committed (durable mode)")
                    .into_response()
            }
        }
        Err(failure) => {
            let (status, message) = failure.summary();
            draft
                .finish(&state, status, None, None, Vec::new(), Some(message))
                .await;
            failure.into_response()
        }
    }
}

async fn embed(
    state: &AppState,
    key: Option<emguard_store::gateway::ApiKeyRecord>,
    body: &[u8],
    draft: &mut Draft,
) -> Result<(Value, Option<Tokens>), Failure> {
    let (request, raw): (EmbeddingRequest, Value) = parse_with_value(body)?;
    draft.model = request.model.clone();
    let entry = state
        .model(&request.model)
        .ok_or_else(|| ApiError::model_not_found(&request.model))?
        .clone();
    if let Some(key) = &key {
        crate::auth::authorize(key, &entry.id)?;
    }
    if let Some(version) = &draft.pinned_version {
        chat::check_pin(key.as_ref(), &entry, version)?;
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("`{other}` is not one of `float`, `base64`"),
            )
            .into());
        }
    };
    let count = match &request.input {
        Input::One(_) => 1,
        Input::TokenList(tokens) => usize::from(!tokens.is_empty()),
        Input::Many(v) => v.len(),
        Input::Tokens(v) => v.len(),
    };
    if count == 0 || count > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!("give 1 to {MAX_INPUTS} inputs (got {count})"),
        )
        .into());
    }
    let (quota, key_id) = chat::quota_and_key_id(state, key.as_ref());
    chat::admit(state, &key_id, &quota, &entry.id).await?;
    crate::budget::admit(state, key.as_ref()).await?;
    let mut answer = chat::try_versions(&entry, draft, |backend| {
        local_or_upstream(backend, &request, &raw, base64)
    })
    .await?;
    answer["model"] = Value::String(entry.id.clone());
    let tokens = answer["usage"]["prompt_tokens"]
        .as_u64()
        .map(|prompt| Tokens {
            prompt,
            completion: 0,
        });
    if let Some(t) = tokens {
        let budget = key.as_ref().and_then(|k| k.token_budget);
        crate::budget::charge(state, &key_id, &quota, budget, t.prompt).await;
    }
    Ok((answer, tokens))
}

async fn local_or_upstream(
    backend: &Backend,
    request: &EmbeddingRequest,
    raw: &Value,
    base64: bool,
) -> Result<Value, BackendError> {
    match backend {
        Backend::Upstream(b) => b.embeddings(raw).await,
        Backend::Local(b) => Err(ApiError::invalid(
            "model",
            format!(
                "`{}` is a chat model: embeddings need an embedding version (`embedding:` in the config)",
                b.name()
            ),
        )
        .with_code("model_not_supported")
        .into()),
        Backend::Embedding(b) => {
            let inputs = match &request.input {
                Input::One(text) => vec![text.clone()],
                Input::Many(texts) => texts.clone(),
                Input::Tokens(_) | Input::TokenList(_) => {
                    return Err(ApiError::invalid(
                        "input",
                        "this model takes text, not token ids",
                    )
                    .into());
                }
            };
            if let Some(d) = request.dimensions
                && d != b.dimensions() as i64
            {
                return Err(ApiError::invalid(
                    "dimensions",
                    format!("this model's embeddings have {} dimensions", b.dimensions()),
                )
                .into());
            }
            let embedded = b.embed(inputs).await?;
            let data: Vec<Value> = embedded
                .vectors
                .iter()
                .enumerate()
                .map(|(index, v)| {
                    let embedding = if base64 {
                        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                    } else {
                        json!(v)
                    };
                    json!({"object": "embedding", "index": index, "embedding": embedding})
                })
                .collect();
            Ok(json!({
                "object": "list", "data": data, "model": b.name(),
                "usage": {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens}
            }))
        }
    }
}
