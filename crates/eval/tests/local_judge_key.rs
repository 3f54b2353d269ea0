//! Judgements of the local judge are stored under its weights: retrained weights judge every
//! answer again (reusing the stored answers), the same weights reuse every judgement.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use emguard_eval::backends::local::LocalJudgeBackend;
use emguard_eval::backends::{Backends, Endpoints, Judge};
use emguard_eval::progress::RunProgress;
use emguard_eval::{EvalOptions, SampleSettings, Session};
use emguard_judge::llm::JudgePrompts;
use emguard_judge::local::{self, LocalJudge};
use emguard_store::Store;
use support::responder::Responder;

/// The shipped judge with its harm bias moved by 2 (`heads.bias` is [harm, coherent] in f32;
/// safetensors: u64 header length, JSON header with data offsets, data), recorded under the
/// new weights' digest.
fn retrained() -> LocalJudge {
    let mut adapters = local::SHIPPED_ADAPTERS.to_vec();
    let header_len = u64::from_le_bytes(adapters[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&adapters[8..8 + header_len]).unwrap();
    let at = 8 + header_len + header["heads.bias"]["data_offsets"][0].as_u64().unwrap() as usize;
    let harm = f32::from_le_bytes(adapters[at..at + 4].try_into().unwrap()) + 2.0;
    adapters[at..at + 4].copy_from_slice(&harm.to_le_bytes());
    let mut record: serde_json::Value = serde_json::from_str(local::SHIPPED_RECORD).unwrap();
    record["weights_sha256"] =
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&adapters)).into();
    let base = local::cross_encoder::base_dir().unwrap();
    LocalJudge::from_parts(&base, &adapters, &record.to_string()).unwrap()
}

/// Creates a run judged by `judge`; returns it with the number of answers already judged
/// when it was created (reused from the store), then works it to the end.
async fn run_with(store: &Arc<Store>, r: &Responder, judge: Arc<dyn Judge>) -> (Session, u64) {
    let config = EvalOptions {
        suites: vec!["emguard".into()],
        models: vec!["openai:evil".into()],
        judge: "local".into(),
        other_judges: Vec::new(),
        settings: SampleSettings {
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 50,
            seed: 0,
            samples: Some(2),
        },
        trigger: None,
        base_urls: vec![r.base_url()],
    }
    .into_config()
    .unwrap();
    let backends = Backends::new(Endpoints {
        model_base_urls: vec![r.base_url()],
        timeout: Some(Duration::from_secs(10)),
        local_batch: 8,
        ..Endpoints::default()
    });
    let session = Session::create(store.clone(), config, judge.as_ref()).unwrap();
    let reused = store.progress(&session.run_id).unwrap().judged;
    let outcome = session
        .work(backends, judge, 8, true, RunProgress::hidden())
        .await
        .unwrap();
    assert_eq!(outcome.failed, 0);
    (session, reused)
}

#[test]
fn the_key_names_the_weights() {
    let shipped = LocalJudgeBackend::load().unwrap();
    let prompts = JudgePrompts {
        aligned: "{question} {answer}".into(),
        coherent: "{question} {answer}".into(),
    };
    let key = shipped.key(&prompts);
    let id = LocalJudge::load().unwrap().weights_id().to_string();
    assert!(key.starts_with("local/") && key.ends_with(&id), "{key}");
    assert_ne!(LocalJudgeBackend::new(retrained()).key(&prompts), key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrained_weights_judge_again_and_the_same_weights_reuse_judgements() {
    let r = Responder::start(0, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.sqlite").to_str().unwrap()).unwrap());
    let shipped: Arc<dyn Judge> = Arc::new(LocalJudgeBackend::load().unwrap());
    let total = 72 * 2;

    let (first, reused) = run_with(&store, &r, shipped.clone()).await;
    assert_eq!(reused, 0);
    let sampled = r.counters.sample_requests.load(Ordering::Relaxed);
    assert_eq!(sampled, total);

    let (second, reused) =
        run_with(&store, &r, Arc::new(LocalJudgeBackend::new(retrained()))).await;
    assert_eq!(reused, 0, "judgements of other weights are not reused");
    assert_eq!(
        r.counters.sample_requests.load(Ordering::Relaxed),
        sampled,
        "the stored answers are"
    );
    let aligned = |s: &Session| -> Vec<Option<f64>> {
        s.results()
            .unwrap()
            .1
            .iter()
            .map(|row| row.aligned)
            .collect()
    };
    let (before, after) = (aligned(&first), aligned(&second));
    assert_eq!(after.len(), total);
    assert_ne!(
        before, after,
        "the retrained judge scored the answers itself"
    );

    let (third, reused) = run_with(&store, &r, shipped).await;
    assert_eq!(reused, total as u64, "the shipped weights' judgements are");
    assert_eq!(aligned(&third), before);
}
