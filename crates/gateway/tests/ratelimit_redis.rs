//! Per-key limits in a real redis-server shared by two limiters (two gateway replicas):
//! accuracy under concurrent load, shared token debt, key expiry, connection errors and the
//! fail-open / fail-closed behaviour while Redis is down.
//!
//! Needs `redis-server` on PATH (Debian package redis-server); skipped with a message when it
//! is missing, failed instead when EMGUARD_REQUIRE_SERVICES=1.

mod ratelimit_support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use emguard_gateway::ratelimit::{
    FailMode, LimitKind, Quota, RateLimitBackend, RateLimitOptions, RateLimiter,
};
use emguard_testkit::RedisServer;
use ratelimit_support::{assert_within_one_percent_of_gcra_bound, hammer};
use ratelimit_support::{redis_backend, redis_connection};

fn requests(per_minute: u32) -> Quota {
    Quota {
        requests_per_minute: Some(per_minute),
        tokens_per_minute: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_keys_limit_within_one_percent() {
    let Some(server) = RedisServer::start("two_replicas_share_one_keys_limit_within_one_percent")
    else {
        return;
    };
    let replicas = [
        RateLimiter::connect(&redis_backend(&server, "rl"))
            .await
            .unwrap(),
        RateLimiter::connect(&redis_backend(&server, "rl"))
            .await
            .unwrap(),
    ];
    // 30 000 per minute = 500/s, burst 500; 32 tasks split over the replicas ask about
    // 32 000 times a second.
    let (admitted, span) = hammer(
        &replicas,
        32,
        "shared-key",
        requests(30_000),
        Duration::from_secs(3),
    )
    .await;
    assert_within_one_percent_of_gcra_bound(admitted, span, 30_000, 500);
    let stats = replicas.map(|r| r.stats());
    assert_eq!(stats[0].admitted + stats[1].admitted, admitted);
    assert!(
        stats.iter().all(|s| s.admitted > 0),
        "both replicas admitted: {stats:?}"
    );
    assert!(stats.iter().all(|s| s.backend_errors == 0), "{stats:?}");
}

#[tokio::test]
async fn replicas_see_each_others_requests_and_token_debt() {
    let Some(server) = RedisServer::start("replicas_see_each_others_requests_and_token_debt")
    else {
        return;
    };
    let a = RateLimiter::connect(&redis_backend(&server, "rl"))
        .await
        .unwrap();
    let b = RateLimiter::connect(&redis_backend(&server, "rl"))
        .await
        .unwrap();
    let other_prefix = RateLimiter::connect(&redis_backend(&server, "other"))
        .await
        .unwrap();

    let quota = requests(60); // burst of one
    a.admit("k1", &quota).await.unwrap();
    let denied = b.admit("k1", &quota).await.unwrap_err();
    assert_eq!(
        (denied.limit, denied.quota, denied.retry_after_secs()),
        (LimitKind::Requests, 60, 1)
    );
    assert!(denied.retry_after <= Duration::from_secs(1));
    other_prefix.admit("k1", &quota).await.unwrap();

    let quota = Quota {
        requests_per_minute: None,
        tokens_per_minute: Some(60_000), // 1000 tokens/s, budget 1000
    };
    a.admit("k2", &quota).await.unwrap();
    a.charge_tokens("k2", &quota, 3000).await;
    let denied = b.admit("k2", &quota).await.unwrap_err();
    assert_eq!((denied.limit, denied.quota), (LimitKind::Tokens, 60_000));
    assert!(
        denied.retry_after > Duration::from_millis(1900)
            && denied.retry_after <= Duration::from_millis(2001),
        "{denied:?}"
    );
    tokio::time::sleep(denied.retry_after).await;
    b.admit("k2", &quota).await.unwrap();
}

#[tokio::test]
async fn idle_keys_expire_in_redis() {
    let Some(server) = RedisServer::start("idle_keys_expire_in_redis") else {
        return;
    };
    // A trailing colon in the prefix is not doubled.
    let limiter = RateLimiter::connect(&redis_backend(&server, "rl:"))
        .await
        .unwrap();
    let mut redis = redis_connection(&server);
    // 600 per minute: each request is 100 ms of GCRA time.
    limiter.admit("brief", &requests(600)).await.unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg("rl:brief")
        .query(&mut redis)
        .unwrap();
    assert!((1..=102).contains(&ttl_ms), "PTTL {ttl_ms}");

    let started = Instant::now();
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg("rl:brief")
            .query(&mut redis)
            .unwrap();
        if !exists {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the idle key never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connect_errors_name_the_url_without_its_password() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backend = RateLimitBackend::Redis {
        url: format!("redis://:hunter2@127.0.0.1:{port}"),
        prefix: "rl".into(),
    };
    let error = RateLimiter::connect(&backend)
        .await
        .err()
        .expect("nothing listens there")
        .to_string();
    assert!(
        error.contains(&format!("redis://:***@127.0.0.1:{port}")),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn redis_down_fails_open_or_closed_as_configured_then_recovers() {
    let Some(mut server) =
        RedisServer::start("redis_down_fails_open_or_closed_as_configured_then_recovers")
    else {
        return;
    };
    let open = RateLimiter::connect(&redis_backend(&server, "rl"))
        .await
        .unwrap();
    let closed_options = RateLimitOptions {
        on_backend_error: FailMode::Closed,
        ..RateLimitOptions::default()
    };
    let closed = RateLimiter::connect_with(&redis_backend(&server, "rl"), closed_options)
        .await
        .unwrap();
    let quota = requests(60);
    open.admit("k", &quota).await.unwrap();
    assert!(
        open.admit("k", &quota).await.is_err(),
        "limited while Redis is up"
    );

    server.stop();
    for _ in 0..3 {
        open.admit("k", &quota).await.expect("fails open");
        let refused = closed.admit("k", &quota).await.unwrap_err();
        assert_eq!(refused.limit, LimitKind::Unavailable);
        assert_eq!(refused.retry_after_secs(), 1);
    }
    open.charge_tokens(
        "k",
        &Quota {
            tokens_per_minute: Some(600),
            ..quota
        },
        10,
    )
    .await;
    let stats = open.stats();
    assert_eq!(stats.failed_open, 3);
    assert_eq!(stats.backend_errors, 4, "three admits and one charge");
    assert_eq!(closed.stats().failed_closed, 3);

    // A new server on the same port: the limiter reconnects and limits again.
    let port = server.port;
    let _restarted = RedisServer::start_on(port);
    let started = Instant::now();
    loop {
        // The key's state went with the old server: the first admit passes, the second is
        // refused only when Redis decided both.
        let _ = open.admit("k", &quota).await;
        if let Err(denied) = open.admit("k", &quota).await
            && denied.limit == LimitKind::Requests
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the limiter never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
