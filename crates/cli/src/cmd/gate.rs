//! `emguard gate --policy gate.yaml`: pass/fail for CI (see `emguard_release::gate`).
//! Exit 0: every condition passed; 1: one failed; 2: bad input (policy, missing files).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use emguard_release::attest::ChainFiles;
use emguard_release::gate::{self, GateFiles, Policy};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gate policy (YAML; see docs/release.md).
    #[arg(long, value_name = "YAML")]
    policy: PathBuf,
    /// The eval run: its results.json or `--out` folder (for `eval` and `card.up_to_date`).
    #[arg(long, value_name = "PATH")]
    results: Option<PathBuf>,
    /// The training data's audit manifest (for `audit`).
    #[arg(long, value_name = "MANIFEST")]
    audit: Option<PathBuf>,
    /// The model card (for `card`).
    #[arg(long, value_name = "README.md")]
    card: Option<PathBuf>,
    /// The attestation bundle (for `attestations`), with --public-key, --model, --dataset.
    #[arg(long, value_name = "PATH")]
    bundle: Option<PathBuf>,
    #[arg(long, value_name = "KEY.pub")]
    public_key: Option<PathBuf>,
    /// The model file that is served.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// The training data.
    #[arg(long, value_name = "FILE")]
    dataset: Option<PathBuf>,
    /// The run's model the conditions are about (overrides the policy's `eval.model`).
    #[arg(long, value_name = "NAME")]
    run_model: Option<String>,
    /// Also write JUnit XML here (one test case per condition).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut policy = Policy::read(&args.policy)?;
    if let (Some(name), Some(eval)) = (&args.run_model, &mut policy.eval) {
        eval.model = Some(name.clone());
    }
    let chain = match (
        &args.model,
        &args.dataset,
        &args.audit,
        &args.results,
        &args.card,
    ) {
        (Some(model), Some(dataset), Some(audit), Some(results), Some(card)) => Some(ChainFiles {
            dataset: dataset.clone(),
            manifest: audit.clone(),
            model: model.clone(),
            results: results.clone(),
            card: card.clone(),
            run_model: policy.eval.as_ref().and_then(|e| e.model.clone()),
        }),
        _ => None,
    };
    let files = GateFiles {
        results: args.results,
        audit: args.audit,
        card: args.card,
        bundle: args.bundle,
        public_key: args.public_key,
        chain,
    };
    let report = gate::check(&args.policy, &policy, &files)?;
    print!("{}", gate::table(&report));
    if let Some(path) = &args.junit {
        std::fs::write(path, gate::junit(&report))
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
