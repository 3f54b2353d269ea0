//! The trace writer against real SQLite files (and a real PostgreSQL): group commit, the
//! bounded queue, retention, and durability across a `kill -9` of the writing process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emguard_gateway::trace::WriterPriority;
use emguard_gateway::trace::{
    ContentLogging, GatewayStore, TraceOptions, TraceQuery, TraceRecord, Tracer,
};
use emguard_testkit::TestPostgres;
use serde_json::json;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn trace(id: &str, time: f64) -> TraceRecord {
    TraceRecord {
        id: id.to_string(),
        time,
        key_id: Some("key_test".into()),
        model: "smollm2".into(),
        version: Some("v1".into()),
        backend: Some("local:smollm2-135m-instruct".into()),
        stream: false,
        request: ContentLogging::Hashed.keep("{\"messages\":[]}"),
        response: ContentLogging::Full.keep("{\"choices\":[]}"),
        prompt_tokens: Some(5),
        completion_tokens: Some(7),
        latency_ms: 3.25,
        ttft_ms: None,
        upstream_ms: None,
        status: 200,
        filters: json!([]),
        attempts: json!([]),
        error: None,
    }
}

struct Db {
    _dir: tempfile::TempDir,
    path: String,
    store: Arc<GatewayStore>,
}

fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("traces.sqlite")
        .to_str()
        .unwrap()
        .to_string();
    let store = Arc::new(GatewayStore::open(&path).unwrap());
    Db {
        _dir: dir,
        path,
        store,
    }
}

/// Holds SQLite's write lock from another connection, so the writer blocks in its
/// transaction until released.
fn lock_writes(path: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

/// Waits (up to a minute, then fails) for `cond`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn count(store: &GatewayStore) -> usize {
    store
        .traces(&TraceQuery {
            limit: 1_000_000,
            ..TraceQuery::default()
        })
        .unwrap()
        .len()
}

