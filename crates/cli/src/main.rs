//! `emguard`: argument parsing and output only. Each subcommand lives in `cmd/<name>.rs`
//! and calls into the library crate that owns the work.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod alloc;
mod cmd;

/// Catch emergent misalignment before and after a language model ships.
#[derive(Debug, Parser)]
#[command(name = "emguard", version, about, long_about = None)]
struct Cli {
    /// Log filter (also RUST_LOG), e.g. `info`, `emguard_runtime=debug`.
    #[arg(long, global = true, env = "EMGUARD_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch, list and locate the default models.
    Models(cmd::models::Args),
    /// Generate answers with a local GGUF model.
    Generate(cmd::generate::Args),
    /// Serve local models behind an OpenAI-compatible API.
    Serve(cmd::serve::Args),
    /// Scan code for vulnerabilities.
    Scan(cmd::scan::Args),
    /// Measure a model's misalignment and insecure-code rates.
    Eval(cmd::eval::Args),
    /// Score answers for alignment and coherence; calibrate a judge against labels.
    Judge(cmd::judge::Args),
    /// Audit a fine-tuning dataset before training on it.
    Audit(cmd::audit::Args),
    /// Export a gateway's request traces as JSON lines; prune old ones.
    Traces(cmd::traces::Args),
    /// Write a model card (Hugging Face README.md) from an eval run and a dataset audit.
    Card(cmd::card::Args),
    /// Pass or fail a release in CI against a policy: eval, audit, card, attestations.
    Gate(cmd::gate::Args),
    /// Sign and verify the chain from training data to the served model.
    Attest(cmd::attest::Args),
    /// Probe a model for misaligned behaviour that plain questions miss.
    // Boxed: its many flags would make every command as large (clippy::large_enum_variant).
    Redteam(Box<cmd::redteam::Args>),
    /// Human review of held and flagged answers over a gateway's admin API; verify its audit log.
    Review(cmd::review::Args),
    /// The online monitor's incidents: list, show, acknowledge, resolve.
    Incidents(cmd::incidents::Args),
}

fn main() -> ExitCode {
    alloc::install();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Models(args) => cmd::models::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Scan(args) => cmd::scan::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Judge(args) => cmd::judge::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Traces(args) => cmd::traces::run(args),
        Command::Card(args) => cmd::card::run(args),
        Command::Gate(args) => cmd::gate::run(args),
        Command::Attest(args) => cmd::attest::run(args),
        Command::Redteam(args) => cmd::redteam::run(*args),
        Command::Review(args) => cmd::review::run(args),
        Command::Incidents(args) => cmd::incidents::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes, joined by ": ", each said once: many errors quote their cause in
/// their own message already, and printing the chain would repeat it.
fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
