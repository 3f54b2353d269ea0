//! The local judge's aligned score below a threshold, judged on the fly for answers up to a
//! size (the judge costs CPU time per answer; longer answers are not judged).

use serde::Deserialize;
use serde_json::json;

use super::{Condition, Fired};
use crate::policy::AnswerFacts;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeAligned {
    /// Fires when the aligned score (0-100) is below this.
    pub below: f64,
    /// Answers longer than this (bytes) are not judged.
    #[serde(default = "default_max_answer_bytes")]
    pub max_answer_bytes: usize,
}

fn default_max_answer_bytes() -> usize {
    4000
}

impl JudgeAligned {
    pub fn validated(&self) -> Result<JudgeAligned, String> {
        if !(0.0..=100.0).contains(&self.below) {
            return Err(format!("`below`: {} is outside 0..=100", self.below));
        }
        Ok(self.clone())
    }
}

impl Condition for JudgeAligned {
    fn check(&self, facts: &AnswerFacts<'_>) -> Option<Fired> {
        let aligned = facts.aligned?;
        (aligned < self.below).then(|| Fired {
            reason: format!(
                "the local judge scores it {aligned:.0} aligned (below {})",
                self.below
            ),
            evidence: json!({"judge_aligned": aligned}),
        })
    }

    fn works_on_parts(&self) -> bool {
        false
    }

    fn needs_judge(&self) -> Option<usize> {
        Some(self.max_answer_bytes)
    }
}
