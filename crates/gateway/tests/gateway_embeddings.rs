//! Issue 15 (API coverage): `/v1/embeddings` through the guarded gateway, with the local
//! all-MiniLM-L6-v2 from the model home, driven by the official `openai` Python package
//! (the checks live in `gateway_embeddings.py`); then the trace and the token charge.

mod guard;
mod python_checks;

use guard::{Behaviour, create_key, gateway, refused_url, upstream};
use serde_json::{Value, json};

#[test]
fn the_openai_package_gets_embeddings_from_the_local_minilm() {
    let g = gateway(
        "
store: '{store}'
models:
  - id: emb
    active: v1
    versions:
      - {name: v1, embedding: minilm-l6-v2}
  - id: chat
    active: v1
    versions:
      - {name: v1, local: smollm2-135m-instruct, max_batch: 1}
",
    );
    let (key_id, key) = create_key(&g, json!({"name": "embedder"}));
    python_checks::run("gateway_embeddings.py", &[&g.url, &key]);
    // Each request is traced under its key, with the tokens read.
    let traces = guard::wait_for_traces(&g, 2);
    let answered: Vec<_> = traces
        .iter()
        .filter(|t| t["model"] == "emb" && t["status"] == 200)
        .collect();
    assert_eq!(answered.len(), 2, "{traces:?}");
    for t in answered {
        assert_eq!(t["key_id"], key_id.as_str(), "{t}");
        assert_eq!(t["version"], "v1", "{t}");
        assert!(t["prompt_tokens"].as_u64().unwrap() > 0, "{t}");
        assert!(
            t["response"].as_str().unwrap().ends_with("embeddings]"),
            "{t}"
        );
    }
}

/// The multilingual encoder as a version: 512 dimensions, and a sentence lands nearer its
/// translation than another sentence in its own language.
#[test]
fn the_multilingual_encoder_answers_embeddings_across_languages() {
    let g = gateway(
        "
store: '{store}'
auth: {required: false}
models:
  - id: emb
    active: v1
    versions:
      - {name: v1, embedding: use-multilingual-v3}
",
    );
    let inputs = [
        "Where is the nearest train station?",
        "¿Dónde está la estación de tren más cercana?",
        "Where can I buy fresh bread?",
    ];
    let res = guard::client()
        .post(format!("{}/v1/embeddings", g.url))
        .json(&json!({"model": "emb", "input": inputs}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    let vectors: Vec<Vec<f64>> = (0..3)
        .map(|i| {
            body["data"][i]["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert!(vectors.iter().all(|v| v.len() == 512), "{body}");
    let cosine = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let translation = cosine(&vectors[0], &vectors[1]);
    let other = cosine(&vectors[0], &vectors[2]);
    assert!(translation > other + 0.1, "{translation} vs {other}");
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() > 20,
        "{body}"
    );
}

/// An upstream version's `/embeddings` gets the client's body with its own model name, after
/// the active version's faults, through the fallback; the client sees the gateway's model id.
#[test]
fn embeddings_go_to_an_upstream_with_retries_and_the_fallback() {
    let up = upstream(Behaviour::Answer(String::new()));
    let g = gateway(&format!(
        "
store: '{{store}}'
auth: {{required: false}}
models:
  - id: emb
    active: broken
    fallback: remote
    versions:
      - {{name: broken, upstream: '{}', retries: 1}}
      - {{name: remote, upstream: '{}', upstream_model: their-embedder}}
",
        refused_url(),
        up.url
    ));
    let res = guard::client()
        .post(format!("{}/v1/embeddings", g.url))
        .json(&json!({"model": "emb", "input": ["hello"]}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-emguard-version"], "remote");
    let body: Value = res.json().unwrap();
    assert_eq!(body["model"], "emb", "{body}");
    assert_eq!(body["data"][0]["embedding"], json!([0.6, 0.8]), "{body}");
    assert_eq!(up.hits(), 1);
    let t = &guard::wait_for_traces(&g, 1)[0];
    let attempts: Vec<&str> = t["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["version"].as_str().unwrap())
        .collect();
    assert_eq!(attempts, ["broken", "broken", "remote"], "{t}");
    assert_eq!(t["prompt_tokens"], 3, "{t}");
}
