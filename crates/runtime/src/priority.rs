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
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn make_current_thread_idle() -> std::io::Result<()> {
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
