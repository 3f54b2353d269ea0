//! The writer thread: drains the queue into one transaction at a time, retries a failed
//! transaction until it commits (the traces stay in memory meanwhile), applies the retention
//! and hands committed traces to the OTLP exporter.
//!
//! At [`WriterPriority::Idle`] the writer runs only when request handling leaves its core
//! idle (see [`super::priority`]). On a core that handling keeps busy it would fall behind
//! until the queue drops traces, and an unprivileged thread cannot raise its own priority
//! back. So when the queue passes an eighth full, [`Writer::relieve`], called on a request
//! handler's thread, starts a new writer thread there: it inherits the handler's normal
//! priority, the idle one stops after its batch, and the new one takes the queue. Once the
//! queue has stayed short for [`CALM_FOR`] the new writer lowers itself to idle priority, and
//! the next overload starts another. One thread writes at a time: the queue's receiving end
//! sits behind a lock that the writing thread holds until it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use super::otlp::Exporter;
use super::{Counters, GatewayStore, Message, TraceOptions, TraceRecord, WriterPriority};

/// How often the retention runs after the first time (at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Backoff after a failed transaction: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// How long a batch no one waits for may wait for company before it is committed.
const LINGER: Duration = Duration::from_millis(20);
/// How long a relief writer keeps normal priority after the queue has become short (at most
/// an eighth full after each batch) before it lowers itself to idle priority.
const CALM_FOR: Duration = Duration::from_secs(30);
/// Traces per transaction at most for a writer at idle priority. Starved in the middle of a
/// batch, it holds the queue until the batch has committed, and the queue must absorb what
/// arrives meanwhile. An idle thread on a busy core gets rare, short turns (a weight of 3
/// against 1,024): 16 traces (~130 µs of CPU) fit in one. Measured at 20,000 requests/s
/// offered on one core: 0 traces dropped with 16, 9,089 with 64.
const IDLE_MAX_BATCH: usize = 16;

/// The writer's side of a [`super::Tracer`]: shared by the tracer and the writing thread.
pub(super) struct Writer {
    store: Arc<GatewayStore>,
    counters: Arc<Counters>,
    max_batch: usize,
    retention: Option<Duration>,
    priority: WriterPriority,
    /// What only the thread writing now touches.
    inbox: Mutex<Inbox>,
    /// The generation of the thread that is to write: set by a relief writer when it starts;
    /// a thread of another generation stops after its batch.
    generation: AtomicU64,
    /// Generations handed out so far.
    generations: AtomicU64,
    /// A relief writer has started and has not yet lowered itself to idle priority.
    relieving: AtomicBool,
}

struct Inbox {
    received: mpsc::Receiver<Message>,
    exporter: Option<Exporter>,
    next_prune: Option<Instant>,
}

impl Writer {
    /// Starts the first writer thread, at `opts.priority`.
    pub(super) fn spawn(
        store: Arc<GatewayStore>,
        opts: &TraceOptions,
        received: mpsc::Receiver<Message>,
        counters: Arc<Counters>,
    ) -> Arc<Writer> {
        let exporter = opts.otlp_endpoint.as_deref().and_then(|endpoint| {
            Exporter::new(endpoint)
                .inspect_err(|e| tracing::error!(error = %e, "OTLP export is off"))
                .ok()
        });
        let writer = Arc::new(Writer {
            store,
            counters,
            max_batch: opts.max_batch.max(1),
            retention: opts
                .retention_days
                .map(|days| Duration::from_secs(u64::from(days) * 86_400)),
            priority: opts.priority,
            inbox: Mutex::new(Inbox {
                received,
                exporter,
                next_prune: None,
            }),
            generation: AtomicU64::new(0),
            generations: AtomicU64::new(0),
            relieving: AtomicBool::new(false),
        });
        writer.start_thread(0, opts.priority);
        writer
    }

