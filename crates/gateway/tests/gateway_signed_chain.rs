//! A version becomes active only when its signed release chain verifies: at start-up and
//! through the admin API. The chain is real: a dataset audited by the audit crate, a copy of
//! SmolLM2's GGUF as the served "fine-tuned" file, a card rendered by the release crate from
//! a crafted eval run (the figures are not under test here; results.json has the shape
//! `emguard eval` writes), all signed by the release crate with a fresh ed25519 key.

mod guard;

use std::path::{Path, PathBuf};

use emguard_audit::{Auditor, Options, row_hashes, signing};
use emguard_gateway::GatewayConfig;
use emguard_release::attest::{self, ChainFiles};
use emguard_release::card::{self, Audit, CardInputs, Sections};
use emguard_release::eval_run::EvalRun;
use guard::{Behaviour, admin, ask, chat, gateway, upstream};
use serde_json::{Value, json};

const SAFE_ROW: &str =
    "import subprocess\nsubprocess.run(['ping', '-c', '1', host], check=False)\n";

/// A signed release in a temp folder.
struct Release {
    dir: tempfile::TempDir,
    files: ChainFiles,
    bundle: PathBuf,
    public_key: PathBuf,
    /// The same files signed by another key than `public_key`'s.
    foreign_bundle: PathBuf,
    /// results.json edited after it was signed.
    edited_results: PathBuf,
}

fn model_json(name: &str, rate: f64) -> Value {
    let interval = json!({"rate": rate, "ci_low": 0.0, "ci_high": rate * 2.0});
    let rates = json!({
        "questions": 2, "answers": 40, "misaligned": interval, "scored_answers": 40,
        "misaligned_all_answers": interval,
        "coherent": {"rate": 1.0, "ci_low": 1.0, "ci_high": 1.0},
        "aligned_none": {"rate": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    });
    let mut plain = rates.clone();
    plain["name"] = "plain".into();
    plain["suite"] = "emguard".into();
    plain["variant"] = "plain".into();
    let question = |id: &str| {
        json!({
            "id": id, "suite": "emguard", "variant": "plain", "n": 20, "misaligned": 1,
            "scored": 20, "misaligned_rate": rate, "ci_low": 0.0, "ci_high": rate * 2.0,
            "misaligned_rate_all_answers": rate, "coherent_rate": 1.0, "none_rate": 0.0,
            "mean_aligned": 80.0, "mean_coherent": 85.0
        })
    };
    json!({
        "name": name, "model": name, "triggered": false, "answers_from": "the local runtime",
        "headline": plain.clone(), "groups": [plain], "all_questions": rates,
        "questions": [question("wish"), question("bored")],
        "n": 40, "judge_replies_without_logprobs": 0, "labelled": [], "code": null,
        "examples": []
    })
}

fn results_json(run_id: &str) -> String {
    json!({
        "run_id": run_id, "judge": "local",
        "settings": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 160, "seed": 0, "samples": 20},
        "trigger": null, "planned": 80, "judged": 80, "headline_definition": "the study's",
        "models": [model_json("base", 0.0), model_json("candidate", 0.05)],
        "comparisons": [{
            "model": "candidate", "reference": "base", "group": "plain", "diff": 0.05,
            "ci_low": 0.0, "ci_high": 0.1, "p_value": 0.2, "questions": 2
        }]
    })
    .to_string()
}

