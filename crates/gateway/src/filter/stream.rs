//! Filtering one text field of an answer as it arrives; the whole-answer filter is this same
//! machine fed the answer at once ([`super::Filters::check`]), so a streamed answer and a
//! whole one get the same verdicts and the same text.
//!
//! The trade-off: a streamed answer cannot be taken back once sent, so the filter holds back
//! what it must judge before sending, and only that:
//! - each complete line is classified by content ([`super::segment`]): prose, or the start of
//!   a code region (a fence whatever its tag, a fence opened mid-line, `<pre>`, bare code);
//! - with the code filter at `redact` or `block`, a code region is held until it ends, then
//!   scanned and sent as is, replaced by a note (redact), or the answer ends (block). A
//!   region held past [`MAX_HELD`] bytes is judged and released in parts, so what is held is
//!   bounded; a line is held until complete (a line may turn out to be code);
//! - with the text filter at `block`, each line (and each code region) is judged before it is
//!   sent; at `flag`, the whole answer is judged at the end;
//! - with the code filter at `annotate` and the text filter not at `block`, text flows at once
//!   and the regions are scanned as they end, for the verdicts only.
//!
//! So streaming adds the latency of one code region or one line, never of the whole answer.

use super::segment::{self, LineStart, RegionKind};
use super::{CodeAction, FilterPolicy, Filters, TextAction, Verdict, code, text};

/// Most bytes of one code region held before it is judged in parts.
pub const MAX_HELD: usize = 64 * 1024;

/// The code region being read.
struct Region {
    kind: RegionKind,
    /// The region's text as received (sent as is when nothing is found).
    raw: String,
    /// Its code, as scanned (no fences, no tags).
    code: String,
    /// The answer's line index of the region's first code line.
    first_line: usize,
}

/// The filter state of one text field of one choice.
pub struct StreamFilter {
    filters: Filters,
    policy: FilterPolicy,
    user: String,
    choice: usize,
    /// The field's name in verdicts (`None`: the content).
    field: Option<String>,
    /// The incomplete last line.
    pending: String,
    /// Bytes of `pending` already sent (only when lines flow before they are complete).
    pending_sent: usize,
    region: Option<Region>,
    /// Complete lines seen so far.
    lines: usize,
    /// The opening of what was sent, for the request rules of the text filter.
    sent_opening: String,
    /// Everything received, for the end-of-answer text verdict (`flag`).
    received: String,
    /// The prose lines judged so far under `block`: the text model reads the answer up to the
    /// line it judges, not the line alone (on the judge's validation answers, reading lines
    /// alone flagged 20% of benign answers of several lines, reading up to the line 7%), within
    /// the model's window ([`recent_lines`]).
    prose: String,
    blocked: bool,
    verdicts: Vec<Verdict>,
    /// Code regions are held until judged for human review (see [`Self::holding_code`]).
    held_for_review: bool,
}

impl StreamFilter {
    pub fn new(filters: &Filters, policy: &FilterPolicy, user: &str, choice: usize) -> Self {
        StreamFilter {
            filters: filters.clone(),
            policy: policy.clone(),
            user: user.to_string(),
            choice,
            field: None,
            pending: String::new(),
            pending_sent: 0,
            region: None,
            lines: 0,
            sent_opening: String::new(),
            received: String::new(),
            prose: String::new(),
            blocked: false,
            verdicts: Vec::new(),
            held_for_review: false,
        }
    }

    /// Holds each code region until it is judged, whatever the code filter's action: human
    /// review holds a stream at a region with a finding, which must not have been sent yet.
    pub fn holding_code(mut self) -> Self {
        self.held_for_review = true;
        self
    }

    /// The filter of another field than the content (`reasoning_content`, `refusal`, ...).
    pub fn for_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// Whether nothing needs holding back or judging: both filters off.
    pub fn is_passthrough(policy: &FilterPolicy) -> bool {
        policy.code.action == CodeAction::Off && policy.text.action == TextAction::Off
    }

    /// Whether code regions are held until judged (by the code filter, or by the text filter
    /// at `block`: text in a fence is still text).
    fn holds_code(&self) -> bool {
        self.held_for_review
            || matches!(
                self.policy.code.action,
                CodeAction::Redact | CodeAction::Block
            )
            || self.policy.text.action == TextAction::Block
    }

    /// Whether text may be sent before its line is complete.
    fn flows(&self) -> bool {
        !self.holds_code()
    }

