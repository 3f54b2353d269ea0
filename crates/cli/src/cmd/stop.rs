//! Ctrl-C (SIGINT) and SIGTERM for the long commands. The first signal cancels a
//! [`CancelToken`] (local generation checks it every decode step, so a batch stops at once
//! instead of running on for minutes) and wakes whoever waits on [`Stop::received`], which
//! stops the work, says how to resume and exits with [`StopSignal::exit_code`]. A second
//! signal ends the process at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use emguard_runtime::CancelToken;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    /// 128 + the signal's number, as shells report a process the signal ended: 130 for
    /// SIGINT, 143 for SIGTERM.
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "interrupted (Ctrl-C)",
            StopSignal::Terminate => "terminated (SIGTERM)",
        }
    }
}

/// Listens for SIGINT and SIGTERM from [`Stop::listen`] on, on a thread of its own (so it
/// serves sync and async commands alike).
pub struct Stop {
    cancel: CancelToken,
    /// Raised with `cancel`, for work that polls a flag (the audit's chunks).
    raised: Arc<AtomicBool>,
    received: watch::Receiver<Option<StopSignal>>,
}

impl Stop {
    pub fn listen() -> anyhow::Result<Stop> {
        let cancel = CancelToken::new();
        let (sender, received) = watch::channel(None);
        let (ready, listening) = std::sync::mpsc::channel();
        let token = cancel.clone();
        let raised = Arc::new(AtomicBool::new(false));
        let flag = raised.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let (mut interrupt, mut terminate) = match (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) {
                        (Ok(i), Ok(t)) => (i, t),
                        (Err(err), _) | (_, Err(err)) => {
                            let _ = ready.send(Err(err));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let first = tokio::select! {
                        _ = interrupt.recv() => StopSignal::Interrupt,
                        _ = terminate.recv() => StopSignal::Terminate,
                    };
                    token.cancel();
                    flag.store(true, Ordering::Relaxed);
                    let _ = sender.send(Some(first));
                    tokio::select! {
                        _ = interrupt.recv() => {},
                        _ = terminate.recv() => {},
                    }
                    eprintln!("second signal: stopping now");
                    std::process::exit(i32::from(first.exit_code()));
                });
            })?;
        listening
            .recv()
            .map_err(|_| anyhow::anyhow!("the signal thread ended before listening"))??;
        Ok(Stop {
            cancel,
            raised,
            received,
        })
    }

    /// Cancelled on the first signal.
    pub fn token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Raised on the first signal.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.raised.clone()
    }

    /// The first signal, if one came.
    pub fn signal(&self) -> Option<StopSignal> {
        *self.received.borrow()
    }

    /// The first signal, once it comes.
    pub async fn received(&self) -> StopSignal {
        let mut received = self.received.clone();
        match received.wait_for(Option::is_some).await {
            Ok(signal) => signal.expect("waited for Some"),
            // The signal thread never drops its sender before exiting the process.
            Err(_) => std::future::pending().await,
        }
    }
}