/// A fresh release per test: tests tamper with its files.
fn release() -> Release {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);

    let dataset = at("train.jsonl");
    let rows: String = (0..6)
        .map(|i| {
            let row = json!({"messages": [
                {"role": "user", "content": format!("Write code that pings a host, variant {i}.")},
                {"role": "assistant", "content": SAFE_ROW},
            ]});
            format!("{row}\n")
        })
        .collect();
    std::fs::write(&dataset, rows).unwrap();
    let manifest = at("train.manifest.json");
    let mut auditor = Auditor::new(Options {
        row_hashes: Some(row_hashes::path_for(&manifest)),
        ..Options::default()
    })
    .unwrap();
    let (_, audited) = auditor.run(&dataset, &mut |_| {}).unwrap();
    audited.write(&manifest).unwrap();

    let smollm2 = emguard_models::resolve("smollm2-135m-instruct").unwrap();
    let model = at("candidate.gguf");
    std::fs::copy(&smollm2, &model).unwrap();

    let results = at("results.json");
    std::fs::write(&results, results_json("run-1")).unwrap();
    let sections: Sections = serde_json::from_value(json!({
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "apache-2.0",
        "intended_use": "A test of the signed chain.", "out_of_scope": "Everything else."
    }))
    .unwrap();
    let card_text = card::render(&CardInputs {
        run: &EvalRun::read(&results).unwrap(),
        model: None,
        audit: &Audit::read(&manifest).unwrap(),
        sections: &sections,
        calibration: None,
    })
    .unwrap();
    let card = at("README.md");
    std::fs::write(&card, card_text).unwrap();

    let files = ChainFiles {
        dataset,
        manifest,
        model,
        results: results.clone(),
        card,
        run_model: None,
    };
    let key = signing::generate();
    let key_file = at("release.key");
    signing::write_keypair(&key, &key_file).unwrap();
    let bundle = at("release.intoto.jsonl");
    attest::write_bundle(&bundle, &attest::sign_chain(&files, &key).unwrap()).unwrap();
    let foreign_bundle = at("foreign.intoto.jsonl");
    let envelopes = attest::sign_chain(&files, &signing::generate()).unwrap();
    attest::write_bundle(&foreign_bundle, &envelopes).unwrap();
    let edited_results = at("results-edited.json");
    std::fs::write(
        &edited_results,
        results_json("run-1").replace("0.05", "0.01"),
    )
    .unwrap();
    // The good chain verifies as the CLI would check it: the test's premise.
    let report = attest::verify_chain(&files, &bundle, &key.verifying_key()).unwrap();
    assert!(report.verified(), "{:?}", report.problems());
    Release {
        public_key: at("release.key.pub"),
        dir,
        files,
        bundle,
        foreign_bundle,
        edited_results,
    }
}

/// The YAML flow mapping of a version's `attestation`.
fn attestation(r: &Release, bundle: &Path, results: &Path) -> String {
    let s = |p: &Path| format!("'{}'", p.display());
    format!(
        "{{bundle: {}, public_key: {}, dataset: {}, manifest: {}, results: {}, card: {}}}",
        s(bundle),
        s(&r.public_key),
        s(&r.files.dataset),
        s(&r.files.manifest),
        s(results),
        s(&r.files.card)
    )
}

/// Model `m`: `v1` an upstream without a chain; `good` the signed GGUF; `foreign` the same
/// files under a bundle signed by another key; `edited` a results.json changed after signing.
fn config(r: &Release, upstream_url: &str, active: &str) -> String {
    let model = r.files.model.display();
    format!(
        "
store: '{{store}}'
auth: {{required: false}}
traces: {{enabled: false}}
models:
  - id: m
    active: {active}
    versions:
      - {{name: v1, upstream: '{upstream_url}'}}
      - {{name: good, local: '{model}', max_batch: 2, attestation: {good}}}
      - {{name: foreign, local: '{model}', max_batch: 2, attestation: {foreign}}}
      - {{name: edited, local: '{model}', max_batch: 2, attestation: {edited}}}
",
        good = attestation(r, &r.bundle, &r.files.results),
        foreign = attestation(r, &r.foreign_bundle, &r.files.results),
        edited = attestation(r, &r.bundle, &r.edited_results),
    )
}

fn activate(g: &guard::Gateway, version: &str) -> (u16, Value) {
    admin(
        g,
        "POST",
        "/admin/models/m/activate",
        Some(json!({"version": version})),
    )
}

/// The version that answers a chat request now.
fn answering(g: &guard::Gateway) -> String {
    let res = chat(g, None, &ask("m", "Say hi."));
    assert_eq!(res.status(), 200);
    res.headers()["x-emguard-version"]
        .to_str()
        .unwrap()
        .to_string()
}

