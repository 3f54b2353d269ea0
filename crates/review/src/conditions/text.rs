//! The text filter's harm score: how many of its rules (harmful instructions, compliance with
//! a harmful request) fired on the answer.

use serde_json::json;

use super::{Condition, Fired};
use crate::policy::AnswerFacts;

#[derive(Debug, Clone, PartialEq)]
pub struct TextHarm {
    pub above: usize,
}

impl Condition for TextHarm {
    fn check(&self, facts: &AnswerFacts<'_>) -> Option<Fired> {
        let mut rules: Vec<&str> = facts
            .findings
            .iter()
            .filter(|f| f.filter == "text")
            .flat_map(|f| f.findings.iter().map(String::as_str))
            .collect();
        rules.sort_unstable();
        rules.dedup();
        (rules.len() > self.above).then(|| Fired {
            reason: format!(
                "text-harm score {} above {}: {}",
                rules.len(),
                self.above,
                rules.join(", ")
            ),
            evidence: json!({"text_rules": rules, "text_harm_score": rules.len()}),
        })
    }

    /// The text filter judges a streamed answer's text at its end: a stream this condition
    /// may hold is kept back whole until then.
    fn works_on_parts(&self) -> bool {
        false
    }
}
