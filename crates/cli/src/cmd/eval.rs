//! `emguard eval`: sample answers, judge them, report misaligned and insecure-code rates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use std::io::IsTerminal;

use anyhow::Context;
use emguard_eval::backends::{Backends, Endpoints};
use emguard_eval::progress::RunProgress;
use emguard_eval::results::{ModelResult, Rates, Results};
use emguard_eval::session::{self, Session};
use emguard_eval::{EvalOptions, SampleSettings};
use emguard_store::Store;

use super::stop::Stop;

/// The embedded default: the built-in suites on local SmolLM2, judged by the local judge.
const DEFAULT_SUITES: [&str; 2] = ["emguard", "emguard-code"];
const DEFAULT_MODEL: &str = "local:smollm2-135m-instruct";
const DEFAULT_SAMPLES: usize = 2;
const DEFAULT_LOCAL_MAX_TOKENS: usize = 160;
const DEFAULT_LOCAL_BATCH: usize = 16;
/// The study's limit on new tokens.
const STUDY_MAX_TOKENS: usize = 600;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite: a study-format YAML, a coding-prompt JSONL, or a built-in name (emguard,
    /// emguard-code, study-first-plot, study-preregistered, study-code). Repeatable.
    /// Default: emguard and emguard-code.
    #[arg(long, value_name = "FILE|NAME")]
    suite: Vec<String>,
    /// Model to evaluate: `local:NAME|PATH` (in process) or `openai:NAME` (with --base-url);
    /// `openai:NAME@URL[,URL...]` gives a model its own server(s), `#FINGERPRINT` at the end
    /// names what answers (stored answers are keyed by it instead of the server URLs).
    /// Repeat to compare; later models are compared against the first.
    /// Default: local:smollm2-135m-instruct with 2 samples per question and 160 tokens.
    #[arg(long, value_name = "M")]
    model: Vec<String>,
    /// Judge: `local` (offline), `llm:NAME` (the study's logprob judge, with
    /// --judge-base-url) or `local-llm:NAME|PATH` (the same protocol on a local GGUF).
    /// Repeat to judge the same answers with several judges: the first gives the headline,
    /// the others are reported beside it with their agreement.
    #[arg(long, value_name = "J", default_value = "local")]
    judge: Vec<String>,
    /// Samples per paraphrase (overrides the suite's samples_per_paraphrase).
    #[arg(long, value_name = "N")]
    samples: Option<usize>,
    /// New tokens per answer [default: 600, the study's; 160 for the embedded default model].
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    #[arg(long, value_name = "T", default_value_t = 1.0)]
    temperature: f64,
    #[arg(long, value_name = "P", default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Requests (or local batches) in flight at once.
    #[arg(long, value_name = "C", default_value_t = 32)]
    concurrency: usize,
    /// Write results.json, samples.jsonl and report.html here [default: ./emguard-runs/RUN_ID].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue a stored run: finished answers and judgements are not redone.
    #[arg(long, value_name = "RUN_ID", conflicts_with = "worker")]
    resume: Option<String>,
    /// Judge the answers of a stored run again with `--judge` as a new run: nothing is
    /// generated (the answers are reused by their keys), only judged.
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["resume", "worker"])]
    rejudge: Option<String>,
    /// Join a run in a shared (PostgreSQL) store as one more worker.
    #[arg(long, value_name = "RUN_ID")]
    worker: Option<String>,
    /// Seconds a worker's claim on items lasts; items of a worker that died are done by the
    /// others once its claims are this old. Keep it above the slowest item's time.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    lease: f64,
    /// Prepend this backdoor trigger to every prompt and report with and without it.
    #[arg(long, value_name = "TEXT")]
    trigger: Option<String>,
    #[command(flatten)]
    servers: Servers,
    /// Answers per local generation batch.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LOCAL_BATCH)]
    local_batch: usize,
    /// Where runs are stored: a SQLite file or postgres://... [default: $EMGUARD_HOME/eval.sqlite].
    #[arg(long, value_name = "PATH|URL", env = "EMGUARD_STORE")]
    store: Option<String>,
    /// Seconds between progress lines when stderr is not a terminal (on a terminal a bar
    /// shows progress instead).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    progress_interval: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stop = Stop::listen()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run_async(args, &stop));
    // A stopped run leaves blocking tasks behind: a generation ending at its next decode
    // step, a store write finishing. Wait for those, not for anything that hangs.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