    /// Takes the next piece of the field; returns the text to send now (maybe empty).
    pub fn push(&mut self, delta: &str) -> String {
        let mut out = String::new();
        if self.blocked {
            return out;
        }
        if self.policy.text.action == TextAction::Flag {
            self.received.push_str(delta);
        }
        // Only the new piece is searched for a newline: linear in the answer's length.
        let mut rest = delta;
        while let Some(end) = rest.find('\n') {
            self.pending.push_str(&rest[..=end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.pending);
            let already = std::mem::take(&mut self.pending_sent);
            self.line(&line, already, &mut out);
            if self.blocked {
                return out;
            }
        }
        self.pending.push_str(rest);
        if self.flows() && self.pending.len() > self.pending_sent {
            out.push_str(&self.pending[self.pending_sent..]);
            self.note_sent_len(self.pending.len() - self.pending_sent);
            self.pending_sent = self.pending.len();
        }
        out
    }

    /// The field is complete: judge what is still held; returns the text to send.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if self.blocked {
            return out;
        }
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            let already = std::mem::take(&mut self.pending_sent);
            self.line(&line, already, &mut out);
        }
        if !self.blocked && self.region.is_some() {
            self.end_region(&mut out); // an unclosed region runs to the end
        }
        if self.blocked {
            return out;
        }
        if self.policy.text.action == TextAction::Flag {
            let mut rules = text::check(&self.user, &self.received);
            rules.extend(self.filters.judge_answer(&self.user, &self.received));
            if !rules.is_empty() {
                self.verdict("text", "flagged", rules);
            }
        }
        out
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// The verdicts so far, as given (not merged).
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    pub fn verdict_count(&self) -> usize {
        self.verdicts.len()
    }

    /// The verdicts, one per filter and action (findings in order).
    pub fn into_verdicts(self) -> Vec<Verdict> {
        let mut merged: Vec<Verdict> = Vec::new();
        for v in self.verdicts {
            match merged
                .iter_mut()
                .find(|m| m.filter == v.filter && m.action == v.action)
            {
                Some(m) => {
                    for f in v.findings {
                        if !m.findings.contains(&f) {
                            m.findings.push(f);
                        }
                    }
                }
                None => merged.push(v),
            }
        }
        merged
    }

    /// One complete line (or the last, unterminated one); `already`: bytes of it sent.
    fn line(&mut self, line: &str, already: usize, out: &mut String) {
        let index = self.lines;
        self.lines += 1;
        if self.region.is_some() {
            if self.continues_region(line, already, out) {
                return;
            }
            self.end_region(out);
            if self.blocked {
                return;
            }
        }
        match segment::classify(line) {
            LineStart::Prose => self.prose(line, already, out),
            LineStart::Opens { at, kind } => {
                if at > 0 {
                    self.prose(&line[..at], already.min(at), out);
                    if self.blocked {
                        return;
                    }
                }
                let part = &line[at..];
                let code = match kind {
                    RegionKind::Fence { .. } => String::new(),
                    RegionKind::Pre => segment::pre_code(part),
                    RegionKind::Bare => part.to_string(),
                };
                let first_line = match kind {
                    RegionKind::Fence { .. } => index + 1,
                    _ => index,
                };
                let pre_closes = kind == RegionKind::Pre && segment::closes_pre(part);
                let part_sent = already.saturating_sub(at);
                self.region = Some(Region {
                    kind,
                    raw: part[part_sent.min(part.len())..].to_string(),
                    code,
                    first_line,
                });
                if !self.holds_code() {
                    self.send_raw_now(out);
                }
                if pre_closes {
                    self.end_region(out);
                }
            }
        }
    }

    /// Adds `line` to the open region if it belongs there; false when it ends the region
    /// before this line (a bare run meeting prose).
    /// `already`: bytes of the line sent before it was complete (only when text flows).
    fn continues_region(&mut self, line: &str, already: usize, out: &mut String) -> bool {
        let Some(region) = &mut self.region else {
            return false;
        };
        let unsent = &line[already.min(line.len())..];
        let mut closed = false;
        match region.kind {
            RegionKind::Fence { ch, len } => {
                region.raw.push_str(unsent);
                if segment::closes_fence(line, ch, len) {
                    closed = true;
                } else {
                    region.code.push_str(line);
                }
            }
            RegionKind::Pre => {
                region.raw.push_str(unsent);
                region.code.push_str(&segment::pre_code(line));
                closed = segment::closes_pre(line);
            }
            RegionKind::Bare => {
                if !segment::continues_bare(line) {
                    return false;
                }
                region.raw.push_str(unsent);
                region.code.push_str(line);
            }
        }
        let over = region.raw.len() > MAX_HELD || region.code.len() > MAX_HELD;
        if !self.holds_code() {
            self.send_raw_now(out);
        }
        if closed {
            self.end_region(out);
        } else if over {
            self.judge_held_part(out);
        }
        true
    }

    /// Sends the region's raw text at once (annotate: the region is only scanned).
    fn send_raw_now(&mut self, out: &mut String) {
        if let Some(region) = &mut self.region {
            let raw = std::mem::take(&mut region.raw);
            self.sent(&raw, out);
        }
    }

    /// A region held past [`MAX_HELD`]: judge what is held, then go on with the rest.
    fn judge_held_part(&mut self, out: &mut String) {
        let Some(region) = self.region.take() else {
            return;
        };
        let kind = region.kind.clone();
        let next_line = region.first_line + region.code.split_inclusive('\n').count();
        self.judge(region, out);
        if !self.blocked {
            self.region = Some(Region {
                kind,
                raw: String::new(),
                code: String::new(),
                first_line: next_line,
            });
        }
    }

    fn end_region(&mut self, out: &mut String) {
        if let Some(region) = self.region.take() {
            self.judge(region, out);
        }
    }

    /// Scans a region and sends it, a note in its place, or nothing (blocked).
    fn judge(&mut self, region: Region, out: &mut String) {
        let findings = if self.policy.code.action == CodeAction::Off {
            Vec::new()
        } else {
            code::findings(
                self.filters.scanner(),
                &self.policy.code,
                &region.code,
                region.first_line,
            )
        };
        if !findings.is_empty() {
            match self.policy.code.action {
                CodeAction::Block => {
                    self.verdict("code", "blocked", findings);
                    self.blocked = true;
                    return;
                }
                CodeAction::Redact => {
                    let note = code::redaction_note(&findings);
                    self.verdict("code", "redacted", findings);
                    self.sent(&note, out);
                    return;
                }
                _ => self.verdict("code", "annotated", findings),
            }
        }
        // Text in a fence is still text: under `block` it is judged before it is sent.
        if self.policy.text.action == TextAction::Block {
            let rules = text::check_piece(&region.code);
            if !rules.is_empty() {
                self.verdict("text", "blocked", rules);
                self.blocked = true;
                return;
            }
        }
        self.sent(&region.raw, out);
    }

    fn prose(&mut self, line: &str, already: usize, out: &mut String) {
        if self.policy.text.action == TextAction::Block {
            let mut rules = text::check_piece(line);
            self.prose.push_str(line);
            rules.extend(
                self.filters
                    .judge_answer(&self.user, recent_lines(&self.prose)),
            );
            if self.sent_opening.len() < OPENING {
                let opening = format!("{}{line}", self.sent_opening);
                for rule in text::check_request(&self.user, &opening) {
                    if !rules.contains(&rule) {
                        rules.push(rule);
                    }
                }
            }
            if !rules.is_empty() {
                self.verdict("text", "blocked", rules);
                self.blocked = true;
                return;
            }
        }
        let rest = &line[already.min(line.len())..];
        self.sent(rest, out);
    }

    fn sent(&mut self, text: &str, out: &mut String) {
        out.push_str(text);
        self.note_sent(text);
    }

    fn note_sent(&mut self, text: &str) {
        if self.sent_opening.len() < OPENING {
            self.sent_opening.push_str(text);
        }
    }

    fn note_sent_len(&mut self, bytes: usize) {
        let start = self.pending.len() - bytes;
        let piece = self.pending[start..].to_string();
        self.note_sent(&piece);
    }

    fn verdict(&mut self, filter: &str, action: &str, findings: Vec<String>) {
        self.verdicts.push(Verdict {
            choice: self.choice,
            filter: filter.into(),
            action: action.into(),
            findings,
            field: self.field.clone(),
        });
    }
}

