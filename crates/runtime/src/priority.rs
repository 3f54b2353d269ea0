//! Background threads that must never slow the work in front of them: the gateway's trace
//! writer and its monitor's judge run at Linux's `SCHED_IDLE`, so they get a core only when
//! no normal thread wants it and a waking request handler preempts them at once. A thread
//! switched to `SCHED_IDLE` cannot switch back without privileges; threads it starts inherit
//! the policy (so do a thread pool's workers when this thread creates the pool).

use std::io;

/// Moves the calling thread (only it) to `SCHED_IDLE` on Linux; elsewhere does nothing.
pub fn make_current_thread_idle() -> io::Result<()> {
    imp::make_current_thread_idle()
}

/// Threads for background tensor work (the monitor's judge) that all run at `SCHED_IDLE`.
///
/// Lowering the calling thread is not enough for candle: a matmul splits its work over the
/// current rayon pool (the global one, at normal priority, unless a pool is installed), and
/// large element-wise operations over candle's own process-wide worker threads (`candle-bp-*`),
/// which keep the priority of the thread that made them. Measured on the gateway with the local
/// judge in its monitor: p99 +3.7 ms at 1,000 requests/s with those threads at normal priority
/// (docs/benchmarks.md, "Review and monitor on the request path").
pub struct IdleComputePool {
    pool: rayon::ThreadPool,
    candle_workers: CandleWorkers,
}

/// Who made candle's process-wide worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandleWorkers {
    /// Made now by an idle thread: they run at `SCHED_IDLE`.
    StartedIdle,
    /// Made earlier by other candle work in this process (a local model loaded first): they
    /// keep that thread's priority, and are shared with that work.
    AlreadyRunning,
}

impl IdleComputePool {
    /// Makes the pool, on `cpus` (CPU ids) if given, else wherever the process may run. Call it
    /// before other candle work in the process if candle's own workers must be idle (and on
    /// `cpus`) too: whoever touches them first decides their priority and CPUs, and candle work
    /// made after this shares them (its large element-wise steps then wait for spare CPU).
    ///
    /// Why CPUs: even at `SCHED_IDLE`, tensor work on a request handler's core costs the
    /// handler its caches; the gateway's p99 rose 0.9 ms at 1,000 requests/s with the judge
    /// idle on the same core (docs/benchmarks.md).
    pub fn new(cpus: Option<&[usize]>) -> io::Result<IdleComputePool> {
        let cpus: Option<Vec<usize>> = cpus.map(<[usize]>::to_vec);
        if let Some(cpus) = &cpus {
            // Checked here, where the caller can report it, not in a worker's start.
            check_cpus(cpus)?;
        }
        let candle_workers = if candle_workers_running() {
            CandleWorkers::AlreadyRunning
        } else {
            let cpus = cpus.clone();
            std::thread::Builder::new()
                .name("emguard-idle-start".into())
                .spawn(move || {
                    make_current_thread_idle()?;
                    if let Some(cpus) = &cpus {
                        imp::pin_current_thread(cpus)?;
                    }
                    // Threads inherit the scheduling policy and CPUs of the thread that
                    // creates them.
                    candle_core::utils::barrier_pool();
                    Ok::<_, io::Error>(())
                })?
                .join()
                .map_err(|_| io::Error::other("starting candle's workers panicked"))??;
            CandleWorkers::StartedIdle
        };
        let threads = cpus
            .as_ref()
            .map_or_else(candle_core::utils::get_num_threads, Vec::len);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("emguard-idle-{i}"))
            .start_handler(move |_| {
                if let Err(e) = make_current_thread_idle() {
                    tracing::warn!("an idle compute thread keeps normal priority: {e}");
                }
                if let Some(cpus) = &cpus
                    && let Err(e) = imp::pin_current_thread(cpus)
                {
                    tracing::warn!("an idle compute thread runs off its CPUs {cpus:?}: {e}");
                }
            })
            .build()
            .map_err(io::Error::other)?;
        Ok(IdleComputePool {
            pool,
            candle_workers,
        })
    }

    /// Runs `work` on the pool: its candle matmuls split over the pool's idle threads.
    pub fn run<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }

    pub fn candle_workers(&self) -> CandleWorkers {
        self.candle_workers
    }
}

/// `cpus` names at least one CPU, and a thread can be kept on them (a probe thread tries).
fn check_cpus(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the list of CPUs is empty",
        ));
    }
    let probe = cpus.to_vec();
    std::thread::Builder::new()
        .name("emguard-cpu-probe".into())
        .spawn(move || imp::pin_current_thread(&probe))?
        .join()
        .map_err(|_| io::Error::other("the CPU probe panicked"))?
        .map_err(|e| io::Error::new(e.kind(), format!("CPUs {cpus:?}: {e}")))
}

/// Whether candle's process-wide workers exist (their thread names are `candle-bp-N`).
fn candle_workers_running() -> bool {
    imp::thread_names()
        .iter()
        .any(|n| n.starts_with("candle-bp-"))
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;

    pub(super) fn make_current_thread_idle() -> io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is the calling
        // thread, and the call changes nothing but its scheduling policy.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Keeps the calling thread (only it) on `cpus`.
    pub(super) fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
        // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET only writes inside `set`,
        // for ids below CPU_SETSIZE (checked).
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("CPU {cpu} is out of range"),
                ));
            }
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
        let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The names of this process's threads.
    pub(super) fn thread_names() -> Vec<String> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim_end().to_string())
            .collect()
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn make_current_thread_idle() -> std::io::Result<()> {
        Ok(())
    }

    pub(super) fn thread_names() -> Vec<String> {
        Vec::new()
    }

    pub(super) fn pin_current_thread(_cpus: &[usize]) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn current_thread_is_idle() -> bool {
        // SAFETY: no arguments but the calling thread's id (0).
        unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
    }

    #[test]
    fn only_the_calling_thread_becomes_idle() {
        let idle = std::thread::spawn(|| {
            make_current_thread_idle().unwrap();
            current_thread_is_idle()
        })
        .join()
        .unwrap();
        assert!(idle);
        assert!(!current_thread_is_idle(), "only the calling thread changes");
    }
}
