//! Load helpers shared by the rate-limit tests, and the gateway's view of a real redis-server
//! (`emguard_testkit::RedisServer`).

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, Instant};

use emguard_gateway::ratelimit::{Quota, RateLimitBackend, RateLimiter};
use emguard_testkit::RedisServer;

/// The Redis backend on `server`, its keys under `prefix`.
pub fn redis_backend(server: &RedisServer, prefix: &str) -> RateLimitBackend {
    RateLimitBackend::Redis {
        url: server.url(),
        prefix: prefix.to_owned(),
    }
}

/// A plain connection to `server`, to look at the limiter's keys.
pub fn redis_connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// What each hammering task saw: how many it got through, and the instants just before its
/// first admitted call and just after its last, which bracket the limiter's own clock.
struct Tally {
    admitted: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// `tasks` tasks call `admit` for one key, about once per millisecond each, until `run_for`
/// has passed; returns the admitted count and the span from the first admitted call to the
/// last one.
pub async fn hammer(
    limiters: &[RateLimiter],
    tasks: usize,
    key: &str,
    quota: Quota,
    run_for: Duration,
) -> (u64, Duration) {
    let deadline = Instant::now() + run_for;
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let limiter = limiters[i % limiters.len()].clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut tally = Tally {
                    admitted: 0,
                    first: None,
                    last: None,
                };
                while Instant::now() < deadline {
                    let before = Instant::now();
                    if limiter.admit(&key, &quota).await.is_ok() {
                        tally.admitted += 1;
                        tally.first.get_or_insert(before);
                        tally.last = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                tally
            })
        })
        .collect();
    let mut tallies = Vec::new();
    for handle in handles {
        tallies.push(handle.await.expect("hammering task"));
    }
    let admitted = tallies.iter().map(|t| t.admitted).sum();
    let first = tallies
        .iter()
        .filter_map(|t| t.first)
        .min()
        .expect("some admitted");
    let last = tallies
        .iter()
        .filter_map(|t| t.last)
        .max()
        .expect("some admitted");
    (admitted, last - first)
}

/// GCRA's promise: over a span `W` a saturated key gets `burst + rate × W` requests.
pub fn assert_within_one_percent_of_gcra_bound(
    admitted: u64,
    span: Duration,
    per_minute: u32,
    burst: u64,
) {
    let bound = burst as f64 + f64::from(per_minute) / 60.0 * span.as_secs_f64();
    let error = (admitted as f64 - bound) / bound;
    eprintln!(
        "admitted {admitted} over {span:?}; GCRA bound {bound:.1}; error {:+.3}%",
        error * 100.0
    );
    assert!(
        admitted as f64 <= bound + 1.0,
        "admitted {admitted} exceeds the GCRA bound {bound:.1}"
    );
    assert!(
        error.abs() <= 0.01,
        "admitted {admitted} is not within 1% of the GCRA bound {bound:.1}"
    );
}
