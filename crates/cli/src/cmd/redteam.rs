//! `emguard redteam`: probe a model with the red-team suite; report attack success per family.
//!
//! On a PostgreSQL store, more processes join a run with `--worker RUN_ID`
//! (`emguard_redteam::share`).
//!
//! Exit codes: 0 the run finished and no family is over `--fail-above` or regressed against
//! `--compare`; 1 a family is over it or regressed;
//! 2 bad input or an error; 3 some attempts failed (resume the run); 130 interrupted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use emguard_eval::backends::Endpoints;
use emguard_redteam::continuous::{self, Continuous, Incidents, Recorded, VersionRun, Versions};
use emguard_redteam::plan::{RunConfig, Settings};
use emguard_redteam::probe::MAX_REPEATS;
use emguard_redteam::report::Report;
use emguard_redteam::section::parse_duration;
use emguard_redteam::session::{self, DEFAULT_MODEL, Options};
use emguard_redteam::work::Outcome;

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
    /// Join a run in a shared store (`--store postgres://...`) as one more worker process:
    /// it claims slots no other process holds, works them and exits when every slot is done
    /// (the process that started the run writes the report).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["resume", "compare"])]
    worker: Option<String>,
    /// Seconds a worker's claim on a slot lasts without renewal; a process that dies holding
    /// slots loses them to the others after this.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    lease: f64,
    /// Run again every DURATION (`90s`, `30m`, `6h`, `1d`): each cycle a new run of the same
    /// suite, compared with the cycle before; with --incidents-store a family over
    /// --fail-above or regressed opens an incident for the model version. Stops on Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration,
          conflicts_with_all = ["resume", "worker", "compare"])]
    every: Option<Duration>,
    /// Stop --every after this many cycles.
    #[arg(long, value_name = "N", requires = "every")]
    cycles: Option<u64>,
    /// The gateway's store (its SQLite file or postgres://...) where --every cycles open
    /// incidents (`emguard incidents`, the admin API).
    #[arg(long, value_name = "PATH|URL", requires = "every")]
    incidents_store: Option<String>,
    /// The model id incidents name [default: NAME of `--model openai:NAME@URL`].
    #[arg(long, value_name = "ID", requires = "incidents_store")]
    incident_model: Option<String>,
    /// Probe only this version of the gateway model (pinned, as --pin-version) [default:
    /// the model's active version and each canary in the gateway's stored rollout].
    #[arg(long, value_name = "VERSION", requires = "incidents_store")]
    incident_version: Option<String>,
    /// Pin every request of the target to this gateway model version (the
    /// `x-emguard-version` header; the gateway key needs its `redteam` scope).
    #[arg(long, value_name = "VERSION", conflicts_with_all = ["resume", "worker"])]
    pin_version: Option<String>,
    /// Compare with an earlier run in the same store: per family the change in attack
    /// success with an interval and p-value; exit 1 on a significant rise (p < 0.05).
    #[arg(long, value_name = "RUN_ID")]
    compare: Option<String>,
    /// Exit 1 when a family's attack success rate is above this (0..1).
    #[arg(long, value_name = "RATE")]
    fail_above: Option<f64>,
    /// Write report.json and report.html here
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
    if let Some(b) = args.budget
        && !(1..=MAX_REPEATS).contains(&b)
    {
        anyhow::bail!("--budget must be between 1 and {MAX_REPEATS} rounds, not {b}");
    }
    if !(args.lease.is_finite() && args.lease > 0.0) {
        anyhow::bail!("--lease must be a positive number of seconds");
    }
    if !(args.servers.timeout.is_finite() && args.servers.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            match args.every {
                Some(every) => run_every(&args, every).await,
                None => run_once(&args).await,
            }
        })
}

