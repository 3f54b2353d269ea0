//! A JSON body extractor whose every rejection is an OpenAI error: 413 over the size limit,
//! 400 for malformed JSON, invalid UTF-8 and wrong field types (naming the field), where
//! axum's own `Json` would answer 422 in plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            let error = ApiError::bad_request(format!(
                "Could not read the request body: {}",
                rejection.body_text()
            ));
            if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                error.with_status(status).with_code("request_too_large")
            } else {
                error.with_status(status)
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Most bytes read and dropped after the limit is passed, so that a client still uploading
/// a too-large body reads the 413 instead of a broken pipe.
const DRAIN_CAP: usize = 64 << 20;

/// Reads a body of at most `limit` bytes; a larger one gets 413 once the client has sent it
/// (up to [`DRAIN_CAP`]).
pub async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(piece) = stream.next().await {
        let piece = piece
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))?;
        seen += piece.len();
        if seen <= limit {
            kept.extend_from_slice(&piece);
        } else if seen > DRAIN_CAP {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::bad_request(format!(
            "The request body is larger than the limit of {limit} bytes."
        ))
        .with_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE)
        .with_code("request_too_large"));
    }
    Ok(Bytes::from(kept))
}

/// The body as typed `T` and as the JSON value it was read from (forwarded upstream as sent).
pub fn parse_with_value<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, serde_json::Value), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let typed = serde_path_to_error::deserialize(&value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path != "." {
            ApiError::invalid(path.clone(), format!("Invalid value for `{path}`: {inner}"))
        } else {
            ApiError::bad_request(format!("The request body is not a valid request: {inner}"))
        }
    })?;
    Ok((typed, value))
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() && path != "." {
            ApiError::invalid(path.clone(), format!("Invalid value for `{path}`: {inner}"))
        } else {
            ApiError::bad_request(format!("The request body is not valid JSON: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::ChatCompletionRequest;

    fn reject(body: &[u8]) -> ApiError {
        parse::<ChatCompletionRequest>(body).unwrap_err()
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = reject(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":"two"}"#);
        assert_eq!(err.status, 400);
        assert_eq!(err.param.as_deref(), Some("n"));
        let err = reject(br#"{"model":"m","messages":[{"role":7,"content":"hi"}]}"#);
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn syntax_utf8_and_trailing_garbage_are_400() {
        for body in [
            &b"{not json"[..],
            b"{\"model\":\"\xff\xfe\"}",
            b"{} {}",
            b"",
            b"[1,2]",
        ] {
            let err = reject(body);
            assert_eq!(err.status, 400, "{:?}", String::from_utf8_lossy(body));
            assert_eq!(err.kind, "invalid_request_error");
        }
    }

    #[test]
    fn missing_fields_are_400() {
        let err = reject(br#"{"model":"m"}"#);
        assert_eq!(err.status, 400);
        assert!(
            err.message.contains("missing field `messages`"),
            "{}",
            err.message
        );
    }
}
