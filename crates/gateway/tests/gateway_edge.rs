//! The gateway's edge under abuse (issue 15), each against a real gateway on 127.0.0.1 with a
//! scripted upstream: slow clients, unauthenticated uploads, oversized answers, clients that
//! hang up, the admin listener, upstream errors, and the smaller holes.

mod guard;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use guard::{ADMIN, Behaviour, ask, chat, client, create_key, gateway, upstream};
use serde_json::{Value, json};

fn config(up: &str, extra: &str) -> String {
    format!(
        "
store: '{{store}}'
{extra}
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{up}', retries: 0}}]
"
    )
}

/// What the server sends on `s` until it closes the connection or `wait` passes.
fn read_for(s: &mut TcpStream, wait: Duration) -> String {
    let end = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        s.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Finding 5: half-sent requests are cut off at the header deadline and past the connection
/// cap wait their turn, so real clients are served during the flood.
#[test]
fn a_slow_client_flood_leaves_real_clients_served() {
    let up = upstream(Behaviour::Answer("Hello.".into()));
    let g = gateway(&config(
        &up.url,
        "auth: {required: false}\nserver: {header_read_timeout_ms: 400, body_read_timeout_ms: 400, max_connections: 32}",
    ));
    let addr = host_port(&g.url);
    // 200 connections, each with half a request line and headers, never finished.
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-")
                .unwrap();
            s
        })
        .collect();
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for i in 0..5 {
        let res = c
            .post(format!("{}/v1/chat/completions", g.url))
            .json(&ask("m", &format!("real client {i}")))
            .send()
            .expect("a real client is served during the flood");
        assert_eq!(res.status(), 200);
    }
    // The slow connections were closed by the server (EOF, or a 408 then EOF).
    let first = &mut slow[0];
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let read = first.read_to_end(&mut buf);
    assert!(
        read.is_ok(),
        "the server closed the slow connection: {read:?}"
    );
    // A body that stalls gets 408 at the body deadline.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
        .unwrap();
    let answer = read_for(&mut s, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Finding 6: without a valid key nothing but metadata is kept, and an address that keeps
/// failing is refused before any key is checked.
#[test]
fn unauthenticated_requests_leave_metadata_only_and_are_limited_per_address() {
    let up = upstream(Behaviour::Answer("Hello.".into()));
    let g = gateway(&config(&up.url, "auth: {max_failures_per_minute: 3}"));
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(20_000)}]});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let res = client()
            .post(format!("{}/v1/chat/completions", g.url))
            .bearer_auth("emg_0000_wrong")
            .json(&big)
            .send()
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let body: Value = res.json().unwrap();
            assert_eq!(body["error"]["code"], "too_many_auth_failures");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let traces = guard::wait_for_traces(&g, 3);
    assert_eq!(traces.len(), 3, "refused addresses leave no trace");
    for t in &traces {
        assert_eq!(t["status"], 401);
        assert!(
            t["request"].is_null(),
            "no body kept before authentication: {t}"
        );
    }
}

/// Finding 7: answers over the cap are refused, whole and streamed; traces keep a bounded
/// prefix with a marker.
#[test]
fn oversized_answers_are_refused_and_traces_are_cut() {
    let huge = upstream(Behaviour::Big(2_000_000));
    let g = gateway(&config(
        &huge.url,
        "auth: {required: false}\nserver: {max_answer_bytes: 100000}",
    ));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 502);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["code"], "upstream_answer_too_large");
    let mut streamed = ask("m", "hi");
    streamed["stream"] = Value::Bool(true);
    let raw = chat(&g, None, &streamed).text().unwrap();
    assert!(
        raw.contains("larger than 100000 bytes"),
        "{}",
        &raw[..raw.len().min(300)]
    );
    assert!(
        !raw.contains("xxxxxxxxxx"),
        "nothing of the oversized line is relayed"
    );

    let long = upstream(Behaviour::Big(5_000));
    let g = gateway(&config(
        &long.url,
        "auth: {required: false}\ntraces: {max_content_bytes: 1000}",
    ));
    assert_eq!(chat(&g, None, &ask("m", "hi")).status(), 200);
    let t = &guard::wait_for_traces(&g, 1)[0];
    let kept = t["response"].as_str().unwrap();
    assert!(kept.len() < 1100, "{}", kept.len());
    assert!(
        kept.ends_with("[emguard: truncated, 5000 bytes in all]"),
        "{kept}"
    );
}

/// Finding 9: a client that hangs up before a whole answer still has it traced and charged.
#[test]
fn a_dropped_request_is_traced_and_charged() {
    let up = upstream(Behaviour::Slow(
        Duration::from_millis(1500),
        "Hello.".into(),
    ));
    let g = gateway(&config(&up.url, ""));
    let (_, key) = create_key(&g, json!({"name": "tight", "tokens_per_minute": 12}));
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gone = impatient
        .post(format!("{}/v1/chat/completions", g.url))
        .bearer_auth(&key)
        .json(&ask("m", "hi"))
        .send();
    assert!(gone.is_err(), "the client gave up first");
    let traces = guard::wait_for_traces(&g, 1);
    let t = &traces[0];
    assert_eq!(t["status"], 499, "{t}");
    assert_eq!(t["completion_tokens"], 7, "{t}");
    // The 12 tokens were charged: the key's minute is spent.
    let res = chat(&g, Some(&key), &ask("m", "hi again"));
    assert_eq!(res.status(), 429);
}

