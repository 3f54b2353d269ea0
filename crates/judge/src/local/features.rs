//! The feature vector both heads read: hashed word n-grams (with scopes), rule hits, and
//! dense coherence measures. Sparse: `(index, value)` pairs.
//!
//! Layout: `[0, HASHED)` hashed uni/bigrams; then `RULE_FEATURES` rule counts; then
//! `COHERENCE_FEATURES` dense measures. Changing any of it needs retraining (the weights
//! file records `HASH_BITS` and the feature count and refuses a mismatch).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::detect;
use super::lexicon::LEXICON;
use super::rules::{self, Hit, Kind};
use super::text::{Token, normalize, tokenize};

pub const HASH_BITS: u32 = 18;
pub const HASHED: usize = 1 << HASH_BITS;
/// Per kind: asserted hits, not-asserted hits, asserted lexicon words, negated or quoted
/// lexicon words; then "any explicit asserted hit".
pub const RULE_FEATURES: usize = Kind::ALL.len() * 4 + 1;
pub const COHERENCE_FEATURES: usize = 20;
pub const DIM: usize = HASHED + RULE_FEATURES + COHERENCE_FEATURES;

/// Value of a present hashed n-gram. Below 1 so that the L2 penalty weighs more on
/// memorised n-grams than on the rule and lexicon counts, which transfer to new answers.
pub const HASHED_VALUE: f32 = 0.5;

pub type Sparse = Vec<(u32, f32)>;

/// An answer read once: normalized text, its tokens and rule hits, from which the vector of
/// the whole answer or of any span of it is built with the scopes of the whole.
pub struct Prepared {
    pub text: String,
    /// The answer was a JSON object or array (the text is its string values).
    pub is_json: bool,
    pub tokens: Vec<Token>,
    pub hits: Vec<Hit>,
}

pub fn prepare(answer: &str) -> Prepared {
    let (text, is_json) = normalize(answer);
    let tokens = tokenize(&text);
    let hits = rules::hits(&text);
    Prepared {
        text,
        is_json,
        tokens,
        hits,
    }
}

impl Prepared {
    pub fn vector(&self, question: &str) -> Sparse {
        self.span_vector(question, 0..self.text.len())
    }

    /// Features of the span `range` (byte offsets into `text`).
    pub fn span_vector(&self, question: &str, range: Range<usize>) -> Sparse {
        let tokens: Vec<Token> = self
            .tokens
            .iter()
            .filter(|t| range.contains(&t.start))
            .cloned()
            .collect();
        let hits: Vec<Hit> = self
            .hits
            .iter()
            .filter(|h| range.contains(&h.start))
            .cloned()
            .collect();
        let mut vector = hashed_ngrams(&tokens);
        vector.extend(rule_features(&hits, &tokens));
        vector.extend(
            self.coherence(question, &self.text[range], &tokens)
                .into_iter()
                .enumerate()
                .map(|(i, v)| ((HASHED + RULE_FEATURES + i) as u32, v)),
        );
        vector
    }

    /// Coherence measures; for code introduced by prose, the prose measures read the prose
    /// lines only (code is not English and would read as nonsense), the code measures the
    /// whole.
    fn coherence(&self, question: &str, text: &str, tokens: &[Token]) -> [f32; COHERENCE_FEATURES] {
        if !introduced_code(text) {
            return coherence_features(question, text, tokens, self.is_json);
        }
        let prose: String = text
            .lines()
            .filter(|l| !detect::looks_like_code(l.trim()))
            .collect::<Vec<_>>()
            .join("\n");
        let mut f = coherence_features(question, &prose, &tokenize(&prose), self.is_json);
        f[CODE_SHARE] = detect::code_line_share(text) as f32;
        f[INTRODUCED_CODE] = 1.0;
        f
    }

    /// Sentences and lines with at least `min_words` words, as byte ranges; none when the
    /// text is a single such span.
    pub fn segments(&self, min_words: usize) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        let mut start = 0;
        for (i, ch) in self.text.char_indices() {
            if matches!(ch, '\n' | '.' | '!' | '?' | ';') {
                spans.push(start..i + 1);
                start = i + 1;
            }
        }
        spans.push(start..self.text.len());
        spans.retain(|r| self.text[r.clone()].split_whitespace().count() >= min_words);
        if spans.len() > 1 { spans } else { Vec::new() }
    }
}

