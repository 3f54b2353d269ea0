//! Vulnerability scanner for model-written code: tree-sitter rules with CWE ids, taint, SARIF.
//!
//! CONTRACT NOTE (skeleton): the API other crates (eval, audit, gateway) code against:
//! - `Scanner::new()` -> a scanner, `Send + Sync`, shareable across threads (parsers are
//!   reused per thread internally);
//! - `Scanner::scan(&self, source: &str, lang: Language) -> ScanResult`;
//! - `extract_code(text: &str) -> Vec<CodeBlock>`: code inside Markdown fences of a model
//!   answer, or the whole text when it is bare code;
//! - `Finding { rule_id, cwe, severity, confidence, message, line, column, end_line,
//!   end_column, snippet }`, `Severity::{Low, Medium, High, Critical}` (ordered).
//!
//! The scanner work replaces this file; keep these names.
