//! `emguard attest sign|verify`: the signed chain from training data to the served model
//! (see `emguard_release::attest`). Keys are the audit's (`emguard audit keygen KEY`).
//! Exit 0: signed / verified; 1: a link is broken; 2: bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use emguard_audit::signing;
use emguard_release::attest::{self, ChainFiles};
use emguard_release::model_signing;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Sign the dataset, model file, eval run and card into a bundle of in-toto statements.
    Sign(SignArgs),
    /// Check every file and every link of a bundle; name the broken ones.
    Verify(VerifyArgs),
    /// Sign a model file or folder in the OpenSSF model-signing format (ECDSA P-256 key).
    ModelSign(ModelSignArgs),
    /// Verify a model-signing signature (from emguard or the `model-signing` package).
    ModelVerify(ModelVerifyArgs),
}

#[derive(Debug, clap::Args)]
struct ModelSignArgs {
    /// PKCS#8 PEM P-256 private key (e.g. `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`).
    #[arg(long, value_name = "KEY.pem")]
    ec_key: PathBuf,
    /// The model: a file or a folder.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// The signature (a Sigstore bundle, JSON).
    #[arg(long, value_name = "PATH", default_value = "model.sig")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ModelVerifyArgs {
    /// PEM P-256 public key (SubjectPublicKeyInfo).
    #[arg(long, value_name = "KEY.pub.pem")]
    ec_public_key: PathBuf,
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    #[arg(long, value_name = "PATH", default_value = "model.sig")]
    signature: PathBuf,
}

#[derive(Debug, clap::Args)]
struct Files {
    /// The training data (JSONL, as audited).
    #[arg(long, value_name = "FILE")]
    dataset: PathBuf,
    /// Its audit manifest (`emguard audit --manifest`).
    #[arg(long, value_name = "MANIFEST")]
    audit: PathBuf,
    /// The model file that is served.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// The eval run's results.json or `--out` folder.
    #[arg(long, value_name = "PATH")]
    results: PathBuf,
    /// The model card (`emguard card`).
    #[arg(long, value_name = "README.md")]
    card: PathBuf,
    /// The run's model that is the served file [default: its last untriggered model].
    #[arg(long, value_name = "NAME")]
    run_model: Option<String>,
}

impl Files {
    fn chain(self) -> ChainFiles {
        ChainFiles {
            dataset: self.dataset,
            manifest: self.audit,
            model: self.model,
            results: self.results,
            card: self.card,
            run_model: self.run_model,
        }
    }
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The ed25519 secret key (from `emguard audit keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    #[command(flatten)]
    files: Files,
    /// The bundle to write (one DSSE envelope per line).
    #[arg(long, value_name = "PATH", default_value = "release.intoto.jsonl")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The public key that must have signed every statement (KEY.pub).
    #[arg(long, value_name = "KEY.pub")]
    public_key: PathBuf,
    #[arg(long, value_name = "PATH", default_value = "release.intoto.jsonl")]
    bundle: PathBuf,
    #[command(flatten)]
    files: Files,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Sign(args) => {
            let key = signing::read_signing_key(&args.key)?;
            let envelopes = attest::sign_chain(&args.files.chain(), &key)?;
            attest::write_bundle(&args.out, &envelopes)?;
            println!(
                "signed {} statements (dataset, model file, eval run, model card) into {}",
                envelopes.len(),
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ModelSign(args) => {
            let key = model_signing::read_signing_key(&args.ec_key)?;
            let bundle = model_signing::sign(&args.model, &key)?;
            std::fs::write(&args.out, bundle)
                .with_context(|| format!("{}: cannot write", args.out.display()))?;
            println!(
                "signed {} into {}",
                args.model.display(),
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ModelVerify(args) => {
            let key = model_signing::read_verifying_key(&args.ec_public_key)?;
            let problems = model_signing::verify(&args.model, &args.signature, &key)?;
            for problem in &problems {
                println!("BROKEN  {problem}");
            }
            if problems.is_empty() {
                println!("VERIFIED");
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::from(1))
            }
        }
        Command::Verify(args) => {
            let key = signing::read_verifying_key(&args.public_key)?;
            let report = attest::verify_chain(&args.files.chain(), &args.bundle, &key)?;
            for link in &report.links {
                if link.problems.is_empty() {
                    println!("ok      {}", link.link);
                }
                for problem in &link.problems {
                    println!("BROKEN  {}: {problem}", link.link);
                }
            }
            if report.verified() {
                println!("VERIFIED");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("BROKEN");
                Ok(ExitCode::from(1))
            }
        }
    }
}
