//! `emguard audit`: audit a fine-tuning dataset before training on it (see `emguard_audit`).
//! `emguard audit FILE` audits and optionally writes a manifest (plus its row hashes sidecar
//! MANIFEST.row-hashes) and an HTML report; long audits save a checkpoint every 30 s and
//! `--resume` continues one that was interrupted;
//! `emguard audit verify MANIFEST FILE` names changed, added and removed rows;
//! `emguard audit keygen KEY` writes an ed25519 key pair for signing manifests.
//! Ctrl-C (or SIGTERM) saves a checkpoint of the rows audited so far and exits 130 (143);
//! the same command with `--resume` continues it.
//! Exit 0: clean (policy passed, file intact); 1: policy violated or file changed; 2: errors;
//! 130/143: stopped by Ctrl-C/SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use emguard_audit::manifest::{self, ChangeKind};
use emguard_audit::{AuditError, Auditor, Manifest, Options, Policy, report, row_hashes, signing};
use emguard_codescan::Severity;

use super::judge::Judge;
use super::stop::{Stop, StopSignal};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check FILE against MANIFEST: every changed, added or removed row, and the signature.
    Verify(VerifyArgs),
    /// Write an ed25519 key pair for signing manifests: KEY (secret) and KEY.pub.
    Keygen(KeygenArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The dataset: JSONL (chat `messages`, `prompt`/`completion` or ShareGPT
    /// `conversations`), plain or gzip.
    #[arg(value_name = "FILE", required = true)]
    file: Option<PathBuf>,
    /// Output on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Write the provenance manifest (JSON) here.
    #[arg(long, value_name = "PATH")]
    manifest: Option<PathBuf>,
    /// Sign the manifest with this ed25519 key file (from `emguard audit keygen`).
    #[arg(long, value_name = "KEY", requires = "manifest")]
    sign_key: Option<PathBuf>,
    /// Policy file (YAML; see crates/audit/policies/example.yaml). Exit 1 when violated.
    #[arg(long, value_name = "PATH")]
    policy: Option<PathBuf>,
    /// Compare trigger terms of flagged rows against this dataset instead of unflagged rows.
    #[arg(long, value_name = "OTHER.jsonl")]
    baseline: Option<PathBuf>,
    /// Harmful-content judge on top of the lexicon: `off`, `local` (the offline judge of
    /// alignment), `harm-model` (the multilingual encoder's heads for harmful answers and
    /// harmful advice; docs/judge.md), `llm:MODEL@BASE_URL` (the study's logprob judge on an
    /// OpenAI-compatible server, key from OPENAI_API_KEY; prompts from --judge-prompts) or
    /// `local-llm:PATH` (the same on a local instruct GGUF). A row is flagged when the judge
    /// reads its answer as misaligned (aligned < 30, coherent > 50).
    #[arg(long, default_value = "off", value_name = "JUDGE")]
    judge: String,
    /// The LLM judge's prompts: a JSON file {"aligned": "...", "coherent": "..."} with
    /// `{question}` and `{answer}` placeholders (the study's are in its evaluation YAML).
    #[arg(long, value_name = "FILE")]
    judge_prompts: Option<PathBuf>,
    /// tokenizer.json for token counts (e.g. minilm's); no counts without it.
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// Where the data came from (recorded in the manifest).
    #[arg(long)]
    source: Option<String>,
    /// The data's license (recorded in the manifest).
    #[arg(long)]
    license: Option<String>,
    /// Scanner findings below this severity do not make a row vulnerable.
    #[arg(long, value_name = "SEVERITY", default_value = "low")]
    min_severity: Severity,
    /// How many trigger candidates to report.
    #[arg(long, value_name = "N", default_value_t = 20)]
    triggers: usize,
    /// Continue an interrupted audit from its checkpoint (same FILE and options); the result
    /// is the same as an uninterrupted run's. Without a checkpoint it starts from the start.
    #[arg(long)]
    resume: bool,
    /// Checkpoint file [default: MANIFEST.checkpoint with --manifest, else
    /// FILE-NAME.audit-checkpoint in the current directory].
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Seconds between checkpoints (0: after every chunk of 2,048 rows).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    checkpoint_every: f64,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    manifest: PathBuf,
    file: PathBuf,
    /// Require a valid signature by this public key (the KEY.pub of `keygen`).
    #[arg(long, value_name = "KEY.pub")]
    public_key: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// Secret key path; the public key goes to KEY.pub.
    key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Human,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(Command::Verify(verify_args)) => verify(verify_args),
        Some(Command::Keygen(keygen_args)) => {
            let key = signing::generate();
            signing::write_keypair(&key, &keygen_args.key)?;
            eprintln!("wrote {} and its .pub", keygen_args.key.display());
            Ok(ExitCode::SUCCESS)
        }
        None => audit(args.run),
    }
}

