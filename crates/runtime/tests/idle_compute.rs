//! `IdleComputePool`: the tensor work it runs is done by threads at `SCHED_IDLE` only, candle's
//! own process-wide workers included. One test, in its own process: candle's workers are made
//! once per process, and this test must be the first to touch them.
#![cfg(target_os = "linux")]

use candle_core::{Device, Tensor};
use emguard_runtime::priority::{CandleWorkers, IdleComputePool};

struct ThreadInfo {
    name: String,
    idle: bool,
    /// User + system time, in clock ticks.
    cpu_ticks: u64,
}

fn threads() -> Vec<ThreadInfo> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let tid: i32 = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let cpu_ticks = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
        // SAFETY: queries the policy of a thread id of this process; no memory is passed.
        let idle = unsafe { libc::sched_getscheduler(tid) } == libc::SCHED_IDLE;
        out.push(ThreadInfo {
            name: name.trim_end().to_string(),
            idle,
            cpu_ticks,
        });
    }
    out
}

fn is_pool_thread(name: &str) -> bool {
    name.starts_with("candle-bp-") || name.starts_with("emguard-idle-")
}

/// About 1.5 s of CPU on one core: matmuls (split over the current rayon pool) and element-wise
/// steps over 1M elements (split over candle's own workers).
fn tensor_work() -> f32 {
    let a = Tensor::arange(0f32, 1024.0 * 1024.0, &Device::Cpu)
        .unwrap()
        .reshape((1024, 1024))
        .unwrap();
    let a = (a / (1024.0 * 1024.0)).unwrap();
    let mut sum = 0.0;
    for _ in 0..12 {
        let b = a.matmul(&a).unwrap().tanh().unwrap().exp().unwrap();
        sum += b.sum_all().unwrap().to_scalar::<f32>().unwrap();
    }
    sum
}

#[test]
fn tensor_work_runs_only_on_idle_threads() {
    let pool = IdleComputePool::new(None).unwrap();
    assert_eq!(pool.candle_workers(), CandleWorkers::StartedIdle);

    let before = threads();
    let inside = pool.run(tensor_work);
    let after = threads();

    let workers: Vec<&ThreadInfo> = after.iter().filter(|t| is_pool_thread(&t.name)).collect();
    let expected = 2 * candle_core::utils::get_num_threads() - 1;
    assert_eq!(
        workers.len(),
        expected,
        "the pool's threads and candle's workers"
    );
    for t in &workers {
        assert!(t.idle, "{} runs at normal priority", t.name);
    }

    // Where the CPU time went: (nearly) all of it on the idle threads.
    let ticks = |list: &[ThreadInfo], pool_only: bool| -> u64 {
        list.iter()
            .filter(|t| !pool_only || is_pool_thread(&t.name))
            .map(|t| t.cpu_ticks)
            .sum()
    };
    let spent = ticks(&after, false) - ticks(&before, false);
    let spent_idle = ticks(&after, true) - ticks(&before, true);
    assert!(
        spent >= 20,
        "the work took {spent} ticks: too little to tell"
    );
    assert!(
        spent_idle * 100 >= spent * 95,
        "{spent_idle} of {spent} ticks on idle threads"
    );

    // The same numbers as the work done on the calling thread's pools.
    let outside = tensor_work();
    assert!(
        (inside - outside).abs() <= outside.abs() * 1e-5,
        "{inside} vs {outside}"
    );

    // A second pool finds candle's workers running and says so.
    let second = IdleComputePool::new(None).unwrap();
    assert_eq!(second.candle_workers(), CandleWorkers::AlreadyRunning);
}
