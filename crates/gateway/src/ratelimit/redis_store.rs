//! Limits shared by every replica: the GCRA state lives in Redis and one Lua script
//! (`gcra.lua`, run by EVALSHA) reads and updates it atomically on Redis TIME.
//!
//! One multiplexed connection per replica that reconnects by itself; every call is bounded by
//! `timeout`, so an unreachable Redis costs a request at most that long before the caller's
//! fail-open or fail-closed policy applies.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, ScriptInvocation};

use super::gcra::Lane;
use super::{Lanes, LimitKind, RateLimitError, Verdict};

pub(super) struct RedisStore {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
    /// The URL without its password, for errors and logs.
    url: String,
    timeout: Duration,
}

impl RedisStore {
    pub async fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<RedisStore, RateLimitError> {
        let shown_url = redact_password(url);
        let connect_error = |source| RateLimitError::Connect {
            url: shown_url.clone(),
            source,
        };
        let client = redis::Client::open(url).map_err(connect_error)?;
        // Few, quick reconnect attempts: requests fail open or closed meanwhile, and the next
        // failing request starts a new round.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        let mut connection = tokio::time::timeout(
            // The manager retries refused connections before it gives up: allow for those.
            4 * timeout + Duration::from_secs(1),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| RateLimitError::Timeout {
            url: shown_url.clone(),
            after: timeout,
        })?
        .map_err(connect_error)?;
        let script = Script::new(include_str!("gcra.lua"));
        script
            .load_async(&mut connection)
            .await
            .map_err(|source| RateLimitError::Script {
                url: shown_url.clone(),
                source,
            })?;
        Ok(RedisStore {
            connection,
            script,
            // `emguard:rl` and `emguard:rl:` both give keys `emguard:rl:KEY_ID`.
            prefix: prefix.trim_end_matches(':').to_owned(),
            url: shown_url,
            timeout,
        })
    }

    pub async fn admit(&self, key_id: &str, lanes: &Lanes) -> Result<Verdict, RateLimitError> {
        let (request_interval, request_span) = interval_and_span(lanes.requests);
        let (token_interval, token_span) = interval_and_span(lanes.tokens);
        let mut call = self.script.key(self.state_key(key_id));
        call.arg("admit")
            .arg(request_interval)
            .arg(request_span)
            .arg(token_interval)
            .arg(token_span);
        let (outcome, wait_us) = self.run(&call).await?;
        Ok(match outcome {
            1 => Verdict::Limited(LimitKind::Requests, wait_us),
            2 => Verdict::Limited(LimitKind::Tokens, wait_us),
            _ => Verdict::Admitted,
        })
    }

    pub async fn charge_tokens(
        &self,
        key_id: &str,
        tokens: &Lane,
        count: u64,
    ) -> Result<(), RateLimitError> {
        let mut call = self.script.key(self.state_key(key_id));
        call.arg("charge").arg(tokens.cost_us(count));
        self.run(&call).await.map(|_| ())
    }

    /// `prefix:key_id`: one hash per API key, so a Redis Cluster keeps it on one slot.
    fn state_key(&self, key_id: &str) -> String {
        format!("{}:{key_id}", self.prefix)
    }

    async fn run(&self, call: &ScriptInvocation<'_>) -> Result<(u8, u64), RateLimitError> {
        // EVALSHA; after a Redis restart has emptied the script cache it loads the script again.
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, call.invoke_async(&mut connection)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(source)) => Err(RateLimitError::Command {
                url: self.url.clone(),
                source,
            }),
            Err(_) => Err(RateLimitError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            }),
        }
    }
}

fn interval_and_span(lane: Option<Lane>) -> (u64, u64) {
    lane.map_or((0, 0), |lane| (lane.interval_us, lane.span_us))
}

/// `redis://user:secret@host` → `redis://user:***@host`: URLs reach errors and logs.
pub(super) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_never_reach_error_messages() {
        assert_eq!(
            redact_password("redis://:hunter2@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_password("rediss://app:p@ss@cache"),
            "rediss://app:***@cache"
        );
        assert_eq!(
            redact_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
