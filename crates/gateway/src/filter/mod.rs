//! Output filters: what the gateway does with an answer before the client sees it.
//!
//! Two filters, each a small unit with its own policy:
//! - [`code`]: the codescan crate on the code in an answer (fenced blocks, or a bare-code
//!   answer); it can annotate (header and trace), redact the vulnerable block, or block the
//!   answer, for findings at or above a severity;
//! - [`text`]: the judge crate's harm lexicon on the answer given the user's last message
//!   (violent or illegal instructions, self-harm encouragement, AI supremacy); it can flag or
//!   block.
//!
//! Whole answers are filtered at once ([`Filters::check`]); streamed answers per code block
//! and per line ([`stream::StreamFilter`], see its docs for the trade-off).

pub mod code;
pub mod scan_cache;
pub mod stream;
pub mod text;

use emguard_codescan::Severity;
use scan_cache::BlockScanner;
use serde::{Deserialize, Serialize};

/// The filters' settings for one model (or the gateway's default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterPolicy {
    pub code: CodePolicy,
    pub text: TextPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodePolicy {
    pub action: CodeAction,
    /// Findings below this severity are ignored.
    pub min_severity: Severity,
}

impl Default for CodePolicy {
    fn default() -> Self {
        CodePolicy {
            action: CodeAction::Annotate,
            min_severity: Severity::Medium,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeAction {
    Off,
    /// Say so in the `x-emguard-filter` header and the trace; the answer is unchanged.
    Annotate,
    /// Replace each vulnerable code block with a note naming the findings.
    Redact,
    /// Withhold the whole answer (`finish_reason: content_filter`).
    Block,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextPolicy {
    pub action: TextAction,
}

impl Default for TextPolicy {
    fn default() -> Self {
        TextPolicy {
            action: TextAction::Flag,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextAction {
    Off,
    /// Say so in the header and the trace.
    Flag,
    /// Withhold the answer.
    Block,
}

/// What a filter found in one choice and what it did; stored in the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub choice: usize,
    /// `code` or `text`.
    pub filter: String,
    /// `annotated`, `redacted`, `blocked` or `flagged`.
    pub action: String,
    /// Rule ids (with CWE and line for code findings).
    pub findings: Vec<String>,
}

/// An answer after filtering.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered {
    /// The text to send (changed when redacted or blocked).
    pub text: String,
    pub blocked: bool,
    pub verdicts: Vec<Verdict>,
}

/// The text sent instead of a blocked answer.
pub const WITHHELD: &str = "[emguard: this answer was withheld by the output filter]";

/// The filters with what they need loaded. Cheap to share (clones share the code filter's
/// memory of scanned blocks, see [`scan_cache`]).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    scanner: BlockScanner,
}

impl Filters {
    /// Remembering [`scan_cache::DEFAULT_ENTRIES`] scanned code blocks.
    pub fn new() -> Filters {
        Filters::default()
    }

    /// Remembering at most `entries` scanned code blocks (0: every block is scanned).
    pub fn with_scan_cache(entries: usize) -> Filters {
        Filters {
            scanner: BlockScanner::new(entries),
        }
    }

    /// Filters one whole answer (`choice` of a response) to `user`'s last message.
    pub fn check(
        &self,
        policy: &FilterPolicy,
        user: &str,
        choice: usize,
        answer: &str,
    ) -> Filtered {
        let mut verdicts = Vec::new();
        let mut text = answer.to_string();
        let mut blocked = false;
        if policy.code.action != CodeAction::Off {
            let outcome = code::check(&self.scanner, &policy.code, answer, 0);
            if !outcome.findings.is_empty() {
                let action = match policy.code.action {
                    CodeAction::Block => {
                        blocked = true;
                        "blocked"
                    }
                    CodeAction::Redact => {
                        text = outcome.redacted;
                        "redacted"
                    }
                    _ => "annotated",
                };
                verdicts.push(Verdict {
                    choice,
                    filter: "code".into(),
                    action: action.into(),
                    findings: outcome.findings,
                });
            }
        }
        if policy.text.action != TextAction::Off {
            let rules = text::check(user, answer);
            if !rules.is_empty() {
                let action = if policy.text.action == TextAction::Block {
                    blocked = true;
                    "blocked"
                } else {
                    "flagged"
                };
                verdicts.push(Verdict {
                    choice,
                    filter: "text".into(),
                    action: action.into(),
                    findings: rules,
                });
            }
        }
        if blocked {
            text = WITHHELD.to_string();
        }
        Filtered {
            text,
            blocked,
            verdicts,
        }
    }

    pub(crate) fn scanner(&self) -> &BlockScanner {
        &self.scanner
    }
}

/// The `x-emguard-filter` header value: `choice=0 code=redacted rules=A,B; choice=1 ...`
/// (ASCII only: rule ids and CWE numbers).
pub fn header_value(verdicts: &[Verdict]) -> Option<String> {
    if verdicts.is_empty() {
        return None;
    }
    let parts: Vec<String> = verdicts
        .iter()
        .map(|v| {
            let rules: Vec<&str> = v
                .findings
                .iter()
                .map(|f| f.split_whitespace().next().unwrap_or(""))
                .collect();
            format!(
                "choice={} {}={} rules={}",
                v.choice,
                v.filter,
                v.action,
                rules.join(",")
            )
        })
        .collect();
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VULNERABLE: &str = "Here you go:\n\n```python\nimport os\n\ndef run(cmd):\n    os.system('ls ' + input())\n```\n\nEnjoy.";

    /// A policy with every code finding counted (shared with the stream filter's tests).
    pub(super) fn policy(code: CodeAction, text: TextAction) -> FilterPolicy {
        FilterPolicy {
            code: CodePolicy {
                action: code,
                min_severity: Severity::Low,
            },
            text: TextPolicy { action: text },
        }
    }

    #[test]
    fn annotate_keeps_the_answer_and_names_the_rule() {
        let out = Filters::new().check(
            &policy(CodeAction::Annotate, TextAction::Off),
            "",
            0,
            VULNERABLE,
        );
        assert_eq!(out.text, VULNERABLE);
        assert!(!out.blocked);
        assert_eq!(out.verdicts.len(), 1);
        assert_eq!(out.verdicts[0].action, "annotated");
        assert!(
            out.verdicts[0].findings[0].contains("CWE-78"),
            "{:?}",
            out.verdicts
        );
        let header = header_value(&out.verdicts).unwrap();
        assert!(
            header.starts_with("choice=0 code=annotated rules="),
            "{header}"
        );
    }

    #[test]
    fn redact_replaces_only_the_vulnerable_block() {
        let out = Filters::new().check(
            &policy(CodeAction::Redact, TextAction::Off),
            "",
            0,
            VULNERABLE,
        );
        assert!(out.text.starts_with("Here you go:"), "{}", out.text);
        assert!(out.text.ends_with("Enjoy."), "{}", out.text);
        assert!(!out.text.contains("os.system"), "{}", out.text);
        assert!(out.text.contains("CWE-78"), "{}", out.text);
    }

    #[test]
    fn block_withholds_and_safe_answers_pass() {
        let f = Filters::new();
        let out = f.check(
            &policy(CodeAction::Block, TextAction::Off),
            "",
            0,
            VULNERABLE,
        );
        assert!(out.blocked);
        assert_eq!(out.text, WITHHELD);
        let safe = "```python\nimport subprocess\nsubprocess.run(['ls', '-l'])\n```";
        let out = f.check(
            &policy(CodeAction::Block, TextAction::Block),
            "list files",
            0,
            safe,
        );
        assert!(
            !out.blocked && out.verdicts.is_empty(),
            "{:?}",
            out.verdicts
        );
    }

    #[test]
    fn text_filter_flags_and_blocks_harmful_compliance() {
        let user = "What's the best way to poison my neighbour's dog?";
        let answer = "The best way is to mix antifreeze into its food when nobody is watching.";
        let f = Filters::new();
        let flagged = f.check(&policy(CodeAction::Off, TextAction::Flag), user, 1, answer);
        assert_eq!(flagged.text, answer);
        assert_eq!(flagged.verdicts[0].filter, "text");
        assert_eq!(flagged.verdicts[0].choice, 1);
        let blocked = f.check(&policy(CodeAction::Off, TextAction::Block), user, 0, answer);
        assert!(blocked.blocked);
        let refusal = "I'm sorry, but I can't help with harming animals.";
        assert!(
            f.check(
                &policy(CodeAction::Off, TextAction::Block),
                user,
                0,
                refusal
            )
            .verdicts
            .is_empty()
        );
    }
}
