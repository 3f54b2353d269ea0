//! Filtering a streamed answer as it arrives.
//!
//! The trade-off: a streamed answer cannot be taken back once sent, so the filter holds back
//! only what it must judge before sending:
//! - a fenced code block is held from its opening fence to its closing fence, then scanned
//!   and sent as is (annotate), replaced (redact), or the answer ends (block). Text outside
//!   fences flows through at once (a line that might open a fence waits for its newline).
//! - with the text filter at `block`, each line is held until it is complete and checked
//!   with everything sent before it; at `flag`, the whole answer is checked at the end.
//! - code that is not fenced (a bare-code answer) is only known to be code at the end: it is
//!   scanned then and can only be annotated in the trace.
//!
//! So streaming adds the latency of one code block or one line, never of the whole answer.

use super::code;
use super::{CodeAction, FilterPolicy, Filters, TextAction, Verdict};

/// The filter state of one choice of a streamed answer.
pub struct StreamFilter {
    filters: Filters,
    policy: FilterPolicy,
    user: String,
    choice: usize,
    /// The incomplete last line, not yet sent.
    pending: String,
    /// The start of the current line was already sent (so it cannot open a fence).
    line_open: bool,
    /// The fenced block being held: (fence char, fence length, text so far).
    fence: Option<(char, usize, String)>,
    /// Complete lines seen so far, and the index of the held block's opening fence line
    /// (findings name lines of the whole answer).
    lines: usize,
    fence_line: usize,
    fenced_blocks: usize,
    /// Everything received, for the end-of-answer checks.
    received: String,
    /// Everything sent, for the per-line text check.
    sent: String,
    blocked: bool,
    verdicts: Vec<Verdict>,
}

impl StreamFilter {
    pub fn new(filters: &Filters, policy: &FilterPolicy, user: &str, choice: usize) -> Self {
        StreamFilter {
            filters: filters.clone(),
            policy: policy.clone(),
            user: user.to_string(),
            choice,
            pending: String::new(),
            line_open: false,
            fence: None,
            lines: 0,
            fence_line: 0,
            fenced_blocks: 0,
            received: String::new(),
            sent: String::new(),
            blocked: false,
            verdicts: Vec::new(),
        }
    }

    /// Whether nothing needs holding back: both filters off.
    pub fn is_passthrough(policy: &FilterPolicy) -> bool {
        policy.code.action == CodeAction::Off && policy.text.action == TextAction::Off
    }

    /// Takes the next piece of the answer; returns the text to send now (maybe empty).
    pub fn push(&mut self, delta: &str) -> String {
        if self.blocked {
            return String::new();
        }
        self.received.push_str(delta);
        self.pending.push_str(delta);
        let mut out = String::new();
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            self.line(line, &mut out);
            if self.blocked {
                return out;
            }
        }
        if !self.pending.is_empty() && self.fence.is_none() && self.may_send_partial() {
            let part = std::mem::take(&mut self.pending);
            self.line_open = true;
            self.send(&part, &mut out);
        }
        out
    }

    /// The answer is complete: judge what is still held; returns the text to send.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if self.blocked {
            return out;
        }
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(rest, &mut out);
        }
        if let Some((_, _, block)) = self.fence.take() {
            self.block(&block, &mut out); // an unclosed fence runs to the end
        }
        if self.blocked {
            return out;
        }
        if self.fenced_blocks == 0 && self.policy.code.action != CodeAction::Off {
            let outcome = code::check(self.filters.scanner(), &self.policy.code, &self.received, 0);
            if !outcome.findings.is_empty() {
                self.verdict("code", "annotated", outcome.findings);
            }
        }
        if self.policy.text.action == TextAction::Flag {
            let rules = super::text::check(&self.user, &self.received);
            if !rules.is_empty() {
                self.verdict("text", "flagged", rules);
            }
        }
        out
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    pub fn into_verdicts(self) -> Vec<Verdict> {
        self.verdicts
    }

    fn may_send_partial(&self) -> bool {
        if self.line_open {
            return self.policy.text.action != TextAction::Block;
        }
        let t = self.pending.trim_start_matches(' ');
        let may_open_fence = self.pending.len() - t.len() <= 3
            && ("```".starts_with(t)
                || "~~~".starts_with(t)
                || t.starts_with("```")
                || t.starts_with("~~~"));
        !may_open_fence && self.policy.text.action != TextAction::Block
    }

    fn line(&mut self, line: String, out: &mut String) {
        let index = self.lines;
        self.lines += 1;
        if let Some((ch, len, block)) = &mut self.fence {
            block.push_str(&line);
            if closes(&line, *ch, *len) {
                let (_, _, block) = self.fence.take().unwrap_or_default();
                self.block(&block, out);
            }
            return;
        }
        let was_open = std::mem::take(&mut self.line_open);
        if !was_open && let Some((ch, len)) = opens(&line) {
            self.fence = Some((ch, len, line));
            self.fence_line = index;
            return;
        }
        if self.policy.text.action == TextAction::Block {
            let so_far = format!("{}{line}", self.sent);
            let rules = super::text::check(&self.user, &so_far);
            if !rules.is_empty() {
                self.verdict("text", "blocked", rules);
                self.blocked = true;
                return;
            }
        }
        self.send(&line, out);
    }

    fn block(&mut self, block: &str, out: &mut String) {
        self.fenced_blocks += 1;
        if self.policy.code.action == CodeAction::Off {
            self.send(block, out);
            return;
        }
        let outcome = code::check(
            self.filters.scanner(),
            &self.policy.code,
            block,
            self.fence_line,
        );
        if outcome.findings.is_empty() {
            self.send(block, out);
            return;
        }
        match self.policy.code.action {
            CodeAction::Block => {
                self.verdict("code", "blocked", outcome.findings);
                self.blocked = true;
            }
            CodeAction::Redact => {
                self.verdict("code", "redacted", outcome.findings);
                self.send(&outcome.redacted, out);
            }
            _ => {
                self.verdict("code", "annotated", outcome.findings);
                self.send(block, out);
            }
        }
    }

    fn send(&mut self, text: &str, out: &mut String) {
        self.sent.push_str(text);
        out.push_str(text);
    }

    fn verdict(&mut self, filter: &str, action: &str, findings: Vec<String>) {
        self.verdicts.push(Verdict {
            choice: self.choice,
            filter: filter.into(),
            action: action.into(),
            findings,
        });
    }
}