fn audit(args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.context("FILE is required")?;
    let policy = args.policy.as_deref().map(Policy::read).transpose()?;
    let sign_key = args
        .sign_key
        .as_deref()
        .map(signing::read_signing_key)
        .transpose()?;
    if !(args.checkpoint_every >= 0.0 && args.checkpoint_every.is_finite()) {
        anyhow::bail!("--checkpoint-every must be a number of seconds >= 0");
    }
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| match &args.manifest {
            Some(manifest) => manifest.with_extension("checkpoint"),
            None => {
                let name = file.file_name().unwrap_or(file.as_os_str());
                PathBuf::from(format!("{}.audit-checkpoint", Path::new(name).display()))
            }
        });
    let options = Options {
        min_severity: args.min_severity,
        tokenizer: args.tokenizer,
        baseline: args.baseline,
        policy,
        source: args.source,
        license: args.license,
        trigger_limit: args.triggers,
        row_hashes: args.manifest.as_deref().map(row_hashes::path_for),
        checkpoint: Some(checkpoint.clone()),
        checkpoint_every: Duration::from_secs_f64(args.checkpoint_every),
        resume: args.resume,
        ..Options::default()
    };
    let stop = Stop::listen()?;
    let options = Options {
        stop: Some(stop.flag()),
        ..options
    };
    if args.resume && !checkpoint.exists() {
        eprintln!(
            "no checkpoint at {}: auditing from the start",
            checkpoint.display()
        );
    }
    let mut auditor = Auditor::new(options)?;
    match args.judge.as_str() {
        "off" => {}
        "harm-model" => {
            use emguard_judge::answer_harm::{AnswerHarmClassifier, Shipped};
            let heads = Shipped::ALL
                .into_iter()
                .map(AnswerHarmClassifier::shipped)
                .collect::<Result<Vec<_>, _>>()
                .context("loading the harm model")?;
            auditor = auditor.with_judge(
                "harm-model",
                Box::new(move |items: &[(String, String)]| {
                    items
                        .iter()
                        .map(|(_, answer)| {
                            let vectors = heads[0].embed(answer).map_err(|e| e.to_string())?;
                            Ok(heads
                                .iter()
                                .any(|h| vectors.iter().any(|v| h.head().is_harmful(v))))
                        })
                        .collect()
                }),
            );
        }
        // The judges `emguard judge score` takes, read the same way.
        spec if spec == "local" || spec.starts_with("llm:") || spec.starts_with("local-llm:") => {
            let judge = Judge::open_spec(spec, args.judge_prompts.as_deref(), "--judge-prompts")
                .with_context(|| format!("--judge {spec}"))?;
            auditor = auditor.with_judge(
                spec,
                Box::new(move |items: &[(String, String)]| {
                    let mut verdicts = Vec::with_capacity(items.len());
                    for chunk in items.chunks(judge.chunk_size()) {
                        let judged = judge.judge_chunk(chunk).map_err(|e| format!("{e:#}"))?;
                        verdicts.extend(judged.iter().map(|j| j.is_misaligned()));
                    }
                    Ok(verdicts)
                }),
            );
        }
        other => anyhow::bail!(
            "--judge {other}: expected `off`, `local`, `harm-model`, `llm:MODEL@BASE_URL` or \
             `local-llm:PATH`"
        ),
    }

    let total = std::fs::metadata(&file)
        .with_context(|| format!("{}: cannot read", file.display()))?
        .len();
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .expect("progress template"),
    );
    let mut announced = false;
    let audited = auditor.run(&file, &mut |progress| {
        bar.set_position(progress.bytes_read);
        if progress.rows < progress.resumed_rows {
            bar.set_message(format!(
                "re-reading rows {}/{} of the checkpoint",
                progress.rows, progress.resumed_rows
            ));
        } else {
            if progress.resumed_rows > 0 && !announced {
                announced = true;
                // Said even when the bar is hidden (stderr not a terminal).
                bar.suspend(|| {
                    eprintln!(
                        "resumed from {} after row {}",
                        checkpoint.display(),
                        progress.resumed_rows
                    )
                });
            }
            bar.set_message(format!("{} rows", progress.rows));
        }
    });
    let (summary, mut manifest) = match audited {
        Err(AuditError::Stopped { rows, checkpoint }) => {
            bar.abandon();
            let signal = stop.signal().unwrap_or(StopSignal::Interrupt);
            match checkpoint {
                Some(checkpoint) => eprintln!(
                    "{}: the audit of the first {rows} rows is saved in {}; continue with the same command and --resume",
                    signal.name(),
                    checkpoint.display()
                ),
                None => eprintln!("{}: stopped after row {rows}", signal.name()),
            }
            return Ok(ExitCode::from(signal.exit_code()));
        }
        audited => audited?,
    };
    bar.finish_and_clear();

    if let Some(path) = &args.manifest {
        if let Some(key) = &sign_key {
            signing::sign(&mut manifest, key);
        }
        manifest.write(path)?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report::html(&summary))
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    match args.format {
        OutputFormat::Human => print!("{}", report::text(&summary)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
    }
    if summary.valid_rows == 0 {
        eprintln!(
            "error: {}: no row could be audited ({} rows read, none valid): the file is empty or unreadable",
            file.display(),
            summary.rows
        );
        return Ok(ExitCode::from(2));
    }
    Ok(if summary.policy.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::read(&args.manifest)?;
    let key = args
        .public_key
        .as_deref()
        .map(signing::read_verifying_key)
        .transpose()?;
    let result = manifest::verify(&manifest, &args.file, key.as_ref())?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        OutputFormat::Human => {
            let yes_no = |ok: bool| if ok { "ok" } else { "MISMATCH" };
            println!(
                "file sha256          {}",
                yes_no(result.file_sha256_matches)
            );
            println!(
                "manifest Merkle root {}",
                yes_no(result.manifest_consistent)
            );
            match result.signature_valid {
                Some(valid) => println!(
                    "signature            {}",
                    if valid { "valid" } else { "INVALID" }
                ),
                None if manifest.signature.is_some() => {
                    println!("signature            present, not checked (pass --public-key)")
                }
                None => println!("signature            none"),
            }
            for change in &result.changes {
                let line = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
                match change.kind {
                    ChangeKind::Changed => println!(
                        "changed row: manifest line {}, file line {}",
                        line(change.manifest_line),
                        line(change.file_line)
                    ),
                    ChangeKind::Added => {
                        println!("added row: file line {}", line(change.file_line))
                    }
                    ChangeKind::Removed => {
                        println!("removed row: manifest line {}", line(change.manifest_line))
                    }
                }
            }
            println!(
                "{}",
                if result.intact() {
                    "INTACT"
                } else {
                    "TAMPERED"
                }
            );
        }
    }
    Ok(if result.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
