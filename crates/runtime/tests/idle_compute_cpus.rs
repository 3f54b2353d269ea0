//! `IdleComputePool` on named CPUs (its own process: the first pool made in a process makes
//! candle's workers, which `idle_compute.rs` checks).
#![cfg(target_os = "linux")]

use emguard_runtime::priority::IdleComputePool;

/// The CPUs the calling thread may run on.
fn current_affinity() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(rc, 0);
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

#[test]
fn a_pool_on_named_cpus_keeps_its_threads_there_and_refuses_cpus_it_cannot_use() {
    let pinned = IdleComputePool::new(Some(&[0])).unwrap();
    let (cpus, idle) = pinned.run(|| {
        // SAFETY: no arguments but the calling thread's id (0).
        let idle = unsafe { libc::sched_getscheduler(0) } == libc::SCHED_IDLE;
        (current_affinity(), idle)
    });
    assert_eq!(cpus, vec![0]);
    assert!(idle);

    for bad in [&[][..], &[100_000], &[1000]] {
        let err = IdleComputePool::new(Some(bad))
            .err()
            .unwrap_or_else(|| panic!("CPUs {bad:?} were accepted"));
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
}
