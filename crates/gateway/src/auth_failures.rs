//! Failed authentications per client address: past a budget a minute, an address's requests
//! are refused before any key is looked at, so guessing keys (or filling the trace store with
//! refused requests) costs the guesser time, not the gateway work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past it, those whose window has ended are forgotten (and if
/// all are current, all: a flood of addresses cannot grow memory without bound).
const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug)]
pub struct FailedAuth {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailedAuth {
    pub fn new(per_minute: u32) -> FailedAuth {
        FailedAuth {
            per_minute,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `ip` may try again, when it has used up its failures this minute.
    pub fn refused(&self, ip: IpAddr) -> Option<u64> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count) = seen.get(&ip)?;
        let elapsed = start.elapsed();
        (elapsed < WINDOW && *count >= self.per_minute).then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&ip) {
            seen.retain(|_, (start, _)| start.elapsed() < WINDOW);
            if seen.len() >= MAX_ADDRESSES {
                seen.clear();
            }
        }
        let entry = seen.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_past_its_budget_and_others_are_not() {
        let limiter = FailedAuth::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.refused(a), None);
            limiter.record_failure(a);
        }
        assert!(limiter.refused(a).is_some_and(|s| (1..=60).contains(&s)));
        assert_eq!(limiter.refused(b), None);
    }
}
