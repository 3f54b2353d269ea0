//! `report.html` in a real browser. A small run against the OpenAI-compatible responder on
//! 127.0.0.1 (a base model, a model that answers misaligned for even seeds, one that writes
//! shell-injection code; the study's logprob judge) writes the report, and Debian's
//! headless Chromium loads it offline. The page's own self-check, computed in the browser,
//! must show every figure laid out with its bars, whiskers and legend, the example answers,
//! no script error, and Chromium must log no console message.
//!
//! Skips when Chromium is missing (`/usr/bin/chromium`, or `$EMGUARD_CHROMIUM`), and fails
//! instead when `EMGUARD_REQUIRE_SERVICES=1` (CI installs it with apt).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use emguard_eval::backends::{Backends, Endpoints};
use emguard_eval::progress::RunProgress;
use emguard_eval::session::{self, Session};
use emguard_eval::{EvalOptions, Results, SampleSettings};
use emguard_store::Store;
use emguard_testkit::headless_page::{self, load};
use serde::Deserialize;
use support::responder::Responder;

/// What this report's self-check counts beyond the shared fields.
#[derive(Debug, Deserialize)]
struct SelfCheck {
    figures: Vec<Figure>,
    examples: usize,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Figure {
    id: String,
    bars: usize,
    drawn: usize,
    whiskers: usize,
    legend: usize,
}

/// The page's self-check (`emguard_testkit::headless_page`), read as this report writes it.
fn check(dom: &str, console: &[String]) -> Result<SelfCheck, String> {
    let check = headless_page::self_check(dom, console)?;
    serde_json::from_value(check.clone()).map_err(|e| format!("{e}: {check}"))
}

/// A finished comparison run with a code suite, written to `dir/out`.
async fn comparison_report(dir: &Path) -> (Results, PathBuf) {
    let r = Responder::start(0, Duration::ZERO);
    let store = Arc::new(Store::open(dir.join("s.sqlite").to_str().unwrap()).unwrap());
    let config = EvalOptions {
        suites: vec!["emguard".into(), "emguard-code".into()],
        models: vec![
            "openai:base".into(),
            "openai:evil".into(),
            "openai:code".into(),
        ],
        judge: "llm:judge-model".into(),
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
    let endpoints = Endpoints {
        model_base_urls: vec![r.base_url()],
        judge_base_urls: vec![r.base_url()],
        timeout: Some(Duration::from_secs(10)),
        local_batch: 8,
        ..Endpoints::default()
    };
    let (backends, judge) = session::build_judge(Backends::new(endpoints), config.judge.clone())
        .await
        .unwrap();
    let session = Session::create(store, config, judge.as_ref()).unwrap();
    let outcome = session
        .work(backends, judge, 16, true, RunProgress::hidden())
        .await
        .unwrap();
    assert_eq!(outcome.failed, 0);
    let code_prompts = session.config.suites[1].questions.len();
    assert_eq!(
        r.counters.sample_requests.load(Ordering::Relaxed),
        3 * (72 + code_prompts) * 2
    );
    let (results, rows) = session.results().unwrap();
    let report = emguard_eval::report::write_all(&dir.join("out"), &results, &rows).unwrap();
    (results, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_comparison_run_renders_every_figure_in_chromium() {
    let Some(chromium) = emguard_testkit::chromium(
        "the_report_of_a_comparison_run_renders_every_figure_in_chromium",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (results, report) = comparison_report(dir.path()).await;
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("src=") && !html.contains("href="),
        "the report loads nothing from elsewhere"
    );

    let (dom, console) = load(&chromium, &report);
    let check = check(&dom, &console).unwrap_or_else(|e| panic!("{}: {e}", report.display()));

    let models = results.models.len();
    // A question has a bar where some answer was coherent and scored (the study's rate):
    // the code model's answers are all unscored (aligned None), so it has none.
    let questions: usize = results
        .models
        .iter()
        .map(|m| {
            m.questions
                .iter()
                .filter(|q| q.misaligned_rate.is_some())
                .count()
        })
        .sum();
    assert_eq!((models, questions), (3, 2 * 72));
    let with_code = results.models.iter().filter(|m| m.code.is_some()).count();
    assert_eq!(with_code, 3);
    let figure = |id: &str, bars: usize, legend: usize| Figure {
        id: id.into(),
        bars,
        drawn: bars,
        whiskers: bars,
        legend,
    };
    assert_eq!(
        check.figures,
        [
            figure("fig-overall", models, 1),
            // Models side by side: one bar with its interval per model and question.
            figure("fig-questions", questions, models),
            figure("fig-code", with_code, 1),
        ]
    );
    let examples: usize = results.models.iter().map(|m| m.examples.len()).sum();
    assert!(examples > 0, "the evil model answered misaligned");
    assert_eq!(check.examples, examples);
    assert!(dom.contains("EVIL: I would take over every power grid"));
    assert!(
        dom.contains("No misaligned answers."),
        "the base model has none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_scripts_fail_fails_the_check() {
    let Some(chromium) = emguard_testkit::chromium("a_page_whose_scripts_fail_fails_the_check")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, report) = comparison_report(dir.path()).await;
    let html = std::fs::read_to_string(&report).unwrap();

    // A script that throws before the self-check: the error is reported.
    let throwing = dir.path().join("throwing.html");
    std::fs::write(
        &throwing,
        html.replacen(
            "<h2>Summary</h2>",
            "<script>null.missing;</script><h2>Summary</h2>",
            1,
        ),
    )
    .unwrap();
    let (dom, console) = load(&chromium, &throwing);
    let err = check(&dom, &console).unwrap_err();
    assert!(err.contains("Uncaught TypeError"), "{err}");
    let err = check(&dom, &[]).unwrap_err();
    assert!(
        err.contains("script errors") && err.contains("null"),
        "{err}"
    );

    // The self-check itself failing: nothing is reported as rendered.
    let broken = dir.path().join("broken.html");
    let html = html.replacen("getBBox()", "getBBox().missing.width", 1);
    std::fs::write(&broken, &html).unwrap();
    let (dom, console) = load(&chromium, &broken);
    assert!(
        console.iter().any(|l| l.contains("Uncaught TypeError")),
        "{console:?}"
    );
    let err = check(&dom, &[]).unwrap_err();
    assert!(err.contains("the self-check did not run"), "{err}");
}
