//! `emguard redteam`: probe a model with the red-team suite; report attack success per family.
//!
//! Exit codes: 0 the run finished and no family is over `--fail-above` or regressed against
//! `--compare`; 1 a family is over it or regressed;
//! 2 bad input or an error; 3 some attempts failed (resume the run); 130 interrupted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use emguard_eval::backends::{Backends, Endpoints};
use emguard_redteam::plan::Settings;
use emguard_redteam::report::Report;
use emguard_redteam::session::{self, Options};
use emguard_redteam::work::Worker;

const DEFAULT_MODEL: &str = "local:smollm2-135m-instruct";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Probe files, folders of them, or shipped family names. Repeatable. Default: the
    /// shipped suite.
    #[arg(long, value_name = "FILE|DIR|NAME")]
    probes: Vec<String>,
    /// Run only this family (by id). Repeatable.
    #[arg(long, value_name = "ID")]
    family: Vec<String>,
    /// Check the probe files and list their families and probes; run nothing.
    #[arg(long)]
    check: bool,
    /// Target model: `local:NAME|PATH` or `openai:NAME[@URL]` (as `emguard eval --model`;
    /// a gateway model version is `openai:VERSION@GATEWAY/v1` with --api-key-env).
    #[arg(long, value_name = "M", default_value = DEFAULT_MODEL)]
    model: String,
    /// Judge, as `emguard eval --judge`.
    #[arg(long, value_name = "J", default_value = "local")]
    judge: String,
    /// Attacker model of refine loops and of `paraphrase`/`translate:` operators.
    #[arg(long, value_name = "M", default_value = DEFAULT_MODEL)]
    attacker: String,
    /// Rounds an attack may spend per prompt (overrides each attack family's `rounds`).
    #[arg(long, value_name = "N")]
    budget: Option<usize>,
    /// Answers per prompt (overrides each family's `attempts`).
    #[arg(long, value_name = "N")]
    attempts: Option<usize>,
    /// Triggers for the probes that sweep triggers: an `emguard audit` summary JSON (its
    /// trigger candidates) or a list, one per line. Repeatable.
    #[arg(long, value_name = "FILE")]
    triggers: Vec<PathBuf>,
    /// New tokens per answer.
    #[arg(long, value_name = "N", default_value_t = 160)]
    max_tokens: usize,
    /// New tokens per attacker rewrite.
    #[arg(long, value_name = "N", default_value_t = 120)]
    attacker_max_tokens: usize,
    #[arg(long, value_name = "T", default_value_t = 1.0)]
    temperature: f64,
    #[arg(long, value_name = "P", default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Requests handed to a model or judge at once.
    #[arg(long, value_name = "C", default_value_t = 16)]
    concurrency: usize,
    /// Answers per local generation batch.
    #[arg(long, value_name = "N", default_value_t = 16)]
    local_batch: usize,
    /// Continue a stored run: nothing already answered or scored is redone.
    #[arg(long, value_name = "RUN_ID")]
    resume: Option<String>,
    /// Compare with an earlier run in the same store: per family the change in attack
    /// success with an interval and p-value; exit 1 on a significant rise (p < 0.05).
    #[arg(long, value_name = "RUN_ID")]
    compare: Option<String>,
    /// Exit 1 when a family's attack success rate is above this (0..1).
    #[arg(long, value_name = "RATE")]
    fail_above: Option<f64>,
    /// Write report.json (and regression probes from the hits) here
    /// [default: ./emguard-runs/RUN_ID].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write a JUnit XML report here (a test case per family, failed when over --fail-above).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write each family's hits as a probe file (`regressions-FAMILY.yaml`) into this folder.
    #[arg(long, value_name = "DIR")]
    keep_hits: Option<PathBuf>,
    #[command(flatten)]
    servers: super::eval::Servers,
    /// Where runs are stored: a SQLite file or postgres://... [default: $EMGUARD_HOME/eval.sqlite].
    #[arg(long, value_name = "PATH|URL", env = "EMGUARD_STORE")]
    store: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.check {
        return check(&args);
    }
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    if let Some(r) = args.fail_above
        && !(0.0..=1.0).contains(&r)
    {
        anyhow::bail!("--fail-above must be a rate between 0 and 1, not {r}");
    }
    if !(args.servers.timeout.is_finite() && args.servers.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_async(args))
}

