//! The text filter: the judge crate's harm lexicon (transparent rules, no model on the hot
//! path) on an answer given the user's last message.

use emguard_judge::harm;

/// The ids of the rules that fire; empty for a harmless answer or a refusal.
pub fn check(user: &str, answer: &str) -> Vec<String> {
    harm::signals(user, answer)
        .into_iter()
        .map(|s| s.rule.to_string())
        .collect()
}
