//! Data parallelism for the runtime's own work (the Q8_0 matmuls, attention, sampling,
//! activations) on one worker pool of its own.
//!
//! Why not candle's pool (or rayon): a step of the model is hundreds of short parallel calls,
//! so waiting threads must spin a little to pick up the next call quickly; but candle's caller
//! spins without bound for its slowest worker, so when another process takes a core (a busy
//! gateway, a build) a descheduled worker stalls every call for a scheduler tick, and the
//! spinning caller takes CPU from the very thread it waits for: decode fell by 10x with one
//! core busy. Here every wait spins briefly, then yields the core, then sleeps; and a call
//! does not wait for workers that have not started it: the caller runs whatever items are
//! left itself, and only waits for items already taken.
//!
//! Every item is computed by exactly one thread, and nothing is reduced across items: results
//! do not depend on the number of threads or on scheduling.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Below this many items the work runs on the calling thread: waking the pool costs more than
/// it saves.
const MIN_PARALLEL_ITEMS: usize = 4;
/// A waiting thread spins this long (the next call usually comes within microseconds)...
const SPIN: Duration = Duration::from_micros(30);
/// ...then yields its core to anything runnable for this long, then sleeps.
const YIELD: Duration = Duration::from_micros(300);
/// Set in `joined` once the caller has stopped waiting for more workers to join the call.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// One parallel call: `run(data, range)` over `0..n`, taken `chunk` items at a time.
#[derive(Clone, Copy)]
struct Job {
    run: unsafe fn(*const (), std::ops::Range<usize>),
    data: *const (),
    n: usize,
    chunk: usize,
    caller: *const Thread,
}

struct Shared {
    /// Bumped for every call; workers wait for it to change.
    generation: AtomicUsize,
    /// Workers that joined the current call (+ `CLOSED` once the caller closed it).
    joined: AtomicUsize,
    /// Workers that joined and are done with it.
    finished: AtomicUsize,
    /// The next item to take.
    cursor: AtomicUsize,
    /// Written by the caller while the call is closed, read by workers that joined it.
    job: UnsafeCell<Job>,
    /// An item panicked on a worker (the caller panics in turn).
    worker_panicked: AtomicBool,
}

// SAFETY: `job` is written only while `joined` is CLOSED and no joined worker is running
// (the caller waits for them), and read only by workers between joining and finishing.
unsafe impl Sync for Shared {}

struct Pool {
    shared: &'static Shared,
    workers: Vec<Thread>,
    /// One call at a time (several models or engines may share the pool).
    call: Mutex<()>,
}

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Threads in all (the caller included): `CANDLE_NUM_THREADS` as for candle's own kernels,
/// else one per core.
fn thread_count() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            generation: AtomicUsize::new(0),
            joined: AtomicUsize::new(CLOSED),
            finished: AtomicUsize::new(0),
            cursor: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            job: UnsafeCell::new(Job {
                run: |_, _| {},
                data: std::ptr::null(),
                n: 0,
                chunk: 1,
                caller: std::ptr::null(),
            }),
        }));
        let workers = (1..thread_count())
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("emguard-worker-{i}"))
                    .spawn(move || worker(shared))
                    .expect("spawning a runtime worker thread")
                    .thread()
                    .clone()
            })
            .collect();
        Pool {
            shared,
            workers,
            call: Mutex::new(()),
        }
    })
}

/// Wait until `done()`: spin, then yield, then park (woken by `unpark`).
fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    let mut rounds = 0u32;
    while !done() {
        rounds += 1;
        if !rounds.is_multiple_of(64) {
            std::hint::spin_loop();
            continue;
        }
        let waited = start.elapsed();
        if waited < SPIN {
            std::hint::spin_loop();
        } else if waited < YIELD {
            std::thread::yield_now();
        } else {
            // `unpark` after the change we wait for is never lost (park's token).
            std::thread::park();
        }
    }
}

fn worker(shared: &'static Shared) {
    IS_WORKER.with(|w| w.set(true));
    let mut seen = 0;
    loop {
        wait_until(|| shared.generation.load(Ordering::Acquire) != seen);
        seen = shared.generation.load(Ordering::Acquire);
        if shared.joined.fetch_add(1, Ordering::AcqRel) & CLOSED != 0 {
            continue; // The caller finished without us.
        }
        // SAFETY: joined while open: the caller does not touch `job` until we finish.
        let job = unsafe { *shared.job.get() };
        let items = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            take_items(shared, &job);
        }));
        if items.is_err() {
            shared.worker_panicked.store(true, Ordering::Relaxed);
        }
        // The job's caller is still waiting for us: its handle is alive.
        let caller = unsafe { (*job.caller).clone() };
        shared.finished.fetch_add(1, Ordering::AcqRel);
        caller.unpark();
    }
}

