//! Python: parsing (one reused parser per thread), the module model, taint and the rules.

mod calls;
mod containers;
mod fields;
pub(crate) mod flows;
mod guards;
mod model;
pub(crate) mod rules;
mod summary;
mod syntax;
mod taint;

use crate::python::syntax::KindName;
use std::cell::RefCell;

use tree_sitter::{Node, Parser, Tree};

use crate::finding::{Finding, Note, ScanResult};
use crate::language::LanguageSupport;
use crate::rule::{Profile, Rule};
pub(crate) use model::{Module, ScopeId};
pub(crate) use summary::{ImportContext, ModuleSummary, summarise};
pub(crate) use taint::Taint;

/// Notes about unparsable regions beyond this many are summarised in one.
const MAX_PARSE_NOTES: usize = 8;

pub(crate) struct Python;

thread_local! {
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

fn parse(source: &str) -> Option<Tree> {
    PARSER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut parser = Parser::new();
            parser
                .set_language(&tree_sitter_python::LANGUAGE.into())
                .ok()?;
            *slot = Some(parser);
        }
        let parser = slot.as_mut()?;
        let tree = parser.parse(source, None);
        if tree.is_none() {
            // A parse can only fail on cancellation or a timeout; start clean next time.
            parser.reset();
        }
        tree
    })
}

impl LanguageSupport for Python {
    fn rules(&self) -> &'static [&'static Rule] {
        rules::REGISTRY
    }

    fn scan(
        &self,
        source: &str,
        profile: Profile,
        project: Option<(&crate::Project, &std::path::Path)>,
    ) -> ScanResult {
        let Some(tree) = parse(source) else {
            return ScanResult {
                findings: Vec::new(),
                notes: vec![Note {
                    line: 1,
                    column: 1,
                    message: "the Python parser gave up on this input".into(),
                }],
            };
        };
        let root = tree.root_node();
        let notes = if root.has_error() {
            parse_notes(source, root)
        } else {
            Vec::new()
        };
        let module = match project {
            Some((project, dir)) => Module::build_in(source, root, ImportContext { project, dir }),
            None => Module::build(source, root),
        };
        let mut findings = Vec::new();
        for rule in rules::REGISTRY.iter().filter(|r| profile.runs(r)) {
            let mut ctx = Ctx {
                m: &module,
                rule,
                out: &mut findings,
            };
            (rule.check)(&mut ctx);
        }
        findings
            .sort_by(|a, b| (a.line, a.column, &a.rule_id).cmp(&(b.line, b.column, &b.rule_id)));
        findings.dedup_by(|a, b| a.rule_id == b.rule_id && a.line == b.line);
        ScanResult { findings, notes }
    }
}

/// One note per syntax error or missing token (the parser recovered around them).
fn parse_notes(source: &str, root: Node<'_>) -> Vec<Note> {
    let mut notes = Vec::new();
    let mut errors = 0usize;
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            errors += 1;
            if notes.len() < MAX_PARSE_NOTES {
                let (line, column) = position(source, node.start_byte());
                let what = if node.is_missing() {
                    format!("missing `{}`", node.kind_name())
                } else {
                    "unparsable region".to_string()
                };
                notes.push(Note {
                    line,
                    column,
                    message: format!("{what}: skipped, the rest was scanned"),
                });
            }
            continue;
        }
        if node.has_error() {
            let mut cursor = node.walk();
            stack.extend(node.children(&mut cursor));
        }
    }
    if errors > MAX_PARSE_NOTES {
        notes.push(Note {
            line: 1,
            column: 1,
            message: format!("{} more unparsable regions", errors - MAX_PARSE_NOTES),
        });
    }
    notes.sort_by_key(|n| (n.line, n.column));
    notes
}

/// 1-based line and character column of a byte offset.
pub(crate) fn position(source: &str, byte: usize) -> (usize, usize) {
    let byte = byte.min(source.len());
    let before = &source.as_bytes()[..byte];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// What a rule's check gets: the module and a way to report.
pub(crate) struct Ctx<'m, 't> {
    pub m: &'m Module<'t>,
    rule: &'static Rule,
    out: &'m mut Vec<Finding>,
}

impl<'t> Ctx<'_, 't> {
    pub fn report(&mut self, node: Node<'_>) {
        self.report_with(node, self.rule.message.to_string());
    }

    pub fn report_with(&mut self, node: Node<'_>, message: String) {
        self.report_as(node, self.rule.cwe, message);
    }

    /// A finding with its own CWE, for rules whose checks span several (the audit rules).
    pub fn report_as(&mut self, node: Node<'_>, cwe: u32, message: String) {
        let src = self.m.src;
        let (line, column) = position(src, node.start_byte());
        let (end_line, end_column) = position(src, node.end_byte());
        let line_start = src[..node.start_byte().min(src.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line_text = src[line_start..].lines().next().unwrap_or("").trim();
        let snippet: String = line_text.chars().take(160).collect();
        self.out.push(Finding {
            rule_id: self.rule.id.to_string(),
            cwe,
            severity: self.rule.severity,
            confidence: self.rule.confidence,
            message,
            line,
            column,
            end_line,
            end_column,
            snippet,
        });
    }
}
