//! One module per subcommand: its clap `Args` and a `run` that returns the exit code.

pub mod audit;
pub mod eval;
pub mod generate;
pub mod judge;
pub mod models;
pub mod scan;
pub mod serve;
pub mod traces;
