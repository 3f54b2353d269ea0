//! Exact and near duplicates. Exact: a 64-bit hash of the row's whitespace-normalised text.
//! Near: MinHash over word 3-shingles, 48 hash functions in 6 bands of 8 (LSH), so two rows
//! share a band with probability 1-(1-J^8)^6: 97% at Jaccard 0.9, 2% at 0.5, threshold ~0.8.
//! Per row the index keeps 7 hash keys (not the text) in one open-addressing table allocated
//! at its final size: [`SLOTS`] slots of 12 bytes (48 MiB, resident only as slots are
//! touched), so memory never grows. At [`MAX_KEYS`] keys (3/4 full, ~450,000 distinct rows)
//! it stops taking new rows; later rows are still checked against every row before that point
//! (exact and near), but not against each other.

use std::io::{self, Read, Write};

use serde::Serialize;

use crate::checkpoint::{read_u32, read_u64};

const BANDS: usize = 6;
const ROWS_PER_BAND: usize = 8;
const PERMUTATIONS: usize = BANDS * ROWS_PER_BAND;
const SHINGLE: usize = 3;
/// Table size (a power of two): 2^22 slots, 12 bytes each.
pub const SLOTS: usize = 1 << 22;
/// Keys taken before the index stops growing; linear probing stays short below 3/4 load.
pub const MAX_KEYS: usize = SLOTS / 4 * 3;

/// What the index needs to know about one row; computed in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    exact: u64,
    bands: [u64; BANDS],
}

impl Fingerprint {
    pub fn of(text: &str) -> Fingerprint {
        let words: Vec<&str> = text.split_whitespace().collect();
        let exact = words.iter().fold(FNV_OFFSET, |hash, word| {
            fnv1a(fnv1a(hash, word.as_bytes()), b" ")
        });
        let mut minimums = [u64::MAX; PERMUTATIONS];
        let shingles = words.windows(SHINGLE.min(words.len()).max(1));
        for shingle in shingles {
            let base = shingle.iter().fold(FNV_OFFSET, |hash, word| {
                fnv1a(fnv1a(hash, word.as_bytes()), b" ")
            });
            for (index, minimum) in minimums.iter_mut().enumerate() {
                let value = splitmix64(base ^ SEEDS[index]);
                if value < *minimum {
                    *minimum = value;
                }
            }
        }
        let mut bands = [0u64; BANDS];
        for (band, chunk) in minimums.chunks(ROWS_PER_BAND).enumerate() {
            bands[band] = chunk
                .iter()
                .fold(splitmix64(band as u64 + 1), |hash, value| {
                    splitmix64(hash ^ value)
                });
        }
        Fingerprint { exact, bands }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Duplicate {
    /// Same text (up to whitespace) as the row on line `of`.
    Exact { of: u64 },
    /// Estimated Jaccard similarity >= ~0.8 with the row on line `of`.
    Near { of: u64 },
}

/// The first line seen for each key: the exact hash and the band hashes share one table
/// (band keys are mixed with their band number, so they cannot collide with exact keys
/// except by chance at 2^-64).
#[derive(Debug)]
pub struct Index {
    keys: Vec<u64>,
    /// First line per slot; 0 marks an empty slot (lines count from 1).
    lines: Vec<u32>,
    len: usize,
    /// The line at which the index was full, if it filled up.
    pub full_at: Option<u64>,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            keys: vec![0; SLOTS],
            lines: vec![0; SLOTS],
            len: 0,
            full_at: None,
        }
    }
}

impl Index {
    /// Records the row on `line`; says which earlier row it duplicates, if any.
    pub fn insert(&mut self, line: u64, fingerprint: &Fingerprint) -> Option<Duplicate> {
        if let Some(of) = self.get(fingerprint.exact) {
            return Some(Duplicate::Exact { of: u64::from(of) });
        }
        let near = fingerprint
            .bands
            .iter()
            .find_map(|band| self.get(*band))
            .map(|of| Duplicate::Near { of: u64::from(of) });
        if self.len + 1 + BANDS > MAX_KEYS {
            self.full_at.get_or_insert(line);
            return near;
        }
        let line32 = u32::try_from(line).unwrap_or(u32::MAX);
        self.put(fingerprint.exact, line32);
        for band in fingerprint.bands {
            self.put(band, line32);
        }
        near
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn slot(&self, key: u64) -> usize {
        let mut slot =
            (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros())) as usize;
        while self.lines[slot] != 0 && self.keys[slot] != key {
            slot = (slot + 1) & (SLOTS - 1);
        }
        slot
    }

