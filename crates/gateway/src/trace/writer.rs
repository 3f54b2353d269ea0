//! The writer thread: drains the queue into one transaction at a time, retries a failed
//! transaction until it commits (the traces stay in memory meanwhile), applies the retention
//! and hands committed traces to the OTLP exporter.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::otlp::Exporter;
use super::{Counters, GatewayStore, Message, TraceOptions, TraceRecord};

/// How often the retention runs after the first time (at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Backoff after a failed transaction: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_LAST: Duration = Duration::from_secs(5);

pub(super) fn spawn(
    store: Arc<GatewayStore>,
    opts: TraceOptions,
    received: mpsc::Receiver<Message>,
    counters: Arc<Counters>,
) {
    let exporter = opts.otlp_endpoint.as_deref().and_then(|endpoint| {
        Exporter::new(endpoint)
            .inspect_err(|e| tracing::error!(error = %e, "OTLP export is off"))
            .ok()
    });
    let writer = Writer {
        store,
        counters,
        exporter,
        max_batch: opts.max_batch.max(1),
        retention: opts
            .retention_days
            .map(|days| Duration::from_secs(u64::from(days) * 86_400)),
    };
    std::thread::Builder::new()
        .name("emguard-trace-writer".into())
        .spawn(move || {
            // A runtime of the thread's own, for waiting on the queue with a timer; the
            // database calls block this thread only.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime builds");
            runtime.block_on(writer.run(received));
        })
        .expect("spawning the trace writer thread");
}

/// How long a batch no one waits for may wait for company before it is committed.
const LINGER: Duration = Duration::from_millis(20);

struct Writer {
    store: Arc<GatewayStore>,
    counters: Arc<Counters>,
    exporter: Option<Exporter>,
    max_batch: usize,
    retention: Option<Duration>,
}

/// One drain of the queue: the traces to commit together and who waits for them.
#[derive(Default)]
struct Batch {
    records: Vec<TraceRecord>,
    committed: Vec<oneshot::Sender<()>>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn add(&mut self, message: Message) {
        match message {
            Message::Trace { record, committed } => {
                self.records.push(*record);
                self.committed.extend(committed);
            }
            Message::Flush(done) => self.flushes.push(done),
        }
    }
}

impl Writer {
    async fn run(self, mut received: mpsc::Receiver<Message>) {
        // At start, before the first batch, then every PRUNE_EVERY.
        let mut next_prune = self.retention.map(|_| {
            self.prune();
            Instant::now() + PRUNE_EVERY
        });
        loop {
            let first = match next_prune {
                Some(at) => match tokio::time::timeout_at(at, received.recv()).await {
                    Ok(message) => message,
                    Err(_elapsed) => {
                        self.prune();
                        next_prune = Some(Instant::now() + PRUNE_EVERY);
                        continue;
                    }
                },
                None => received.recv().await,
            };
            // None: every Tracer is gone and the queue is empty.
            let Some(first) = first else { break };
            let mut batch = Batch::default();
            batch.add(first);
            while batch.records.len() < self.max_batch {
                match received.try_recv() {
                    Ok(message) => batch.add(message),
                    Err(_) => break,
                }
            }
            // Nobody waits for this batch: linger a little so that, under steady load, one
            // transaction carries many traces (fewer syscalls and WAL pages) instead of one
            // each. The thread sleeps through the linger rather than waiting on the queue, so
            // the traces queued meanwhile do not each wake it (a wake-up is a futex call in the
            // handler and a context switch, per request). A batch someone waits for (durable
            // mode, a flush) is written at once; in durable mode every trace has a waiter, so
            // it never lingers.
            if batch.records.len() < self.max_batch
                && batch.committed.is_empty()
                && batch.flushes.is_empty()
            {
                tokio::time::sleep(LINGER).await;
                while batch.records.len() < self.max_batch {
                    match received.try_recv() {
                        Ok(message) => batch.add(message),
                        Err(_) => break,
                    }
                }
            }
            self.write(batch).await;
        }
        if let Some(exporter) = &self.exporter {
            exporter.flush();
        }
    }

    async fn write(&self, batch: Batch) {
        if !batch.records.is_empty() {
            self.commit(&batch.records).await;
        }
        for done in batch.committed {
            // The waiter may have gone (client disconnected): nothing to tell.
            let _ = done.send(());
        }
        if let Some(exporter) = &self.exporter {
            exporter.export(&batch.records);
            if !batch.flushes.is_empty() {
                exporter.flush();
            }
        }
        for done in batch.flushes {
            let _ = done.send(());
        }
    }

    /// Returns once the traces have committed, however many tries that takes.
    async fn commit(&self, records: &[TraceRecord]) {
        let mut delay = RETRY_FIRST;
        loop {
            match self.store.insert_traces(records) {
                Ok(()) => {
                    let n = records.len() as u64;
                    self.counters.written.fetch_add(n, Ordering::Relaxed);
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error = %e,
                        traces = records.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "writing traces failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_LAST);
                }
            }
        }
    }

    fn prune(&self) {
        let Some(keep) = self.retention else { return };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let cutoff = now.saturating_sub(keep).as_secs_f64();
        match self.store.delete_traces_before(cutoff) {
            Ok(deleted) => tracing::info!(deleted, cutoff, "trace retention applied"),
            // The next hour tries again.
            Err(e) => tracing::error!(error = %e, "trace retention failed"),
        }
    }
}
