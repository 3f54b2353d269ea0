//! In-process limits: one GCRA state per key in a sharded map, for a single replica.
//!
//! Why not the governor crate: its keyed limiter carries one quota for all keys, while every
//! API key here has its own, and it cannot charge tokens after the fact (a finished request's
//! usage that may overdraw the budget). The state is two numbers per key, the same arithmetic
//! as the Redis script, so both backends behave alike.
//!
//! Memory stays bounded: a key whose theoretical arrival times have both passed is
//! indistinguishable from a key never seen, so a shard drops such keys whenever it has doubled
//! since its last sweep.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

// Key ids are issued by the gateway, not chosen by clients: a fast seeded hash will do.
use foldhash::fast::RandomState;

use super::gcra::{self, Lane};
use super::{Lanes, LimitKind, Verdict};

const SHARDS: usize = 16;
/// A shard is not swept below this many keys: sweeping small maps would cost more than it frees.
const MIN_SWEEP_LEN: usize = 1024;

pub(super) struct LocalStore {
    epoch: Instant,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

struct Shard {
    keys: HashMap<Box<str>, KeyState, RandomState>,
    sweep_at_len: usize,
}

/// Theoretical arrival times in microseconds since the store's epoch; 0 means "never used".
#[derive(Debug, Default, Clone, Copy)]
struct KeyState {
    requests_tat: u64,
    tokens_tat: u64,
}

impl KeyState {
    fn admit(&mut self, lanes: &Lanes, now: u64) -> Verdict {
        if let Some(tokens) = lanes.tokens
            && let Err(wait_us) = tokens.room(self.tokens_tat, now)
        {
            return Verdict::Limited(LimitKind::Tokens, wait_us);
        }
        let Some(requests) = lanes.requests else {
            return Verdict::Admitted;
        };
        match requests.take(self.requests_tat, now, requests.interval_us) {
            Ok(requests_tat) => {
                self.requests_tat = requests_tat;
                Verdict::Admitted
            }
            Err(wait_us) => Verdict::Limited(LimitKind::Requests, wait_us),
        }
    }

    fn idle_at(&self, now: u64) -> bool {
        self.requests_tat <= now && self.tokens_tat <= now
    }
}

impl LocalStore {
    pub fn new() -> LocalStore {
        LocalStore {
            epoch: Instant::now(),
            hasher: RandomState::default(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        keys: HashMap::default(),
                        sweep_at_len: MIN_SWEEP_LEN,
                    })
                })
                .collect(),
        }
    }

    pub fn admit(&self, key_id: &str, lanes: &Lanes) -> Verdict {
        let now = self.now_us();
        let mut shard = self.shard(key_id);
        if let Some(state) = shard.keys.get_mut(key_id) {
            return state.admit(lanes, now);
        }
        let mut state = KeyState::default();
        let verdict = state.admit(lanes, now);
        shard.insert(key_id, state, now);
        verdict
    }

    pub fn charge_tokens(&self, key_id: &str, tokens: &Lane, count: u64) {
        let now = self.now_us();
        let cost_us = tokens.cost_us(count);
        let mut shard = self.shard(key_id);
        match shard.keys.get_mut(key_id) {
            Some(state) => state.tokens_tat = gcra::charge(state.tokens_tat, now, cost_us),
            None => {
                let tokens_tat = gcra::charge(0, now, cost_us);
                let state = KeyState {
                    tokens_tat,
                    ..KeyState::default()
                };
                shard.insert(key_id, state, now);
            }
        }
    }

    fn now_us(&self) -> u64 {
        // Starts at 1 so that a fresh state's TAT of 0 is always in the past.
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    fn shard(&self, key_id: &str) -> MutexGuard<'_, Shard> {
        let index = self.hasher.hash_one(key_id) as usize % SHARDS;
        // A panic while holding a shard cannot leave a KeyState half-written: take it back.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap().keys.len())
            .sum()
    }
}

impl Shard {
    /// Adds a key not in the map yet, unless its state is that of a key never seen.
    fn insert(&mut self, key_id: &str, state: KeyState, now: u64) {
        if state.idle_at(now) {
            return;
        }
        self.keys.insert(key_id.into(), state);
        if self.keys.len() >= self.sweep_at_len {
            self.keys.retain(|_, state| !state.idle_at(now));
            self.sweep_at_len = (2 * self.keys.len()).max(MIN_SWEEP_LEN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Quota;
    use std::time::Duration;

    #[test]
    fn idle_keys_are_evicted_so_memory_stays_bounded() {
        let store = LocalStore::new();
        // 60 000 rpm with a burst of one: each key is busy for 1 ms after its request.
        let lanes = Lanes::new(
            &Quota {
                requests_per_minute: Some(60_000),
                tokens_per_minute: None,
            },
            Duration::ZERO,
        );
        for round in 0..20 {
            for i in 0..2000 {
                let verdict = store.admit(&format!("key-{round}-{i}"), &lanes);
                assert!(matches!(verdict, Verdict::Admitted));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // 40 000 distinct keys went through; only the last round's can still be live.
        assert!(
            store.len() <= 2000 + SHARDS * MIN_SWEEP_LEN,
            "{}",
            store.len()
        );
        assert!(store.len() < 40_000);
    }
}