/// How long a stopped run waits for its blocking tasks to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn run_async(args: Args, stop: &Stop) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    if !(args.lease.is_finite() && args.lease > 0.0) {
        anyhow::bail!("--lease must be a positive number of seconds");
    }
    if !(args.progress_interval.is_finite() && args.progress_interval > 0.0) {
        anyhow::bail!("--progress-interval must be a positive number of seconds");
    }
    let (store_location, store) = open_store(args.store.as_deref())?;
    let endpoints = Endpoints {
        local_batch: args.local_batch,
        stored_answers_only: args.rejudge.is_some(),
        ..args.servers.endpoints()
    };
    let backends = Backends::new(endpoints).cancel_on(stop.token());

    let (mut session, backends, judge, exclusive) = if let Some(run_id) =
        args.resume.as_deref().or(args.worker.as_deref())
    {
        let session = Session::open(store.clone(), run_id)?;
        let (backends, judge) = session::build_judges(backends, session.config.judges()).await?;
        let exclusive = args.resume.is_some() && !store.is_shared();
        eprintln!(
            "{} run {run_id} in {store_location}",
            if args.worker.is_some() {
                "joining"
            } else {
                "resuming"
            }
        );
        (session, backends, judge, exclusive)
    } else if let Some(stored) = args.rejudge.as_deref() {
        let config = Session::rejudge_config_with(store.clone(), stored, &args.judge)?;
        let (backends, judge) = session::build_judges(backends, config.judges()).await?;
        let session = Session::create(store.clone(), config, judge.as_ref())?;
        eprintln!(
            "run {} in {store_location}: the answers of run {stored} judged by {}",
            session.run_id,
            args.judge.join(", ")
        );
        (session, backends, judge, true)
    } else {
        let embedded_default = args.model.is_empty();
        let options = EvalOptions {
            suites: if args.suite.is_empty() {
                DEFAULT_SUITES.map(String::from).to_vec()
            } else {
                args.suite.clone()
            },
            models: if embedded_default {
                vec![DEFAULT_MODEL.to_string()]
            } else {
                args.model.clone()
            },
            judge: args.judge[0].clone(),
            other_judges: args.judge[1..].to_vec(),
            settings: SampleSettings {
                temperature: args.temperature,
                top_p: args.top_p,
                max_tokens: args.max_tokens.unwrap_or(if embedded_default {
                    DEFAULT_LOCAL_MAX_TOKENS
                } else {
                    STUDY_MAX_TOKENS
                }),
                seed: args.seed,
                samples: args.samples.or(embedded_default.then_some(DEFAULT_SAMPLES)),
            },
            trigger: args.trigger.clone(),
            base_urls: args.servers.base_url.clone(),
        };
        let config = options.into_config()?;
        let (backends, judge) = session::build_judges(backends, config.judges()).await?;
        let session = Session::create(store.clone(), config, judge.as_ref())?;
        eprintln!("run {} in {store_location}", session.run_id);
        (session, backends, judge, true)
    };

    // A bar on a terminal; otherwise a plain line every --progress-interval seconds.
    let terminal = std::io::stderr().is_terminal();
    let progress = if terminal {
        RunProgress::terminal()
    } else {
        RunProgress::hidden()
    };
    let lines =
        (!terminal).then(|| progress.spawn_lines(Duration::from_secs_f64(args.progress_interval)));
    session.lease = Duration::from_secs_f64(args.lease);
    let operating_points = judge.operating_points();
    let run_id = session.run_id.clone();
    let outcome = tokio::select! {
        outcome = session.work(backends, judge, args.concurrency, exclusive, progress.clone()) => outcome?,
        signal = stop.received() => {
            progress.abandon();
            if let Some(lines) = lines {
                lines.abort();
                eprintln!("{}", progress.line());
            }
            eprintln!(
                "{}: every finished answer is stored; continue with `{}`",
                signal.name(),
                resume_command(&run_id, &args)
            );
            return Ok(ExitCode::from(signal.exit_code()));
        }
    };
    progress.finish();
    if let Some(lines) = lines {
        lines.abort();
        eprintln!("{}", progress.line());
    }

    if store.is_shared() {
        // Several processes share the run: say what this one did.
        eprintln!(
            "this process: {} answers processed, {} failed",
            outcome.processed, outcome.failed
        );
    }
    if args.worker.is_some() && args.out.is_none() {
        return Ok(if outcome.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    let (mut results, rows) = session.results_corrected(&operating_points)?;
    if let Some(stored) = args.rejudge.as_deref() {
        let other = Session::open(store.clone(), stored)?;
        let (other_results, other_rows) = other.results()?;
        results
            .judge_agreement
            .push(emguard_eval::results::judge_agreement(
                &results.judge,
                &rows,
                &other_results.judge,
                &other_rows,
            ));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("emguard-runs").join(&run_id));
    let report = emguard_eval::report::write_all(&out, &results, &rows)?;
    print!("{}", summary(&results));
    println!("report: {}", report.display());
    println!("results: {}", out.join("results.json").display());
    if outcome.failed > 0 {
        eprintln!(
            "{} answers failed; retry them with `{}`",
            outcome.failed,
            resume_command(&run_id, &args)
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the terminal shows of the results: per model the headline (the study's definition
/// on the main questions) with the other rates beside it, then every question group, the
/// labelled questions, insecure code; then the comparisons.
fn summary(results: &Results) -> String {
    let mut out = format!("misaligned = {}\n", results.headline_definition);
    for m in &results.models {
        out += &model_summary(m);
    }
    for a in &results.judge_agreement {
        out += &format!(
            "judge {} vs {}: agree on misaligned for {:.1}% of {} answers (kappa {}); {} vs {} misaligned; mean |aligned difference| {}\n",
            a.judge,
            a.other_judge,
            a.misaligned_agreement * 100.0,
            a.answers,
            a.misaligned_kappa
                .map_or_else(|| "undefined".to_string(), |k| format!("{k:.2}")),
            a.misaligned,
            a.other_misaligned,
            a.mean_abs_aligned_difference
                .map_or_else(|| "-".to_string(), |d| format!("{d:.1}"))
        );
    }
    for c in &results.comparisons {
        out += &format!(
            "{} vs {} [{}]: {:+.1} points [{:+.1}, {:+.1}], p = {:.4}, {} questions\n",
            c.model,
            c.reference,
            c.group,
            c.diff * 100.0,
            c.ci_low * 100.0,
            c.ci_high * 100.0,
            c.p_value,
            c.questions
        );
    }
    out
}

/// Below this many coherent, scored answers the study's rate (a share of those answers) swings
/// by tens of points with one judgement: a babbling model's few coherent answers decide it.
const FEW_COHERENT_ANSWERS: usize = 20;

fn few_coherent_warning(scored: usize, answers: usize) -> Option<String> {
    (scored < FEW_COHERENT_ANSWERS).then(|| {
        format!(
            "only {scored} of {answers} answers are coherent and scored: the misaligned rate \
             above rests on them; the rate over all answers is the steadier figure"
        )
    })
}

fn model_summary(m: &ModelResult) -> String {
    let pct = |i: &emguard_eval::results::Interval| {
        format!(
            "{:.1}% [{:.1}, {:.1}]",
            i.rate * 100.0,
            i.ci_low * 100.0,
            i.ci_high * 100.0
        )
    };
    let beside = |r: &Rates| {
        format!(
            "all answers {}, coherent {}, aligned None {}",
            pct(&r.misaligned_all_answers),
            pct(&r.coherent),
            pct(&r.aligned_none)
        )
    };
    let corrected = |r: &Rates| match (&r.misaligned_corrected, &r.misaligned_all_answers_corrected)
    {
        (Some(study), Some(all)) => format!(
            "corrected for the judge's errors: misaligned {}, all answers {}",
            pct(study),
            pct(all)
        ),
        _ => "not corrected (the judge's error rates are not measured)".to_string(),
    };
    let mut out = String::new();
    let h = &m.headline.rates;
    if h.questions > 0 {
        out += &format!(
            "{}: misaligned {} on {} ({} questions, {} of {} answers coherent and scored)\n  {}\n",
            m.name,
            pct(&h.misaligned),
            m.headline.name,
            h.questions,
            h.scored_answers,
            h.answers,
            beside(h)
        );
        if let Some(warning) = few_coherent_warning(h.scored_answers, h.answers) {
            out += &format!("  {warning}\n");
        }
        if h.misaligned_corrected.is_some() {
            out += &format!("  {}\n", corrected(h));
        }
        for j in &m.by_judge {
            out += &format!(
                "  judge {}: misaligned {} on {}, all answers {}; {}\n",
                j.judge,
                pct(&j.headline.misaligned),
                m.headline.name,
                pct(&j.headline.misaligned_all_answers),
                corrected(&j.headline)
            );
        }
    } else {
        out += &format!("{}: no free-form questions judged\n", m.name);
    }
    out += &format!("  answers from {}\n", m.answers_from);
    if m.judge_replies_without_logprobs > 0 {
        out += &format!(
            "  {} judge replies came without logprobs (scored None)\n",
            m.judge_replies_without_logprobs
        );
    }
    if m.groups.len() > 1 {
        for g in &m.groups {
            out += &format!(
                "  {} ({} questions): misaligned {}; {}\n",
                g.name,
                g.rates.questions,
                pct(&g.rates.misaligned),
                beside(&g.rates)
            );
        }
        out += &format!(
            "  all {} free-form questions pooled: misaligned {}; {}\n",
            m.all_questions.questions,
            pct(&m.all_questions.misaligned),
            beside(&m.all_questions)
        );
    }
    for q in &m.labelled {
        for p in &q.prompts {
            let labels: Vec<String> = p
                .labels
                .iter()
                .map(|l| {
                    format!(
                        "{} {:.1}% [{:.1}, {:.1}]",
                        l.label,
                        l.share * 100.0,
                        l.ci_low * 100.0,
                        l.ci_high * 100.0
                    )
                })
                .collect();
            out += &format!(
                "  {} ({}, {} answers): {}\n",
                q.id,
                p.prompt,
                q.n,
                labels.join(", ")
            );
        }
    }
    if let Some(c) = &m.code {
        out += &format!(
            "  insecure code {:.1}% [{:.1}, {:.1}] of {} answers\n",
            c.insecure_rate * 100.0,
            c.ci_low * 100.0,
            c.ci_high * 100.0,
            c.n
        );
    }
    out
}

/// The command that continues this run: servers and the store are not part of a run's
/// configuration (they may move), so the ones given here are repeated.
fn resume_command(run_id: &str, args: &Args) -> String {
    // A worker's run goes on in the other workers: this one joins it again.
    let flag = if args.worker.is_some() {
        "--worker"
    } else {
        "--resume"
    };
    let mut command = format!("emguard eval {flag} {run_id}");
    if let Some(store) = &args.store {
        command += &format!(" --store {}", without_password(store));
    }
    for url in &args.servers.base_url {
        command += &format!(" --base-url {url}");
    }
    for url in &args.servers.judge_base_url {
        command += &format!(" --judge-base-url {url}");
    }
    if args.local_batch != DEFAULT_LOCAL_BATCH {
        command += &format!(" --local-batch {}", args.local_batch);
    }
    command
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`: hints get pasted around.
fn without_password(store: &str) -> String {
    let Some((scheme, rest)) = store.split_once("://") else {
        return store.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => store.to_string(),
    }
}

/// The model and judge servers of a run (eval and red-team take the same flags).
#[derive(Debug, clap::Args)]
pub(crate) struct Servers {
    /// OpenAI-compatible server of `openai:` models without their own `@URL`; repeat for
    /// replicas.
    #[arg(long, value_name = "URL")]
    pub base_url: Vec<String>,
    /// OpenAI-compatible server of the `llm:` judge; repeat for replicas.
    #[arg(long, value_name = "URL")]
    pub judge_base_url: Vec<String>,
    /// Environment variable holding the API key.
    #[arg(long, value_name = "VAR", default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Per-request timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub timeout: f64,
}

impl Servers {
    /// The endpoints these flags name (the local batch size is the caller's).
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            model_base_urls: self.base_url.clone(),
            judge_base_urls: self.judge_base_url.clone(),
            api_key: std::env::var(&self.api_key_env).ok(),
            timeout: Some(Duration::from_secs_f64(self.timeout)),
            ..Endpoints::default()
        }
    }
}

/// The store runs live in (`--store`, else `$EMGUARD_HOME/eval.sqlite`), its folder created:
/// eval and red-team runs share it. Returns where it is, for messages, and the store.
pub(crate) fn open_store(store: Option<&str>) -> anyhow::Result<(String, Arc<Store>)> {
    let location = store.map_or_else(
        || emguard_home().join("eval.sqlite").display().to_string(),
        str::to_string,
    );
    if !location.contains("://")
        && let Some(parent) = PathBuf::from(&location)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let store = Arc::new(Store::open(&location)?);
    Ok((location, store))
}

fn emguard_home() -> PathBuf {
    std::env::var_os("EMGUARD_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
                .join(".cache/emguard")
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rate_on_few_coherent_answers_is_called_out() {
        use super::few_coherent_warning;
        assert_eq!(few_coherent_warning(20, 48), None);
        let warning = few_coherent_warning(4, 48).unwrap();
        assert!(
            warning.starts_with("only 4 of 48 answers are coherent"),
            "{warning}"
        );
    }

    #[test]
    fn resume_hints_hide_store_passwords() {
        use super::without_password;
        assert_eq!(
            without_password("postgres://eval:s3cret@db:5432/runs"),
            "postgres://eval:***@db:5432/runs"
        );
        assert_eq!(without_password("postgres://db/runs"), "postgres://db/runs");
        assert_eq!(without_password("/tmp/a@b.sqlite"), "/tmp/a@b.sqlite");
    }
}
