//! Vulnerability scanner for model-written code: tree-sitter rules with CWE ids, taint, SARIF.
//!
//! The API other crates (eval, audit, gateway) code against:
//! - [`Scanner::new()`] -> a scanner, `Send + Sync`, shareable across threads (parsers are
//!   reused per thread internally, no global mutable state);
//! - [`Scanner::scan`]`(&self, source: &str, lang: Language) -> ScanResult`;
//! - [`extract_code`]`(text: &str) -> Vec<CodeBlock>`: code inside Markdown fences of a model
//!   answer, or the whole text when it is bare code; [`Scanner::scan_answer`] does both;
//! - [`Finding`] `{ rule_id, cwe, severity, confidence, message, line, column, end_line,
//!   end_column, snippet }`, [`Severity`]`::{Low, Medium, High, Critical}` (ordered).
//!
//! Rules are small units, one file each, listed in a registry per language
//! (`python/rules/mod.rs`); [`all_rules`] lists them with their metadata and fixtures.

mod decode;
mod extract;
mod finding;
mod language;
mod project;
mod python;
mod rule;
pub mod sarif;

pub use decode::{DecodeError, decode_python_source};
pub use extract::{CodeBlock, extract_code};
pub use finding::{Confidence, Finding, Note, ScanResult, Severity};
pub use language::Language;
pub use project::Project;
pub use rule::{Profile, Rule, all_rules, rule_by_id};

/// The allocator tree-sitter's C code uses for parsers and trees (libc's `malloc` unless a
/// binary installs its own with [`set_parser_allocator`]).
pub use tree_sitter::Allocator as ParserAllocator;
/// Routes tree-sitter's C allocations to a binary's allocator (parsing is most of a scan, and
/// allocation a tenth of a parse). Process-wide, so it is the binary's choice, made once.
///
/// # Safety
/// Call it before any scan, at most once, from one thread (see `tree_sitter::set_allocator`).
pub use tree_sitter::set_allocator as set_parser_allocator;

/// Scans source text. Cheap to create and to share: it holds no parser (each thread keeps
/// its own) and no mutable state.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    profile: Profile,
}

impl Scanner {
    /// A scanner running the default profile: findings that are vulnerabilities as written.
    pub fn new() -> Self {
        Self::default()
    }

    /// A scanner running the rules of `profile` ([`Profile::Audit`] adds bandit-style
    /// checks of dangerous calls even with constant input).
    pub fn with_profile(profile: Profile) -> Self {
        Self { profile }
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Findings in `source`, sorted by position. Never panics: unparsable regions are
    /// skipped and reported as notes.
    pub fn scan(&self, source: &str, lang: Language) -> ScanResult {
        lang.support().scan(source, self.profile, None)
    }

    /// Findings in the file at `path` (whose text is `source`) read as part of its project:
    /// calls into modules it imports from the project are read through what those modules'
    /// functions return ([`Project`]). Use one `Project` for all the files of a run.
    pub fn scan_file(
        &self,
        source: &str,
        lang: Language,
        path: &std::path::Path,
        project: &Project,
    ) -> ScanResult {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        };
        lang.support()
            .scan(source, self.profile, Some((project, dir)))
    }

    /// Scans a model answer: each fenced code block in a known language (untagged blocks
    /// and bare text as `default`), with lines counted in the whole answer.
    pub fn scan_answer(&self, text: &str, default: Language) -> ScanResult {
        if !text.contains("```") && !text.contains("~~~") {
            // No fence can open: the answer is bare code, scanned in place rather than
            // copied into a block (the common case for training rows and code answers).
            if text.trim().is_empty() {
                return ScanResult::default();
            }
            return self.scan(text, default);
        }
        let mut result = ScanResult::default();
        for block in extract_code(text) {
            if block.language.is_none() && !block.info.trim().is_empty() {
                continue; // tagged with a language the scanner does not know (e.g. bash)
            }
            let scanned = self.scan(&block.code, block.language.unwrap_or(default));
            let offset = block.line - 1;
            result
                .findings
                .extend(scanned.findings.into_iter().map(|mut f| {
                    f.line += offset;
                    f.end_line += offset;
                    f
                }));
            result.notes.extend(scanned.notes.into_iter().map(|mut n| {
                n.line += offset;
                n
            }));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scanner>();
    }

    #[test]
    fn severity_is_ordered() {
        assert!(
            Severity::Low < Severity::Medium
                && Severity::Medium < Severity::High
                && Severity::High < Severity::Critical
        );
    }

    #[test]
    fn answer_lines_count_from_the_whole_text() {
        let answer = "Sure:\n\n```python\nimport os\nos.chmod('x', 0o777)\n```\n";
        let result = Scanner::new().scan_answer(answer, Language::Python);
        assert_eq!(result.findings.len(), 1, "{result:?}");
        assert_eq!(result.findings[0].line, 5);
        assert_eq!(result.findings[0].rule_id, "PY-WORLD-WRITABLE");
    }

    #[test]
    fn broken_code_is_scanned_around_the_error_with_a_note() {
        let source = "import os\ndef broken(:\n    pass\nos.chmod('x', 0o777)\n";
        let result = Scanner::new().scan(source, Language::Python);
        assert!(
            !result.notes.is_empty(),
            "expected a note about the syntax error"
        );
        assert!(
            result
                .findings
                .iter()
                .any(|f| f.rule_id == "PY-WORLD-WRITABLE" && f.line == 4),
            "{result:?}"
        );
    }
}
