//! `emguard incidents`: the monitor's incidents in a gateway's store (list, show, acknowledge,
//! resolve). Reads and writes the store directly, so it works with the gateway running or
//! not; replicas on a shared PostgreSQL store see the change at once.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use emguard_store::monitor::{
    IncidentQuery, IncidentRecord, IncidentState, MonitorStore, TimelineEntry,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway's store: a SQLite file or postgres://...
    #[arg(long, global = true)]
    store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Incidents, newest first: id, state, model, version, breach, opened.
    List {
        /// Only incidents in this state: open, acknowledged or resolved.
        #[arg(long, value_parser = parse_state)]
        state: Option<IncidentState>,
        #[arg(long)]
        model: Option<String>,
        /// At most this many incidents.
        #[arg(long)]
        limit: Option<usize>,
        /// Only incidents opened before this one (the last id of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One incident with its figures, evidence, time line and webhook attempts (JSON).
    Show { id: String },
    /// Mark an incident acknowledged (someone is on it).
    Ack {
        id: String,
        #[arg(long)]
        note: Option<String>,
        /// Who acknowledges [default: $USER].
        #[arg(long)]
        by: Option<String>,
    },
    /// Mark an incident resolved.
    Resolve {
        id: String,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        by: Option<String>,
    },
}

fn parse_state(s: &str) -> Result<IncidentState, String> {
    match s {
        "open" => Ok(IncidentState::Open),
        "acknowledged" | "ack" => Ok(IncidentState::Acknowledged),
        "resolved" => Ok(IncidentState::Resolved),
        other => Err(format!(
            "`{other}` is not a state: open, acknowledged or resolved"
        )),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let location = args
        .store
        .context("--store is required: the gateway's store (its config's `store`)")?;
    let store =
        MonitorStore::open(&location).with_context(|| format!("opening the store {location}"))?;
    match args.command {
        Command::List {
            state,
            model,
            limit,
            after,
            json,
        } => {
            if let Some(after) = &after
                && store.incident(after)?.is_none()
            {
                return not_found(after);
            }
            let found = store.incidents(&IncidentQuery {
                state,
                model,
                limit,
                after,
            })?;
            if json {
                for i in &found {
                    println!("{}", serde_json::to_string(i)?);
                }
            } else {
                println!(
                    "{:<32} {:<13} {:<16} {:<12} {:<20} opened",
                    "id", "state", "model", "version", "breach"
                );
                for i in &found {
                    println!(
                        "{:<32} {:<13} {:<16} {:<12} {:<20} {}",
                        i.id,
                        i.state.as_str(),
                        i.model,
                        i.version,
                        i.breach,
                        age(i.opened_at)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id } => match store.incident(&id)? {
            Some(i) => {
                println!("{}", serde_json::to_string_pretty(&i)?);
                Ok(ExitCode::SUCCESS)
            }
            None => not_found(&id),
        },
        Command::Ack { id, note, by } => change(&store, &id, IncidentState::Acknowledged, note, by),
        Command::Resolve { id, note, by } => change(&store, &id, IncidentState::Resolved, note, by),
    }
}

fn change(
    store: &MonitorStore,
    id: &str,
    to: IncidentState,
    note: Option<String>,
    by: Option<String>,
) -> anyhow::Result<ExitCode> {
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let updated: Option<IncidentRecord> = store.update_incident(id, |i| {
        i.state = to;
        let note = note.as_deref().map_or(String::new(), |n| format!(": {n}"));
        i.timeline.push(TimelineEntry {
            time: now(),
            by: by.clone(),
            event: format!("{}{note}", to.as_str()),
        });
    })?;
    match updated {
        Some(i) => {
            println!("{} {}", i.id, i.state.as_str());
            Ok(ExitCode::SUCCESS)
        }
        None => not_found(id),
    }
}

fn not_found(id: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: no incident `{id}` in this store");
    Ok(ExitCode::from(2))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn age(at: f64) -> String {
    let secs = (now() - at).max(0.0) as u64;
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}
