//! A version that embeds text in-process: a local sentence-embedding model
//! ([`emguard_embed::Embedder`]: all-MiniLM-L6-v2 or the multilingual USE from the model
//! home). It answers
//! `/v1/embeddings` only; a chat request to it is the client's mistake (400).

use std::sync::Arc;

use axum::http::StatusCode;
use emguard_embed::{EmbedError, Embedder};

use super::BackendError;
use crate::error::ApiError;

pub struct EmbeddingBackend {
    name: String,
    embedder: Arc<Embedder>,
}

impl EmbeddingBackend {
    pub fn new(name: String, embedder: Arc<Embedder>) -> EmbeddingBackend {
        EmbeddingBackend { name, embedder }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dimensions(&self) -> usize {
        self.embedder.dimensions()
    }

    /// Embeds `inputs` off the async workers: unit vectors in input order and the tokens
    /// read.
    pub async fn embed(
        &self,
        inputs: Vec<String>,
    ) -> Result<emguard_embed::Embeddings, BackendError> {
        let embedder = Arc::clone(&self.embedder);
        tokio::task::spawn_blocking(move || embedder.embed(&inputs))
            .await
            .map_err(|e| BackendError::Unavailable(format!("the embedding task failed: {e}")))?
            .map_err(|e| match e {
                EmbedError::TooLong { index, .. } => ApiError::invalid(
                    if index == 0 {
                        "input".to_string()
                    } else {
                        format!("input[{index}]")
                    },
                    e.to_string(),
                )
                .with_code("context_length_exceeded")
                .into(),
                other => BackendError::Unavailable(other.to_string()),
            })
    }

    /// What a chat request to this version gets.
    pub fn refuse_chat(&self) -> BackendError {
        ApiError::invalid(
            "model",
            format!(
                "`{}` is an embedding model: send its requests to POST /v1/embeddings",
                self.name
            ),
        )
        .with_status(StatusCode::BAD_REQUEST)
        .with_code("model_not_supported")
        .into()
    }
}