fn take_items(shared: &Shared, job: &Job) {
    loop {
        let start = shared.cursor.fetch_add(job.chunk, Ordering::Relaxed);
        if start >= job.n {
            return;
        }
        // SAFETY: `data` is the caller's closure, alive until every joined worker finished.
        unsafe { (job.run)(job.data, start..job.n.min(start + job.chunk)) };
    }
}

/// Run `f(i)` for every `i` in `0..n`, spread over the pool (the calling thread included).
pub(crate) fn for_each_index<F: Fn(usize) + Sync>(n: usize, f: F) {
    let pool = pool();
    if n < MIN_PARALLEL_ITEMS || pool.workers.is_empty() || IS_WORKER.with(Cell::get) {
        (0..n).for_each(f);
        return;
    }
    /// # Safety
    /// `data` is a live `&F`.
    unsafe fn run<F: Fn(usize)>(data: *const (), range: std::ops::Range<usize>) {
        // SAFETY: the caller guarantees it.
        let f = unsafe { &*(data as *const F) };
        range.for_each(f);
    }
    let _one_call = pool.call.lock().unwrap_or_else(|e| e.into_inner());
    let shared = pool.shared;
    let caller = std::thread::current();
    let job = Job {
        run: run::<F>,
        data: &f as *const F as *const (),
        n,
        // About 8 takes per thread: a thread that is descheduled holds up the call by at most
        // one chunk, and the cursor is not contended.
        chunk: n.div_ceil((pool.workers.len() + 1) * 8).max(1),
        caller: &caller,
    };
    // SAFETY: the call is closed (`joined` has CLOSED) and the previous call's joined workers
    // have all finished: nobody reads `job` now.
    unsafe { *shared.job.get() = job };
    shared.cursor.store(0, Ordering::Relaxed);
    shared.finished.store(0, Ordering::Relaxed);
    shared.joined.store(0, Ordering::Release);
    shared.generation.fetch_add(1, Ordering::Release);
    for w in &pool.workers {
        w.unpark();
    }
    // Declared after `f` and `caller`: dropped before them, even if `f` panics here.
    let _close = CloseOnDrop(shared);
    take_items(shared, &job);
}

/// Closes the call in progress and waits for the workers that joined it (they are finishing
/// items they took); workers that have not joined yet never will.
struct CloseOnDrop(&'static Shared);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let shared = self.0;
        let joined = shared.joined.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED;
        wait_until(|| shared.finished.load(Ordering::Acquire) == joined);
        if shared.worker_panicked.swap(false, Ordering::Relaxed) && !std::thread::panicking() {
            panic!("a runtime worker thread panicked (see its message above)");
        }
    }
}

/// Run `f(i, &mut items[i])` for every item, spread over the pool.
pub(crate) fn for_each_mut<T: Send>(items: &mut [T], f: impl Fn(usize, &mut T) + Sync) {
    let base = items.as_mut_ptr() as usize;
    let len = items.len();
    for_each_index(len, |i| {
        assert!(i < len);
        // SAFETY: every index is visited exactly once, so each `&mut` is exclusive; `items`
        // outlives the call.
        let item = unsafe { &mut *(base as *mut T).add(i) };
        f(i, item);
    });
}

/// Run `f(row_index, row)` for every `row_len`-long row of `data`, in parallel.
pub(crate) fn for_each_row(data: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let mut rows: Vec<&mut [f32]> = data.chunks_exact_mut(row_len).collect();
    for_each_mut(&mut rows, |i, row| f(i, row));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_visited_once_with_its_index() {
        for n in [0, 1, 3, 4, 5, 17, 1000, 100_000] {
            let mut items: Vec<usize> = vec![0; n];
            for_each_mut(&mut items, |i, item| *item += i + 1);
            assert!(items.iter().enumerate().all(|(i, &v)| v == i + 1), "{n}");
        }
        let mut rows = vec![1f32; 12];
        for_each_row(&mut rows, 4, |i, row| {
            row.iter_mut().for_each(|v| *v *= i as f32)
        });
        assert_eq!(rows, [0., 0., 0., 0., 1., 1., 1., 1., 2., 2., 2., 2.]);
    }

    #[test]
    fn calls_from_several_threads_at_once_each_see_all_their_items() {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for round in 0..200 {
                        let sum = AtomicUsize::new(0);
                        let n = 50 + t * 7 + round % 13;
                        for_each_index(n, |i| {
                            sum.fetch_add(i + 1, Ordering::Relaxed);
                        });
                        assert_eq!(sum.into_inner(), n * (n + 1) / 2);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
