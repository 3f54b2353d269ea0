//! Two gateway replicas on one real PostgreSQL store: the rollback the monitor of one decides
//! is applied by the other (which saw no bad answer itself) within seconds.

mod guard;
mod monitor_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use guard::{admin, gateway_in};
use monitor_support::{config, playbook, traffic, upstream};

#[test]
fn a_rollback_decided_by_one_replica_reaches_the_other() {
    let Some(pg) =
        emguard_testkit::TestPostgres::start("a_rollback_decided_by_one_replica_reaches_the_other")
    else {
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (good, bad) = (upstream(0), upstream(10));
    let playbook = playbook(dir.path(), "");
    let yaml = config(&pg.url, &good, &bad, 0.5, &playbook);
    let a = gateway_in(Arc::clone(&dir), &yaml);
    let b = gateway_in(Arc::new(tempfile::tempdir().unwrap()), &yaml);
    let weights = |g: &guard::Gateway| {
        let (_, body) = admin(g, "GET", "/admin/monitor", None);
        body["rollouts"][0]["weights"].clone()
    };
    assert_eq!(weights(&b)["v2"], 0.5);
    // Traffic to replica A only, until its monitor opens an incident.
    let t = traffic(&a.url, 20.0, 1000, |_| {
        let (_, body) = admin(&a, "GET", "/admin/incidents", None);
        !body["data"].as_array().unwrap().is_empty()
    });
    assert_eq!(t.answered, t.sent);
    // The monitor stores the incident first (so that one replica, not both, acts on it),
    // then rolls back: under load the incident can be seen a moment before the rollback.
    let seen = Instant::now();
    while !weights(&a).as_object().unwrap().is_empty() {
        assert!(
            seen.elapsed() < Duration::from_secs(10),
            "A did not roll back: {}",
            weights(&a)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, body) = admin(&a, "GET", "/admin/incidents", None);
    let opened_at = body["data"][0]["opened_at"].as_f64().unwrap();
    let decided = Instant::now();
    while !weights(&b).as_object().unwrap().is_empty() {
        assert!(
            decided.elapsed() < Duration::from_secs(10),
            "replica B still routes to v2: {}",
            weights(&b)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    println!(
        "replica B routes by A's rollback at most {:.2} s after A opened the incident (poll every 200 ms)",
        now - opened_at
    );
    // B's incidents are A's (one store), and B now answers with v1 only.
    let (_, body) = admin(&b, "GET", "/admin/incidents", None);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let t = traffic(&b.url, 50.0, 40, |_| false);
    assert!(
        t.versions.iter().all(|(_, v)| v == "v1"),
        "{:?}",
        t.versions
    );
}

#[test]
fn replicas_both_under_traffic_open_one_incident_and_both_roll_back() {
    let Some(pg) = emguard_testkit::TestPostgres::start(
        "replicas_both_under_traffic_open_one_incident_and_both_roll_back",
    ) else {
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (good, bad) = (upstream(0), upstream(10));
    let yaml = config(&pg.url, &good, &bad, 0.5, &playbook(dir.path(), ""));
    let replicas = [
        gateway_in(Arc::clone(&dir), &yaml),
        gateway_in(Arc::new(tempfile::tempdir().unwrap()), &yaml),
    ];
    let incidents = |g: &guard::Gateway| {
        let (_, body) = admin(g, "GET", "/admin/incidents", None);
        body["data"].as_array().unwrap().len()
    };
    // Both replicas serve and judge at once, each until it sees the incident.
    let sent = std::thread::scope(|s| {
        let runs: Vec<_> = replicas
            .iter()
            .map(|g| s.spawn(|| traffic(&g.url, 20.0, 1000, |_| incidents(g) > 0)))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    for t in &sent {
        assert_eq!(t.answered, t.sent, "a request got no answer");
    }
    let monitor = |g: &guard::Gateway| admin(g, "GET", "/admin/monitor", None).1;
    let decided = Instant::now();
    while replicas.iter().any(|g| {
        !monitor(g)["rollouts"][0]["weights"]
            .as_object()
            .unwrap()
            .is_empty()
    }) {
        assert!(
            decided.elapsed() < Duration::from_secs(10),
            "a replica still routes to v2"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // One incident in the shared store, opened by exactly one of them; each judged answers.
    let opened: Vec<u64> = replicas
        .iter()
        .map(|g| monitor(g)["incidents_opened"].as_u64().unwrap())
        .collect();
    assert_eq!(
        opened.iter().sum::<u64>(),
        1,
        "incidents opened: {opened:?}"
    );
    for g in &replicas {
        assert_eq!(incidents(g), 1);
        let judged = monitor(g)["judged"].as_u64().unwrap();
        assert!(judged > 0, "{} judged nothing", g.url);
    }
}
