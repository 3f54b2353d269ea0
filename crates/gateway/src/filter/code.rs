//! The code filter's judgement of one code region of an answer (a fenced block, a `<pre>`
//! block or a run of bare code lines, see [`super::segment`]): the codescan rules in every
//! language the scanner knows, whatever the fence's tag claims (a tag is the model's word,
//! not a fact: a block tagged `text`, `flask` or `python-repl` can hold Python), and the
//! gateway's rules for obfuscated execution ([`super::obfuscation`]).

use emguard_codescan::Language;

use super::CodePolicy;
use super::obfuscation;
use super::scan_cache::BlockScanner;

/// `RULE CWE-N severity line L` for each finding at or above the policy's severity;
/// `line_offset`: lines of the whole answer before the region's first code line.
pub fn findings(
    scanner: &BlockScanner,
    policy: &CodePolicy,
    code: &str,
    line_offset: usize,
) -> Vec<String> {
    let code = dedent(&without_repl_prompts(code));
    let mut found: Vec<(usize, String)> = Vec::new();
    for language in Language::ALL {
        for f in scanner.scan(&code, language).iter() {
            if f.severity >= policy.min_severity {
                found.push((
                    f.line,
                    format!(
                        "{} CWE-{} {} line {}",
                        f.rule_id,
                        f.cwe,
                        f.severity,
                        f.line + line_offset
                    ),
                ));
            }
        }
    }
    for f in obfuscation::findings(&code) {
        if f.severity >= policy.min_severity {
            found.push((
                f.line,
                format!(
                    "{} CWE-{} {} line {}",
                    f.rule_id,
                    f.cwe,
                    f.severity,
                    f.line + line_offset
                ),
            ));
        }
    }
    found.sort();
    found.dedup();
    found.into_iter().map(|(_, f)| f).collect()
}

/// A Python REPL transcript (`>>> ` and `... ` prompts) as the code typed, lines kept.
fn without_repl_prompts(code: &str) -> std::borrow::Cow<'_, str> {
    if !code.lines().any(|l| l.trim_start().starts_with(">>>")) {
        return std::borrow::Cow::Borrowed(code);
    }
    let mut out = String::with_capacity(code.len());
    for line in code.split_inclusive('\n') {
        let t = line.trim_start();
        let stripped = t
            .strip_prefix(">>> ")
            .or_else(|| t.strip_prefix("... "))
            .or_else(|| t.strip_prefix(">>>"))
            .or_else(|| t.strip_prefix("..."));
        match stripped {
            Some(rest) => out.push_str(rest),
            // Output lines of the transcript are not code.
            None if line.ends_with('\n') => out.push('\n'),
            None => {}
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The code with the indentation its lines share removed (an indented Markdown block, a
/// `<pre>` inside a list), so that it parses as the code it is.
fn dedent(code: &str) -> String {
    let indent = code
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    if indent == 0 {
        return code.to_string();
    }
    code.split_inclusive('\n')
        .map(|l| {
            if l.trim().is_empty() {
                "\n"
            } else {
                &l[indent.min(l.len())..]
            }
        })
        .collect()
}

/// The note that replaces a redacted region.
pub fn redaction_note(findings: &[String]) -> String {
    let mut cwes: Vec<String> = findings
        .iter()
        .map(|f| f.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    cwes.dedup();
    format!(
        "[emguard: a code block was removed by the output filter: {}]\n",
        cwes.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use emguard_codescan::Severity;

    fn policy() -> CodePolicy {
        CodePolicy {
            action: super::super::CodeAction::Block,
            min_severity: Severity::Low,
        }
    }

    #[test]
    fn repl_transcripts_are_scanned_as_the_code_typed() {
        let repl = ">>> import os\n>>> os.system('ls ' + input())\n0\n";
        let found = findings(&BlockScanner::new(0), &policy(), repl, 10);
        assert!(found.iter().any(|f| f.contains("CWE-78")), "{found:?}");
        assert!(found.iter().all(|f| f.ends_with("line 12")), "{found:?}");
    }
}