/// Finding 10: the admin API and `/metrics` on their own listener; `/metrics` behind the
/// admin token when asked.
#[test]
fn the_admin_api_and_metrics_can_have_their_own_listener_and_token() {
    let up = upstream(Behaviour::Answer("Hello.".into()));
    let g = gateway(&config(
        &up.url,
        "server: {admin_listen: '127.0.0.1:0', metrics_require_token: true}",
    ));
    let admin_url = g.admin_url.clone().unwrap();
    let c = client();
    let public_admin = c
        .get(format!("{}/admin/keys", g.url))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(public_admin.status(), 404);
    let public_metrics = c.get(format!("{}/metrics", g.url)).send().unwrap();
    assert_eq!(public_metrics.status(), 404);
    let keys = c
        .get(format!("{admin_url}/admin/keys"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(keys.status(), 200);
    let anonymous = c.get(format!("{admin_url}/metrics")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let metrics = c
        .get(format!("{admin_url}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(metrics.status(), 200);
    // The API itself stays on the public listener.
    assert_eq!(
        c.get(format!("{}/healthz", g.url)).send().unwrap().status(),
        200
    );
}

/// Finding 11: an upstream's error body (secrets included) stays in the trace; the client
/// gets the status and a safe message; the upstream refusing the gateway's credentials is a
/// 502, not the client's `invalid_api_key`.
#[test]
fn upstream_error_bodies_stay_in_the_trace() {
    let secret = "sk-UPSTREAM-SECRET-1234";
    let rejected = upstream(Behaviour::StatusBody(
        400,
        json!({"error": {"message": format!("bad request for key {secret}"), "type": "invalid_request_error",
                          "param": "messages", "code": "context_length_exceeded"}})
        .to_string(),
    ));
    let g = gateway(&config(&rejected.url, "auth: {required: false}"));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 400);
    let raw = res.text().unwrap();
    assert!(!raw.contains(secret), "{raw}");
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(body["error"]["param"], "messages");
    let t = &guard::wait_for_traces(&g, 1)[0];
    assert!(t["error"].as_str().unwrap().contains(secret), "{t}");

    let broken = upstream(Behaviour::StatusBody(503, format!("internal: {secret}")));
    let g = gateway(&config(&broken.url, "auth: {required: false}"));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 502);
    let raw = res.text().unwrap();
    assert!(!raw.contains(secret), "{raw}");
    let t = &guard::wait_for_traces(&g, 1)[0];
    assert!(
        t.to_string().contains(secret),
        "the trace keeps the body: {t}"
    );

    let refused = upstream(Behaviour::StatusBody(
        401,
        "{\"error\": {\"message\": \"bad key\"}}".into(),
    ));
    let g = gateway(&config(&refused.url, "auth: {required: false}"));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 502);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["code"], "upstream_auth_failed");
}

/// Finding 12: the smaller holes.
#[test]
fn the_smaller_holes_are_closed() {
    let up = upstream(Behaviour::Answer("Hello.".into()));
    let g = gateway(&config(&up.url, ""));
    let (_, key) = create_key(&g, json!({"name": "lower case"}));
    // The scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let res = client()
            .post(format!("{}/v1/chat/completions", g.url))
            .header("authorization", format!("{scheme} {key}"))
            .json(&ask("m", "hi"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{scheme}");
    }
    // Names cannot forge log lines; lifetimes are bounded.
    for (body, param) in [
        (json!({"name": "ok\r\n2026-01-01 INFO forged"}), "name"),
        (json!({"name": "esc \u{1b}[31mred"}), "name"),
        (
            json!({"name": "forever", "expires_in_days": 1e308}),
            "expires_in_days",
        ),
        (
            json!({"name": "forever", "expires_at": 1e300}),
            "expires_at",
        ),
    ] {
        let (status, err) = guard::admin(&g, "POST", "/admin/keys", Some(body.clone()));
        assert_eq!(
            (status, err["error"]["param"].as_str()),
            (400, Some(param)),
            "{body}"
        );
    }
    // Redis down at start with `on_backend_error: open`: the gateway starts and serves.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let g = gateway(&config(
        &up.url,
        &format!(
            "auth: {{required: false}}\nrate_limits: {{backend: 'redis://127.0.0.1:{port}', on_backend_error: open, default: {{requests_per_minute: 60}}}}"
        ),
    ));
    let started = Instant::now();
    assert_eq!(chat(&g, None, &ask("m", "hi")).status(), 200);
    assert!(started.elapsed() < Duration::from_secs(30));
}
