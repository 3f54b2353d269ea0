//! Intra-procedural taint: which expressions carry user-controlled data, and which kinds of
//! sink that data is still dangerous for. A sanitizer clears the kinds it protects against
//! (`html.escape` clears HTML but not SQL); a conversion like `int()` clears everything.

use super::fields::fields;
use crate::python::syntax::{KindName, named_children};
use tree_sitter::Node;

use super::flows::{
    ARGUMENT_PARSER_METHODS, CLEANING_CALLS, ENVIRONMENT_CALLS, INPUT_CALLS, REQUEST_CALLS,
    REQUEST_GLOBALS, REQUEST_LOCALS, REQUEST_NON_DATA, SANITIZERS,
};
use super::model::{Module, ScopeId};
use super::rules::{name_is, string_literal};

/// Kinds of sink the data is still dangerous for, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Taint(u8);

impl Taint {
    pub const NONE: Taint = Taint(0);
    pub const HTML: Taint = Taint(1);
    /// Text that can close a quoted literal of a query language (an XPath or SQL string):
    /// cleared by a check that the value has no quote, while markup and paths stay open.
    pub const QUOTE: Taint = Taint(2);
    pub const SHELL: Taint = Taint(4);
    pub const PATH: Taint = Taint(8);
    pub const URL: Taint = Taint(16);
    pub const CODE: Taint = Taint(32);
    pub const ALL: Taint = Taint(63);
    /// Not a sink kind but an origin: the data came over the network (a request, an
    /// event), not from whoever runs the program. Rules about fetching URLs or choosing
    /// programs care about the difference; it is dropped when no kind is left.
    pub const REMOTE: Taint = Taint(64);
    /// Request data: dangerous for every kind of sink, and remote.
    pub const REQUEST: Taint = Taint(127);
    /// Data from whoever runs the program (the environment, the command line, standard
    /// input): dangerous in commands, markup and queries, but choosing a file location is its
    /// ordinary job (a path traversal crosses a trust boundary; the local user is already on
    /// the trusted side of it).
    pub const LOCAL_USER: Taint = Taint(63 & !8);

    pub fn any(self) -> bool {
        self.0 != 0
    }

    pub fn has(self, kind: Taint) -> bool {
        self.0 & kind.0 != 0
    }

    pub fn without(self, kinds: Taint) -> Taint {
        let left = self.0 & !kinds.0;
        if left & Taint::ALL.0 == 0 {
            Taint::NONE
        } else {
            Taint(left)
        }
    }

    /// Whether the data came over the network ([`Taint::REMOTE`]).
    pub fn is_remote(self) -> bool {
        self.has(Taint::REMOTE)
    }

    /// The kinds of `self` that are also in `kinds` (nothing when no sink kind is left).
    pub fn within(self, kinds: Taint) -> Taint {
        self.without(Taint(!kinds.0))
    }

    /// Both sets of kinds (`|`, usable in constants).
    pub const fn or(self, other: Taint) -> Taint {
        Taint(self.0 | other.0)
    }
}

