//! The trace of every request, written off the hot path.
//!
//! Handlers hand a finished [`TraceRecord`] to a [`Tracer`]. A bounded queue carries it to a
//! dedicated writer thread (the blocking database calls never run on tokio's workers), which
//! writes whatever is queued as one transaction: group commit. Two ways in:
//! - [`Tracer::record`] never waits: when the queue is full the trace is dropped and counted
//!   (a slow disk must not slow the answers);
//! - [`Tracer::record_durable`] resolves only once the transaction holding the trace has
//!   committed, so a response released after it has its trace even if the process is killed.
//!
//! The writer also applies the retention ([`TraceOptions::retention_days`]) and, when
//! configured, exports committed traces as OpenTelemetry spans over OTLP/HTTP ([`otlp`]).
//! [`export`] writes traces as JSON lines.

pub mod export;
mod otlp;
mod priority;
mod writer;

pub use priority::WriterPriority;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

pub use emguard_store::gateway::{GatewayStore, TraceQuery, TraceRecord};

/// How much of a request's and a response's content a trace keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentLogging {
    /// The text itself.
    #[default]
    Full,
    /// `sha256:<hex>` of the text: proves what was sent without keeping it.
    Hashed,
    /// Nothing.
    Off,
}

impl ContentLogging {
    /// What a trace stores for `text` (a request or response body) in this mode.
    pub fn keep(self, text: &str) -> Option<String> {
        match self {
            ContentLogging::Full => Some(text.to_string()),
            ContentLogging::Hashed => Some(format!("sha256:{}", hex::encode(Sha256::digest(text)))),
            ContentLogging::Off => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceOptions {
    /// Traces waiting for the writer, at most; beyond it [`Tracer::record`] drops.
    pub queue: usize,
    /// Traces per transaction, at most.
    pub max_batch: usize,
    /// Delete traces older than this many days (at start, then hourly).
    pub retention_days: Option<u32>,
    /// OTLP/HTTP base URL (e.g. `http://127.0.0.1:4318`); spans go to `<base>/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// The writer thread's CPU priority.
    pub priority: WriterPriority,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            queue: 10_000,
            max_batch: 512,
            retention_days: None,
            otlp_endpoint: None,
            priority: WriterPriority::Normal,
        }
    }
}

/// Counters for `/metrics`. All but `queued` only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceStats {
    /// Traces in the queue now.
    pub queued: u64,
    /// Traces committed.
    pub written: u64,
    /// Traces dropped because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Transactions that failed (and were retried).
    pub failed: u64,
    /// Times a writer at normal priority took over from one at idle priority that fell
    /// behind (see `traces.writer_priority`).
    pub reliefs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("the trace writer has stopped")]
    Stopped,
    #[error("OTLP exporter for {endpoint}: {message}")]
    Otlp { endpoint: String, message: String },
    #[error("trace store: {0}")]
    Store(#[from] emguard_store::StoreError),
    #[error("writing traces: {0}")]
    Io(#[from] std::io::Error),
    #[error("`{input}` is not a time: expected RFC 3339 (2026-11-27T10:00:00Z) or unix seconds")]
    BadTime { input: String },
}

/// What travels to the writer thread.
enum Message {
    Trace {
        /// Boxed: a record is hundreds of bytes, a flush a pointer.
        record: Box<TraceRecord>,
        /// Told once the trace has committed (durable mode).
        committed: Option<oneshot::Sender<()>>,
    },
    /// Told once everything queued before it has committed (and been handed to the exporter).
    Flush(oneshot::Sender<()>),
}

#[derive(Default)]
struct Counters {
    reliefs: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    batches: AtomicU64,
    failed: AtomicU64,
}

/// The handle handlers trace through; cheap to clone. The writer thread ends once every
/// clone is dropped, after committing what is still queued.
#[derive(Clone)]
pub struct Tracer {
    queue: mpsc::Sender<Message>,
    counters: Arc<Counters>,
    writer: Arc<writer::Writer>,
}

impl Tracer {
    /// Starts the writer thread. Call within or outside a tokio runtime.
    pub fn start(store: Arc<GatewayStore>, opts: TraceOptions) -> Tracer {
        let (queue, received) = mpsc::channel(opts.queue.max(1));
        let counters = Arc::new(Counters::default());
        let writer = writer::Writer::spawn(store, &opts, received, Arc::clone(&counters));
        Tracer {
            queue,
            counters,
            writer,
        }
    }

    /// Queues the trace without waiting; when the queue is full it is dropped and counted.
    pub fn record(&self, record: TraceRecord) {
        let message = Message::Trace {
            record: Box::new(record),
            committed: None,
        };
        self.relieve_a_writer_behind();
        if self.queue.try_send(message).is_err() {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged at 1, 2, 4, 8, ... drops: visible without flooding the log.
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "trace queue full: traces dropped so far");
            }
        }
    }

    /// Queues the trace (waiting for room if the queue is full) and resolves once the
    /// transaction holding it has committed.
    pub async fn record_durable(&self, record: TraceRecord) -> Result<(), TraceError> {
        let (committed, done) = oneshot::channel();
        let message = Message::Trace {
            record: Box::new(record),
            committed: Some(committed),
        };
        self.relieve_a_writer_behind();
        self.queue
            .send(message)
            .await
            .map_err(|_| TraceError::Stopped)?;
        done.await.map_err(|_| TraceError::Stopped)
    }

    /// Resolves once everything queued before the call has committed and, with OTLP export
    /// on, been sent to the collector (graceful shutdown).
    pub async fn flush(&self) {
        let (flushed, done) = oneshot::channel();
        if self.queue.send(Message::Flush(flushed)).await.is_ok() {
            // An error means the writer has stopped, which commits all it had first.
            let _ = done.await;
        }
    }

    /// More than an eighth of the queue waiting (at the default size, a quarter second of
    /// traces at 5,000 requests/s, where the writer's batches hold ~100): the writer is falling
    /// behind (see [`writer`]).
    fn relieve_a_writer_behind(&self) {
        let max = self.queue.max_capacity();
        if max - self.queue.capacity() > max / 8 {
            self.writer.relieve();
        }
    }

    pub fn stats(&self) -> TraceStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TraceStats {
            queued: (self.queue.max_capacity() - self.queue.capacity()) as u64,
            written: get(&self.counters.written),
            dropped: get(&self.counters.dropped),
            batches: get(&self.counters.batches),
            failed: get(&self.counters.failed),
            reliefs: get(&self.counters.reliefs),
        }
    }
}
