//! `emguard serve`: the local models behind an OpenAI-compatible API on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use emguard_gateway::{AppState, Limits, ServedModel};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port to listen on; 0 picks a free one (printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Model to serve, by name or .gguf path; repeat for several. Its id is the name, or the
    /// file stem for a path.
    #[arg(long = "model", default_value = emguard_models::DEFAULT_LLM)]
    models: Vec<String>,
    /// Most sequences decoded together per model.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Largest `n` a request may ask for.
    #[arg(long, default_value_t = Limits::default().max_n)]
    max_n: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = Limits::default().max_tokens)]
    max_tokens: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut served = Vec::new();
    for name in &args.models {
        let path = emguard_models::resolve(name)?;
        let id = if emguard_models::find(name).is_some() {
            name.clone()
        } else {
            stem(&path)
        };
        eprintln!("emguard serve: loading {id} from {}", path.display());
        let model = ServedModel::load(id.clone(), &path, args.max_batch.max(1))
            .with_context(|| format!("loading model {id} from {}", path.display()))?;
        served.push(model);
    }
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_n: args.max_n,
        max_tokens: args.max_tokens,
        ..Limits::default()
    };
    let state = AppState::new(served, limits);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        let ids: Vec<String> = state.models().map(|m| m.id.clone()).collect();
        eprintln!(
            "emguard serve: listening on http://{local}/v1 (models: {})",
            ids.join(", ")
        );
        let shutdown = async {
            // If the signal handler cannot be installed the server just runs until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        emguard_gateway::serve(listener, state, shutdown)
            .await
            .context("serving HTTP")
    })?;
    Ok(ExitCode::SUCCESS)
}

fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}
