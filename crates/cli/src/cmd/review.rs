//! `emguard review`: human review from a terminal, over the gateway's review admin API
//! (`/admin/review`, see docs/review.md): the queue, decisions, the audit log's verification
//! and the reviewed answers as judge labels.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway's base URL (where its admin API is served).
    #[arg(
        long,
        env = "EMGUARD_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Environment variable holding a role key (`emr_…`) or the admin token.
    #[arg(long, default_value = "EMGUARD_REVIEW_KEY")]
    key_env: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List review items (default: the open ones), oldest first.
    List {
        /// Comma-separated states (pending, flagged, client_gone, approved, rejected,
        /// expired), or `all`.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Show one item with its evidence, as JSON.
    Show { id: String },
    /// Approve an item (release the held answer), or release an edited answer.
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Release this file's text instead of the model's answer.
        #[arg(long)]
        answer_file: Option<PathBuf>,
    },
    /// Reject an item (the client gets the content-filter error).
    Reject {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Verify the audit log's hash chain; exit 1 naming each edited or deleted row.
    VerifyLog,
    /// Write reviewed answers as judge labels (JSON lines) for `emguard judge calibrate --labels`.
    ExportLabels {
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = std::env::var(&args.key_env)
        .ok()
        .filter(|k| !k.is_empty())
        .with_context(|| format!("set {} to a role key or the admin token", args.key_env))?;
    let api = Api {
        base: args.url.trim_end_matches('/').to_string(),
        key,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(command(&api, args.command))
}

async fn command(api: &Api, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List {
            state,
            limit,
            offset,
        } => {
            let mut path = format!("/admin/review/items?limit={limit}&offset={offset}");
            if let Some(state) = state {
                path.push_str(&format!("&state={state}"));
            }
            let page = api.get(&path).await?;
            let mut out = std::io::stdout().lock();
            for item in page["data"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    item["id"].as_str().unwrap_or(""),
                    item["state"].as_str().unwrap_or(""),
                    item["model"].as_str().unwrap_or(""),
                    item["conditions"]
                        .as_array()
                        .map(|c| c
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default(),
                    item["reason"].as_str().unwrap_or(""),
                )?;
            }
            eprintln!(
                "{} of {} items",
                page["data"].as_array().map_or(0, Vec::len),
                page["total"]
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id } => {
            let item = api.get(&format!("/admin/review/items/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&item)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve {
            id,
            reason,
            answer_file,
        } => {
            let answer = answer_file
                .map(|f| {
                    std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))
                })
                .transpose()?;
            let item = api
                .post(
                    &format!("/admin/review/items/{id}/approve"),
                    json!({"reason": reason, "answer": answer}),
                )
                .await?;
            println!("{id}: {}", item["state"].as_str().unwrap_or(""));
            Ok(ExitCode::SUCCESS)
        }
        Command::Reject { id, reason } => {
            let item = api
                .post(
                    &format!("/admin/review/items/{id}/reject"),
                    json!({"reason": reason}),
                )
                .await?;
            println!("{id}: {}", item["state"].as_str().unwrap_or(""));
            Ok(ExitCode::SUCCESS)
        }
        Command::VerifyLog => {
            let v = api.get("/admin/review/verify").await?;
            for b in v["breaks"].as_array().into_iter().flatten() {
                println!("BROKEN: {}", b.as_str().unwrap_or(""));
            }
            println!(
                "{} rows; last row {} hash {}",
                v["rows"], v["head"]["seq"], v["head"]["hash"]
            );
            Ok(if v["ok"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::ExportLabels { out } => {
            let text = api.get_text("/admin/review/labels").await?;
            match out {
                Some(path) => std::fs::write(&path, &text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().lock().write_all(text.as_bytes())?,
            }
            eprintln!("{} label rows", text.lines().count());
            Ok(ExitCode::SUCCESS)
        }
    }
}

struct Api {
    base: String,
    key: String,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&self.get_text(path).await?)?)
    }

    async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("GET {}{path}", self.base))?;
        answer(res).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {}{path}", self.base))?;
        Ok(serde_json::from_str(&answer(res).await?)?)
    }
}

/// The body of a 2xx answer; otherwise the API's error message as the error.
async fn answer(res: reqwest::Response) -> anyhow::Result<String> {
    let status = res.status();
    let text = res.text().await?;
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(String::from))
            .unwrap_or(text);
        bail!("the gateway answered {status}: {message}");
    }
    Ok(text)
}
