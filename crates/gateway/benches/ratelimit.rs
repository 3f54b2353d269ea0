//! Cost of one rate-limit check, emguard's limiter beside the governor crate in the same run.
//!
//! Workload: 10,000 API keys at 6,000 requests/min (burst 100), checked round-robin, on one
//! thread and on two threads (this machine has two cores), best of three rounds; then the
//! Redis backend against a private redis-server: sequential latency per admit and throughput
//! with 32 tasks.
//! Run: `bench/ratelimit.sh` (or `cargo bench -p emguard-gateway --bench ratelimit`).

use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use emguard_gateway::ratelimit::{Quota, RateLimitBackend, RateLimiter};
use governor::DefaultKeyedRateLimiter;

const KEYS: usize = 10_000;
const CHECKS_PER_THREAD: usize = 2_000_000;
const PER_MINUTE: u32 = 6000;

fn main() {
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("key-{i:05}")).collect());
    let quota = Quota {
        requests_per_minute: Some(PER_MINUTE),
        tokens_per_minute: None,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");

    println!("rate-limit check, {KEYS} keys at {PER_MINUTE}/min, ns per check (lower is better)");
    println!("| threads | emguard local | governor (dashmap) |");
    println!("|---|---|---|");
    for threads in [1, 2] {
        // Best of three interleaved rounds, fresh limiters each time: the machine is shared.
        let (mut emguard_ns, mut governor_ns) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            let emguard = runtime
                .block_on(RateLimiter::connect(&RateLimitBackend::Local))
                .unwrap();
            let emguard_keys = Arc::clone(&keys);
            emguard_ns = emguard_ns.min(per_check_ns(threads, move |i| {
                let _ = futures_ready(emguard.admit(&emguard_keys[i % KEYS], &quota));
            }));
            let governor = Arc::new(DefaultKeyedRateLimiter::<String>::dashmap(
                governor::Quota::per_minute(NonZeroU32::new(PER_MINUTE).unwrap())
                    .allow_burst(NonZeroU32::new(PER_MINUTE / 60).unwrap()),
            ));
            let governor_keys = Arc::clone(&keys);
            governor_ns = governor_ns.min(per_check_ns(threads, move |i| {
                let _ = governor.check_key(&governor_keys[i % KEYS]);
            }));
        }
        println!("| {threads} | {emguard_ns:.0} | {governor_ns:.0} |");
    }

    match RedisServer::start() {
        Some(server) => runtime.block_on(redis_figures(&server, &keys, quota)),
        None => println!("redis: SKIPPED (redis-server not installed)"),
    }
}

/// The local limiter never awaits: poll its future once.
fn futures_ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => unreachable!("the local limiter does not await"),
    }
}

/// `check(i)` checks key `i % KEYS`; threads walk the keys in different orders.
fn per_check_ns(threads: usize, check: impl Fn(usize) + Send + Clone + 'static) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let check = check.clone();
            std::thread::spawn(move || {
                for i in 0..CHECKS_PER_THREAD {
                    check(i * 7919 + t);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    // Wall time per check per thread: what one request waits.
    started.elapsed().as_nanos() as f64 / CHECKS_PER_THREAD as f64
}

async fn redis_figures(server: &RedisServer, keys: &Arc<Vec<String>>, quota: Quota) {
    let backend = RateLimitBackend::Redis {
        url: format!("redis://127.0.0.1:{}", server.port),
        prefix: "bench".into(),
    };
    let limiter = RateLimiter::connect(&backend).await.unwrap();
    let mut latencies = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        let started = Instant::now();
        let _ = limiter.admit(&keys[i % keys.len()], &quota).await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "redis admit, one at a time: p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        at(1.0)
    );

    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let limiter = limiter.clone();
            let keys = Arc::clone(keys);
            tokio::spawn(async move {
                for i in 0..2_000 {
                    let _ = limiter
                        .admit(&keys[(i * 32 + t) % keys.len()], &quota)
                        .await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = 64_000.0 / started.elapsed().as_secs_f64();
    println!("redis admit, 32 concurrent tasks on one connection: {rate:.0} admits/s");
    assert_eq!(limiter.stats().backend_errors, 0);
}

/// A private redis-server without persistence, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let server = RedisServer { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
