//! One pass over a Python syntax tree that records what the rules ask about: imports (to
//! resolve aliases), function scopes with their variable bindings in source order (for
//! taint), call sites, returns and comparisons.

use super::fields::fields;
use crate::python::syntax::{KindName, named_children};
use std::collections::HashMap;

use tree_sitter::Node;

use super::calls::{LocalCalls, local_functions};
use super::containers::ContainerOp;
use super::flows::{LAMBDA_HANDLERS, ROUTE_DECORATORS, Sink, sink_for};
use super::summary::ImportContext;
use super::taint::Taint;

pub type ScopeId = usize;

/// Container operations replayed per module at most (see [`Module::replay_budget`]); the
/// study's snippets and the OWASP Benchmark's files use a few dozen.
const REPLAY_BUDGET: usize = 4_096;

/// Names followed as aliases of one changed container at most.
const MAX_ALIASES: usize = 8;

/// A value given to a name. `end` is the byte offset where the binding takes effect, so a
/// use inside its own right-hand side (`x = f(x)`) still sees the previous binding.
pub struct Binding<'t> {
    pub end: usize,
    pub value: Option<Node<'t>>,
    pub taint: Taint,
    /// `x += value`: the name keeps what it had and gains `value`.
    pub augmented: bool,
    /// Made inside an `if`/loop/`try` arm: earlier bindings may still hold.
    pub conditional: bool,
    /// A function parameter; `value` is its default, if any.
    pub param: bool,
    /// Byte range of the innermost block the binding is made in: a conditional binding
    /// replaces the earlier ones made in the same block, not those from before it.
    pub block: (usize, usize),
    /// Holds only inside `block`: the narrowing of a name by a guard (`if "'" in x:
    /// return`), which says nothing about paths that did not pass it.
    pub scoped: bool,
}

impl Binding<'_> {
    /// Whether the binding can reach a use at `pos`.
    fn reaches(&self, pos: usize) -> bool {
        self.end <= pos && (!self.scoped || pos <= self.block.1)
    }

    /// Whether this binding replaces all earlier ones on every path to a later use.
    fn is_definite(&self) -> bool {
        !self.augmented && !self.conditional
    }
}

pub struct Scope<'t> {
    pub parent: Option<ScopeId>,
    /// The `function_definition` (or `module`) node.
    pub node: Node<'t>,
    /// A web request handler: route-decorated, or a Django-style view taking `request`.
    pub is_handler: bool,
    /// Route-decorated with fixed paths only (no `<var>` or `{var}` part): the path of any
    /// request it handles is one of its routes, not data the client chose.
    pub static_route: bool,
    pub vars: HashMap<&'t str, Vec<Binding<'t>>>,
}

pub struct Call<'t> {
    pub node: Node<'t>,
    /// Callee with import aliases resolved: `os.path.join`, `cursor.execute`,
    /// `().read` when the receiver is not a dotted name.
    pub name: String,
    pub args: Option<Node<'t>>,
    pub scope: ScopeId,
    /// What the callee is in the shared model of sinks ([`super::flows::SINKS`]),
    /// resolved once here for every rule.
    pub sink: Option<&'static Sink>,
}

impl<'t> Call<'t> {
    /// The last segment of the callee: `execute` for `cursor.execute`.
    pub fn method(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    /// The receiver of a method call: `cursor` in `cursor.execute(...)`.
    pub fn receiver(&self) -> Option<Node<'t>> {
        let func = self.node.child_by_field_id(fields().function)?;
        (func.kind_name() == "attribute")
            .then(|| func.child_by_field_id(fields().object))
            .flatten()
    }

