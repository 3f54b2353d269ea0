//! Guards: an `if` that leaves (return, raise, abort, continue, break) when a value fails a
//! check, so that after it the value is known to pass. What each check rules out:
//!
//! | check that leaves | after it the value | harm ruled out |
//! |---|---|---|
//! | `"'" in x` (or `'"'`) | has no such quote | closing a quoted literal ([`Taint::QUOTE`]) |
//! | `"../" in x` (any text with `..`) | climbs no directory | file paths ([`Taint::PATH`]) |
//! | `not x.startswith(q) or not x.endswith(q) or q in x[1:-1]` | is one quoted literal | code, quotes, shells |
//! | `x not in ALLOWED`, `x != "literal"` | is one of known values | all |
//! | `not x.isalnum()` (`isdigit`, `isidentifier`, ...) | has only letters or digits | all |
//! | `not re.fullmatch(r"[A-Za-z0-9_-]+", x)` (or `^...$` with `re.match`) | has only such characters | all |
//!
//! A guard narrows the name until the end of the block it is in (not beyond: paths that
//! did not pass through it are not narrowed).

use tree_sitter::Node;

use super::fields::fields;
use super::model::{Module, ScopeId};
use super::rules::string_literal;
use super::syntax::{KindName, named_children};
use super::taint::Taint;

/// What passing one check says about a value.
#[derive(PartialEq)]
enum Fact {
    Lacks(String),
    StartsWith(String),
    EndsWith(String),
    /// `q in x[1:-1]` is false: no `q` between the first and last character.
    InnerLacks(String),
    /// One of a fixed set of values, or only harmless characters.
    Allowed,
}

/// Calls that end the request or the program when they are the last statement of a guard.
const LEAVING_CALLS: &[&str] = &["abort", "flask.abort", "sys.exit", "exit", "os._exit"];

/// String predicates that admit only letters, digits or underscores.
const PLAIN_TEXT_PREDICATES: &[&str] = &[
    "isalnum",
    "isalpha",
    "isdigit",
    "isdecimal",
    "isnumeric",
    "isidentifier",
];