/// `--every`: a cycle of runs every DURATION (one per gateway model version with
/// --incidents-store), each compared with the version's run of the cycle before; breaches
/// open incidents. The first cycle's errors end the command (bad input shows at once); a
/// later cycle's error is reported and the next cycle goes on. The exit code is the worst
/// of the last cycle's runs.
async fn run_every(args: &Args, every: Duration) -> anyhow::Result<ExitCode> {
    let (store_location, store) = super::eval::open_store(args.store.as_deref())?;
    eprintln!("runs in {store_location}");
    let incidents = match &args.incidents_store {
        Some(location) => {
            let store = Arc::new(emguard_store::monitor::MonitorStore::open(location)?);
            let model = match &args.incident_model {
                Some(m) => m.clone(),
                None => gateway_model_id(&args.model).with_context(|| {
                    format!(
                        "--incident-model: `{}` names no model id at a gateway; give it",
                        args.model
                    )
                })?,
            };
            Some(Incidents { store, model })
        }
        None => None,
    };
    let versions = match (
        args.incident_version.as_ref().or(args.pin_version.as_ref()),
        &incidents,
    ) {
        (Some(version), _) => Versions::Pinned(vec![version.clone()]),
        (None, Some(Incidents { store, model })) => {
            let (store, model) = (store.clone(), model.clone());
            Versions::Listed(Box::new(move || {
                let versions = continuous::stored_versions(&store, &model)?;
                if versions.is_empty() {
                    return Err(emguard_redteam::RedteamError::Invalid(format!(
                        "--incident-version: the gateway's store has no rollout of model `{model}` (its monitor is off); give the version"
                    )));
                }
                Ok(versions)
            }))
        }
        (None, None) => Versions::Routed,
    };
    let claims = store
        .is_shared()
        .then(|| (process_name(), Duration::from_secs_f64(args.lease)));
    let continuous = Continuous {
        options: options(args, 0)?,
        endpoints: endpoints(args),
        target_key: None,
        concurrency: args.concurrency,
        store,
        claims,
        versions,
        threshold: args.fail_above,
        incidents,
    };
    let mut codes: Vec<(u64, u8)> = Vec::new();
    let mut failure = None;
    let on_run = |run: VersionRun| {
        let label = run.version.as_deref().unwrap_or("(routed)").to_string();
        let written = run.result.map_err(anyhow::Error::from).and_then(|f| {
            let out = args.out.as_ref().map(|o| match &run.version {
                Some(v) => o.join(v),
                None => o.clone(),
            });
            let code = finish(args, &f.report, &f.config, f.outcome, out, &f.run_id)?;
            if let Some(Incidents { model, .. }) = &continuous.incidents {
                match &f.incident {
                    Recorded::Opened(id) => println!(
                        "cycle {}: incident {id} opened for {model} {label}",
                        run.cycle
                    ),
                    Recorded::AlreadyOpen => println!(
                        "cycle {}: {model} {label} already has an open incident",
                        run.cycle
                    ),
                    Recorded::Nothing => {}
                }
            }
            Ok(code)
        });
        match written {
            Ok(code) => codes.push((run.cycle, code)),
            Err(e) if run.cycle == 1 => {
                failure = Some(e);
                return std::ops::ControlFlow::Break(());
            }
            Err(e) => {
                eprintln!(
                    "cycle {} on {label} failed: {e:#}; the next one goes on",
                    run.cycle
                );
                codes.push((run.cycle, 2));
            }
        }
        std::ops::ControlFlow::Continue(())
    };
    let progress = |line: &str| eprintln!("{line}");
    tokio::select! {
        _ = continuous.run(every, args.cycles, &progress, on_run) => {}
        _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(130)),
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let last = codes.last().map_or(0, |(c, _)| *c);
    let worst = codes
        .iter()
        .filter(|(c, _)| *c == last)
        .map(|(_, code)| *code)
        .max()
        .unwrap_or(0);
    Ok(ExitCode::from(worst))
}

