//! The review audit log in a real SQLite store: decisions and admin actions are chained; a
//! row edited or deleted behind the gateway's back is named by the verification.

mod guard;

use std::sync::Arc;

use guard::{ADMIN, Behaviour, ask, chat, client, gateway_in, upstream};
use serde_json::{Value, json};

fn verify(url: &str) -> Value {
    client()
        .get(format!("{url}/admin/review/verify"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn verification_names_edited_and_deleted_rows() {
    let up = upstream(Behaviour::Answer("Fine answer.".into()));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let yaml = format!(
        "
store: '{{store}}'
auth: {{required: false}}
traces: {{enabled: false}}
review:
  default:
    conditions: [{{when: {{sample: 1.0}}, action: flag}}]
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{}'}}]
",
        up.url
    );
    let g = gateway_in(Arc::clone(&dir), &yaml);
    // Rows: create_role_key, then flag + reject for each of three answers.
    let res = client()
        .post(format!("{}/admin/review/keys", g.url))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "alice", "role": "reviewer"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    for _ in 0..3 {
        let res = chat(&g, None, &ask("m", "hello"));
        let id = res.headers()["x-emguard-review"]
            .to_str()
            .unwrap()
            .to_string();
        let res = client()
            .post(format!("{}/admin/review/items/{id}/reject", g.url))
            .bearer_auth(ADMIN)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let intact = verify(&g.url);
    assert_eq!(intact["ok"], true, "{intact}");
    assert_eq!(intact["rows"], 7);
    assert_eq!(intact["head"]["seq"], 7);
    g.stop();

    let db = rusqlite::Connection::open(dir.path().join("gateway.db")).unwrap();
    db.execute(
        "UPDATE review_audit SET actor = 'mallory' WHERE seq = 3",
        [],
    )
    .unwrap();
    let g = gateway_in(Arc::clone(&dir), &yaml);
    let edited = verify(&g.url);
    assert_eq!(edited["ok"], false);
    assert_eq!(
        edited["breaks"],
        json!(["row 3 was edited (its content does not match its hash)"])
    );
    db.execute("DELETE FROM review_audit WHERE seq = 5", [])
        .unwrap();
    let deleted = verify(&g.url);
    assert_eq!(
        deleted["breaks"],
        json!([
            "row 3 was edited (its content does not match its hash)",
            "row 5 is missing (deleted)"
        ]),
        "{deleted}"
    );
}
