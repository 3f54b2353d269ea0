//! `emguard eval` (skeleton: not implemented yet).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`emguard eval` is not implemented yet")
}
