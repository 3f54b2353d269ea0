//! `emguard card`: write a model card (Hugging Face README.md) from an eval run, the
//! training data's audit manifest and a sections file (see `emguard_release::card`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use emguard_release::card::{self, Audit, CardInputs, JudgeCalibration, Sections};
use emguard_release::eval_run::EvalRun;
use emguard_release::yaml;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The eval run: its results.json or its `--out` folder.
    #[arg(long, value_name = "PATH")]
    results: PathBuf,
    /// The training data's audit manifest (`emguard audit --manifest`).
    #[arg(long, value_name = "MANIFEST")]
    audit: PathBuf,
    /// The user-written sections and metadata (YAML: base_model, license, intended_use,
    /// out_of_scope, ...; see docs/release.md).
    #[arg(long, value_name = "YAML")]
    sections: PathBuf,
    /// The judge's agreement with human labels (`emguard judge calibrate --format json`).
    #[arg(long, value_name = "JSON")]
    judge_calibration: Option<PathBuf>,
    /// The run's model the card is about [default: its last untriggered model].
    #[arg(long, value_name = "NAME")]
    run_model: Option<String>,
    /// Where to write the card.
    #[arg(long, value_name = "PATH", default_value = "README.md")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let run = EvalRun::read(&args.results)?;
    let audit = Audit::read(&args.audit)?;
    let sections: Sections = yaml::read(&args.sections)?;
    let calibration = args
        .judge_calibration
        .as_deref()
        .map(JudgeCalibration::read)
        .transpose()?;
    let text = card::render(&CardInputs {
        run: &run,
        model: args.run_model.as_deref(),
        audit: &audit,
        sections: &sections,
        calibration: calibration.as_ref(),
    })?;
    std::fs::write(&args.out, text)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    eprintln!(
        "wrote {} from run {} and {}",
        args.out.display(),
        run.run_id,
        args.audit.display()
    );
    Ok(ExitCode::SUCCESS)
}
