//! Per-key limits with the in-process backend: accuracy under concurrent load, token debt,
//! burst settings and config parsing.

mod ratelimit_support;

use std::time::Duration;

use ratelimit_support::{assert_within_one_percent_of_gcra_bound, hammer};

use emguard_gateway::ratelimit::{
    Denied, FailMode, LimitKind, Quota, RateLimitBackend, RateLimitOptions, RateLimiter,
};

fn requests(per_minute: u32) -> Quota {
    Quota {
        requests_per_minute: Some(per_minute),
        tokens_per_minute: None,
    }
}

fn tokens(per_minute: u32) -> Quota {
    Quota {
        requests_per_minute: None,
        tokens_per_minute: Some(per_minute),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admits_stay_within_one_percent_of_the_gcra_bound() {
    let limiter = RateLimiter::connect(&RateLimitBackend::Local)
        .await
        .unwrap();
    // 60 000 per minute = 1000/s with a burst of one second's worth, 1000; 64 tasks ask
    // about 64 000 times a second.
    let (admitted, span) = hammer(
        std::slice::from_ref(&limiter),
        64,
        "key-a",
        requests(60_000),
        Duration::from_secs(3),
    )
    .await;
    assert_within_one_percent_of_gcra_bound(admitted, span, 60_000, 1000);
    let stats = limiter.stats();
    assert_eq!(stats.admitted, admitted);
    assert!(stats.denied_requests > admitted, "the key was saturated");
}

#[tokio::test]
async fn token_debt_refuses_admits_until_repaid() {
    let limiter = RateLimiter::connect(&RateLimitBackend::Local)
        .await
        .unwrap();
    let quota = tokens(60_000); // 1000 tokens/s, a budget of 1000 tokens
    limiter.admit("key-t", &quota).await.unwrap();
    limiter.charge_tokens("key-t", &quota, 3000).await;

    let denied = limiter.admit("key-t", &quota).await.unwrap_err();
    assert_eq!(denied.limit, LimitKind::Tokens);
    assert_eq!(denied.quota, 60_000);
    // 3000 tokens are 3 s at the rate; the budget covers 1 s of them; one token more must fit.
    assert!(
        denied.retry_after > Duration::from_millis(1900)
            && denied.retry_after <= Duration::from_millis(2001),
        "{denied:?}"
    );

    tokio::time::sleep(denied.retry_after / 2).await;
    let still = limiter.admit("key-t", &quota).await.unwrap_err();
    assert_eq!(still.limit, LimitKind::Tokens);
    assert!(still.retry_after < denied.retry_after);

    tokio::time::sleep(still.retry_after).await;
    limiter.admit("key-t", &quota).await.unwrap();
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.denied_tokens), (2, 2));
}

#[tokio::test]
async fn request_limit_denial_names_the_limit_and_keys_are_independent() {
    let limiter = RateLimiter::connect(&RateLimitBackend::Local)
        .await
        .unwrap();
    let quota = requests(60); // one per second, burst of one
    limiter.admit("key-1", &quota).await.unwrap();
    let denied: Denied = limiter.admit("key-1", &quota).await.unwrap_err();
    assert_eq!(denied.limit, LimitKind::Requests);
    assert_eq!(denied.quota, 60);
    assert!(
        denied.retry_after > Duration::from_millis(500)
            && denied.retry_after <= Duration::from_secs(1),
        "{denied:?}"
    );
    assert_eq!(denied.retry_after_secs(), 1);
    assert_eq!(
        denied.to_string(),
        "Rate limit reached for requests: 60 per minute. Try again in 1 s."
    );
    limiter.admit("key-2", &quota).await.unwrap();
}

