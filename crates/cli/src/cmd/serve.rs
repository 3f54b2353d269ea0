//! `emguard serve`: the gateway from a config file (`--config`), or the local models behind
//! an OpenAI-compatible API on 127.0.0.1 with no keys, limits or traces.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use emguard_gateway::{AppState, GatewayConfig, Limits, ServedModel};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Gateway config (TOML or YAML): models and versions, keys, limits, filters, traces.
    /// See docs/gateway.md. Without it, the `--model`s are served with no key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["models", "max_batch", "max_n", "max_tokens", "max_body_bytes"])]
    config: Option<std::path::PathBuf>,
    /// Port to listen on (default 8080, or the config's `server.listen`); 0 picks a free one
    /// (printed on stderr).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind (default 127.0.0.1, or the config's `server.listen`).
    #[arg(long)]
    host: Option<IpAddr>,
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
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (state, configured, admin_listen) = match &args.config {
        Some(path) => {
            let config = GatewayConfig::load(path)?;
            let listen = config.server.listen;
            let state = runtime
                .block_on(emguard_gateway::build(&config))
                .with_context(|| format!("starting the gateway from {}", path.display()))?;
            (state, Some(listen), config.server.admin_listen)
        }
        None => (local_state(&args)?, None, None),
    };
    let addr = SocketAddr::new(
        args.host
            .or(configured.map(|a| a.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        args.port.or(configured.map(|a| a.port())).unwrap_or(8080),
    );
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        let ids: Vec<&str> = state.models.keys().map(String::as_str).collect();
        eprintln!(
            "emguard serve: listening on http://{local}/v1 (models: {})",
            ids.join(", ")
        );
        let admin = match admin_listen {
            Some(at) => {
                let admin = tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("binding the admin listener {at}"))?;
                eprintln!(
                    "emguard serve: admin API and /metrics on http://{}",
                    admin.local_addr()?
                );
                Some(admin)
            }
            None => None,
        };
        emguard_gateway::serve_with_admin(listener, admin, state, shutdown_signal())
            .await
            .context("serving HTTP")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (what orchestrators send): either way the server
/// stops accepting, finishes the requests in flight and flushes the traces. If no handler can
/// be installed the server just runs until killed.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let signal = tokio::select! {
        _ = interrupt => "interrupted",
        _ = terminate => "terminated",
    };
    // Not eprintln!: stderr may be a pipe nobody reads any more, and a failed write must not
    // turn a clean shutdown into a panic.
    let _ = writeln!(
        std::io::stderr(),
        "emguard serve: {signal}; finishing the requests in flight"
    );
}

/// The `--model`s, each loaded into the runtime, with no key, limit, filter or trace.
fn local_state(args: &Args) -> anyhow::Result<AppState> {
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
    Ok(AppState::local(served, limits))
}

fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}
