//! The HTTP server: accepts connections and serves the router on each, with the edge's
//! protections ([`crate::Edge`]): a cap on connections served at once (more wait in the
//! listen backlog), a deadline for each request's headers (which also closes idle keep-alive
//! connections), and the client's address on every request (the failed-authentication limit
//! is per address). Shutdown stops accepting, lets the requests in flight finish (and the work
//! their clients left behind), then flushes the traces.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_service::Service;

use crate::routes::{admin_router, public_router, router};
use crate::state::AppState;

/// Longest shutdown waits for requests in flight and the work left by gone clients.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves the whole API on `listener` until `shutdown` completes, then finishes the requests
/// in flight and flushes the traces.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_admin(listener, None, state, shutdown).await
}

/// [`serve`], with the admin API and `/metrics` on `admin` only when given.
pub async fn serve_with_admin(
    public: TcpListener,
    admin: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cycles = state
        .redteam
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(cycles) = cycles {
        cycles.start(public.local_addr()?)?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection holds a receiver; all gone: every connection is closed.
    let (open_tx, open_rx) = watch::channel(());
    let slots = Arc::new(Semaphore::new(state.edge.max_connections));
    let header_timeout = state.edge.header_read_timeout;
    let mut loops = Vec::new();
    let public_app = if admin.is_some() {
        public_router(state.clone())
    } else {
        router(state.clone())
    };
    loops.push(tokio::spawn(accept_loop(
        public,
        public_app,
        Arc::clone(&slots),
        header_timeout,
        stop_rx.clone(),
        open_rx.clone(),
    )));
    if let Some(admin) = admin {
        loops.push(tokio::spawn(accept_loop(
            admin,
            admin_router(state.clone()),
            Arc::new(Semaphore::new(64)),
            header_timeout,
            stop_rx.clone(),
            open_rx.clone(),
        )));
    }
    drop(open_rx);
    shutdown.await;
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    let drained = async {
        open_tx.closed().await;
        state.in_flight.closed().await;
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!(
            "shutdown: requests still in flight after {DRAIN_TIMEOUT:?}; flushing anyway"
        );
    }
    if let Some(tracer) = &state.tracer {
        tracer.flush().await;
    }
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    slots: Arc<Semaphore>,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    open: watch::Receiver<()>,
) {
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = stop.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(addr));
                    let mut app = app.clone();
                    async move { app.call(req.map(axum::body::Body::new)).await }
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let mut conn = pin!(
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
            );
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, client = %addr, "connection ended with an error");
                        }
                        break;
                    }
                    changed = stop.changed(), if !stopping => {
                        stopping = true;
                        if changed.is_ok() {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(permit);
            drop(open);
        });
    }
}

/// The client address of a request served by [`serve`] (absent in tests calling the router
/// directly).
pub fn client_address(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