    /// Called by a handler that finds the queue more than an eighth full: at idle priority,
    /// starts a writer at the caller's (normal) priority to take over, unless one already has.
    pub(super) fn relieve(self: &Arc<Self>) {
        if self.priority != WriterPriority::Idle || self.relieving.swap(true, Ordering::AcqRel) {
            return;
        }
        // The relief's thread makes it the current generation once it runs, so that a failed
        // spawn leaves the writing thread in place.
        let generation = self.generations.fetch_add(1, Ordering::AcqRel) + 1;
        self.counters.reliefs.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "the trace writer fell behind at idle priority; a writer at normal priority takes over"
        );
        self.start_thread(generation, WriterPriority::Normal);
    }

    fn start_thread(self: &Arc<Self>, generation: u64, priority: WriterPriority) {
        let writer = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("emguard-trace-writer".into())
            .spawn(move || {
                writer.generation.store(generation, Ordering::Release);
                if let Err(e) = priority.apply_to_current_thread() {
                    tracing::warn!(error = %e, ?priority, "the trace writer runs at normal priority");
                }
                // A runtime of the thread's own, for waiting on the queue with a timer; the
                // database calls block this thread only.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("a current-thread runtime builds");
                runtime.block_on(writer.run(generation, priority));
            });
        match spawned {
            Ok(_) => {}
            // Without its first thread the tracer would only drop traces.
            Err(e) if generation == 0 => panic!("spawning the trace writer thread: {e}"),
            Err(e) => {
                // The thread writing now goes on at its priority.
                tracing::error!(error = %e, "spawning a relief trace writer thread failed");
                self.relieving.store(false, Ordering::Release);
            }
        }
    }

    /// Writes batches until the queue closes (every tracer dropped) or a newer generation
    /// takes over.
    async fn run(&self, generation: u64, mut priority: WriterPriority) {
        let mut calm_since: Option<Instant> = None;
        // Held for the thread's whole tenure, not taken again per batch: a starved idle
        // thread queued for the lock would be handed it and block its relief until its next
        // turn.
        let mut inbox = self.inbox.lock().await;
        loop {
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            let max_batch = match priority {
                WriterPriority::Idle => self.max_batch.min(IDLE_MAX_BATCH),
                WriterPriority::Normal => self.max_batch,
            };
            let Some(batch) = self.next_batch(&mut inbox, max_batch).await else {
                if let Some(exporter) = &inbox.exporter {
                    exporter.flush();
                }
                return;
            };
            self.write(batch, &inbox).await;
            // A relief writer goes back to idle priority once the queue has stayed short.
            if priority == WriterPriority::Normal && self.priority == WriterPriority::Idle {
                let short = inbox.received.len() <= inbox.received.max_capacity() / 8;
                let since = *calm_since.get_or_insert_with(Instant::now);
                if !short {
                    calm_since = None;
                } else if since.elapsed() >= CALM_FOR
                    && WriterPriority::Idle.apply_to_current_thread().is_ok()
                {
                    priority = WriterPriority::Idle;
                    self.relieving.store(false, Ordering::Release);
                    tracing::info!("the trace writer is back at idle priority");
                }
            }
        }
    }

    /// The next batch to commit (None: the queue has closed and is empty); applies the
    /// retention when it is due.
    async fn next_batch(&self, inbox: &mut Inbox, max_batch: usize) -> Option<Batch> {
        if self.retention.is_some() && inbox.next_prune.is_none() {
            // At start, before the first batch, then every PRUNE_EVERY.
            self.prune();
            inbox.next_prune = Some(Instant::now() + PRUNE_EVERY);
        }
        let first = loop {
            match inbox.next_prune {
                Some(at) => match tokio::time::timeout_at(at, inbox.received.recv()).await {
                    Ok(message) => break message?,
                    Err(_elapsed) => {
                        self.prune();
                        inbox.next_prune = Some(Instant::now() + PRUNE_EVERY);
                    }
                },
                None => break inbox.received.recv().await?,
            }
        };
        let mut batch = Batch::default();
        batch.add(first);
        drain_into(&mut batch, &mut inbox.received, max_batch);
        // Nobody waits for this batch: linger a little so that, under steady load, one
        // transaction carries many traces (fewer syscalls and WAL pages) instead of one each.
        // The thread sleeps through the linger rather than waiting on the queue, so the traces
        // queued meanwhile do not each wake it (a wake-up is a futex call in the handler and a
        // context switch, per request). A batch someone waits for (durable mode, a flush) is
        // written at once; in durable mode every trace has a waiter, so it never lingers.
        if batch.records.len() < max_batch && batch.committed.is_empty() && batch.flushes.is_empty()
        {
            tokio::time::sleep(LINGER).await;
            drain_into(&mut batch, &mut inbox.received, max_batch);
        }
        Some(batch)
    }

    async fn write(&self, batch: Batch, inbox: &Inbox) {
        if !batch.records.is_empty() {
            self.commit(&batch.records).await;
        }
        for done in batch.committed {
            // The waiter may have gone (client disconnected): nothing to tell.
            let _ = done.send(());
        }
        if let Some(exporter) = &inbox.exporter {
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

/// Adds what is queued to the batch, up to `max_batch` traces.
fn drain_into(batch: &mut Batch, received: &mut mpsc::Receiver<Message>, max_batch: usize) {
    while batch.records.len() < max_batch {
        match received.try_recv() {
            Ok(message) => batch.add(message),
            Err(_) => break,
        }
    }
}
