//! One module per subcommand: its clap `Args` and a `run` that returns the exit code.

pub mod attest;
pub mod audit;
pub mod card;
pub mod eval;
pub mod gate;
pub mod generate;
pub mod incidents;
pub mod judge;
pub mod models;
pub mod redteam;
pub mod review;
pub mod scan;
pub mod serve;
pub mod stop;
pub mod traces;