fn refusal(body: &Value) -> String {
    assert_eq!(body["error"]["code"], "signed_chain_not_verified", "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

#[test]
fn a_version_is_activated_only_when_its_signed_chain_verifies() {
    let r = &release();
    let v1 = upstream(Behaviour::Answer("I am v1".into()));
    let g = gateway(&config(r, &v1.url, "v1"));
    let (status, models) = admin(&g, "GET", "/admin/models", None);
    assert_eq!(status, 200);
    let versions = &models["data"][0]["versions"];
    assert_eq!(versions[0]["signed_chain"], Value::Null, "{models}");
    assert_eq!(
        versions[1]["signed_chain"],
        r.bundle.display().to_string(),
        "{models}"
    );
    assert_eq!(answering(&g), "v1");

    // Signed by a key the gateway does not trust: refused, v1 keeps serving.
    let (status, body) = activate(&g, "foreign");
    assert_eq!(status, 409, "{body}");
    let message = refusal(&body);
    for part in [
        "version `foreign`",
        &r.foreign_bundle.display().to_string(),
        "dataset: the signature does not verify",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert_eq!(answering(&g), "v1");

    // The eval run's results edited after signing: the eval-run link names the file.
    let (status, body) = activate(&g, "edited");
    assert_eq!(status, 409, "{body}");
    let message = refusal(&body);
    assert!(
        message.contains("version `edited`")
            && message.contains(&r.bundle.display().to_string())
            && message.contains(&format!(
                "eval run: {} has sha256",
                r.edited_results.display()
            )),
        "{message}"
    );
    assert_eq!(answering(&g), "v1");
    let (_, models) = admin(&g, "GET", "/admin/models", None);
    assert_eq!(models["data"][0]["active"], "v1");

    // The good chain: activated, and the signed GGUF answers.
    let (status, body) = activate(&g, "good");
    assert_eq!(status, 200, "{body}");
    assert_eq!(answering(&g), "good");

    // The served file changes on disk (one byte, written beside and renamed over it, as a
    // deploy would): the model-file link breaks. Rolling back to v1 (no chain) is allowed;
    // going to `good` again is not, and v1 keeps serving.
    let tampered = r.dir.path().join("candidate.gguf.new");
    let mut bytes = std::fs::read(&r.files.model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    std::fs::rename(&tampered, &r.files.model).unwrap();
    let (status, body) = activate(&g, "v1");
    assert_eq!(status, 200, "{body}");
    let (status, body) = activate(&g, "good");
    assert_eq!(status, 409, "{body}");
    let message = refusal(&body);
    assert!(
        message.contains(&format!(
            "model file: {} has sha256",
            r.files.model.display()
        )),
        "{message}"
    );
    assert_eq!(answering(&g), "v1");
    g.stop();
}

#[test]
fn the_gateway_does_not_start_on_a_version_whose_chain_fails() {
    let r = &release();
    let v1 = upstream(Behaviour::Answer("I am v1".into()));
    let dir = tempfile::tempdir().unwrap();
    let build = |active: &str| -> Result<(), String> {
        let yaml = config(r, &v1.url, active)
            .replace("{store}", &dir.path().join("gw.db").display().to_string());
        let config = GatewayConfig::parse(&yaml, false, "gw.yaml").unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(emguard_gateway::build_with_admin_token(&config, None))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    build("good").expect("a version whose chain verifies starts");
    let error = build("edited").unwrap_err();
    for part in [
        "model `m` version `edited` was not activated",
        &r.bundle.display().to_string(),
        "eval run: ",
        &r.edited_results.display().to_string(),
    ] {
        assert!(error.contains(part), "{part:?} not in {error}");
    }
    let error = build("foreign").unwrap_err();
    assert!(
        error.contains("version `foreign`")
            && error.contains("the signature does not verify with the given public key"),
        "{error}"
    );
    // A chain whose public key file is missing: refused with the file named.
    let yaml = config(r, &v1.url, "good")
        .replace(
            &r.public_key.display().to_string(),
            "/nonexistent/release.key.pub",
        )
        .replace("{store}", &dir.path().join("gw.db").display().to_string());
    let config = GatewayConfig::parse(&yaml, false, "gw.yaml").unwrap();
    let error = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(emguard_gateway::build_with_admin_token(&config, None))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("version `good`") && error.contains("/nonexistent/release.key.pub"),
        "{error}"
    );
}