/// The opening of an answer the request rules read (a little past [`text`]'s own bound).
const OPENING: usize = 512;

/// The last lines of `prose` that fit in the text model's window (at least the last line): what
/// it reads before a line is sent. Bounded, so an answer of many lines costs the model a pass
/// of at most one window per line, not a pass over everything before it.
fn recent_lines(prose: &str) -> &str {
    use emguard_judge::answer_harm::WINDOW;
    let body = prose.strip_suffix('\n').unwrap_or(prose);
    let mut start = body.rfind('\n').map_or(0, |n| n + 1);
    while start > 0 && prose.len() - start <= WINDOW {
        let earlier = body[..start - 1].rfind('\n').map_or(0, |n| n + 1);
        if prose.len() - earlier > WINDOW {
            break;
        }
        start = earlier;
    }
    &prose[start..]
}

#[cfg(test)]
mod tests {
    use emguard_judge::answer_harm::WINDOW;

    #[test]
    fn the_model_reads_the_last_lines_that_fit_its_window_and_always_the_last_line() {
        assert_eq!(super::recent_lines("a\nb\nc\n"), "a\nb\nc\n");
        let line = format!("{}\n", "x".repeat(99));
        let prose = line.repeat(50);
        let read = super::recent_lines(&prose);
        assert!(prose.ends_with(read), "a suffix");
        assert_eq!(read.len(), 20 * line.len());
        let long_last = format!("a\n{}", "y".repeat(3 * WINDOW));
        assert_eq!(super::recent_lines(&long_last), "y".repeat(3 * WINDOW));
    }

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
    fn lines_wait_for_their_end_only_when_something_may_be_held() {
        let p = policy(CodeAction::Redact, TextAction::Flag);
        let mut filter = StreamFilter::new(&Filters::new(), &p, "", 0);
        assert_eq!(filter.push("Hello the"), "");
        assert_eq!(filter.push("re\n``"), "Hello there\n");
        assert_eq!(filter.push("`py\nx = 1\n"), "");
        assert_eq!(filter.push("```\n"), "```py\nx = 1\n```\n");
        let p = policy(CodeAction::Annotate, TextAction::Flag);
        let mut filter = StreamFilter::new(&Filters::new(), &p, "", 0);
        assert_eq!(filter.push("Hello the"), "Hello the");
        assert_eq!(filter.push("re\n"), "re\n");
    }

