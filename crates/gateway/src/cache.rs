//! The exact-match response cache, opt-in per model (`cache: {ttl_secs, max_entries}` in the
//! model's config). A whole (not streamed) answer to a reproducible request (temperature 0,
//! or a `seed`) is kept for `ttl_secs`, keyed by the version that would answer, the API and
//! the request's JSON (every field but `stream_options` and `user`: messages or prompt and
//! every sampling parameter). An identical request then gets it without reaching the
//! version, after its key, scope, rate limits and budget were checked like any other; the
//! answer still goes through the filters, is traced (its attempt's outcome is `cache_hit`)
//! and charged. An answer any filter acted on is never kept. In memory, per replica.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A model's `cache` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an answer is served from the cache.
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs: u64,
    /// Most answers kept; the oldest goes first.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

fn default_ttl_secs() -> u64 {
    300
}

fn default_max_entries() -> usize {
    1000
}

/// A request's place in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

pub struct ResponseCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    answers: HashMap<CacheKey, (Instant, Value)>,
    /// Keys in insertion order, for evicting the oldest.
    order: VecDeque<(Instant, CacheKey)>,
}

impl ResponseCache {
    pub fn new(config: CacheConfig) -> ResponseCache {
        ResponseCache {
            ttl: Duration::from_secs(config.ttl_secs),
            max_entries: config.max_entries.max(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The key of a request (its JSON as sent, `raw`) to `version` through `api`, or `None`
    /// when the request may not be served from a cache: streamed, or neither greedy nor seeded
    /// (a sampled answer is meant to differ each time).
    pub fn key(version: &str, api: &str, raw: &Value) -> Option<CacheKey> {
        let object = raw.as_object()?;
        if object.get("stream").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let greedy = object.get("temperature").and_then(Value::as_f64) == Some(0.0);
        let seeded = object.get("seed").is_some_and(|s| !s.is_null());
        if !greedy && !seeded {
            return None;
        }
        let mut hasher = Sha256::new();
        for part in [version, "\0", api, "\0"] {
            hasher.update(part.as_bytes());
        }
        // serde_json's map is ordered by key: equal requests serialize equally whatever the
        // order their fields were sent in.
        for (name, value) in object {
            if matches!(name.as_str(), "stream_options" | "user") {
                continue;
            }
            hasher.update(name.as_bytes());
            hasher.update(b"\0");
            hasher.update(value.to_string().as_bytes());
            hasher.update(b"\0");
        }
        Some(CacheKey(hasher.finalize().into()))
    }

    /// The kept answer, if fresh; counted as a hit or a miss for `model`.
    pub fn get(&self, model: &str, key: &CacheKey) -> Option<Value> {
        let now = Instant::now();
        let found = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.answers.get(key) {
                Some((at, answer)) if now.duration_since(*at) < self.ttl => Some(answer.clone()),
                Some(_) => {
                    entries.answers.remove(key);
                    None
                }
                None => None,
            }
        };
        let outcome = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!("emguard_cache_lookups_total", "model" => model.to_string(), "outcome" => outcome)
            .increment(1);
        found
    }

    /// Keeps an answer no filter acted on, evicting expired answers, then the oldest, to
    /// stay within `max_entries`.
    pub fn put(&self, key: CacheKey, answer: Value) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Entries { answers, order } = &mut *entries;
        answers.insert(key, (now, answer));
        order.push_back((now, key));
        while answers.len() > self.max_entries
            || order
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) >= self.ttl)
        {
            let Some((at, oldest)) = order.pop_front() else {
                break;
            };
            // A key put again since has a newer time: only its latest put evicts it.
            if answers.get(&oldest).is_some_and(|(kept, _)| *kept == at) {
                answers.remove(&oldest);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answers
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cache(max_entries: usize, ttl_secs: u64) -> ResponseCache {
        ResponseCache::new(CacheConfig {
            ttl_secs,
            max_entries,
        })
    }

    #[test]
    fn only_reproducible_whole_requests_have_a_key() {
        let greedy = json!({"model": "m", "messages": [], "temperature": 0});
        let seeded = json!({"model": "m", "messages": [], "temperature": 1, "seed": 4});
        assert!(ResponseCache::key("v1", "chat", &greedy).is_some());
        assert!(ResponseCache::key("v1", "chat", &seeded).is_some());
        assert!(ResponseCache::key("v1", "chat", &json!({"model": "m", "messages": []})).is_none());
        let mut streamed = greedy.clone();
        streamed["stream"] = json!(true);
        assert!(ResponseCache::key("v1", "chat", &streamed).is_none());
    }

    #[test]
    fn the_key_covers_version_api_and_every_sampling_field_but_not_field_order() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 5});
        let same: Value = serde_json::from_str(
            r#"{"max_tokens": 5, "temperature": 0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}"#,
        )
        .unwrap();
        let key = |v: &Value| ResponseCache::key("v1", "chat", v).unwrap();
        assert_eq!(key(&a), key(&same));
        let mut other = a.clone();
        other["max_tokens"] = json!(6);
        assert_ne!(key(&a), key(&other));
        assert_ne!(key(&a), ResponseCache::key("v2", "chat", &a).unwrap());
        assert_ne!(key(&a), ResponseCache::key("v1", "text", &a).unwrap());
    }

    #[test]
    fn answers_expire_and_the_oldest_go_first() {
        let c = cache(2, 300);
        let keys: Vec<CacheKey> = (0..3)
            .map(|i| ResponseCache::key("v1", "chat", &json!({"temperature": 0, "n": i})).unwrap())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            c.put(*k, json!(i));
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("m", &keys[0]), None);
        assert_eq!(c.get("m", &keys[2]), Some(json!(2)));
        let expired = cache(2, 0);
        expired.put(keys[0], json!(0));
        assert_eq!(expired.get("m", &keys[0]), None);
    }
}