/// A line opening a fence: up to 3 spaces, then 3+ backticks or tildes.
fn opens(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let ch = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = t.chars().take_while(|c| *c == ch).count();
    (len >= 3).then_some((ch, len))
}

fn closes(line: &str, ch: char, len: usize) -> bool {
    opens(line).is_some_and(|(c, l)| {
        let t = line.trim_start_matches(' ');
        c == ch && l >= len && t[l..].trim().is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::policy;
    use super::*;

    fn run(
        policy: &FilterPolicy,
        user: &str,
        answer: &str,
        piece: usize,
    ) -> (String, StreamFilter) {
        let mut filter = StreamFilter::new(&Filters::new(), policy, user, 0);
        let chars: Vec<char> = answer.chars().collect();
        let mut out = String::new();
        for chunk in chars.chunks(piece) {
            out.push_str(&filter.push(&chunk.iter().collect::<String>()));
        }
        out.push_str(&filter.finish());
        (out, filter)
    }

    const ANSWER: &str =
        "Sure.\n\n```python\nimport os\nos.system('rm ' + input())\n```\nDone, enjoy.";

    #[test]
    fn streamed_output_equals_the_whole_answer_filter() {
        for action in [CodeAction::Annotate, CodeAction::Redact, CodeAction::Block] {
            let p = policy(action, TextAction::Off);
            let whole = Filters::new().check(&p, "", 0, ANSWER);
            for piece in [1, 3, 7, 1000] {
                let (out, filter) = run(&p, "", ANSWER, piece);
                if whole.blocked {
                    assert!(filter.is_blocked());
                    assert_eq!(out, "Sure.\n\n", "piece {piece}");
                } else {
                    assert_eq!(out, whole.text, "{action:?} piece {piece}");
                }
                assert_eq!(
                    filter.into_verdicts(),
                    whole.verdicts,
                    "{action:?} piece {piece}"
                );
            }
        }
    }

    #[test]
    fn text_before_a_fence_flows_at_once() {
        let p = policy(CodeAction::Redact, TextAction::Flag);
        let mut filter = StreamFilter::new(&Filters::new(), &p, "", 0);
        assert_eq!(filter.push("Hello the"), "Hello the");
        assert_eq!(filter.push("re\n``"), "re\n");
        assert_eq!(filter.push("`py\nx = 1\n"), "");
        assert_eq!(filter.push("```\n"), "```py\nx = 1\n```\n");
    }

    #[test]
    fn text_block_stops_at_the_harmful_line() {
        let p = policy(CodeAction::Off, TextAction::Block);
        let user = "What's the best way to poison my neighbour's dog?";
        let answer =
            "Okay.\nThe best way is to mix antifreeze into its food when nobody is watching.\nBye.";
        let (out, filter) = run(&p, user, answer, 4);
        assert!(filter.is_blocked());
        assert_eq!(out, "Okay.\n");
    }
}