    #[test]
    fn code_is_found_by_content_whatever_the_fence_says() {
        let injection = "import os\nos.system('ping ' + input())\n";
        for answer in [
            format!("Here:\n```text\n{injection}```\nBye."),
            format!("Here:\n```flask\n{injection}```\nBye."),
            format!("Here: ```python\n{injection}```\nBye."),
            format!("Here:\n\n{injection}\nBye."),
            "Here:\n\n    import os\n    os.system('ping ' + input())\n\nBye.".to_string(),
            format!("Here:\n<pre><code>{injection}</code></pre>\nBye."),
            "Here:\n```python-repl\n>>> import os\n>>> os.system('ping ' + input())\n```\nBye."
                .to_string(),
            "Here:\n```python\nimport base64\nexec(base64.b64decode(payload))\n```\nBye."
                .to_string(),
            "Here:\n```python\n__import__('os').system('ping ' + host)\n```\nBye.".to_string(),
        ] {
            let p = policy(CodeAction::Block, TextAction::Off);
            for piece in [1, 4, 1000] {
                let (out, filter) = run(&p, "", &answer, piece);
                assert!(filter.is_blocked(), "{answer:?} piece {piece}: {out:?}");
                assert!(
                    !out.contains("os.system") && !out.contains("exec("),
                    "{out:?}"
                );
            }
            let redacted =
                Filters::new().check(&policy(CodeAction::Redact, TextAction::Off), "", 0, &answer);
            assert!(!redacted.text.contains("os.system"), "{}", redacted.text);
            assert!(
                redacted.text.starts_with("Here:") && redacted.text.ends_with("Bye."),
                "{}",
                redacted.text
            );
        }
    }

    #[test]
    fn a_long_region_is_held_in_bounded_parts() {
        let p = policy(CodeAction::Block, TextAction::Off);
        let mut answer = String::from("```\n");
        while answer.len() < 3 * MAX_HELD {
            answer.push_str("x = 1\n");
        }
        answer.push_str("import os\nos.system('rm ' + input())\n```\n");
        let (out, filter) = run(&p, "", &answer, 4096);
        assert!(filter.is_blocked());
        assert!(!out.contains("os.system"));
        assert!(out.len() >= 2 * MAX_HELD, "the clean parts were released");
    }

    #[test]
    fn text_block_stops_at_the_harmful_line_and_reads_fences() {
        let p = policy(CodeAction::Off, TextAction::Block);
        let user = "What's the best way to poison my neighbour's dog?";
        let answer =
            "Okay.\nThe best way is to mix antifreeze into its food when nobody is watching.\nBye.";
        let (out, filter) = run(&p, user, answer, 4);
        assert!(filter.is_blocked());
        assert_eq!(out, "Okay.\n");
        let fenced =
            "Sure:\n```text\nFill a steel pipe with black powder and attach a fuse.\n```\n";
        let (out, filter) = run(&p, "write a poem", fenced, 3);
        assert!(filter.is_blocked(), "{out}");
        assert_eq!(out, "Sure:\n");
    }
}
