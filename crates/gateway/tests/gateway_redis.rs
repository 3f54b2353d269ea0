//! Two gateway replicas sharing one key's limit through a real redis-server: what one replica
//! admits counts against the other. Skipped with a message when redis-server is missing,
//! failed instead when EMGUARD_REQUIRE_SERVICES=1.

mod guard;

use std::sync::Arc;

use emguard_testkit::RedisServer;
use guard::{Behaviour, ask, chat, create_key, gateway_in, upstream};
use serde_json::json;

#[test]
fn replicas_share_a_keys_request_limit_through_redis() {
    let Some(redis) = RedisServer::start("replicas_share_a_keys_request_limit_through_redis")
    else {
        return;
    };
    let up = upstream(Behaviour::Answer("ok".into()));
    let yaml = format!(
        "
store: '{{store}}'
rate_limits: {{backend: '{}'}}
traces: {{enabled: false}}
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{}'}}]
",
        redis.url(),
        up.url
    );
    // Both replicas use one store (the key) and one Redis (its limit).
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let a = gateway_in(Arc::clone(&dir), &yaml);
    let b = gateway_in(Arc::clone(&dir), &yaml);
    // 60 a minute: a burst of one, then one a second.
    let (_, key) = create_key(&a, json!({"name": "shared", "requests_per_minute": 60}));
    // Replica b learns about the key on its next refresh (every 5 s).
    let started = std::time::Instant::now();
    while chat(&b, Some(&key), &ask("m", "warm")).status() == 401 {
        assert!(
            started.elapsed().as_secs() < 15,
            "replica b never saw the new key"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // b's admitted request used the burst: a is refused at once, then admits after a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(chat(&a, Some(&key), &ask("m", "1")).status(), 200);
    assert_eq!(chat(&b, Some(&key), &ask("m", "2")).status(), 429);
    assert_eq!(chat(&a, Some(&key), &ask("m", "3")).status(), 429);
}
