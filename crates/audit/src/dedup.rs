//! Exact and near duplicates. Exact: a 64-bit hash of the row's whitespace-normalised text.
//! Near: MinHash over word 3-shingles, 48 hash functions in 6 bands of 8 (LSH), so two rows
//! share a band with probability 1-(1-J^8)^6: 97% at Jaccard 0.9, 2% at 0.5, threshold ~0.8.
//! Per row the index keeps up to 7 small hash keys, not the text; it stops growing at
//! [`MAX_KEYS`] keys (~70 MB), after which rows are still checked against the rows before.

use rustc_hash::FxHashMap;

use serde::Serialize;

const BANDS: usize = 6;
const ROWS_PER_BAND: usize = 8;
const PERMUTATIONS: usize = BANDS * ROWS_PER_BAND;
const SHINGLE: usize = 3;
/// Upper bound on the index (bounded memory on huge inputs).
pub const MAX_KEYS: usize = 3_500_000;

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

/// The first line seen for each key: the exact hash and the band hashes share one map
/// (band keys are mixed with their band number, so they cannot collide with exact keys
/// except by chance at 2^-64).
#[derive(Debug, Default)]
pub struct Index {
    first_line: FxHashMap<u64, u32>,
    /// The line at which the index was full, if it filled up.
    pub full_at: Option<u64>,
}

impl Index {
    /// Records the row on `line`; says which earlier row it duplicates, if any.
    pub fn insert(&mut self, line: u64, fingerprint: &Fingerprint) -> Option<Duplicate> {
        if let Some(&of) = self.first_line.get(&fingerprint.exact) {
            return Some(Duplicate::Exact { of: u64::from(of) });
        }
        let near = fingerprint
            .bands
            .iter()
            .find_map(|band| self.first_line.get(band))
            .map(|&of| Duplicate::Near { of: u64::from(of) });
        if self.first_line.len() + 1 + BANDS > MAX_KEYS {
            self.full_at.get_or_insert(line);
            return near;
        }
        let line32 = u32::try_from(line).unwrap_or(u32::MAX);
        self.first_line.entry(fingerprint.exact).or_insert(line32);
        for band in fingerprint.bands {
            self.first_line.entry(band).or_insert(line32);
        }
        near
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
    }
}