/// `openai:ID@URL` (or `openai:ID`) -> `ID`.
fn gateway_model_id(spec: &str) -> Option<String> {
    let rest = spec.strip_prefix("openai:")?;
    Some(rest.split('@').next().unwrap_or(rest).to_string()).filter(|m| !m.is_empty())
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

/// The run's options from the command line, its seed `--seed` + `seed_offset`.
fn options(args: &Args, seed_offset: u64) -> anyhow::Result<Options> {
    let mut triggers = Vec::new();
    for file in &args.triggers {
        triggers.extend(session::read_triggers(file)?);
    }
    Ok(Options {
        probes: args.probes.clone(),
        families: args.family.clone(),
        triggers,
        model: args.model.clone(),
        judge: args.judge.clone(),
        attacker: args.attacker.clone(),
        base_urls: args.servers.base_url.clone(),
        version: args.pin_version.clone(),
        settings: Settings {
            temperature: args.temperature,
            top_p: args.top_p,
            max_tokens: args.max_tokens,
            seed: args.seed.wrapping_add(seed_offset),
            attacker_max_tokens: args.attacker_max_tokens,
            attempts: args.attempts,
            budget: args.budget,
        },
    })
}

fn endpoints(args: &Args) -> Endpoints {
    Endpoints {
        local_batch: args.local_batch,
        stored_answers_only: false,
        ..args.servers.endpoints()
    }
}

/// This process's name in a shared store's claims.
fn process_name() -> String {
    format!(
        "{}-{}",
        emguard_eval::session::hostname(),
        std::process::id()
    )
}

/// One run: new, resumed (`--resume`) or joined (`--worker`).
async fn run_once(args: &Args) -> anyhow::Result<ExitCode> {
    let (store_location, store) = super::eval::open_store(args.store.as_deref())?;
    if args.worker.is_some() && !store.is_shared() {
        anyhow::bail!(
            "--worker joins a run in a shared store: give --store postgres://... (a SQLite file is one process's)"
        );
    }
    let (run_id, config) = match args.resume.as_ref().or(args.worker.as_ref()) {
        Some(run_id) => {
            let config = session::open(&store, run_id)?;
            let joining = if args.worker.is_some() {
                "joining"
            } else {
                "resuming"
            };
            eprintln!("{joining} run {run_id} in {store_location}");
            (run_id.clone(), config)
        }
        None => {
            let config = options(args, 0)?.into_config()?;
            let run_id = session::create(&store, &config)?;
            eprintln!("run {run_id} in {store_location}");
            (run_id, config)
        }
    };
    let config = Arc::new(config);
    let worker = session::worker(
        store.clone(),
        &run_id,
        config.clone(),
        endpoints(args),
        None,
        args.concurrency,
    )
    .await?;
    let progress = |line: &str| eprintln!("{line}");
    // On a shared store every process but a resume claims its slots, so workers can join;
    // a resume is the run's only process and works whatever is not finished.
    let name = process_name();
    let lease = Duration::from_secs_f64(args.lease);
    let shared = store.is_shared() && args.resume.is_none();
    let work = async {
        if shared {
            worker.work_shared(&name, lease, &progress).await
        } else {
            worker.work(&progress).await
        }
    };
    let outcome = tokio::select! {
        outcome = work => outcome?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: every finished answer is stored; continue with `{}`", resume_command(&run_id, args));
            return Ok(ExitCode::from(130));
        }
    };

    if args.worker.is_some() {
        println!(
            "worker {name}: {} answers scored; every slot of run {run_id} is done",
            outcome.scored
        );
        if outcome.failed > 0 {
            eprintln!(
                "{} attempts failed; retry them with `{}`",
                outcome.failed,
                resume_command(&run_id, args)
            );
            return Ok(ExitCode::from(3));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = session::report(&store, &run_id, &config, args.compare.as_deref())?;
    Ok(ExitCode::from(finish(
        args,
        &report,
        &config,
        outcome,
        args.out.clone(),
        &run_id,
    )?))
}

/// Writes a finished run's report (`out`, default `./emguard-runs/RUN_ID`), JUnit XML and
/// regression probes, prints its summary; returns its exit code.
fn finish(
    args: &Args,
    report: &Report,
    config: &RunConfig,
    outcome: Outcome,
    out: Option<PathBuf>,
    run_id: &str,
) -> anyhow::Result<u8> {
    let out = out.unwrap_or_else(|| PathBuf::from("emguard-runs").join(run_id));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let report_path = out.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    let html_path = out.join("report.html");
    std::fs::write(&html_path, emguard_redteam::html::render(report))
        .with_context(|| format!("writing {}", html_path.display()))?;
    print!("{}", report.summary());
    for c in &report.comparisons {
        println!("{}", c.line());
    }
    println!(
        "report: {} and {}",
        report_path.display(),
        html_path.display()
    );
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit(args.fail_above))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("junit: {}", path.display());
    }
    if let Some(dir) = &args.keep_hits {
        for file in report.write_regression_probes(dir, config)? {
            println!("regression probes: {}", file.display());
        }
    }
    if outcome.failed > 0 || report.unfinished > 0 {
        eprintln!(
            "{} attempts failed; retry them with `{}`",
            outcome.failed.max(report.unfinished),
            resume_command(run_id, args)
        );
        return Ok(3);
    }
    let regressions = report.comparisons.iter().filter(|c| c.regression).count();
    if regressions > 0 {
        eprintln!("FAIL: {regressions} families regressed against the earlier run");
        return Ok(1);
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
            return Ok(1);
        }
    }
    Ok(0)
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
