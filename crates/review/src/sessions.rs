//! Console sessions: a random id (the cookie) for a logged-in role key, with its CSRF token.
//! In memory: a replica restart logs reviewers out (their decisions are in the store), and a
//! reviewer stays on one replica behind a sticky load balancer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::roles::Actor;

/// How long a console session lasts without use.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Clone)]
pub struct Session {
    pub actor: Actor,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf: String,
    last_used: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `actor`: its id (for the cookie) and the session.
    pub fn open(&self, actor: Actor) -> (String, Session) {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let session = Session {
            actor,
            csrf: hex::encode(rand::random::<[u8; 32]>()),
            last_used: Instant::now(),
        };
        let mut map = self.lock();
        map.retain(|_, s| s.last_used.elapsed() < IDLE);
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session of this cookie value.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let session = map.get_mut(id)?;
        if session.last_used.elapsed() >= IDLE {
            map.remove(id);
            return None;
        }
        session.last_used = Instant::now();
        Some(session.clone())
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Compares two tokens in time independent of where they differ.
pub fn tokens_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
