//! Console sessions in the review store, on a real SQLite file and a real PostgreSQL server:
//! saved, read back, re-saved with a new expiry (one row), deleted, and expired ones pruned.

use emguard_store::review::{ReviewStore, SessionRecord};
use emguard_testkit::TestPostgres;

fn session(hash: &str, expires_at: f64) -> SessionRecord {
    SessionRecord {
        token_hash: hash.to_string(),
        actor: "rita (rk_1)".to_string(),
        role: "reviewer".to_string(),
        csrf: format!("csrf-of-{hash}"),
        expires_at,
    }
}

fn sessions_round_trip(store: &ReviewStore) {
    assert_eq!(store.session("h1").unwrap(), None);
    store.save_session(&session("h1", 100.0)).unwrap();
    store.save_session(&session("h2", 300.0)).unwrap();
    assert_eq!(store.session("h1").unwrap(), Some(session("h1", 100.0)));
    // A new expiry replaces the row.
    store.save_session(&session("h1", 200.0)).unwrap();
    assert_eq!(store.session("h1").unwrap(), Some(session("h1", 200.0)));
    // Pruning at 250 removes h1 (expired at 200) only.
    assert_eq!(store.delete_expired_sessions(250.0).unwrap(), 1);
    assert_eq!(store.session("h1").unwrap(), None);
    assert_eq!(store.session("h2").unwrap(), Some(session("h2", 300.0)));
    store.delete_session("h2").unwrap();
    assert_eq!(store.session("h2").unwrap(), None);
}

#[test]
fn sessions_on_sqlite_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("review.db").display().to_string();
    sessions_round_trip(&ReviewStore::open(&path).unwrap());
    ReviewStore::open(&path)
        .unwrap()
        .save_session(&session("kept", 500.0))
        .unwrap();
    let reopened = ReviewStore::open(&path).unwrap();
    assert_eq!(
        reopened.session("kept").unwrap(),
        Some(session("kept", 500.0))
    );
}

#[test]
fn sessions_on_postgresql_are_shared_by_connections() {
    let Some(pg) = TestPostgres::start("sessions_on_postgresql_are_shared_by_connections") else {
        return;
    };
    sessions_round_trip(&ReviewStore::open(&pg.url).unwrap());
    let (a, b) = (
        ReviewStore::open(&pg.url).unwrap(),
        ReviewStore::open(&pg.url).unwrap(),
    );
    a.save_session(&session("shared", 500.0)).unwrap();
    assert_eq!(b.session("shared").unwrap(), Some(session("shared", 500.0)));
    b.delete_session("shared").unwrap();
    assert_eq!(a.session("shared").unwrap(), None);
}
