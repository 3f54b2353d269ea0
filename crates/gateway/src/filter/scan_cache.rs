//! The code filter's scanner with a bounded memory of the blocks it has scanned.
//!
//! Parsing and scanning a code block is most of the code filter's cost (~30 µs for a short
//! Python block, tree-sitter's parse the bulk of it). Answers repeat in practice (a cached or
//! deterministic upstream, templated answers, the same snippet across many requests), so the
//! findings of each block are kept in a least-recently-used map keyed by the SHA-256 of the
//! block's language and text: a block seen before costs a hash and a lookup. A key is a digest
//! rather than the text, so an entry is the same size whatever the block's length and no two
//! blocks share an entry in practice. Findings are kept before the policy's severity
//! threshold is applied, so policies share entries. A block seen once gains nothing; its scan
//! costs what it would without the cache, plus the hash.

use std::sync::{Arc, Mutex};

use emguard_codescan::{Language, Scanner, Severity};
use hashlink::LruCache;
use sha2::{Digest, Sha256};

/// Blocks remembered by default: a few hundred bytes each.
pub const DEFAULT_ENTRIES: usize = 4096;

/// What the code filter needs of one finding, lines counted within the block (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFinding {
    pub rule_id: String,
    pub cwe: u32,
    pub severity: Severity,
    pub line: usize,
}

/// A block's findings, shared between the cache and its readers.
pub type BlockFindings = Arc<[BlockFinding]>;

/// Scanned blocks by digest, least recently used first.
type Memory = Mutex<LruCache<[u8; 32], BlockFindings>>;

/// The scanner and its memory; cheap to clone (clones share the memory).
#[derive(Debug, Clone)]
pub struct BlockScanner {
    scanner: Scanner,
    /// `None`: every block is scanned (capacity 0).
    seen: Option<Arc<Memory>>,
}

impl Default for BlockScanner {
    fn default() -> Self {
        BlockScanner::new(DEFAULT_ENTRIES)
    }
}

impl BlockScanner {
    /// Remembers at most `entries` blocks (0: none).
    pub fn new(entries: usize) -> BlockScanner {
        BlockScanner {
            scanner: Scanner::new(),
            seen: (entries > 0).then(|| Arc::new(Mutex::new(LruCache::new(entries)))),
        }
    }

    /// The findings of `code` in `language`, from memory when this block was scanned before.
    pub fn scan(&self, code: &str, language: Language) -> BlockFindings {
        let Some(seen) = &self.seen else {
            return self.scan_now(code, language);
        };
        let key = digest(code, language);
        if let Some(found) = lock(seen).get(&key) {
            return Arc::clone(found);
        }
        // Scanned outside the lock: two requests meeting a new block at once both scan it.
        let found = self.scan_now(code, language);
        lock(seen).insert(key, Arc::clone(&found));
        found
    }

    /// Blocks remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.as_ref().map_or(0, |seen| lock(seen).len())
    }

    fn scan_now(&self, code: &str, language: Language) -> BlockFindings {
        self.scanner
            .scan(code, language)
            .findings
            .into_iter()
            .map(|f| BlockFinding {
                rule_id: f.rule_id,
                cwe: f.cwe,
                severity: f.severity,
                line: f.line,
            })
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding it leaves a valid map: keep using it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn digest(code: &str, language: Language) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(language.name().as_bytes());
    h.update([0]);
    h.update(code.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INJECTION: &str =
        "import os\n\ndef backup(path):\n    os.system(\"tar czf b.tgz \" + path)\n";
    const SAFE: &str = "import subprocess\nsubprocess.run([\"ls\", \"-l\"])\n";

    #[test]
    fn remembered_findings_equal_a_fresh_scan() {
        let cached = BlockScanner::new(16);
        let uncached = BlockScanner::new(0);
        for code in [INJECTION, SAFE, INJECTION, SAFE] {
            assert_eq!(
                cached.scan(code, Language::Python),
                uncached.scan(code, Language::Python)
            );
        }
        assert!(
            cached
                .scan(INJECTION, Language::Python)
                .iter()
                .any(|f| f.cwe == 78)
        );
        assert_eq!(cached.remembered(), 2);
        assert_eq!(uncached.remembered(), 0);
    }

    #[test]
    fn memory_is_bounded_and_keeps_the_recently_used() {
        let cached = BlockScanner::new(3);
        let blocks: Vec<String> = (0..10)
            .map(|i| format!("import os\nos.system(\"echo {i} \" + input())\n"))
            .collect();
        for block in &blocks {
            cached.scan(block, Language::Python);
            // The first block stays in use, so it is never the least recently used.
            cached.scan(&blocks[0], Language::Python);
        }
        assert_eq!(cached.remembered(), 3);
        let seen = cached.seen.as_ref().unwrap();
        let has = |code: &str| lock(seen).contains_key(&digest(code, Language::Python));
        assert!(has(&blocks[0]));
        assert!(has(&blocks[9]));
        assert!(!has(&blocks[1]));
    }
}