#[test]
fn content_logging_keeps_full_hashed_or_nothing() {
    assert_eq!(ContentLogging::Full.keep("abc").as_deref(), Some("abc"));
    assert_eq!(
        ContentLogging::Hashed.keep("abc").as_deref(),
        Some("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(ContentLogging::Off.keep("abc"), None);
    let modes: Vec<ContentLogging> = serde_json::from_str(r#"["full","hashed","off"]"#).unwrap();
    assert_eq!(
        modes,
        [
            ContentLogging::Full,
            ContentLogging::Hashed,
            ContentLogging::Off
        ]
    );
}

#[test]
fn concurrent_durable_records_share_transactions() {
    const N: usize = 300;
    const MAX_BATCH: usize = 64;
    let db = sqlite_db();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tracer = Tracer::start(
        Arc::clone(&db.store),
        TraceOptions {
            max_batch: MAX_BATCH,
            ..TraceOptions::default()
        },
    );
    // The writer takes its first batch and is held up by the lock; the other records pile up
    // in the queue. Once released, the queue goes in as few transactions as max_batch allows.
    let lock = lock_writes(&db.path);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let tracer = tracer.clone();
            let store = Arc::clone(&db.store);
            runtime.spawn(async move {
                let id = format!("chatcmpl-{i}");
                tracer
                    .record_durable(trace(&id, 1000.0 + i as f64))
                    .await
                    .unwrap();
                // Acknowledged means committed: another reader sees it now.
                tokio::task::spawn_blocking(move || store.trace(&id).unwrap().is_some())
                    .await
                    .unwrap()
            })
        })
        .collect();
    wait_for("every record but the first batch queued", || {
        tracer.stats().queued as usize >= N - MAX_BATCH
    });
    assert_eq!(
        tracer.stats().written,
        0,
        "nothing commits while the lock is held"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    for task in tasks {
        assert!(
            runtime.block_on(task).unwrap(),
            "a trace acknowledged before it was readable"
        );
    }
    let stats = tracer.stats();
    assert_eq!(stats.written, N as u64);
    assert_eq!(stats.dropped, 0);
    // At release at least N - MAX_BATCH records sat in the queue: they commit in full
    // batches. The others (the writer's first batch, any send not yet done) take at most one
    // transaction each. So 300 records take 5 (max_batch) to 68 transactions, 6 in practice.
    let queued_together = N - MAX_BATCH;
    let most = (MAX_BATCH + queued_together.div_ceil(MAX_BATCH)) as u64;
    let least = N.div_ceil(MAX_BATCH) as u64;
    assert!((least..=most).contains(&stats.batches), "{stats:?}");
    assert_eq!(count(&db.store), N);
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let db = sqlite_db();
    let tracer = Tracer::start(
        Arc::clone(&db.store),
        TraceOptions {
            queue: 8,
            max_batch: 8,
            ..TraceOptions::default()
        },
    );
    let lock = lock_writes(&db.path);
    // The writer takes at most one batch (8), then blocks on the lock; the queue holds 8
    // more. Every other record is dropped at once: this loop finishes while the writer is
    // still blocked, which a blocking record() could not.
    for i in 0..100 {
        tracer.record(trace(&format!("q{i}"), i as f64));
    }
    let stats = tracer.stats();
    assert!(stats.dropped >= 100 - 16, "{stats:?}");
    assert_eq!(stats.written, 0);
    lock.execute_batch("ROLLBACK").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(tracer.flush());
    let stats = tracer.stats();
    assert_eq!(stats.written + stats.dropped, 100, "{stats:?}");
    assert_eq!(stats.queued, 0);
    assert_eq!(count(&db.store) as u64, stats.written);
}

#[test]
fn a_failing_store_keeps_the_traces_and_retries() {
    let db = sqlite_db();
    let tracer = Tracer::start(Arc::clone(&db.store), TraceOptions::default());
    // A trigger makes every insert fail, as a full disk or a lost server would.
    let admin = rusqlite::Connection::open(&db.path).unwrap();
    admin
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON gateway_traces
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .unwrap();
    for i in 0..10 {
        tracer.record(trace(&format!("f{i}"), i as f64));
    }
    wait_for("two failed transactions", || tracer.stats().failed >= 2);
    assert_eq!(tracer.stats().written, 0);
    admin.execute_batch("DROP TRIGGER refuse").unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(tracer.flush());
    let stats = tracer.stats();
    assert_eq!(stats.written, 10, "{stats:?}");
    assert_eq!(stats.dropped, 0);
    assert_eq!(count(&db.store), 10);
}

#[test]
fn retention_deletes_older_traces_at_start() {
    let db = sqlite_db();
    let day = 86_400.0;
    let t = now();
    db.store
        .insert_traces(&[
            trace("old-30d", t - 30.0 * day),
            trace("old-8d", t - 8.0 * day),
            trace("recent-6d", t - 6.0 * day),
            trace("recent-1h", t - 3600.0),
        ])
        .unwrap();
    let tracer = Tracer::start(
        Arc::clone(&db.store),
        TraceOptions {
            retention_days: Some(7),
            ..TraceOptions::default()
        },
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(tracer.record_durable(trace("new", t)))
        .unwrap();
    let mut left: Vec<String> = db
        .store
        .traces(&TraceQuery::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    left.sort();
    assert_eq!(left, ["new", "recent-1h", "recent-6d"]);
}

#[test]
fn postgres_durable_records_commit() {
    let Some(pg) = TestPostgres::start("postgres_durable_records_commit") else {
        return;
    };
    let store = Arc::new(GatewayStore::open(&pg.url).unwrap());
    let tracer = Tracer::start(Arc::clone(&store), TraceOptions::default());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let tracer = tracer.clone();
                tokio::spawn(async move {
                    tracer
                        .record_durable(trace(&format!("pg{i}"), i as f64))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    });
    assert_eq!(tracer.stats().written, 200);
    assert_eq!(count(&store), 200);
    assert_eq!(store.trace("pg7").unwrap(), Some(trace("pg7", 7.0)));
    // Dropping the last handles on an async worker thread must not panic (the PostgreSQL
    // client blocks on a runtime of its own when it closes).
    runtime.block_on(async move {
        drop(tracer);
        drop(store);
    });
}

const CHILD_DB: &str = "EMGUARD_TRACE_KILL_CHILD_DB";

/// A writer process for `acknowledged_traces_survive_kill_9`: records durable traces, many at
/// once, forever, printing `ACK <id>` for each one acknowledged.
#[test]
#[ignore = "child process of acknowledged_traces_survive_kill_9"]
fn durable_writer_child() {
    let path = std::env::var(CHILD_DB).expect("run by acknowledged_traces_survive_kill_9");
    let store = Arc::new(GatewayStore::open(&path).unwrap());
    let tracer = Tracer::start(store, TraceOptions::default());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for wave in 0.. {
            let tasks: Vec<_> = (0..64)
                .map(|i| {
                    let tracer = tracer.clone();
                    tokio::spawn(async move {
                        let id = format!("w{wave}-{i}");
                        tracer.record_durable(trace(&id, now())).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {id}").unwrap();
                        out.flush().unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    });
}

#[test]
fn acknowledged_traces_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durable_writer_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    while acked.len() < 2000 {
        let line = lines.next().expect("the child ended early").unwrap();
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.push(id.to_string());
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush, no checkpoint
    child.wait().unwrap();
    // Acknowledgements already in the pipe count too.
    for line in lines {
        if let Some(id) = line.unwrap().strip_prefix("ACK ") {
            acked.push(id.to_string());
        }
    }
    let store = GatewayStore::open(path.to_str().unwrap()).unwrap();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| store.trace(id).unwrap().is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged traces lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(count(&store) >= acked.len());
}

/// The scheduling policy (field 41 of /proc/PID/task/TID/stat) of each of this process's
/// threads whose name is `name`.
#[cfg(target_os = "linux")]
fn policies_of_threads_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            if comm.trim_end() != name {
                return None;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // Fields after the name, which ends at the last ')', start at field 3.
            let after_name = &stat[stat.rfind(')')? + 2..];
            after_name.split(' ').nth(41 - 3)?.parse().ok()
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_writer_runs_as_sched_idle() {
    const SCHED_IDLE: u32 = 5;
    let db = sqlite_db();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tracer = Tracer::start(
        Arc::clone(&db.store),
        TraceOptions {
            priority: WriterPriority::Idle,
            ..TraceOptions::default()
        },
    );
    // A committed trace: the writer thread has started and set its policy.
    runtime
        .block_on(tracer.record_durable(trace("chatcmpl-idle", now())))
        .unwrap();
    // The name as the kernel keeps it: 15 bytes. Tests running beside this one have writers
    // at normal priority: one must be idle.
    let policies = policies_of_threads_named("emguard-trace-w");
    assert!(
        policies.contains(&SCHED_IDLE),
        "writer policies {policies:?}, none SCHED_IDLE ({SCHED_IDLE})"
    );
}

/// Pins the calling thread, and the threads it starts afterwards, to the CPU it runs on.
#[cfg(target_os = "linux")]
fn pin_to_this_cpu() {
    // SAFETY: sched_getcpu takes nothing; the cpu_set_t is a plain bit set on the stack,
    // initialised by CPU_ZERO before use, and pid 0 is the calling thread.
    unsafe {
        let cpu = libc::sched_getcpu().max(0) as usize;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_writer_that_falls_behind_is_relieved_and_drops_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const N: usize = 8_000;
    const PER_SECOND: f64 = 2_000.0;
    // This thread, the writer and a spinning thread share one CPU: at idle priority the
    // writer gets almost none of it, as on a core that request handling keeps busy.
    pin_to_this_cpu();
    let db = sqlite_db();
    let spinning = Arc::new(AtomicBool::new(true));
    let spinner = std::thread::spawn({
        let spinning = Arc::clone(&spinning);
        move || {
            while spinning.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
    });
    let tracer = Tracer::start(
        Arc::clone(&db.store),
        TraceOptions {
            queue: 4_000,
            priority: WriterPriority::Idle,
            ..TraceOptions::default()
        },
    );
    // 2,000 traces a second for 4 s: the starved writer lets them pile up; past an eighth of
    // the queue (a quarter second) a writer at normal priority takes over. Without it the
    // queue is full at 2 s and the rest is dropped.
    let started = Instant::now();
    for i in 0..N {
        let due = started + Duration::from_secs_f64(i as f64 / PER_SECOND);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        tracer.record(trace(&format!("chatcmpl-relief-{i}"), now()));
    }
    spinning.store(false, Ordering::Relaxed);
    spinner.join().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(tracer.flush());
    let stats = tracer.stats();
    assert_eq!(stats.reliefs, 1, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.written, N as u64, "{stats:?}");
    assert_eq!(count(&db.store), N);
}
