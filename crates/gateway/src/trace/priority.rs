//! The CPU priority of the trace writer thread.
//!
//! The writer does a few milliseconds of CPU work at a time: a batch of inserts, and with
//! SQLite now and then a checkpoint (copying the WAL into the database file). At normal
//! priority, when it wakes on a core that also answers requests, it can preempt the request
//! handler and keep the core until it is done or the next scheduler tick (4 ms at 250 Hz):
//! every request that arrives meanwhile waits (docs/benchmarks.md, "Gateway": the p99 at
//! 5,000 requests/s).
//!
//! [`WriterPriority::Idle`] switches the thread to Linux's `SCHED_IDLE`
//! ([`emguard_runtime::priority`]): it runs only when no
//! normal thread wants the core, and a waking request handler preempts it at once. The price:
//! on a core that request handling keeps busy, the thread gets a very small share (a weight of
//! 3 against 1,024) and falls behind. Measured on one core, an idle writer alone let the queue
//! drop 1.5% of the traces at 10,000 requests/s and 27% at 12,000, where one at normal
//! priority dropped none. An unprivileged process cannot switch a thread back from
//! `SCHED_IDLE`, so the writer module starts a new writer at normal priority when the queue
//! passes an eighth full (see [`super::writer`]).

use std::io;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriterPriority {
    /// The scheduler shares the core fairly between the thread and request handling.
    #[default]
    Normal,
    /// The thread runs only when the core is otherwise idle (`SCHED_IDLE` on Linux; elsewhere
    /// as `Normal`).
    Idle,
}

impl WriterPriority {
    /// Gives the calling thread this priority.
    pub(crate) fn apply_to_current_thread(self) -> io::Result<()> {
        match self {
            // Threads start at normal priority; an unprivileged one could not return to it.
            WriterPriority::Normal => Ok(()),
            WriterPriority::Idle => emguard_runtime::priority::make_current_thread_idle(),
        }
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
    fn idle_applies_to_the_calling_thread_only_and_normal_changes_nothing() {
        let on_thread = |priority: WriterPriority| {
            std::thread::spawn(move || {
                priority.apply_to_current_thread().unwrap();
                current_thread_is_idle()
            })
            .join()
            .unwrap()
        };
        assert!(on_thread(WriterPriority::Idle));
        assert!(!on_thread(WriterPriority::Normal));
        assert!(!current_thread_is_idle(), "only the calling thread changes");
    }

    #[test]
    fn parses_from_lowercase_names() {
        let parsed: Vec<WriterPriority> = serde_json::from_str(r#"["normal","idle"]"#).unwrap();
        assert_eq!(parsed, [WriterPriority::Normal, WriterPriority::Idle]);
    }
}
