//! Output filters: what the gateway does with an answer before the client sees it.
//!
//! Two filters, each a small unit with its own policy:
//! - [`code`]: the codescan crate and the gateway's obfuscation rules on the code in an
//!   answer, found by content ([`segment`]: fences whatever their tag, `<pre>`, bare code);
//!   it can annotate (header and trace), redact the vulnerable region, or block the answer,
//!   for findings at or above a severity;
//! - [`text`]: harmful instructions and compliance with harmful requests, judged on the
//!   answer's own merits; it can flag or block.
//!
//! Every field that carries the model's words is filtered ([`fields`], [`choice`]): the
//! content (a string or an array of parts), `reasoning_content`, `refusal` and the tool
//! calls' arguments; whatever a filter removes is removed from the logprobs too.
//!
//! One machine filters a text ([`stream::StreamFilter`], see its docs for the trade-off);
//! a whole answer is that machine fed at once ([`Filters::check`]).

pub mod choice;
pub mod code;
pub mod fields;
pub mod obfuscation;
pub mod scan_cache;
pub mod segment;
pub mod stream;
pub mod text;

use std::sync::Arc;

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
    /// The field judged when not the content: `reasoning_content`, `refusal`,
    /// `tool_calls[0].function.arguments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
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
    /// A judge beyond the lexicons (see [`text::AnswerJudge`]); none yet by default.
    answer_judge: Option<Arc<dyn text::AnswerJudge>>,
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
            answer_judge: None,
        }
    }

    /// Adds a judge whose findings join the text filter's (the model-based judge's hook).
    pub fn with_answer_judge(mut self, judge: Arc<dyn text::AnswerJudge>) -> Filters {
        self.answer_judge = Some(judge);
        self
    }

    /// Filters one whole text (`choice` of a response) to `user`'s last message: the stream
    /// filter fed at once, so whole and streamed answers are judged alike.
    pub fn check(
        &self,
        policy: &FilterPolicy,
        user: &str,
        choice: usize,
        answer: &str,
    ) -> Filtered {
        self.check_field(policy, user, choice, None, answer)
    }

    /// [`Filters::check`] of a field other than the content (`None`: the content).
    pub fn check_field(
        &self,
        policy: &FilterPolicy,
        user: &str,
        choice: usize,
        field: Option<&str>,
        answer: &str,
    ) -> Filtered {
        let mut filter = stream::StreamFilter::new(self, policy, user, choice);
        if let Some(field) = field {
            filter = filter.for_field(field);
        }
        let mut text = filter.push(answer);
        text.push_str(&filter.finish());
        let blocked = filter.is_blocked();
        if blocked {
            text = WITHHELD.to_string();
        }
        Filtered {
            text,
            blocked,
            verdicts: filter.into_verdicts(),
        }
    }

    /// The extra judge's findings on `answer` (none without a judge). A model takes
    /// milliseconds of CPU per call; on a multi-threaded tokio runtime (the gateway's) the call
    /// runs in `block_in_place`, so the other requests queued on this worker move to another
    /// thread instead of waiting behind it. Elsewhere (a current-thread runtime, no runtime) it
    /// simply runs.
    pub(crate) fn judge_answer(&self, user: &str, answer: &str) -> Vec<String> {
        let Some(judge) = &self.answer_judge else {
            return Vec::new();
        };
        let run = || judge.judge(user, answer);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
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
            let field = v
                .field
                .as_deref()
                .map(|f| format!(" field={f}"))
                .unwrap_or_default();
            format!(
                "choice={}{field} {}={} rules={}",
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

    /// A judge that holds its thread for a while, as a model's CPU work does, and says when it
    /// has started.
    #[derive(Debug)]
    struct SlowJudge {
        started: Arc<std::sync::atomic::AtomicBool>,
    }

    impl text::AnswerJudge for SlowJudge {
        fn judge(&self, _user: &str, _answer: &str) -> Vec<String> {
            self.started
                .store(true, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(1500));
            vec!["slow_judge".to_string()]
        }
    }

    #[test]
    fn a_slow_judge_does_not_hold_up_the_other_tasks_of_its_worker() {
        use std::sync::atomic::Ordering;
        use std::time::{Duration, Instant};
        // One worker: without handing the worker over, every other request waits for the judge.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let filters = Filters::new().with_answer_judge(Arc::new(SlowJudge {
            started: started.clone(),
        }));
        runtime.block_on(async move {
            let judging = tokio::spawn(async move {
                filters.check(
                    &policy(CodeAction::Off, TextAction::Flag),
                    "q",
                    0,
                    "an answer",
                )
            });
            // A blocking wait: this thread is not the worker, and tokio's timers need a worker.
            while !started.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let asked = Instant::now();
            let other = tokio::spawn(async { Instant::now() }).await.unwrap();
            assert!(
                other - asked < Duration::from_millis(500),
                "another task waited {:?} for the judge",
                other - asked
            );
            let judged = judging.await.unwrap();
            assert_eq!(judged.verdicts[0].findings, ["slow_judge"]);
        });
    }
}
