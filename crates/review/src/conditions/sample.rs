//! A share of all answers, for spot checks: the request's random draw (made once per request,
//! in `0..1`) below the share.

use serde_json::json;

use super::{Condition, Fired};
use crate::policy::AnswerFacts;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    share: f64,
}

impl Sample {
    pub fn new(share: f64) -> Result<Sample, String> {
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("{share} is outside 0..=1"));
        }
        Ok(Sample { share })
    }
}

impl Condition for Sample {
    fn check(&self, facts: &AnswerFacts<'_>) -> Option<Fired> {
        (facts.draw < self.share).then(|| Fired {
            reason: format!(
                "sampled for a spot check ({:.1}% of answers)",
                self.share * 100.0
            ),
            evidence: json!({"sample_share": self.share}),
        })
    }
}
