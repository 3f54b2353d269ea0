//! Every malformed or out-of-bounds request gets OpenAI's error body with the right status,
//! and the server keeps serving.

mod common;

use common::{LIMITS, MODEL, base_url};
use reqwest::blocking::{Body, Client, Response};
use serde_json::{Value, json};

fn post_raw(body: impl Into<Body>) -> Response {
    Client::new()
        .post(format!("{}/v1/chat/completions", base_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("the server answers")
}

/// Checks the status and OpenAI's error shape; returns the `error` object.
fn expect_error(response: Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().expect("error body is JSON");
    let error = body["error"].clone();
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["type"].is_string(), "{body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{body}"
    );
    error
}

fn chat(extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

fn post(body: &Value) -> Response {
    post_raw(serde_json::to_vec(body).unwrap())
}

#[test]
fn malformed_json_and_invalid_utf8_are_400() {
    for body in [
        &b"{\"model\": "[..],
        b"not json",
        b"",
        b"{\"model\":\"\xff\xfe\",\"messages\":[]}",
        b"{} trailing",
    ] {
        let error = expect_error(post_raw(body.to_vec()), 400);
        assert_eq!(error["type"], "invalid_request_error");
    }
    // Content that is not UTF-8 inside an otherwise valid message.
    let mut body = serde_json::to_vec(&chat(json!({}))).unwrap();
    let at = body.windows(2).position(|w| w == b"Hi").unwrap();
    body[at] = 0xC3;
    body[at + 1] = 0x28;
    expect_error(post_raw(body), 400);
    // Nesting past serde_json's recursion limit is an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    expect_error(post_raw(deep), 400);
}

#[test]
fn wrong_field_types_are_400_naming_the_field() {
    for (extra, param) in [
        (json!({"n": "two"}), "n"),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"max_tokens": 1.5}), "max_tokens"),
        (json!({"stream": "yes"}), "stream"),
        (json!({"messages": "Hi"}), "messages"),
        (
            json!({"messages": [{"role": 1, "content": "Hi"}]}),
            "messages[0].role",
        ),
        (json!({"model": 7}), "model"),
        (json!({"seed": "abc"}), "seed"),
    ] {
        let error = expect_error(post(&chat(extra.clone())), 400);
        assert_eq!(error["param"], param, "{extra}: {error}");
    }
    let error = expect_error(post(&json!({"model": MODEL})), 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("missing field `messages`"),
        "{error}"
    );
}

/// Issue 15 (API coverage): a local version cannot call tools or constrain its output, so it
/// says so instead of answering as if the fields were not there.
#[test]
fn tools_and_response_formats_are_refused_by_a_local_model_naming_the_field() {
    let tool =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    for (extra, field) in [
        (json!({"tools": tool}), "tools"),
        (json!({"tool_choice": "required"}), "tool_choice"),
        (json!({"functions": [{"name": "f"}]}), "functions"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}),
            "response_format",
        ),
    ] {
        let error = expect_error(post(&chat(extra.clone())), 400);
        assert_eq!(error["param"], field, "{extra}: {error}");
        assert_eq!(error["code"], "unsupported_parameter", "{error}");
    }
    // What asks for nothing extra is answered.
    for extra in [
        json!({"tools": [], "max_tokens": 2}),
        json!({"tool_choice": "none", "max_tokens": 2}),
        json!({"response_format": {"type": "text"}, "max_tokens": 2}),
    ] {
        assert_eq!(post(&chat(extra.clone())).status(), 200, "{extra}");
    }
}

#[test]
fn unknown_model_is_404() {
    let error = expect_error(post(&chat(json!({"model": "gpt-4o"}))), 404);
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    let response = Client::new()
        .get(format!("{}/v1/models/gpt-4o", base_url()))
        .send()
        .unwrap();
    assert_eq!(expect_error(response, 404)["code"], "model_not_found");
}

#[test]
fn body_over_the_limit_is_413() {
    let big = "a".repeat(LIMITS.max_body_bytes + 1);
    let error = expect_error(
        post(&chat(
            json!({"messages": [{"role": "user", "content": big}]}),
        )),
        413,
    );
    assert_eq!(error["code"], "request_too_large");
    // Same without a Content-Length (chunked upload).
    let body = serde_json::to_vec(&chat(
        json!({"messages": [{"role": "user", "content": big}]}),
    ))
    .unwrap();
    let chunked = Body::new(std::io::Cursor::new(body));
    expect_error(post_raw(chunked), 413);
}

#[test]
fn n_max_tokens_and_other_fields_over_their_limits_are_400() {
    for (extra, param) in [
        (json!({"n": LIMITS.max_n + 1}), "n"),
        (json!({"n": 0}), "n"),
        (json!({"max_tokens": LIMITS.max_tokens + 1}), "max_tokens"),
        (
            json!({"max_completion_tokens": -1}),
            "max_completion_tokens",
        ),
        (json!({"temperature": 3}), "temperature"),
        (json!({"top_p": 1.5}), "top_p"),
        (
            json!({"logprobs": true, "top_logprobs": 21}),
            "top_logprobs",
        ),
        (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
        (json!({"messages": []}), "messages"),
        (
            json!({"messages": [{"role": "wizard", "content": "Hi"}]}),
            "messages[0].role",
        ),
    ] {
        let error = expect_error(post(&chat(extra.clone())), 400);
        assert_eq!(error["param"], param, "{extra}: {error}");
    }
}

#[test]
fn prompt_longer_than_the_context_is_400() {
    // ~10k tokens: more than SmolLM2's 8192-token context, less than the body limit.
    let long = "word ".repeat(10_000);
    let error = expect_error(
        post(&chat(
            json!({"messages": [{"role": "user", "content": long}]}),
        )),
        400,
    );
    assert_eq!(error["code"], "context_length_exceeded");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 8192"),
        "{error}"
    );
}

#[test]
fn unknown_routes_and_methods_get_openai_errors() {
    let client = Client::new();
    let error = expect_error(
        client
            .post(format!("{}/v1/audio/speech", base_url()))
            .send()
            .unwrap(),
        404,
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("/v1/audio/speech"),
        "{error}"
    );
    expect_error(
        client
            .get(format!("{}/v1/chat/completions", base_url()))
            .send()
            .unwrap(),
        405,
    );
}

#[test]
fn health_and_model_list_after_bad_input() {
    for body in [
        &b"null"[..],
        b"[]",
        b"{\"messages\":null}",
        b"\x00\x01",
        b"{\"model\":\"x\",\"messages\":[{}]}",
    ] {
        let status = post_raw(body.to_vec()).status().as_u16();
        assert!(status == 400 || status == 404, "{status} for {body:?}");
    }
    let client = Client::new();
    let health: Value = client
        .get(format!("{}/healthz", base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health, json!({"status": "ok", "models": [MODEL]}));
    let models: Value = client
        .get(format!("{}/v1/models", base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["object"], "model");
}
