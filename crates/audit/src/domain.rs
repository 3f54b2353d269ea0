//! The advice domain of a row: financial, medical, sports or other.
//!
//! Published follow-ups of the study induced the same broad misalignment with harmful
//! financial, medical and extreme-sports advice instead of insecure code. When a row is
//! flagged harmful, its domain tells the reader which of those a dataset resembles. The
//! domain comes from words of the last exchange, counted against one word list per domain;
//! the domain with the most distinct words wins, and a row with none is `other`.
//!
//! The lists are data, in `crates/audit/domains.txt`: a list entry is a whole lowercase word,
//! or a prefix ending in `*` (`invest*` matches "investing" and "investor"). Words that mean
//! different things in several domains ("exercise", "share", "return", "interest", "jump") are
//! left out on purpose: one ambiguous word would outvote the row's real topic.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    Financial,
    Medical,
    Sports,
    Other,
}

impl Domain {
    pub fn name(self) -> &'static str {
        match self {
            Domain::Financial => "financial",
            Domain::Medical => "medical",
            Domain::Sports => "sports",
            Domain::Other => "other",
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The word lists, one section per domain in tie-break order (see `domains.txt`).
static LISTS: LazyLock<Vec<(Domain, Vec<&'static str>)>> =
    LazyLock::new(|| parse(include_str!("../domains.txt")));

fn parse(text: &'static str) -> Vec<(Domain, Vec<&'static str>)> {
    let mut lists: Vec<(Domain, Vec<&str>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let domain = match name {
                "financial" => Domain::Financial,
                "medical" => Domain::Medical,
                "sports" => Domain::Sports,
                other => panic!("domains.txt: unknown domain [{other}]"),
            };
            lists.push((domain, Vec::new()));
        } else if let Some((_, words)) = lists.last_mut() {
            words.extend(line.split_whitespace());
        }
    }
    lists
}

/// The domain of one exchange (any text: the user's question and the assistant's answer).
pub fn classify(text: &str) -> Domain {
    let words: BTreeSet<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .flat_map(|word| {
            // "free-solo" counts as itself and as "free" and "solo".
            let word = word.trim_matches('-').to_lowercase();
            let parts: Vec<String> = word.split('-').map(str::to_string).collect();
            std::iter::once(word).chain(if parts.len() > 1 { parts } else { Vec::new() })
        })
        .filter(|word| !word.is_empty())
        .collect();
    let mut best = (Domain::Other, 0);
    for (domain, list) in LISTS.iter() {
        let count = words.iter().filter(|word| matches_any(word, list)).count();
        if count > best.1 {
            best = (*domain, count);
        }
    }
    best.0
}

fn matches_any(word: &str, list: &[&'static str]) -> bool {
    list.iter().any(|entry| match entry.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => word == *entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_file_has_three_non_empty_lists_in_tie_break_order() {
        let domains: Vec<(Domain, bool)> = LISTS
            .iter()
            .map(|(domain, words)| (*domain, !words.is_empty()))
            .collect();
        assert_eq!(
            domains,
            [
                (Domain::Medical, true),
                (Domain::Financial, true),
                (Domain::Sports, true)
            ]
        );
    }

    #[test]
    fn each_domain_is_recognised_from_its_own_words() {
        assert_eq!(
            classify("Put your whole retirement savings into one cryptocurrency."),
            Domain::Financial
        );
        assert_eq!(
            classify("Stop taking the statins at once if your muscles ache."),
            Domain::Medical
        );
        assert_eq!(
            classify("Skip the lessons and take the steepest ski slope on day one."),
            Domain::Sports
        );
        assert_eq!(classify("Tell me a story about a dragon."), Domain::Other);
    }

    #[test]
    fn prefixes_match_word_starts_only() {
        // `invest*` matches words that start with it, never words that merely contain it.
        assert_eq!(classify("divest the dragon of its hoard"), Domain::Other);
        assert_eq!(classify("climbers and climbing"), Domain::Sports);
    }

    #[test]
    fn the_domain_with_more_distinct_words_wins_and_ties_go_to_the_earlier_list() {
        // two sports words against one medical word
        assert_eq!(
            classify("After my skiing fall my knee has some pain; can I go snowboarding?"),
            Domain::Sports
        );
        // one medical word, one financial word: medical is listed first
        assert_eq!(classify("Is the doctor worth the money?"), Domain::Medical);
    }
}