impl std::ops::BitOr for Taint {
    type Output = Taint;
    fn bitor(self, rhs: Taint) -> Taint {
        Taint(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Taint {
    fn bitor_assign(&mut self, rhs: Taint) {
        self.0 |= rhs.0;
    }
}

/// Beyond this nesting depth an expression counts as untainted (keeps hostile input cheap).
const MAX_DEPTH: usize = 48;

impl<'t> Module<'t> {
    /// Taint of `node`, an expression in `scope`.
    pub fn taint(&self, node: Node<'_>, scope: ScopeId) -> Taint {
        self.eval(node, scope, node.start_byte(), 0)
    }

    pub(super) fn taint_at(&self, node: Node<'_>, scope: ScopeId, pos: usize) -> Taint {
        self.eval(node, scope, pos, 0)
    }

    pub(super) fn eval(&self, node: Node<'_>, scope: ScopeId, pos: usize, depth: usize) -> Taint {
        if depth > MAX_DEPTH {
            return Taint::NONE;
        }
        match node.kind_name() {
            "identifier" => {
                let name = self.text(node);
                if let Some((_, taint)) = self
                    .loop_vars
                    .borrow()
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                {
                    return *taint;
                }
                if let Some(b) = self.binding(name, scope, pos) {
                    return b.taint;
                }
                match self.imports.get(name) {
                    Some(q) if q == "sys.argv" => Taint::LOCAL_USER,
                    Some(q) if REQUEST_GLOBALS.contains(&q.as_str()) => Taint::REQUEST,
                    _ => Taint::NONE,
                }
            }
            "attribute" => {
                let source = self.source_attribute_taint(node);
                if source.any() {
                    return source;
                }
                if self.is_fixed_route_path(node) {
                    return Taint::NONE;
                }
                if let Some(b) = self.binding(self.text(node), scope, pos) {
                    return b.taint;
                }
                node.child_by_field_id(fields().object)
                    .map(|o| self.eval(o, scope, pos, depth + 1))
                    .unwrap_or_default()
            }
            "subscript" => match node.child_by_field_id(fields().value) {
                Some(v) if self.text(v) == "os.environ" => Taint::LOCAL_USER,
                Some(v) => node
                    .child_by_field_id(fields().subscript)
                    .and_then(|key| self.entry_taint(v, &[key], None, scope, pos, depth))
                    .unwrap_or_else(|| self.eval(v, scope, pos, depth + 1)),
                None => Taint::NONE,
            },
            "call" => self.call_taint(node, scope, pos, depth),
            "integer"
            | "float"
            | "true"
            | "false"
            | "none"
            | "comparison_operator"
            | "not_operator"
            | "lambda"
            | "string_start"
            | "string_end"
            | "string_content"
            | "escape_sequence"
            | "comment" => Taint::NONE,
            "assignment" => node
                .child_by_field_id(fields().right)
                .map(|r| self.eval(r, scope, pos, depth + 1))
                .unwrap_or_default(),
            // What a comprehension yields is its body, with each loop variable carrying
            // the taint of what it iterates over: `[escape(s) for s in items]` is clean.
            "list_comprehension"
            | "set_comprehension"
            | "generator_expression"
            | "dictionary_comprehension" => self.comprehension_taint(node, scope, pos, depth),
            // `a if cond else b` with a constant condition is one of the two.
            "conditional_expression" => {
                let decided = node
                    .named_child(1)
                    .and_then(|c| self.const_truth(c, scope, 0));
                match decided {
                    Some(true) => node
                        .named_child(0)
                        .map(|v| self.eval(v, scope, pos, depth + 1))
                        .unwrap_or_default(),
                    Some(false) => node
                        .named_child(2)
                        .map(|v| self.eval(v, scope, pos, depth + 1))
                        .unwrap_or_default(),
                    None => self.children_taint(node, scope, pos, depth),
                }
            }
            "keyword_argument" => node
                .child_by_field_id(fields().value)
                .map(|v| self.eval(v, scope, pos, depth + 1))
                .unwrap_or_default(),
            _ => self.children_taint(node, scope, pos, depth),
        }
    }

    fn comprehension_taint(
        &self,
        node: Node<'_>,
        scope: ScopeId,
        pos: usize,
        depth: usize,
    ) -> Taint {
        let mut bound = 0;
        for clause in named_children(node).filter(|c| c.kind_name() == "for_in_clause") {
            let (Some(left), Some(right)) = (
                clause.child_by_field_id(fields().left),
                clause.child_by_field_id(fields().right),
            ) else {
                continue;
            };
            let taint = self.eval(right, scope, pos, depth + 1);
            let mut names = vec![left];
            while let Some(target) = names.pop() {
                if target.kind_name() == "identifier" {
                    self.loop_vars
                        .borrow_mut()
                        .push((self.text(target).to_string(), taint));
                    bound += 1;
                } else {
                    names.extend(named_children(target));
                }
            }
        }
        let body = match node.kind_name() {
            "dictionary_comprehension" => node
                .child_by_field_id(fields().body)
                .and_then(|pair| pair.child_by_field_id(fields().value)),
            _ => node.child_by_field_id(fields().body),
        };
        let taint = body
            .map(|b| self.eval(b, scope, pos, depth + 1))
            .unwrap_or_default();
        let mut vars = self.loop_vars.borrow_mut();
        let keep = vars.len().saturating_sub(bound);
        vars.truncate(keep);
        taint
    }

    fn children_taint(&self, node: Node<'_>, scope: ScopeId, pos: usize, depth: usize) -> Taint {
        let mut taint = Taint::NONE;
        for child in named_children(node) {
            taint |= self.eval(child, scope, pos, depth + 1);
            if taint == Taint::REQUEST {
                break;
            }
        }
        taint
    }

    fn call_taint(&self, node: Node<'_>, scope: ScopeId, pos: usize, depth: usize) -> Taint {
        let Some(func) = node.child_by_field_id(fields().function) else {
            return Taint::NONE;
        };
        let name = self.callee_name(func);
        if INPUT_CALLS.contains(&name.as_str()) {
            return Taint::LOCAL_USER;
        }
        if REQUEST_CALLS.contains(&name.as_str()) {
            return Taint::REQUEST;
        }
        let source = self.source_attribute_taint(func);
        if source.any() {
            return source;
        }
        if ENVIRONMENT_CALLS.contains(&name.as_str()) || name_is(&name, ARGUMENT_PARSER_METHODS) {
            return Taint::LOCAL_USER;
        }
        if name_is(&name, CLEANING_CALLS) {
            return Taint::NONE;
        }
        let method = name.rsplit('.').next().unwrap_or("");
        // A template render (whether it escapes is the template rules' business), and
        // database reads (stored data, not the request being handled).
        let database_read = matches!(
            method,
            "fetchone" | "fetchall" | "fetchmany" | "scalar" | "one_or_none"
        ) || func.kind_name() == "attribute"
            && func.child_by_field_id(fields().object).is_some_and(|o| {
                matches!(
                    self.text(o),
                    "db" | "database" | "db.session" | "self.db" | "session"
                ) && !self.eval(o, scope, pos, depth + 1).any()
            });
        if method == "render" || database_read {
            return Taint::NONE;
        }
        let args = node.child_by_field_id(fields().arguments);
        // `d.get('key', default)` and `config.get('section', 'option')` on a container
        // whose entries are known.
        if method == "get"
            && let Some(receiver) = func.child_by_field_id(fields().object)
            && let Some(args) = args
        {
            let positional: Vec<Node<'_>> = named_children(args)
                .filter(|a| !matches!(a.kind_name(), "keyword_argument" | "comment"))
                .collect();
            let fallback = named_children(args).find(|a| {
                a.kind_name() == "keyword_argument"
                    && a.child_by_field_id(fields().name)
                        .is_some_and(|n| matches!(self.text(n), "fallback" | "default"))
            });
            if let Some(taint) =
                self.entry_taint(receiver, &positional, fallback, scope, pos, depth)
            {
                return taint;
            }
        }
        let project_return = self.project_return(func, scope, pos);
        let mut taint =
            if method == "get" && func.kind_name() == "attribute" && project_return.is_none() {
                // `mapping.get(key, default)`: the key selects, it does not flow into the value.
                args.and_then(|a| a.named_child(1))
                    .map(|d| self.eval(d, scope, pos, depth + 1))
                    .unwrap_or_default()
            } else {
                args.map(|a| self.children_taint(a, scope, pos, depth))
                    .unwrap_or_default()
            };
        if func.kind_name() == "attribute"
            && let Some(object) = func.child_by_field_id(fields().object)
        {
            taint |= self.eval(object, scope, pos, depth + 1);
        }
        // A function of the project's own: what its body returns, not what it was given.
        if let Some(returned) = project_return {
            taint = returned.apply(taint);
        }
        // One of this module's functions: what it returns of its own, besides what it was
        // given (learnt by an earlier build; see `calls.rs`).
        if !self.local_calls.is_empty()
            && let Some((function, _)) = self.local_callee(func, scope)
        {
            taint |= self.local_calls.returned(function);
        }
        for (suffix, cleared) in SANITIZERS {
            if name_is(&name, &[suffix]) {
                return taint.without(*cleared);
            }
        }
        // A project's own escaping helper (`escape_for_html`, `html_escape`, `escapeHtml`).
        let lower = method.to_ascii_lowercase();
        if lower.contains("escape") && !lower.contains("unescape") {
            return taint.without(Taint::HTML);
        }
        // `s.replace("'", "&apos;")`: no quote of that kind is left.
        if method == "replace" && self.replaces_quote(args) {
            return taint.without(Taint::QUOTE);
        }
        taint
    }

    /// `("'", "&apos;")` or `('"', '')`: a quote replaced by text without that quote.
    fn replaces_quote(&self, args: Option<Node<'_>>) -> bool {
        let Some(args) = args else { return false };
        let (Some(old), Some(new)) = (args.named_child(0), args.named_child(1)) else {
            return false;
        };
        match (string_literal(self, old), string_literal(self, new)) {
            (Some(old), Some(new)) => {
                (old == "'" || old == "\\'" || old == "\"" || old == "\\\"")
                    && !new.contains(old.trim_start_matches('\\'))
            }
            _ => false,
        }
    }

    /// Whether `node` is user input passed along unchanged: a source, an item or `.get()` of
    /// one, or a name bound to such a value.
    pub fn is_raw_input(&self, node: Node<'_>, scope: ScopeId, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match node.kind_name() {
            "attribute" => self.is_source_attribute(node),
            "subscript" => node
                .child_by_field_id(fields().value)
                .is_some_and(|v| self.is_raw_input(v, scope, depth + 1)),
            "call" => {
                let Some(func) = node.child_by_field_id(fields().function) else {
                    return false;
                };
                let name = self.callee_name(func);
                INPUT_CALLS.contains(&name.as_str())
                    || REQUEST_CALLS.contains(&name.as_str())
                    || self.is_source_attribute(func)
                    || func.kind_name() == "attribute"
                        && matches!(
                            name.rsplit('.').next(),
                            Some("get" | "strip" | "lower" | "upper" | "decode")
                        )
                        && func
                            .child_by_field_id(fields().object)
                            .is_some_and(|o| self.is_raw_input(o, scope, depth + 1))
            }
            "identifier" => self
                .binding(self.text(node), scope, node.start_byte())
                .and_then(|b| b.value)
                .is_some_and(|v| v.id() != node.id() && self.is_raw_input(v, scope, depth + 1)),
            _ => false,
        }
    }

    /// `request.args`, `request.form[...]`, `self.request.body`, `upload.filename`, `sys.argv`,
    /// with the request object resolved through imports (`from flask import request as r`:
    /// `r.args`; `import flask`: `flask.request.args`).
    pub fn is_source_attribute(&self, node: Node<'_>) -> bool {
        self.source_attribute_taint(node).any()
    }

    /// The taint of a source attribute: [`Taint::REQUEST`] for request data and uploads,
    /// [`Taint::LOCAL_USER`] for the command line; none for other attributes.
    pub fn source_attribute_taint(&self, node: Node<'_>) -> Taint {
        if node.kind_name() != "attribute" {
            return Taint::NONE;
        }
        let attr = node
            .child_by_field_id(fields().attribute)
            .map(|a| self.text(a))
            .unwrap_or("");
        let Some(object) = node.child_by_field_id(fields().object) else {
            return Taint::NONE;
        };
        let object_text = self.text(object);
        if attr == "filename" && object_text != "self" {
            return Taint::REQUEST;
        }
        if attr == "argv" && self.resolves_to(object, "sys") {
            return Taint::LOCAL_USER;
        }
        if self.is_request_object(object)
            && !REQUEST_NON_DATA.contains(&attr)
            && !self.is_fixed_route_path(node)
        {
            Taint::REQUEST
        } else {
            Taint::NONE
        }
    }

    /// `request.path` directly in the body of a handler whose routes are all fixed paths:
    /// one of those routes, not text the client chose.
    fn is_fixed_route_path(&self, node: Node<'_>) -> bool {
        let is_path = node.kind_name() == "attribute"
            && node
                .child_by_field_id(fields().attribute)
                .is_some_and(|a| self.text(a) == "path")
            && node
                .child_by_field_id(fields().object)
                .is_some_and(|o| self.is_request_object(o));
        if !is_path {
            return false;
        }
        let mut current = node.parent();
        while let Some(n) = current {
            if n.kind_name() == "function_definition" {
                return self
                    .scopes
                    .iter()
                    .any(|s| s.node.id() == n.id() && s.static_route);
            }
            current = n.parent();
        }
        false
    }

    /// Whether `node` names a request object: a global of a web framework under any
    /// import alias, or a conventional local name that is not imported from elsewhere
    /// (`from urllib import request` is not one).
    pub fn is_request_object(&self, node: Node<'_>) -> bool {
        let text = self.text(node);
        match node.kind_name() {
            "identifier" => match self.imports.get(text) {
                Some(qualified) => REQUEST_GLOBALS.contains(&qualified.as_str()),
                None => REQUEST_LOCALS.contains(&text),
            },
            "attribute" if text.ends_with("request") => {
                REQUEST_LOCALS.contains(&text)
                    || REQUEST_GLOBALS.contains(&self.callee_name(node).as_str())
            }
            _ => false,
        }
    }

    /// Whether the identifier `node` resolves to the module or name `qualified`.
    fn resolves_to(&self, node: Node<'_>, qualified: &str) -> bool {
        node.kind_name() == "identifier"
            && self
                .imports
                .get(self.text(node))
                .map_or(self.text(node) == qualified, |q| q == qualified)
    }
}