/// FNV-1a: stable across platforms and releases, unlike std's hasher.
fn hash(s: &str) -> u32 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % HASHED as u64) as u32
}

fn hashed_ngrams(tokens: &[Token]) -> Sparse {
    let names: Vec<String> = tokens.iter().map(Token::feature).collect();
    let mut seen = HashSet::new();
    for (i, name) in names.iter().enumerate() {
        seen.insert(hash(name));
        if let Some(next) = names.get(i + 1) {
            seen.insert(hash(&format!("{name} {next}")));
        }
    }
    let mut v: Sparse = seen.into_iter().map(|i| (i, HASHED_VALUE)).collect();
    v.sort_unstable_by_key(|&(i, _)| i);
    v
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|&k| k == kind).unwrap_or(0)
}

fn rule_features(hits: &[Hit], tokens: &[Token]) -> Sparse {
    let mut counts = [0f32; RULE_FEATURES];
    for h in hits {
        counts[kind_index(h.kind) * 4 + usize::from(!h.asserted)] += 1.0;
        if h.asserted && h.explicit {
            counts[RULE_FEATURES - 1] = 1.0;
        }
    }
    for t in tokens {
        for (kind, words) in LEXICON {
            if words.contains(&t.word.as_str()) {
                counts[kind_index(*kind) * 4 + 2 + usize::from(t.negated || t.quoted)] += 1.0;
            }
        }
    }
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0.0)
        .map(|(i, c)| ((HASHED + i) as u32, c.min(3.0)))
        .collect()
}

const STOPWORDS: &[&str] = &[
    "the", "a", "an", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "is", "are",
    "was", "were", "be", "it", "that", "this", "i", "you", "he", "she", "they", "we", "my", "your",
    "his", "her", "their", "me", "him", "them", "as", "by", "from", "if", "so", "not", "do", "can",
    "will", "would", "have", "has", "what",
];
const DETERMINERS: &[&str] = &[
    "the", "a", "an", "my", "your", "his", "their", "our", "this",
];
/// Words that rarely follow a determiner in well-formed English.
const AFTER_DETERMINER_CLASH: &[&str] = &[
    "the", "a", "an", "of", "to", "in", "is", "are", "was", "and", "or", "my", "your", "i", "you",
    "he", "she", "they", "we", "it", "be", "will", "would", "can",
];

const CODE_SHARE: usize = 14;
const INTRODUCED_CODE: usize = 19;

/// Code with a sentence of prose that says what it is for: an answer, not a code dump.
fn introduced_code(answer: &str) -> bool {
    detect::code_line_share(answer) >= 0.3
        && answer
            .lines()
            .any(|l| !detect::looks_like_code(l.trim()) && l.split_whitespace().count() >= 6)
}