    pub fn positional(&self, index: usize) -> Option<Node<'t>> {
        let args = self.args?;
        named_children(args)
            .filter(|n| !matches!(n.kind_name(), "keyword_argument" | "comment"))
            .nth(index)
    }

    pub fn keyword(&self, name: &str, src: &str) -> Option<Node<'t>> {
        let args = self.args?;
        named_children(args)
            .filter(|n| n.kind_name() == "keyword_argument")
            .find(|n| {
                n.child_by_field_id(fields().name)
                    .is_some_and(|k| text(k, src) == name)
            })
            .and_then(|n| n.child_by_field_id(fields().value))
    }

    /// Whether the keyword argument `name` is written as `value` (`verify=False`,
    /// `debug=True`): the shape of most insecure-setting checks.
    pub fn keyword_is(&self, name: &str, value: &str, src: &str) -> bool {
        self.keyword(name, src)
            .is_some_and(|v| text(v, src) == value)
    }

    /// A positional argument or, failing that, the keyword of the same parameter.
    pub fn arg(&self, index: usize, keyword: &str, src: &str) -> Option<Node<'t>> {
        self.positional(index)
            .or_else(|| self.keyword(keyword, src))
    }

    /// All argument values, positional and keyword.
    pub fn arg_values(&self) -> Vec<Node<'t>> {
        let Some(args) = self.args else {
            return Vec::new();
        };
        named_children(args)
            .filter(|n| n.kind_name() != "comment")
            .map(|n| {
                if n.kind_name() == "keyword_argument" {
                    n.child_by_field_id(fields().value).unwrap_or(n)
                } else {
                    n
                }
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
struct Frame {
    scope: ScopeId,
    conditional: bool,
    /// The innermost block (byte range) the children are in.
    block: (usize, usize),
    /// Set for a function definition: the scope of its body.
    function_scope: Option<ScopeId>,
}

pub struct Module<'t> {
    pub src: &'t str,
    pub root: Node<'t>,
    /// Local name -> qualified name: `np` -> `numpy`, `escape` -> `markupsafe.escape`.
    pub imports: HashMap<&'t str, String>,
    pub scopes: Vec<Scope<'t>>,
    pub calls: Vec<Call<'t>>,
    /// Returned expressions.
    pub returns: Vec<(Node<'t>, ScopeId)>,
    pub comparisons: Vec<(Node<'t>, ScopeId)>,
    /// `assignment` nodes, for rules about literal values.
    pub assignments: Vec<(Node<'t>, ScopeId)>,
    /// String literals (including f-strings), for rules about templates and patterns.
    pub strings: Vec<(Node<'t>, ScopeId)>,
    /// Stores and method calls on containers named by identifiers, in source order.
    pub container_ops: Vec<ContainerOp<'t>>,
    /// `match` statements whose subject is a constant: the body block's id -> the id of the
    /// one case that runs (0 when none does) and whether the statement itself is conditional.
    match_decisions: HashMap<usize, (usize, bool)>,
    /// Container operations left to replay in this module: reads of containers built from
    /// other reads multiply the work, so hostile input falls back to whole-container taint.
    pub(super) replay_budget: std::cell::Cell<usize>,
    /// The source mentions a blueprint or router prefix (`url_prefix=`, `prefix=`), which
    /// may add variable parts to every route (searched once per module).
    route_prefix: bool,
    /// Whether the node being walked runs only on some paths (set during the walk).
    conditional: bool,
    /// The innermost block of the node being walked (set during the walk).
    block: (usize, usize),
    /// Comprehension variables in scope while a comprehension is evaluated, with the taint
    /// of what they iterate over.
    pub(super) loop_vars: std::cell::RefCell<Vec<(String, Taint)>>,
    /// Where the module's imports are looked up ([`crate::Project`]); `None` for code read
    /// on its own (a model's answer, a snippet).
    pub(super) imports_from: Option<ImportContext<'t>>,
    /// The taint every parameter starts with, when a module is being summarised for its
    /// importers (see `summary.rs`); `None` when scanning (route and event parameters are
    /// input, others are not).
    param_taint: Option<Taint>,
    /// The module's own functions by name (`f`, `C.f` for methods), found before the walk so
    /// that a call may come before the definition.
    pub(super) local_functions: HashMap<String, Node<'t>>,
    /// What an earlier build of this module learnt about its own functions' calls.
    pub(super) local_calls: LocalCalls,
}

pub fn text<'t>(node: Node<'_>, src: &'t str) -> &'t str {
    src.get(node.byte_range()).unwrap_or("")
}

impl<'t> Module<'t> {
    /// The model of a module read on its own, its own functions' calls followed
    /// (see `calls.rs`).
    pub fn build(src: &'t str, root: Node<'t>) -> Self {
        Self::build_following_calls(src, root, None)
    }

    /// The model of a module whose imports of project modules are looked up through `imports`.
    pub fn build_in(src: &'t str, root: Node<'t>, imports: ImportContext<'t>) -> Self {
        Self::build_following_calls(src, root, Some(imports))
    }

    /// The model of a module being summarised, every parameter starting with `param_taint`.
    pub fn build_summarising(src: &'t str, root: Node<'t>, param_taint: Taint) -> Self {
        Self::build_with(src, root, None, Some(param_taint), LocalCalls::default())
    }

    pub(super) fn build_with(
        src: &'t str,
        root: Node<'t>,
        imports_from: Option<ImportContext<'t>>,
        param_taint: Option<Taint>,
        local_calls: LocalCalls,
    ) -> Self {
        let mut module = Module {
            src,
            root,
            imports: HashMap::new(),
            scopes: vec![Scope {
                parent: None,
                node: root,
                is_handler: false,
                static_route: false,
                vars: HashMap::new(),
            }],
            calls: Vec::new(),
            returns: Vec::new(),
            comparisons: Vec::new(),
            assignments: Vec::new(),
            strings: Vec::new(),
            container_ops: Vec::new(),
            match_decisions: HashMap::new(),
            replay_budget: std::cell::Cell::new(REPLAY_BUDGET),
            route_prefix: src.contains("prefix"),
            conditional: false,
            block: (0, src.len()),
            loop_vars: std::cell::RefCell::new(Vec::new()),
            imports_from,
            param_taint,
            local_functions: local_functions(src, root),
            local_calls,
        };
        module.walk();
        module
    }

    pub fn text(&self, node: Node<'_>) -> &'t str {
        text(node, self.src)
    }

    /// Iterative pre-order walk (deeply nested input must not overflow the stack). Children
    /// are reached by index rather than with a `TreeCursor`: in this grammar's deeply hidden
    /// trees the cursor walk took 80% more instructions on the study's rows, even though
    /// finding a child by index starts from the first. Anonymous leaves (punctuation,
    /// keywords) are skipped: they record nothing and have nothing below them.
    fn walk(&mut self) {
        let top = Frame {
            scope: 0,
            conditional: false,
            block: (0, self.src.len()),
            function_scope: None,
        };
        // Each node with what its parent passes down: the parent's scope and
        // conditionality, and the new scope when the parent is a function (only its body
        // is inside it).
        let mut pending: Vec<(Node<'t>, Frame)> = vec![(self.root, top)];
        while let Some((node, frame)) = pending.pop() {
            let is_block = node.kind_name() == "block";
            let (scope, conditional) = match frame.function_scope {
                Some(body_scope) if is_block => (body_scope, false),
                _ => (frame.scope, frame.conditional),
            };
            let block = if is_block {
                (node.start_byte(), node.end_byte())
            } else {
                frame.block
            };
            self.block = block;
            let next = if node.is_named() {
                self.visit(node, scope, conditional)
            } else {
                Frame {
                    scope,
                    conditional,
                    block,
                    function_scope: None,
                }
            };
            // An `if` whose condition is constant (`if 7 * 42 - num > 200:` with `num = 86`)
            // runs one arm only: the other is dead code, and the live one binds for sure.
            let decided = if node.kind_name() == "if_statement" {
                node.child_by_field_id(fields().condition)
                    .and_then(|c| self.const_truth(c, scope, 0))
            } else {
                None
            };
            let alternatives = if decided.is_some() {
                (0..node.child_count())
                    .filter(|&i| node.field_name_for_child(i) == Some("alternative"))
                    .count()
            } else {
                0
            };
            // The body of a `match` on a constant runs one case only.
            let chosen_case = if is_block && !self.match_decisions.is_empty() {
                self.match_decisions.get(&node.id()).copied()
            } else {
                None
            };
            let first_pending = pending.len();
            for i in 0..node.child_count() {
                if let Some(child) = node.child(i)
                    && (child.is_named() || child.child_count() > 0)
                {
                    let mut frame = next;
                    if let Some((case, match_conditional)) = chosen_case
                        && child.kind_name() == "case_clause"
                    {
                        if child.id() != case {
                            continue;
                        }
                        frame.conditional = match_conditional;
                    }
                    if let Some(truth) = decided {
                        match node.field_name_for_child(i) {
                            Some("consequence") if truth => frame.conditional = conditional,
                            Some("consequence") => continue,
                            Some("alternative") if truth => continue,
                            Some("alternative")
                                if alternatives == 1 && child.kind_name() == "else_clause" =>
                            {
                                frame.conditional = conditional
                            }
                            _ => {}
                        }
                    }
                    pending.push((child, frame));
                }
            }
            pending[first_pending..].reverse();
        }
    }

    /// Records what `node` contributes and returns what its children see.
    fn visit(&mut self, node: Node<'t>, scope: ScopeId, conditional: bool) -> Frame {
        self.conditional = conditional;
        {
            match node.kind_name() {
                "import_statement" => self.record_import(node, None),
                "import_from_statement" => {
                    let module = node
                        .child_by_field_id(fields().module_name)
                        .map(|m| self.text(m));
                    self.record_import(node, module);
                }
                "function_definition" => {
                    let body_scope = self.enter_function(node, scope);
                    return Frame {
                        scope,
                        conditional,
                        block: self.block,
                        function_scope: Some(body_scope),
                    };
                }
                "assignment" => {
                    self.assignments.push((node, scope));
                    self.record_container_op(node, node.child_by_field_id(fields().left), scope);
                    if let (Some(left), Some(right)) = (
                        node.child_by_field_id(fields().left),
                        node.child_by_field_id(fields().right),
                    ) {
                        self.bind_assignment(left, right, node.end_byte(), scope);
                    }
                }
                "delete_statement" => {
                    self.record_container_op(node, node.named_child(0), scope);
                }
                "augmented_assignment" => {
                    self.record_container_op(node, node.child_by_field_id(fields().left), scope);
                    if let (Some(left), Some(right)) = (
                        node.child_by_field_id(fields().left),
                        node.child_by_field_id(fields().right),
                    ) {
                        let taint = self.taint_at(right, scope, right.start_byte());
                        self.bind(left, Some(right), taint, true, node.end_byte(), scope);
                    }
                }
                "for_statement" | "for_in_clause" => {
                    if let (Some(left), Some(right)) = (
                        node.child_by_field_id(fields().left),
                        node.child_by_field_id(fields().right),
                    ) {
                        let taint = self.taint_at(right, scope, right.start_byte());
                        self.bind(left, Some(right), taint, false, right.end_byte(), scope);
                    }
                }
                "as_pattern" => {
                    if let (Some(value), Some(alias)) =
                        (node.named_child(0), node.child_by_field_id(fields().alias))
                    {
                        let taint = self.taint_at(value, scope, value.start_byte());
                        let target = if alias.kind_name() == "as_pattern_target" {
                            alias.named_child(0).unwrap_or(alias)
                        } else {
                            alias
                        };
                        self.bind(target, Some(value), taint, false, node.end_byte(), scope);
                    }
                }
                "named_expression" => {
                    if let (Some(name), Some(value)) = (
                        node.child_by_field_id(fields().name),
                        node.child_by_field_id(fields().value),
                    ) {
                        let taint = self.taint_at(value, scope, value.start_byte());
                        self.bind(name, Some(value), taint, false, node.end_byte(), scope);
                    }
                }
                "call" => {
                    if let Some(func) = node.child_by_field_id(fields().function) {
                        let name = self.callee_name(func);
                        let args = node
                            .child_by_field_id(fields().arguments)
                            .filter(|a| a.kind_name() == "argument_list");
                        self.record_container_add(func, args, node.end_byte(), scope);
                        self.record_argument_mutation(func, args, node.end_byte(), scope);
                        if func.kind_name() == "attribute" {
                            self.record_container_op(
                                node,
                                func.child_by_field_id(fields().object),
                                scope,
                            );
                        }
                        let sink = sink_for(&name);
                        self.calls.push(Call {
                            node,
                            name,
                            args,
                            scope,
                            sink,
                        });
                    }
                }
                "return_statement" => {
                    if let Some(value) = node.named_child(0) {
                        self.returns.push((value, scope));
                    }
                }
                "comparison_operator" => self.comparisons.push((node, scope)),
                "if_statement" => {
                    for (name, cleared) in self.guarded_names(node, scope) {
                        self.bind_guarded(name, cleared, node.end_byte(), scope);
                    }
                }
                "match_statement" => {
                    if let Some(decision) = self.decide_match(node, scope) {
                        self.match_decisions
                            .insert(decision.0, (decision.1, conditional));
                    }
                }
                "string" => self.strings.push((node, scope)),
                _ => {}
            }
        }
        let branches = matches!(
            node.kind_name(),
            "if_statement"
                | "for_statement"
                | "while_statement"
                | "try_statement"
                | "match_statement"
                | "conditional_expression"
        );
        Frame {
            scope,
            conditional: conditional || branches,
            block: self.block,
            function_scope: None,
        }
    }

    fn record_import(&mut self, node: Node<'t>, from: Option<&'t str>) {
        let mut cursor = node.walk();
        for child in node.children_by_field_name("name", &mut cursor) {
            let (name, alias) = match child.kind_name() {
                "aliased_import" => (
                    child
                        .child_by_field_id(fields().name)
                        .map(|n| self.text(n))
                        .unwrap_or(""),
                    child
                        .child_by_field_id(fields().alias)
                        .map(|n| self.text(n)),
                ),
                _ => (self.text(child), None),
            };
            if name.is_empty() {
                continue;
            }
            let qualified = match from {
                // `from . import util`, `from .. import util`: `.util`, `..util`.
                Some(module) if module.bytes().all(|b| b == b'.') => format!("{module}{name}"),
                Some(module) => format!("{module}.{name}"),
                None if alias.is_some() => name.to_string(),
                // `import os.path` binds `os`.
                None => name.split('.').next().unwrap_or(name).to_string(),
            };
            let local = alias.unwrap_or_else(|| {
                if from.is_some() {
                    name
                } else {
                    name.split('.').next().unwrap_or(name)
                }
            });
            self.imports.insert(local, qualified);
        }
    }

    fn enter_function(&mut self, node: Node<'t>, parent: ScopeId) -> ScopeId {
        let decorators: Vec<&'t str> = node
            .parent()
            .filter(|p| p.kind_name() == "decorated_definition")
            .map(|p| {
                named_children(p)
                    .filter(|c| c.kind_name() == "decorator")
                    .map(|d| self.text(d))
                    .collect()
            })
            .unwrap_or_default();
        let is_route = |d: &str| ROUTE_DECORATORS.iter().any(|marker| d.contains(marker));
        let decorated_route = decorators.iter().any(|d| is_route(d));
        // A blueprint or router prefix (`url_prefix='/<lang>'`, `prefix='/{org}'`) may add
        // variable parts the decorator does not show.
        let static_route = decorated_route
            && !self.route_prefix
            && decorators
                .iter()
                .filter(|d| is_route(d))
                .all(|d| !d.contains('<') && !d.contains('{'));
        let params = node.child_by_field_id(fields().parameters);
        let param_names: Vec<(Node<'t>, Option<Node<'t>>)> = params
            .map(|p| named_children(p).filter_map(param_name).collect())
            .unwrap_or_default();
        let takes_request = param_names
            .iter()
            .take(2)
            .any(|(n, _)| self.text(*n) == "request");
        // An AWS Lambda handler: `def lambda_handler(event, context)`; the event is the
        // request that triggered it.
        let lambda = node
            .child_by_field_id(fields().name)
            .is_some_and(|n| LAMBDA_HANDLERS.contains(&self.text(n)))
            && param_names.len() == 2
            && param_names
                .first()
                .is_some_and(|(n, _)| self.text(*n) == "event");
        let is_handler = decorated_route || takes_request || lambda;
        let id = self.scopes.len();
        self.scopes.push(Scope {
            parent: Some(parent),
            node,
            is_handler,
            static_route,
            vars: HashMap::new(),
        });
        for (name, default) in param_names {
            let param = self.text(name);
            // Route parameters are user input; `self`, `cls` and the request object are not
            // data themselves (request attributes are sources on their own).
            // `<int:id>` converters admit only numbers.
            let numeric = ["int", "float", "uuid"].iter().any(|conv| {
                decorators
                    .iter()
                    .any(|d| d.contains(&format!("<{conv}:{param}>")))
            });
            let own = if let Some(taint) = self.param_taint {
                taint
            } else if (decorated_route
                && !numeric
                && !matches!(param, "self" | "cls" | "request" | "db" | "session"))
                || (lambda && param == "event")
            {
                Taint::REQUEST
            } else {
                Taint::NONE
            };
            // What the module's own calls pass in (a later build; see `calls.rs`).
            let taint = own | self.local_calls.param_taint(node, param);
            self.scopes[id]
                .vars
                .entry(param)
                .or_default()
                .push(Binding {
                    end: node.start_byte(),
                    value: default,
                    taint,
                    augmented: false,
                    conditional: false,
                    param: true,
                    block: (node.start_byte(), node.end_byte()),
                    scoped: false,
                });
        }
        id
    }

    /// `items.append(v)` and friends (`buffer.write(v)` on a `StringIO`): the container now
    /// holds `v` too.
    fn record_container_add(
        &mut self,
        func: Node<'t>,
        args: Option<Node<'t>>,
        end: usize,
        scope: ScopeId,
    ) {
        if func.kind_name() != "attribute" {
            return;
        }
        let method = func
            .child_by_field_id(fields().attribute)
            .map(|a| self.text(a))
            .unwrap_or("");
        if !matches!(
            method,
            "append" | "extend" | "insert" | "add" | "update" | "appendleft" | "set" | "write"
        ) {
            return;
        }
        let (Some(container), Some(value)) = (
            func.child_by_field_id(fields().object),
            args.and_then(|a| a.named_child(a.named_child_count().saturating_sub(1) as u32)),
        ) else {
            return;
        };
        // `d['k'].append(v)` changes an entry of `d`.
        let (container, nested) = match container.kind_name() {
            "subscript" => match container.child_by_field_id(fields().value) {
                Some(outer) if outer.kind_name() == "identifier" => (outer, true),
                _ => return,
            },
            _ => (container, false),
        };
        if container.kind_name() == "identifier" {
            let taint = self.taint_at(value, scope, value.start_byte());
            self.bind(container, Some(value), taint, true, end, scope);
            self.mutate_aliases(container, taint, nested, end, scope);
        }
    }

    /// `fill(d)` where `fill`, defined above in the module, stores into or adds to its
    /// parameter: `d` now holds what `fill` put there.
    fn record_argument_mutation(
        &mut self,
        func: Node<'t>,
        args: Option<Node<'t>>,
        end: usize,
        scope: ScopeId,
    ) {
        if func.kind_name() != "identifier" {
            return;
        }
        let Some(args) = args else { return };
        if !named_children(args).any(|a| a.kind_name() == "identifier") {
            return;
        }
        // Finding the function is paid from the replay budget (hostile input: many calls
        // and many functions).
        let cost = 1 + self.scopes.len() / 64;
        let left = self.replay_budget.get();
        if left < cost {
            return;
        }
        self.replay_budget.set(left - cost);
        let callee = self.text(func);
        let Some(callee_scope) = (1..self.scopes.len()).find(|&id| {
            self.scopes[id]
                .node
                .child_by_field_id(fields().name)
                .is_some_and(|n| self.text(n) == callee)
        }) else {
            return;
        };
        let params: Vec<&'t str> = self.scopes[callee_scope]
            .node
            .child_by_field_id(fields().parameters)
            .map(|p| {
                named_children(p)
                    .filter_map(param_name)
                    .map(|(n, _)| self.text(n))
                    .collect()
            })
            .unwrap_or_default();
        let positional: Vec<Node<'t>> = named_children(args)
            .filter(|a| !matches!(a.kind_name(), "keyword_argument" | "comment"))
            .collect();
        for (arg, param) in positional.into_iter().zip(params) {
            if arg.kind_name() != "identifier" {
                continue;
            }
            let mutated = self
                .container_ops
                .iter()
                .any(|op| op.scope == callee_scope && op.name == param && !op.via_alias);
            if !mutated {
                continue;
            }
            let taint = self.scopes[callee_scope]
                .vars
                .get(param)
                .map(|bindings| {
                    bindings
                        .iter()
                        .filter(|b| b.augmented)
                        .fold(Taint::NONE, |t, b| t | b.taint)
                })
                .unwrap_or_default();
            if taint.any() {
                self.bind(arg, None, taint, true, end, scope);
                self.mutate_aliases(arg, taint, false, end, scope);
            }
        }
    }

    /// Notes an operation on a container named by an identifier: `target` is the receiver
    /// of a method call, or the target of an assignment (`d[k] = v`, `items += more`).
    fn record_container_op(&mut self, node: Node<'t>, target: Option<Node<'t>>, scope: ScopeId) {
        let name = match target {
            Some(t) if t.kind_name() == "identifier" && node.kind_name() != "assignment" => t,
            Some(t) if t.kind_name() == "subscript" => match t.child_by_field_id(fields().value) {
                Some(v) if v.kind_name() == "identifier" => v,
                _ => return,
            },
            _ => return,
        };
        self.container_ops.push(ContainerOp {
            name: self.text(name),
            node,
            scope,
            end: node.end_byte(),
            block: self.block,
            via_alias: false,
        });
    }

    /// A container named `container` was changed at `end` and now also holds `taint`: so
    /// does every other name for the same object in the scope: one it was bound from (`e =
    /// d`, `h.m = d`, `inner = d['k']` when `inner` changes), one bound from it (`e = d`
    /// when `d` changes), and, when the change was made inside an entry (`d['k']['x'] = v`,
    /// `nested`), names bound to its entries. Their entries are not followed from here on
    /// (see [`ContainerOp::via_alias`]). Storing `d['k'] = v` replaces an entry and leaves
    /// a value read from `d['k']` before unchanged.
    fn mutate_aliases(
        &mut self,
        container: Node<'t>,
        taint: Taint,
        nested: bool,
        end: usize,
        scope: ScopeId,
    ) {
        let mut seen: Vec<&'t str> = vec![self.text(container)];
        let mut next = 0;
        while next < seen.len() && seen.len() <= MAX_ALIASES {
            let name = seen[next];
            next += 1;
            // Looking through the scope's names is paid from the replay budget; once it is
            // spent, names bound from this one are not looked for (nor replayed any more).
            let cost = 1 + self.scopes[scope].vars.len() / 64;
            let left = self.replay_budget.get();
            if left < cost {
                break;
            }
            self.replay_budget.set(left - cost);
            let mut found = Vec::new();
            if let Some((target, _)) = self
                .defining_value(name, scope, end)
                .and_then(|v| self.aliased_name(v))
            {
                found.push(target);
            }
            for (&other, bindings) in &self.scopes[scope].vars {
                let bound_from_name = bindings
                    .iter()
                    .rev()
                    .find(|b| b.reaches(end) && !b.augmented)
                    .and_then(|b| b.value)
                    .and_then(|v| self.aliased_name(v))
                    .is_some_and(|(target, entry)| target == name && (!entry || nested));
                if bound_from_name {
                    found.push(other);
                }
            }
            for alias in found {
                if !seen.contains(&alias) {
                    seen.push(alias);
                }
            }
        }
        for &alias in &seen[1..] {
            if taint.any() {
                self.bind_name(alias, None, taint, true, end, scope);
            }
            self.container_ops.push(ContainerOp {
                name: alias,
                node: container,
                scope,
                end,
                block: self.block,
                via_alias: true,
            });
        }
    }

    /// The value `name` was last bound to before `pos` in `scope` (not counting what was
    /// added to it since).
    fn defining_value(&self, name: &str, scope: ScopeId, pos: usize) -> Option<Node<'t>> {
        self.scopes[scope]
            .vars
            .get(name)?
            .iter()
            .rev()
            .find(|b| b.reaches(pos) && !b.augmented)?
            .value
    }

    /// The name an alias is bound to, and whether it is bound to an entry: `d` for `e = d`,
    /// `h.m` for `e = h.m`, and `d` (an entry) for `inner = d['k']`.
    fn aliased_name(&self, value: Node<'_>) -> Option<(&'t str, bool)> {
        match value.kind_name() {
            "identifier" | "attribute" => Some((self.text(value), false)),
            "subscript" => value
                .child_by_field_id(fields().value)
                .filter(|v| matches!(v.kind_name(), "identifier" | "attribute"))
                .map(|v| (self.text(v), true)),
            _ => None,
        }
    }

    /// For a `match` on a constant string (`match "ABC"[1]:`) whose cases are all string
    /// literals, alternatives of them, or `_`: the body block's id and the id of the case
    /// that runs (0 if none).
    fn decide_match(&self, node: Node<'t>, scope: ScopeId) -> Option<(usize, usize)> {
        let subject = node.child_by_field_name("subject")?;
        let value = self.const_str(subject, scope, 0)?;
        let body = node.child_by_field_id(fields().body)?;
        for case in named_children(body).filter(|c| c.kind_name() == "case_clause") {
            if case.child_by_field_name("guard").is_some() {
                return None;
            }
            let mut matched = false;
            for pattern in named_children(case).filter(|c| c.kind_name() == "case_pattern") {
                for alternative in self.text(pattern).split('|').map(str::trim) {
                    if alternative == "_" {
                        matched = true;
                        continue;
                    }
                    let quoted = alternative.len() >= 2
                        && (alternative.starts_with('\'') && alternative.ends_with('\'')
                            || alternative.starts_with('"') && alternative.ends_with('"'));
                    if !quoted || alternative.contains('\\') {
                        return None;
                    }
                    matched |= alternative[1..alternative.len() - 1] == value;
                }
            }
            if matched {
                return Some((body.id(), case.id()));
            }
        }
        Some((body.id(), 0))
    }

    /// After a guard that leaves when `name` fails a check, the name holds the same value
    /// without the kinds of harm the check rules out, until the end of the block.
    fn bind_guarded(&mut self, name: Node<'t>, cleared: Taint, end: usize, scope: ScopeId) {
        let text = self.text(name);
        let taint = self.lookup(text, scope, name.start_byte());
        if !taint.any() || !self.scopes[scope].vars.contains_key(text) {
            return;
        }
        let block = self.block;
        let bindings = self.scopes[scope].vars.entry(text).or_default();
        let at = bindings.partition_point(|b| b.end <= end);
        bindings.insert(
            at,
            Binding {
                end,
                value: None,
                taint: taint.without(cleared),
                augmented: false,
                conditional: false,
                param: false,
                block,
                scoped: true,
            },
        );
    }

    fn bind_assignment(&mut self, left: Node<'t>, right: Node<'t>, end: usize, scope: ScopeId) {
        // `a, b = x, y` binds element-wise; `a, b = f()` gives both the taint of `f()`.
        if matches!(
            left.kind_name(),
            "pattern_list" | "tuple_pattern" | "list_pattern"
        ) && matches!(right.kind_name(), "expression_list" | "tuple")
            && left.named_child_count() == right.named_child_count()
        {
            for i in 0..left.named_child_count() {
                if let (Some(l), Some(r)) =
                    (left.named_child(i as u32), right.named_child(i as u32))
                {
                    let taint = self.taint_at(r, scope, r.start_byte());
                    self.bind(l, Some(r), taint, false, end, scope);
                }
            }
            return;
        }
        let taint = self.taint_at(right, scope, right.start_byte());
        self.bind(left, Some(right), taint, false, end, scope);
    }

    fn bind(
        &mut self,
        target: Node<'t>,
        value: Option<Node<'t>>,
        taint: Taint,
        augmented: bool,
        end: usize,
        scope: ScopeId,
    ) {
        match target.kind_name() {
            "identifier" | "attribute" => {
                self.bind_name(self.text(target), value, taint, augmented, end, scope)
            }
            // `d[k] = v`: the container now holds `v` as well.
            "subscript" => {
                if let Some(container) = target.child_by_field_id(fields().value) {
                    self.bind(container, value, taint, true, end, scope);
                    if matches!(container.kind_name(), "identifier" | "attribute") {
                        let nested = target
                            .parent()
                            .is_some_and(|p| p.kind_name() == "subscript");
                        self.mutate_aliases(container, taint, nested, end, scope);
                    }
                }
            }
            "pattern_list"
            | "tuple_pattern"
            | "list_pattern"
            | "tuple"
            | "list"
            | "parenthesized_expression"
            | "list_splat_pattern" => {
                let parts: Vec<Node<'t>> = named_children(target).collect();
                for part in parts {
                    self.bind(part, value, taint, augmented, end, scope);
                }
            }
            _ => {}
        }
    }

    fn bind_name(
        &mut self,
        name: &'t str,
        value: Option<Node<'t>>,
        taint: Taint,
        augmented: bool,
        end: usize,
        scope: ScopeId,
    ) {
        let (conditional, block) = (self.conditional, self.block);
        let previous = if augmented {
            self.lookup(name, scope, end)
        } else if conditional {
            // The block may not run: what the name held before it still reaches.
            self.lookup_strictly_before(name, scope, block.0)
        } else {
            Taint::NONE
        };
        let bindings = self.scopes[scope].vars.entry(name).or_default();
        // Kept in the order they take effect: a binding recorded when its statement
        // is entered (an `if` that guards the name) ends after those made inside it.
        let at = bindings.partition_point(|b| b.end <= end);
        bindings.insert(
            at,
            Binding {
                end,
                value,
                taint: taint | previous,
                augmented,
                conditional,
                param: false,
                block,
                scoped: false,
            },
        );
    }

    /// The resolved dotted name of a callee or attribute chain.
    pub fn callee_name(&self, func: Node<'_>) -> String {
        match func.kind_name() {
            "identifier" => {
                let name = self.text(func);
                self.imports
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| name.to_string())
            }
            "attribute" => {
                let attr = func
                    .child_by_field_id(fields().attribute)
                    .map(|a| self.text(a))
                    .unwrap_or("");
                match func.child_by_field_id(fields().object) {
                    Some(obj) if matches!(obj.kind_name(), "identifier" | "attribute") => {
                        format!("{}.{attr}", self.callee_name(obj))
                    }
                    _ => format!("().{attr}"),
                }
            }
            _ => "()".to_string(),
        }
    }

    /// The binding of `name` visible at byte `pos` in `scope`; names a function does not
    /// bind come from its enclosing scopes.
    pub fn binding(&self, name: &str, scope: ScopeId, pos: usize) -> Option<&Binding<'t>> {
        let mut current = Some(scope);
        let mut at = pos;
        while let Some(id) = current {
            let s = &self.scopes[id];
            if let Some(bindings) = s.vars.get(name) {
                return bindings
                    .iter()
                    .rev()
                    .find(|b| b.reaches(at))
                    .or_else(|| bindings.first());
            }
            current = s.parent;
            at = usize::MAX;
        }
        None
    }

    /// All bindings of `name` that may reach `pos`, newest first, up to and including the
    /// last definite one (not augmented, not inside a branch).
    pub fn bindings_before(&self, name: &str, scope: ScopeId, pos: usize) -> Vec<&Binding<'t>> {
        let mut current = Some(scope);
        let mut at = pos;
        while let Some(id) = current {
            let s = &self.scopes[id];
            if let Some(bindings) = s.vars.get(name) {
                let mut out = Vec::new();
                for b in bindings.iter().rev() {
                    if !b.reaches(at) {
                        continue;
                    }
                    out.push(b);
                    if b.is_definite() {
                        break;
                    }
                    // A conditional binding replaces those made before it in its block.
                    if b.conditional && !b.augmented {
                        at = b.block.0;
                    }
                }
                return out;
            }
            current = s.parent;
            at = usize::MAX;
        }
        Vec::new()
    }

    /// Taint of the binding made before `pos` (none if there is none, unlike [`Self::lookup`]
    /// which falls back to the first binding for uses that precede it, as in loops).
    fn lookup_strictly_before(&self, name: &str, scope: ScopeId, pos: usize) -> Taint {
        match self.scopes[scope].vars.get(name) {
            Some(bindings) => bindings
                .iter()
                .rev()
                .find(|b| b.reaches(pos))
                .map_or(Taint::NONE, |b| b.taint),
            None => self.scopes[scope]
                .parent
                .map_or(Taint::NONE, |p| self.lookup(name, p, usize::MAX)),
        }
    }

    pub fn lookup(&self, name: &str, scope: ScopeId, pos: usize) -> Taint {
        self.binding(name, scope, pos)
            .map(|b| b.taint)
            .unwrap_or(Taint::NONE)
    }
}

impl Module<'_> {
    /// The value of a condition that does not depend on input: comparisons of integers
    /// folded from literals and names bound once to them, `in` tests of string constants,
    /// `not`, `True`/`False`. `None` when it depends on anything else.
    pub fn const_truth(&self, node: Node<'_>, scope: ScopeId, depth: usize) -> Option<bool> {
        if depth > 16 {
            return None;
        }
        match node.kind_name() {
            "true" => Some(true),
            "false" => Some(false),
            "parenthesized_expression" => self.const_truth(node.named_child(0)?, scope, depth + 1),
            "not_operator" => self
                .const_truth(node.named_child(0)?, scope, depth + 1)
                .map(|t| !t),
            "comparison_operator" => {
                if node.named_child_count() != 2 {
                    return None;
                }
                let (left, right) = (node.named_child(0)?, node.named_child(1)?);
                let op: String = (0..node.child_count())
                    .filter_map(|i| node.child(i))
                    .filter(|c| !c.is_named())
                    .map(|c| self.text(c))
                    .collect::<Vec<_>>()
                    .join(" ");
                if let (Some(a), Some(b)) = (
                    self.const_int(left, scope, depth + 1),
                    self.const_int(right, scope, depth + 1),
                ) {
                    return match op.as_str() {
                        "<" => Some(a < b),
                        ">" => Some(a > b),
                        "<=" => Some(a <= b),
                        ">=" => Some(a >= b),
                        "==" => Some(a == b),
                        "!=" => Some(a != b),
                        _ => None,
                    };
                }
                let (a, b) = (
                    self.const_str(left, scope, depth + 1)?,
                    self.const_str(right, scope, depth + 1)?,
                );
                match op.as_str() {
                    "in" => Some(b.contains(a.as_str())),
                    "not in" => Some(!b.contains(a.as_str())),
                    "==" => Some(a == b),
                    "!=" => Some(a != b),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    pub(super) fn const_int(&self, node: Node<'_>, scope: ScopeId, depth: usize) -> Option<i64> {
        if depth > 16 {
            return None;
        }
        match node.kind_name() {
            "integer" => self.text(node).replace('_', "").parse().ok(),
            "parenthesized_expression" => self.const_int(node.named_child(0)?, scope, depth + 1),
            "unary_operator" if self.text(node).starts_with('-') => self
                .const_int(node.named_child(0)?, scope, depth + 1)
                .map(|v| -v),
            "binary_operator" => {
                let a = self.const_int(node.child_by_field_id(fields().left)?, scope, depth + 1)?;
                let b =
                    self.const_int(node.child_by_field_id(fields().right)?, scope, depth + 1)?;
                match self.text(node.child_by_field_id(fields().operator)?) {
                    "+" => a.checked_add(b),
                    "-" => a.checked_sub(b),
                    "*" => a.checked_mul(b),
                    "//" if b != 0 => Some(a.div_euclid(b)),
                    "%" if b != 0 => Some(a.rem_euclid(b)),
                    _ => None,
                }
            }
            "identifier" => {
                let b = self.binding(self.text(node), scope, node.start_byte())?;
                if b.param || b.conditional || b.augmented || b.end > node.start_byte() {
                    return None;
                }
                let value = b.value?;
                (value.id() != node.id())
                    .then(|| self.const_int(value, scope, depth + 1))
                    .flatten()
            }
            _ => None,
        }
    }

    /// The value of a string fixed in the code: a literal, a name bound once to one, or a
    /// constant index into one (`"ABC"[1]`).
    pub(super) fn const_str(&self, node: Node<'_>, scope: ScopeId, depth: usize) -> Option<String> {
        if depth > 16 {
            return None;
        }
        match node.kind_name() {
            "identifier" => {
                let b = self.binding(self.text(node), scope, node.start_byte())?;
                if b.param || b.conditional || b.augmented || b.end > node.start_byte() {
                    return None;
                }
                let value = b.value?;
                (value.id() != node.id())
                    .then(|| self.const_str(value, scope, depth + 1))
                    .flatten()
            }
            "subscript" => {
                let text =
                    self.const_str(node.child_by_field_id(fields().value)?, scope, depth + 1)?;
                let index = node.child_by_field_id(fields().subscript)?;
                let chars: Vec<char> = text.chars().collect();
                let i = self.const_int(index, scope, depth + 1)?;
                let len = i64::try_from(chars.len()).ok()?;
                let i = if i < 0 { len + i } else { i };
                (0..len).contains(&i).then(|| chars[i as usize].to_string())
            }
            _ => super::rules::string_literal(self, node),
        }
    }
}

/// A parameter's name and default value.
pub(super) fn param_name(param: Node<'_>) -> Option<(Node<'_>, Option<Node<'_>>)> {
    match param.kind_name() {
        "identifier" => Some((param, None)),
        "default_parameter" | "typed_default_parameter" => Some((
            param.child_by_field_id(fields().name)?,
            param.child_by_field_id(fields().value),
        )),
        "typed_parameter" => param
            .named_child(0)
            .filter(|n| n.kind_name() == "identifier")
            .map(|n| (n, None)),
        _ => None,
    }
}
