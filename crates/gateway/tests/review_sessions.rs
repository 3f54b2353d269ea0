//! Console sessions live in the review store: a login survives a gateway restart (SQLite) and
//! works on another replica sharing one PostgreSQL; the store keeps the token's hash, never
//! the token; a logout ends the session everywhere.

mod guard;
mod review_support;

use std::sync::Arc;

use emguard_testkit::TestPostgres;
use guard::{Behaviour, gateway, gateway_in, upstream};
use review_support::*;

fn config(store: &str, up: &str, replica: &str) -> String {
    format!(
        "
store: '{store}'
auth: {{required: false}}
traces: {{enabled: false}}
review:
  replica: {replica}
  default:
    conditions: [{{when: {{sample: 1.0}}, action: flag}}]
models:
  - {{id: m, active: v1, versions: [{{name: v1, upstream: '{up}'}}]}}
"
    )
}

/// The CSRF token of a logged-in console page (the logout form carries it).
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF token in:\n{html}"))
        .to_string()
}

/// Logs out through the console's form.
fn log_out(base: &str, session: &str, csrf: &str) {
    let res = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/console/logout"))
        .header("cookie", format!("emg_session={session}"))
        .form(&[("csrf", csrf)])
        .send()
        .unwrap();
    assert!(res.status().is_redirection(), "logout: {}", res.status());
}

#[test]
fn a_console_login_survives_a_restart_and_the_store_keeps_only_its_hash() {
    let up = upstream(Behaviour::Answer("Fine.".into()));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let yaml = config("{store}", &up.url, "default");
    let g = gateway_in(Arc::clone(&dir), &yaml);
    let key = role_key(&g, "rita", "reviewer");
    let session = console_login(&g.url, &key);
    let (status, before) = console_page(&g.url, "/console/queue", &session);
    assert_eq!(status, 200, "{before}");
    assert!(before.contains("rita (rk_"), "{before}");
    let csrf = csrf_of(&before);
    g.stop();

    let db = rusqlite::Connection::open(dir.path().join("gateway.db")).unwrap();
    let stored: Vec<String> = db
        .prepare("SELECT token_hash || ' ' || record FROM review_sessions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        !stored[0].contains(&session),
        "the token is stored: {stored:?}"
    );
    assert!(stored[0].contains("\"role\":\"reviewer\""), "{stored:?}");

    let g = gateway_in(Arc::clone(&dir), &yaml);
    let (status, after) = console_page(&g.url, "/console/queue", &session);
    assert_eq!(status, 200, "logged out by the restart: {after}");
    assert!(after.contains("rita (rk_"), "{after}");
    assert_eq!(csrf_of(&after), csrf);
    // A reviewer's form works after the restart: its CSRF token is the stored one.
    log_out(&g.url, &session, &csrf);
    let (status, _) = console_page(&g.url, "/console/queue", &session);
    assert_eq!(status, 303, "the session outlived its logout");
    // An unknown cookie is no session.
    let (status, _) = console_page(&g.url, "/console/queue", &"0".repeat(64));
    assert_eq!(status, 303);
}

#[test]
fn a_console_login_works_on_every_replica_of_one_postgresql() {
    let Some(pg) = TestPostgres::start("a_console_login_works_on_every_replica_of_one_postgresql")
    else {
        return;
    };
    let up = upstream(Behaviour::Answer("Fine.".into()));
    let a = gateway(&config(&pg.url, &up.url, "a"));
    let b = gateway(&config(&pg.url, &up.url, "b"));
    let key = role_key(&a, "vic", "viewer");
    let session = console_login(&a.url, &key);
    let (status, on_a) = console_page(&a.url, "/console/queue", &session);
    assert_eq!(status, 200, "{on_a}");
    let (status, on_b) = console_page(&b.url, "/console/queue", &session);
    assert_eq!(status, 200, "the session is unknown to replica b: {on_b}");
    assert!(
        on_b.contains("vic (rk_") && on_b.contains("(viewer)"),
        "{on_b}"
    );
    let csrf = csrf_of(&on_b);
    assert_eq!(csrf, csrf_of(&on_a));
    // Logged out on b: gone on a too.
    log_out(&b.url, &session, &csrf);
    let (status, _) = console_page(&a.url, "/console/queue", &session);
    assert_eq!(status, 303);
}
