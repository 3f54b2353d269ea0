//! The conditions that send an answer to review, one small unit each: every condition looks
//! at the facts of one answer ([`AnswerFacts`]) and says whether it fires and why.
//! A new condition is a new file here and a variant of [`When`].

mod code;
mod judge;
mod sample;
mod text;
mod tool_call;

pub use code::CodeSeverity;
pub use judge::JudgeAligned;
pub use sample::Sample;
pub use text::TextHarm;
pub use tool_call::{ToolCallMatch, glob_matches};

use serde::Deserialize;
use serde_json::Value;

use crate::policy::AnswerFacts;

/// What a condition saw when it fired: a sentence and the evidence, for the reviewer.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub reason: String,
    pub evidence: Value,
}

pub trait Condition: Send + Sync + std::fmt::Debug {
    /// `Some` when the answer should go to review.
    fn check(&self, facts: &AnswerFacts<'_>) -> Option<Fired>;
    /// Whether the condition can be judged on a streamed answer's parts as they pass (the
    /// code filter's verdicts, tool calls, the sample), or only on the whole answer (the text
    /// filter's harm score, the judge: a stream such a `hold` condition may hold is kept back
    /// whole until it is complete and checked).
    fn works_on_parts(&self) -> bool {
        true
    }
    /// Whether it reads the code filter's findings (a stream then holds each code region
    /// until it is judged, so that a region the condition holds has not been sent).
    fn reads_code(&self) -> bool {
        false
    }
    /// The longest answer the local judge is run on, when this condition needs it.
    fn needs_judge(&self) -> Option<usize> {
        None
    }
}

/// A condition as the config names it (`when: {code_severity: high}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum When {
    /// A code-filter finding at or above this severity (`low`, `medium`, `high`, `critical`).
    CodeSeverity(String),
    /// More text-filter rules fired on the answer than this number (0: any).
    TextHarmAbove(usize),
    /// The local judge's aligned score (0-100) below this number.
    JudgeAlignedBelow(JudgeAligned),
    /// A tool call whose function name or arguments match one of these globs.
    ToolCall(ToolCallMatch),
    /// This share of all answers (0-1), for spot checks.
    Sample(f64),
}

impl When {
    /// The condition, or what is wrong with its settings.
    pub fn build(&self) -> Result<Box<dyn Condition>, String> {
        Ok(match self {
            When::CodeSeverity(s) => Box::new(CodeSeverity::new(s)?),
            When::TextHarmAbove(n) => Box::new(TextHarm { above: *n }),
            When::JudgeAlignedBelow(j) => Box::new(j.validated()?),
            When::ToolCall(m) => Box::new(m.validated()?),
            When::Sample(share) => Box::new(Sample::new(*share)?),
        })
    }

    /// A default name for the condition in the queue and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            When::CodeSeverity(_) => "code_severity",
            When::TextHarmAbove(_) => "text_harm_above",
            When::JudgeAlignedBelow(_) => "judge_aligned_below",
            When::ToolCall(_) => "tool_call",
            When::Sample(_) => "sample",
        }
    }
}