fn check(args: &Args) -> anyhow::Result<ExitCode> {
    let families = session::load_families(&args.probes)?;
    for f in &families {
        println!(
            "{} ({}, scored by {:?}{}): {} probes, {} questions",
            f.id,
            f.origin,
            f.scoring,
            f.attack
                .map_or_else(String::new, |a| format!(", attack of {} rounds", a.rounds)),
            f.probes.len(),
            f.questions.len()
        );
        for p in &f.probes {
            println!("  {}: {}", p.id, p.description);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let (store_location, store) = super::eval::open_store(args.store.as_deref())?;
    let (run_id, config) = match &args.resume {
        Some(run_id) => {
            let config = session::open(&store, run_id)?;
            eprintln!("resuming run {run_id} in {store_location}");
            (run_id.clone(), config)
        }
        None => {
            let mut triggers = Vec::new();
            for file in &args.triggers {
                triggers.extend(session::read_triggers(file)?);
            }
            let config = Options {
                probes: args.probes.clone(),
                families: args.family.clone(),
                triggers,
                model: args.model.clone(),
                judge: args.judge.clone(),
                attacker: args.attacker.clone(),
                base_urls: args.servers.base_url.clone(),
                settings: Settings {
                    temperature: args.temperature,
                    top_p: args.top_p,
                    max_tokens: args.max_tokens,
                    seed: args.seed,
                    attacker_max_tokens: args.attacker_max_tokens,
                    attempts: args.attempts,
                    budget: args.budget,
                },
            }
            .into_config()?;
            let run_id = session::create(&store, &config)?;
            eprintln!("run {run_id} in {store_location}");
            (run_id, config)
        }
    };

    let endpoints = Endpoints {
        local_batch: args.local_batch,
        stored_answers_only: false,
        ..args.servers.endpoints()
    };
    let config = Arc::new(config);
    let build_config = config.clone();
    // Loading local models is slow blocking work.
    let (target, attacker, judge) = tokio::task::spawn_blocking(move || {
        let mut backends = Backends::new(endpoints);
        let target = backends.sampler(&build_config.model)?;
        let attacker = if session::needs_attacker(&build_config) {
            Some(backends.sampler(&build_config.attacker)?)
        } else {
            None
        };
        let judge = backends.judge(&build_config.judge)?;
        anyhow::Ok((target, attacker, judge))
    })
    .await??;
    let worker = Worker {
        store: store.clone(),
        run_id: run_id.clone(),
        config: config.clone(),
        target,
        attacker,
        judge,
        scanner: emguard_codescan::Scanner::new(),
        concurrency: args.concurrency,
    };
    let progress = |line: &str| eprintln!("{line}");
    let outcome = tokio::select! {
        outcome = worker.work(&progress) => outcome?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: every finished answer is stored; continue with `{}`", resume_command(&run_id, &args));
            return Ok(ExitCode::from(130));
        }
    };

    let mut report = Report::build(&store, &run_id, &config)?;
    if let Some(earlier) = &args.compare {
        let earlier_config = session::open(&store, earlier)?;
        let earlier = Report::build(&store, earlier, &earlier_config)?;
        report.comparisons = report.compare(&earlier);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("emguard-runs").join(&run_id));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let report_path = out.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    print!("{}", report.summary());
    for c in &report.comparisons {
        println!("{}", c.line());
    }
    println!("report: {}", report_path.display());
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit(args.fail_above))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("junit: {}", path.display());
    }
    if let Some(dir) = &args.keep_hits {
        for file in report.write_regression_probes(dir, &config)? {
            println!("regression probes: {}", file.display());
        }
    }
    if outcome.failed > 0 {
        eprintln!(
            "{} attempts failed; retry them with `{}`",
            outcome.failed,
            resume_command(&run_id, &args)
        );
        return Ok(ExitCode::from(3));
    }
    let regressions = report.comparisons.iter().filter(|c| c.regression).count();
    if regressions > 0 {
        eprintln!("FAIL: {regressions} families regressed against the earlier run");
        return Ok(ExitCode::from(1));
    }
    if let Some(threshold) = args.fail_above {
        let over = report.over(threshold);
        if !over.is_empty() {
            for f in over {
                eprintln!(
                    "FAIL {}: attack success {:.1}% ({} of {}) is above {:.1}%",
                    f.id,
                    f.tally.rate * 100.0,
                    f.tally.hits,
                    f.tally.attempts,
                    threshold * 100.0
                );
            }
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The command that continues this run (servers and the store are not part of a run's
/// configuration, so the ones given here are repeated).
fn resume_command(run_id: &str, args: &Args) -> String {
    let mut command = format!("emguard redteam --resume {run_id}");
    if let Some(store) = &args.store
        && !store.contains("://")
    {
        command += &format!(" --store {store}");
    }
    for url in &args.servers.base_url {
        command += &format!(" --base-url {url}");
    }
    for url in &args.servers.judge_base_url {
        command += &format!(" --judge-base-url {url}");
    }
    command
}