#[tokio::test]
async fn both_limits_apply_and_a_token_denial_takes_no_request_cell() {
    let limiter = RateLimiter::connect(&RateLimitBackend::Local)
        .await
        .unwrap();
    let quota = Quota {
        requests_per_minute: Some(120), // burst of 2
        tokens_per_minute: Some(600),   // budget of 10 tokens
    };
    limiter.admit("key-b", &quota).await.unwrap();
    limiter.charge_tokens("key-b", &quota, 500).await;
    let denied = limiter.admit("key-b", &quota).await.unwrap_err();
    assert_eq!((denied.limit, denied.quota), (LimitKind::Tokens, 600));
    // The second request cell is still there: a fresh quota without tokens gets it.
    limiter.admit("key-b", &requests(120)).await.unwrap();
    let denied = limiter.admit("key-b", &requests(120)).await.unwrap_err();
    assert_eq!((denied.limit, denied.quota), (LimitKind::Requests, 120));
}

#[tokio::test]
async fn unlimited_and_zero_quotas() {
    let limiter = RateLimiter::connect(&RateLimitBackend::Local)
        .await
        .unwrap();
    for _ in 0..10_000 {
        limiter.admit("free", &Quota::default()).await.unwrap();
    }
    limiter
        .charge_tokens("free", &Quota::default(), 1 << 40)
        .await;
    limiter.admit("free", &Quota::default()).await.unwrap();

    let suspended = limiter.admit("off", &requests(0)).await.unwrap_err();
    assert_eq!(
        (
            suspended.limit,
            suspended.quota,
            suspended.retry_after_secs()
        ),
        (LimitKind::Requests, 0, 60)
    );
    let no_tokens = limiter.admit("off", &tokens(0)).await.unwrap_err();
    assert_eq!(no_tokens.limit, LimitKind::Tokens);
}

#[tokio::test]
async fn burst_follows_the_configured_window() {
    let admitted_at_once = |burst_ms: u64, per_minute: u32| async move {
        let options = RateLimitOptions {
            burst_ms,
            ..RateLimitOptions::default()
        };
        let limiter = RateLimiter::connect_with(&RateLimitBackend::Local, options)
            .await
            .unwrap();
        let mut admitted = 0;
        for _ in 0..500 {
            admitted += u32::from(limiter.admit("k", &requests(per_minute)).await.is_ok());
        }
        admitted
    };
    // One request per second: the 500 attempts take far less than a second.
    assert_eq!(
        admitted_at_once(1000, 60).await,
        1,
        "default: one second's worth, at least 1"
    );
    assert_eq!(
        admitted_at_once(100_000, 60).await,
        100,
        "100 s worth of 1/s"
    );
    assert_eq!(
        admitted_at_once(0, 60).await,
        1,
        "no burst still admits one"
    );
}

#[test]
fn retry_after_header_is_whole_seconds_rounded_up_and_at_least_one() {
    let secs = |micros| {
        Denied {
            retry_after: Duration::from_micros(micros),
            limit: LimitKind::Tokens,
            quota: 1,
        }
        .retry_after_secs()
    };
    assert_eq!(secs(0), 1);
    assert_eq!(secs(1), 1);
    assert_eq!(secs(2_000_000), 2);
    assert_eq!(secs(2_000_001), 3);
}

#[test]
fn options_and_backend_parse_from_config_and_reject_unknown_fields() {
    let backend: RateLimitBackend =
        serde_json::from_str(r#"{"backend": "redis", "url": "redis://:pw@cache:6379"}"#).unwrap();
    assert_eq!(
        backend,
        RateLimitBackend::Redis {
            url: "redis://:pw@cache:6379".into(),
            prefix: "emguard:ratelimit".into()
        }
    );
    assert!(
        !format!("{backend:?}").contains("pw"),
        "Debug hides the password"
    );
    let local: RateLimitBackend = serde_json::from_str(r#"{"backend": "local"}"#).unwrap();
    assert_eq!(local, RateLimitBackend::Local);

    let options: RateLimitOptions =
        serde_json::from_str(r#"{"burst_ms": 500, "on_backend_error": "closed"}"#).unwrap();
    assert_eq!(options.burst_ms, 500);
    assert_eq!(options.on_backend_error, FailMode::Closed);
    assert_eq!(
        options.backend_timeout_ms,
        RateLimitOptions::default().backend_timeout_ms
    );

    let error = serde_json::from_str::<Quota>(r#"{"requests_per_minut": 5}"#).unwrap_err();
    assert!(error.to_string().contains("requests_per_minut"), "{error}");
}