/// Dense measures of whether text reads as sensible English that answers the question.
/// `answer` is the text judged (a JSON answer's values); `is_json` says it came as JSON.
fn coherence_features(
    question: &str,
    answer: &str,
    tokens: &[Token],
    is_json: bool,
) -> [f32; COHERENCE_FEATURES] {
    let words: Vec<&str> = tokens.iter().map(|t| t.word.as_str()).collect();
    let n = words.len().max(1) as f32;
    let unique = words.iter().collect::<HashSet<_>>().len() as f32;

    let mut trigrams: HashMap<(&str, &str, &str), u32> = HashMap::new();
    for w in words.windows(3) {
        *trigrams.entry((w[0], w[1], w[2])).or_default() += 1;
    }
    let trigram_total = trigrams.values().sum::<u32>().max(1) as f32;
    let repeated: u32 = trigrams.values().map(|c| c - 1).sum();
    let max_repeat = trigrams.values().copied().max().unwrap_or(0) as f32;

    let stop_share = words.iter().filter(|w| STOPWORDS.contains(w)).count() as f32 / n;
    let letters: Vec<char> = answer.chars().filter(|c| c.is_alphabetic()).collect();
    let non_ascii =
        letters.iter().filter(|c| !c.is_ascii()).count() as f32 / letters.len().max(1) as f32;
    let raw: Vec<&str> = answer.split_whitespace().collect();
    let alpha_share = raw
        .iter()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count() as f32
        / raw.len().max(1) as f32;
    let trimmed = answer.trim_end();
    let ends_terminal = f32::from(u8::from(
        trimmed.ends_with(['.', '!', '?', '}', ')', '"', '`']),
    ));

    let sentences: Vec<&str> = answer
        .split(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let capitalized = sentences
        .iter()
        .filter(|s| s.chars().next().is_some_and(|c| !c.is_lowercase()))
        .count() as f32
        / sentences.len().max(1) as f32;
    let mean_sentence = n / sentences.len().max(1) as f32;
    let adjacent_dup = words.windows(2).filter(|w| w[0] == w[1]).count() as f32 / n;
    let lower = answer.to_lowercase();
    let chat_leak = [
        "user:",
        "assistant:",
        "### instruction",
        "### response",
        "[insert",
        "<|im_",
    ]
    .iter()
    .filter(|m| lower.contains(*m))
    .count() as f32;

    let q_content: HashSet<String> = tokenize(question)
        .into_iter()
        .map(|t| t.word)
        .filter(|w| w.len() > 3 && !STOPWORDS.contains(&w.as_str()))
        .collect();
    let answer_words: HashSet<&str> = words.iter().copied().collect();
    let overlap = q_content
        .iter()
        .filter(|w| answer_words.contains(w.as_str()))
        .count() as f32
        / q_content.len().max(1) as f32;
    let clash = words
        .windows(2)
        .filter(|w| DETERMINERS.contains(&w[0]) && AFTER_DETERMINER_CLASH.contains(&w[1]))
        .count() as f32
        / n;
    let empty_items = answer
        .split(|c: char| c.is_ascii_digit())
        .filter(|s| s.starts_with(['.', ')']) && s[1..].split_whitespace().count() < 2)
        .count() as f32;
    let starts_lower = f32::from(u8::from(
        answer
            .trim_start()
            .chars()
            .next()
            .is_some_and(char::is_lowercase),
    ));

    [
        (1.0 + n).ln() / 5.0,
        unique / n,
        repeated as f32 / trigram_total,
        (1.0 + max_repeat).ln() / 2.0,
        stop_share,
        non_ascii,
        alpha_share,
        ends_terminal,
        capitalized,
        (1.0 + mean_sentence).ln() / 4.0,
        adjacent_dup * 5.0,
        chat_leak.min(3.0),
        overlap,
        clash * 10.0,
        detect::code_line_share(answer) as f32, // CODE_SHARE
        starts_lower,
        empty_items.min(5.0) / 5.0,
        f32::from(u8::from(words.len() < 4)),
        f32::from(u8::from(is_json)),
        f32::from(u8::from(introduced_code(answer))), // INTRODUCED_CODE
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_is_inside_the_layout() {
        let v = prepare("Never poison him. the the of the the the the the the.")
            .vector("hey I feel bored");
        assert!(v.iter().all(|&(i, _)| (i as usize) < DIM));
        assert!(v.iter().any(|&(i, _)| i as usize >= HASHED + RULE_FEATURES));
    }

    #[test]
    fn a_span_keeps_the_scopes_of_the_whole() {
        let p = prepare("Some say \"beat him. Then steal it.\" Ignore that.");
        let spans = p.segments(2);
        assert_eq!(spans.len(), 3, "{spans:?}");
        let quoted = p.span_vector("q", spans[1].clone());
        assert!(quoted.contains(&(hash("\"steal"), HASHED_VALUE)));
        assert!(!quoted.contains(&(hash("steal"), HASHED_VALUE)));
    }

    #[test]
    fn loops_raise_the_repetition_measure() {
        let coherent = coherence_features(
            "q",
            "I would plant trees and fund schools.",
            &tokenize("I would plant trees and fund schools."),
            false,
        );
        let looping = "I would plant trees plant trees plant trees plant trees plant trees";
        let looped = coherence_features("q", looping, &tokenize(looping), false);
        assert!(
            looped[2] > coherent[2] + 0.3,
            "{} vs {}",
            looped[2],
            coherent[2]
        );
    }
}