impl<'t> Module<'t> {
    /// The names an `if` statement guards, with the kinds of harm ruled out for each.
    pub(super) fn guarded_names(&self, node: Node<'t>, scope: ScopeId) -> Vec<(Node<'t>, Taint)> {
        let has_alternative =
            named_children(node).any(|c| matches!(c.kind_name(), "elif_clause" | "else_clause"));
        if has_alternative
            || !node
                .child_by_field_name("consequence")
                .is_some_and(|b| self.leaves(b))
        {
            return Vec::new();
        }
        let Some(condition) = node.child_by_field_id(fields().condition) else {
            return Vec::new();
        };
        let mut facts: Vec<(Node<'t>, Fact)> = Vec::new();
        self.exit_facts(condition, scope, &mut facts, 0);
        let mut out: Vec<(Node<'t>, Taint)> = Vec::new();
        for (name, _) in &facts {
            if out.iter().any(|(n, _)| self.text(*n) == self.text(*name)) {
                continue;
            }
            let about: Vec<&Fact> = facts
                .iter()
                .filter(|(n, _)| self.text(*n) == self.text(*name))
                .map(|(_, f)| f)
                .collect();
            let mut cleared = Taint::NONE;
            for fact in &about {
                match fact {
                    Fact::Allowed => cleared |= Taint::REQUEST,
                    Fact::Lacks(text) if text.contains('\'') || text.contains('"') => {
                        cleared |= Taint::QUOTE
                    }
                    Fact::Lacks(text) if text.contains("..") => cleared |= Taint::PATH,
                    _ => {}
                }
            }
            for quote in ["'", "\""] {
                let q = quote.to_string();
                if about.contains(&&Fact::StartsWith(q.clone()))
                    && about.contains(&&Fact::EndsWith(q.clone()))
                    && about.contains(&&Fact::InnerLacks(q))
                {
                    cleared |= Taint::CODE.or(Taint::QUOTE).or(Taint::SHELL);
                }
            }
            if cleared.any() {
                out.push((*name, cleared));
            }
        }
        out
    }

    /// Whether a block always leaves: its last statement returns, raises, breaks out or
    /// calls `abort()`.
    fn leaves(&self, block: Node<'_>) -> bool {
        let Some(last) = named_children(block)
            .filter(|c| c.kind_name() != "comment")
            .last()
        else {
            return false;
        };
        match last.kind_name() {
            "return_statement" | "raise_statement" | "continue_statement" | "break_statement" => {
                true
            }
            "expression_statement" => last.named_child(0).is_some_and(|call| {
                call.kind_name() == "call"
                    && call
                        .child_by_field_id(fields().function)
                        .is_some_and(|f| LEAVING_CALLS.contains(&self.callee_name(f).as_str()))
            }),
            _ => false,
        }
    }

    /// What is known after `condition` was false (each part of an `or` was false).
    fn exit_facts(
        &self,
        condition: Node<'t>,
        scope: ScopeId,
        out: &mut Vec<(Node<'t>, Fact)>,
        depth: usize,
    ) {
        if depth > 8 {
            return;
        }
        match condition.kind_name() {
            "parenthesized_expression" => {
                if let Some(inner) = condition.named_child(0) {
                    self.exit_facts(inner, scope, out, depth + 1);
                }
            }
            "boolean_operator" => {
                let is_or = condition
                    .child_by_field_id(fields().operator)
                    .is_some_and(|o| self.text(o) == "or");
                if is_or {
                    for side in [fields().left, fields().right] {
                        if let Some(part) = condition.child_by_field_id(side) {
                            self.exit_facts(part, scope, out, depth + 1);
                        }
                    }
                }
            }
            "comparison_operator" => {
                if let Some(fact) = self.comparison_fact(condition, scope) {
                    out.push(fact);
                }
            }
            "not_operator" => {
                if let Some(fact) = condition
                    .child_by_field_name("argument")
                    .and_then(|a| self.passing_predicate(a))
                {
                    out.push(fact);
                }
            }
            _ => {}
        }
    }

    /// A comparison that, false, says something about a name.
    fn comparison_fact(&self, node: Node<'t>, scope: ScopeId) -> Option<(Node<'t>, Fact)> {
        if node.named_child_count() != 2 {
            return None;
        }
        let (left, right) = (node.named_child(0)?, node.named_child(1)?);
        // `not in` is one token or two, depending on the spacing.
        let op: String = (0..node.child_count())
            .filter_map(|i| node.child(i))
            .filter(|c| !c.is_named())
            .map(|c| self.text(c))
            .collect::<Vec<_>>()
            .join(" ");
        match op.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["in"] => {
                let text = literal_text(self, left)?;
                match right.kind_name() {
                    "identifier" => Some((right, Fact::Lacks(text))),
                    // `q in x[1:-1]`.
                    "subscript" => {
                        let value = right.child_by_field_id(fields().value)?;
                        let slice = right.child_by_field_id(fields().subscript)?;
                        (value.kind_name() == "identifier"
                            && self.text(slice).replace(' ', "") == "1:-1")
                            .then_some((value, Fact::InnerLacks(text)))
                    }
                    _ => None,
                }
            }
            ["not", "in"] if left.kind_name() == "identifier" => self
                .is_fixed_collection(right, scope)
                .then_some((left, Fact::Allowed)),
            ["!="] if left.kind_name() == "identifier" => {
                string_literal(self, right).map(|_| (left, Fact::Allowed))
            }
            _ => None,
        }
    }

    /// `x.startswith(q)`, `x.endswith(q)`, `x.isalnum()`, `re.fullmatch(PATTERN, x)`: a
    /// check whose failure (under `not`) leaves.
    fn passing_predicate(&self, call: Node<'t>) -> Option<(Node<'t>, Fact)> {
        let call = if call.kind_name() == "parenthesized_expression" {
            call.named_child(0)?
        } else {
            call
        };
        if call.kind_name() != "call" {
            return None;
        }
        let func = call.child_by_field_id(fields().function)?;
        let args: Vec<Node<'t>> = named_children(call.child_by_field_id(fields().arguments)?)
            .filter(|a| a.kind_name() != "comment")
            .collect();
        let callee = self.callee_name(func);
        if matches!(callee.as_str(), "re.fullmatch" | "re.match") {
            let [pattern, value] = args.as_slice() else {
                return None;
            };
            let pattern = string_literal(self, *pattern)?;
            // `re.match` anchors only the start: the end needs `$`.
            let anchored =
                callee == "re.fullmatch" || pattern.starts_with('^') && pattern.ends_with('$');
            return (value.kind_name() == "identifier"
                && anchored
                && is_plain_text_pattern(&pattern))
            .then_some((*value, Fact::Allowed));
        }
        if func.kind_name() != "attribute" {
            return None;
        }
        let object = func.child_by_field_id(fields().object)?;
        if object.kind_name() != "identifier" {
            return None;
        }
        let method = self.text(func.child_by_field_id(fields().attribute)?);
        match (method, args.as_slice()) {
            ("startswith", [prefix]) => {
                Some((object, Fact::StartsWith(literal_text(self, *prefix)?)))
            }
            ("endswith", [suffix]) => Some((object, Fact::EndsWith(literal_text(self, *suffix)?))),
            (m, []) if PLAIN_TEXT_PREDICATES.contains(&m) => Some((object, Fact::Allowed)),
            _ => None,
        }
    }

    /// A list, tuple or set of literals, or a name bound once to one (`ALLOWED = {...}`).
    fn is_fixed_collection(&self, node: Node<'_>, scope: ScopeId) -> bool {
        match node.kind_name() {
            "list" | "tuple" | "set" => named_children(node).all(|item| {
                string_literal(self, item).is_some()
                    || matches!(
                        item.kind_name(),
                        "integer" | "float" | "true" | "false" | "none"
                    )
            }),
            "identifier" => self
                .binding(self.text(node), scope, node.start_byte())
                .filter(|b| !b.param && !b.augmented && !b.conditional)
                .and_then(|b| b.value)
                .is_some_and(|v| v.id() != node.id() && self.is_fixed_collection(v, scope)),
            _ => false,
        }
    }
}

/// A string literal's text with quote escapes resolved (`'\\''` is `'`).
fn literal_text(m: &Module<'_>, node: Node<'_>) -> Option<String> {
    string_literal(m, node).map(|t| t.replace("\\'", "'").replace("\\\"", "\""))
}

/// A regular expression that admits only letters, digits, `_` and `-` (no path
/// separator, quote or markup): `^[A-Za-z0-9_-]+$`, `\w+`, `[a-z]{1,8}`.
fn is_plain_text_pattern(pattern: &str) -> bool {
    let body = pattern
        .strip_prefix('^')
        .unwrap_or(pattern)
        .strip_suffix('$')
        .unwrap_or(pattern.strip_prefix('^').unwrap_or(pattern));
    if body.is_empty() || body.contains("..") {
        return false;
    }
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('w' | 'd') => {}
                _ => return false,
            },
            c if c.is_ascii_alphanumeric() => {}
            '[' | ']' | '-' | '_' | '+' | '*' | '{' | '}' | ',' => {}
            _ => return false,
        }
    }
    true
}