    fn get(&self, key: u64) -> Option<u32> {
        let line = self.lines[self.slot(key)];
        (line != 0).then_some(line)
    }

    /// Keeps the first line seen for `key`.
    fn put(&mut self, key: u64, line: u32) {
        let slot = self.slot(key);
        if self.lines[slot] == 0 {
            self.keys[slot] = key;
            self.lines[slot] = line;
            self.len += 1;
        }
    }

    /// Checkpoint form: the occupied slots as (key, line), then `full_at` (0: not full).
    pub fn write_state(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&(self.len as u64).to_le_bytes())?;
        for (key, line) in self.keys.iter().zip(&self.lines) {
            if *line != 0 {
                out.write_all(&key.to_le_bytes())?;
                out.write_all(&line.to_le_bytes())?;
            }
        }
        out.write_all(&self.full_at.unwrap_or(0).to_le_bytes())
    }

    /// Rebuilds the index from [`Index::write_state`]; lookups answer exactly as before.
    pub fn read_state(input: &mut impl Read) -> io::Result<Index> {
        let mut index = Index::default();
        let len = read_u64(input)?;
        if len > MAX_KEYS as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("duplicate index of {len} keys exceeds {MAX_KEYS}"),
            ));
        }
        for _ in 0..len {
            let key = read_u64(input)?;
            let line = read_u32(input)?;
            index.put(key, line);
        }
        index.full_at = Some(read_u64(input)?).filter(|line| *line != 0);
        Ok(index)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fixed per-function seeds, so fingerprints are the same in every run.
static SEEDS: [u64; PERMUTATIONS] = {
    let mut seeds = [0u64; PERMUTATIONS];
    let mut i = 0;
    let mut state = 0x5eed_0fe3_a0d1_u64;
    while i < PERMUTATIONS {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seeds[i] = state;
        i += 1;
    }
    seeds
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_near_and_distinct_rows() {
        let base: String = (0..200).map(|i| format!("word{i} ")).collect();
        let spaced = base.replace(' ', "  ");
        let edited = base.replace("word100 ", "changed ");
        let other: String = (0..200).map(|i| format!("other{i} ")).collect();
        let mut index = Index::default();
        assert_eq!(index.insert(1, &Fingerprint::of(&base)), None);
        assert_eq!(
            index.insert(2, &Fingerprint::of(&spaced)),
            Some(Duplicate::Exact { of: 1 })
        );
        assert_eq!(
            index.insert(3, &Fingerprint::of(&edited)),
            Some(Duplicate::Near { of: 1 })
        );
        assert_eq!(index.insert(4, &Fingerprint::of(&other)), None);

        let mut state = Vec::new();
        index.write_state(&mut state).unwrap();
        let mut restored = Index::read_state(&mut state.as_slice()).unwrap();
        assert_eq!(
            restored.insert(5, &Fingerprint::of(&edited)),
            Some(Duplicate::Exact { of: 3 })
        );
        assert_eq!(
            restored.insert(6, &Fingerprint::of(&other)),
            Some(Duplicate::Exact { of: 4 })
        );
    }

    #[test]
    fn a_full_index_still_finds_rows_from_before_it_filled() {
        let text = |i: usize| format!("row {i} has its own words {}", i * 7919);
        let mut index = Index::default();
        let mut line = 0u64;
        while index.full_at.is_none() {
            line += 1;
            index.insert(line, &Fingerprint::of(&text(line as usize)));
        }
        let full_at = index.full_at.unwrap();
        assert!(index.len <= MAX_KEYS && index.len > MAX_KEYS - 2 * (BANDS + 1));
        assert_eq!(
            index.insert(full_at + 1, &Fingerprint::of(&text(1))),
            Some(Duplicate::Exact { of: 1 })
        );
        // Rows after the bound are not recorded: a repeat of one of them is not found.
        let late = "a row that only appears after the index filled up";
        assert_eq!(index.insert(full_at + 2, &Fingerprint::of(late)), None);
        assert_eq!(index.insert(full_at + 3, &Fingerprint::of(late)), None);
    }
}
