//! `emguard traces`: a gateway's request traces out of its store as JSON lines, and old ones
//! pruned (see `emguard_gateway::trace`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use emguard_gateway::trace::export::{parse_time, write_jsonl};
use emguard_gateway::trace::{GatewayStore, TraceQuery};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct StoreArg {
    /// The gateway's trace store: a SQLite file or postgres://...
    #[arg(long)]
    store: String,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write traces as JSON lines, one trace per line, oldest first.
    Export {
        #[command(flatten)]
        store: StoreArg,
        /// Traces that started at or after this time: RFC 3339 or unix seconds.
        #[arg(long, value_parser = parse_time)]
        since: Option<f64>,
        /// Traces that started before this time: RFC 3339 or unix seconds.
        #[arg(long, value_parser = parse_time)]
        until: Option<f64>,
        /// Only this model id (as clients asked for it).
        #[arg(long)]
        model: Option<String>,
        /// Only this API key id (key_...).
        #[arg(long)]
        key: Option<String>,
        /// Only this HTTP status.
        #[arg(long)]
        status: Option<u16>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Delete traces older than a number of days.
    Prune {
        #[command(flatten)]
        store: StoreArg,
        #[arg(long)]
        older_than_days: u32,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Export {
            store,
            since,
            until,
            model,
            key,
            status,
            out,
        } => {
            let store = open(&store.store)?;
            let query = TraceQuery {
                since,
                until,
                key_id: key,
                model,
                status,
                ..TraceQuery::default()
            };
            match out {
                Some(path) => {
                    let file = File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let n = write_jsonl(&store, &query, &mut BufWriter::new(file))
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("{n} traces written to {}", path.display());
                }
                None => {
                    let mut stdout = BufWriter::new(std::io::stdout().lock());
                    write_jsonl(&store, &query, &mut stdout)?;
                    stdout.flush()?;
                }
            }
        }
        Command::Prune {
            store,
            older_than_days,
        } => {
            let location = store.store;
            let store = open(&location)?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
            let cutoff = now - f64::from(older_than_days) * 86_400.0;
            let deleted = store
                .delete_traces_before(cutoff)
                .with_context(|| format!("pruning {location}"))?;
            println!("{deleted} traces older than {older_than_days} days deleted from {location}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens an existing store: a mistyped SQLite path must not become a new, empty store.
fn open(location: &str) -> anyhow::Result<GatewayStore> {
    let is_url = location.starts_with("postgres://") || location.starts_with("postgresql://");
    if !is_url && !Path::new(location).is_file() {
        anyhow::bail!("no trace store at {location} (a SQLite file or postgres://... URL)");
    }
    GatewayStore::open(location).with_context(|| format!("opening the trace store {location}"))
}
