//! Console sessions: a random token (the cookie) for a logged-in role key, with its CSRF token.
//! Kept in the review store (SQLite, or PostgreSQL shared by replicas), so a login survives a
//! gateway restart and works on every replica. The store keeps the token's sha256, never the
//! token: a copy of the database logs nobody in.

use std::time::Duration;

use emguard_store::review::SessionRecord;

use crate::roles::{self, Actor, Role};
use crate::service::{ReviewError, ReviewService, unix_now};

/// How long a console session lasts without use.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);

/// A session's expiry is moved on when it is used, but written at most once a minute (a
/// console page view is then a read, not a write).
const EXTEND_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Session {
    pub actor: Actor,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf: String,
}

impl ReviewService {
    /// A new session for `actor`: its token (for the cookie) and the session. Expired
    /// sessions are deleted on the way.
    pub async fn open_session(&self, actor: Actor) -> Result<(String, Session), ReviewError> {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let now = unix_now();
        let record = SessionRecord {
            token_hash: roles::hash_secret(&token),
            actor: actor.name.clone(),
            role: actor.role.as_str().to_string(),
            csrf: hex::encode(rand::random::<[u8; 32]>()),
            expires_at: now + IDLE.as_secs_f64(),
        };
        let session = Session {
            actor,
            csrf: record.csrf.clone(),
        };
        self.blocking(move |s| {
            s.delete_expired_sessions(now)?;
            s.save_session(&record)
        })
        .await?;
        Ok((token, session))
    }

    /// The live session of this cookie value; its expiry moves on.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, ReviewError> {
        let hash = roles::hash_secret(token);
        let now = unix_now();
        let found = self
            .blocking(move |s| {
                let Some(mut record) = s.session(&hash)? else {
                    return Ok(None);
                };
                if record.expires_at <= now {
                    s.delete_session(&hash)?;
                    return Ok(None);
                }
                let renewed = now + IDLE.as_secs_f64();
                if renewed - record.expires_at >= EXTEND_AFTER.as_secs_f64() {
                    record.expires_at = renewed;
                    s.save_session(&record)?;
                }
                Ok(Some(record))
            })
            .await?;
        Ok(found.and_then(|record| {
            let role = Role::parse(&record.role)?;
            Some(Session {
                actor: Actor {
                    name: record.actor,
                    role,
                },
                csrf: record.csrf,
            })
        }))
    }

    /// Logs the session of this cookie value out, on every replica.
    pub async fn close_session(&self, token: &str) -> Result<(), ReviewError> {
        let hash = roles::hash_secret(token);
        self.blocking(move |s| s.delete_session(&hash)).await
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
