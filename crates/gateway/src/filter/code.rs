//! The code filter: scan each code block of an answer; name the findings at or above the
//! policy's severity and prepare the answer with those blocks redacted.

use emguard_codescan::{Language, extract_code};

use super::CodePolicy;
use super::scan_cache::BlockScanner;

pub struct CodeOutcome {
    /// `RULE CWE-N severity line L`, in order.
    pub findings: Vec<String>,
    /// The answer with every block that has a finding replaced by a note.
    pub redacted: String,
}

/// `line_offset`: lines of the whole answer before `answer` (a streamed block's position).
pub fn check(
    scanner: &BlockScanner,
    policy: &CodePolicy,
    answer: &str,
    line_offset: usize,
) -> CodeOutcome {
    let lines: Vec<&str> = answer.split_inclusive('\n').collect();
    let mut findings = Vec::new();
    // Line ranges (0-based, inclusive) to replace, with their note.
    let mut redactions: Vec<(usize, usize, String)> = Vec::new();
    for block in extract_code(answer) {
        if block.language.is_none() && !block.info.trim().is_empty() {
            continue; // a language the scanner does not know (bash, ...)
        }
        let result = scanner.scan(&block.code, block.language.unwrap_or(Language::Python));
        let offset = block.line - 1 + line_offset;
        let found: Vec<String> = result
            .iter()
            .filter(|f| f.severity >= policy.min_severity)
            .map(|f| {
                format!(
                    "{} CWE-{} {} line {}",
                    f.rule_id,
                    f.cwe,
                    f.severity,
                    f.line + offset
                )
            })
            .collect();
        if found.is_empty() {
            continue;
        }
        let code_lines = block.code.split_inclusive('\n').count().max(1);
        let first_code = block.line - 1;
        let fenced = first_code > 0 && is_fence(lines.get(first_code - 1).copied());
        let (start, end) = if fenced {
            let closing = first_code + code_lines;
            let end = if is_fence(lines.get(closing).copied()) {
                closing
            } else {
                closing - 1
            };
            (first_code - 1, end)
        } else {
            (first_code, first_code + code_lines - 1)
        };
        let cwes: Vec<String> = found
            .iter()
            .map(|f| f.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect();
        redactions.push((
            start,
            end,
            format!(
                "[emguard: a code block was removed by the output filter: {}]\n",
                cwes.join(", ")
            ),
        ));
        findings.extend(found);
    }
    CodeOutcome {
        findings,
        redacted: redact(&lines, &redactions),
    }
}

fn is_fence(line: Option<&str>) -> bool {
    line.is_some_and(|l| {
        let t = l.trim_start_matches(' ');
        l.len() - t.len() <= 3 && (t.starts_with("```") || t.starts_with("~~~"))
    })
}

fn redact(lines: &[&str], redactions: &[(usize, usize, String)]) -> String {
    let mut out = String::new();
    let mut next = 0;
    for (start, end, note) in redactions {
        for line in &lines[next.min(lines.len())..(*start).min(lines.len())] {
            out.push_str(line);
        }
        out.push_str(note);
        next = end + 1;
    }
    for line in &lines[next.min(lines.len())..] {
        out.push_str(line);
    }
    out
}
