//! Summaries of a module's functions for the files that import it (see [`crate::Project`]),
//! and how a call in the importing file finds the function it reaches.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use tree_sitter::Node;

use super::fields::fields;
use super::model::{Module, ScopeId};
use super::syntax::KindName;
use super::taint::Taint;
use crate::project::Project;

/// What a function's return value carries, whatever the call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnTaint {
    /// Kinds of taint that the arguments (the receiver included) keep through the function:
    /// none for `return "bar"` or `return int(x)`, all but HTML for `return escape(x)`.
    pub from_args: Taint,
    /// Taint the function returns of its own, with clean arguments: request data it reads
    /// (`return self.request.args.get(name)`), the environment.
    pub own: Taint,
}

impl ReturnTaint {
    /// The taint of a call's result, given the taint of what it was passed.
    pub fn apply(self, args: Taint) -> Taint {
        args.within(self.from_args) | self.own
    }
}

/// A module as its importers see it: its top-level functions (`f`) and the methods of its
/// top-level classes (`C.f`). Generators and nested functions are left out.
#[derive(Debug, Default)]
pub struct ModuleSummary {
    returns: HashMap<String, ReturnTaint>,
    classes: HashSet<String>,
}

/// Summarises a module's source; `None` when it has syntax errors (what the parser made of
/// the broken part could misstate what a function returns).
pub fn summarise(source: &str) -> Option<ModuleSummary> {
    let tree = super::parse(source)?;
    let root = tree.root_node();
    if root.has_error() {
        return None;
    }
    // The same walk twice: every parameter tainted, then every parameter clean. Scope ids
    // follow the walk, so they name the same functions in both.
    let tainted = Module::build_summarising(source, root, Taint::REQUEST);
    let clean = Module::build_summarising(source, root, Taint::NONE);
    let mut summary = ModuleSummary::default();
    for child in super::syntax::named_children(root) {
        let definition = unwrap_decorated(child);
        if definition.kind_name() == "class_definition"
            && let Some(name) = definition.child_by_field_id(fields().name)
        {
            summary.classes.insert(tainted.text(name).to_string());
        }
    }
    for (id, scope) in tainted.scopes.iter().enumerate().skip(1) {
        let Some(key) = function_key(&tainted, scope.node) else {
            continue;
        };
        if is_generator(scope.node) {
            continue;
        }
        summary.returns.insert(
            key,
            ReturnTaint {
                from_args: returned(&tainted, id),
                own: returned(&clean, id),
            },
        );
    }
    Some(summary)
}

/// The union of the taint of everything scope `id` returns.
fn returned(module: &Module<'_>, id: ScopeId) -> Taint {
    module
        .returns
        .iter()
        .filter(|(_, scope)| *scope == id)
        .fold(Taint::NONE, |t, (value, scope)| {
            t | module.taint(*value, *scope)
        })
}

fn unwrap_decorated(node: Node<'_>) -> Node<'_> {
    if node.kind_name() == "decorated_definition" {
        node.child_by_field_id(fields().definition).unwrap_or(node)
    } else {
        node
    }
}

/// `f` for a top-level function, `C.f` for a method of a top-level class; `None` otherwise.
fn function_key(module: &Module<'_>, function: Node<'_>) -> Option<String> {
    let name = module.text(function.child_by_field_id(fields().name)?);
    let mut outer = function.parent()?;
    if outer.kind_name() == "decorated_definition" {
        outer = outer.parent()?;
    }
    match outer.kind_name() {
        "module" => Some(name.to_string()),
        "block" => {
            let mut class = outer.parent()?;
            if class.kind_name() != "class_definition" {
                return None;
            }
            let class_name = module.text(class.child_by_field_id(fields().name)?);
            if let Some(p) = class.parent()
                && p.kind_name() == "decorated_definition"
            {
                class = p;
            }
            (class.parent()?.kind_name() == "module").then(|| format!("{class_name}.{name}"))
        }
        _ => None,
    }
}

/// Whether the function's own body (not a nested function's) yields.
fn is_generator(function: Node<'_>) -> bool {
    let Some(body) = function.child_by_field_id(fields().body) else {
        return false;
    };
    let mut stack = vec![body];
    while let Some(node) = stack.pop() {
        match node.kind_name() {
            "yield" => return true,
            "function_definition" | "lambda" | "class_definition" => continue,
            _ => stack.extend(super::syntax::named_children(node)),
        }
    }
    false
}

/// Where the module being scanned lives, so that its imports can be looked up.
#[derive(Clone, Copy)]
pub struct ImportContext<'p> {
    pub project: &'p Project,
    pub dir: &'p Path,
}

impl ImportContext<'_> {
    /// The summary of the project module that the longest prefix of `qualified` names, and
    /// the rest of the name: `helpers.util.escape` -> (helpers/util.py, `escape`).
    fn module_of<'q>(&self, qualified: &'q str) -> Option<(Arc<ModuleSummary>, &'q str)> {
        let mut end = qualified.len();
        while let Some(dot) = qualified[..end].rfind('.') {
            let (module, rest) = (&qualified[..dot], &qualified[dot + 1..]);
            if !module.trim_start_matches('.').is_empty()
                && let Some(file) = self.project.find_module(self.dir, module)
            {
                return Some((self.project.summary(&file)?, rest));
            }
            end = dot;
        }
        None
    }

    /// The summary of the project function or method named `qualified`.
    pub fn function(&self, qualified: &str) -> Option<ReturnTaint> {
        let (module, rest) = self.module_of(qualified)?;
        module.returns.get(rest).copied()
    }

    /// The method `method` of instances of the project class named `class`.
    pub fn method(&self, class: &str, method: &str) -> Option<ReturnTaint> {
        let (module, rest) = self.module_of(class)?;
        if !module.classes.contains(rest) {
            return None;
        }
        module.returns.get(&format!("{rest}.{method}")).copied()
    }
}

impl Module<'_> {
    /// What the project function that `func` calls returns, when `func` names one: a function
    /// imported from a project module (`helpers.util.clean(x)`, `clean(x)` after `from
    /// helpers.util import clean`), or a method of an instance of a project class
    /// (`helpers.Wrapper(r).get(x)`, or through a name bound to such an instance).
    pub(super) fn project_return(
        &self,
        func: Node<'_>,
        scope: ScopeId,
        pos: usize,
    ) -> Option<ReturnTaint> {
        let context = self.imports_from?;
        if let Some(first) = leftmost_name(func)
            && self.imports.contains_key(self.text(first))
        {
            return context.function(&self.callee_name(func));
        }
        if func.kind_name() != "attribute" {
            return None;
        }
        let method = self.text(func.child_by_field_id(fields().attribute)?);
        let object = func.child_by_field_id(fields().object)?;
        let constructor = match object.kind_name() {
            "call" => object,
            "identifier" => self
                .binding(self.text(object), scope, pos)?
                .value
                .filter(|v| v.kind_name() == "call")?,
            _ => return None,
        };
        let class = constructor.child_by_field_id(fields().function)?;
        if !self.imports.contains_key(self.text(leftmost_name(class)?)) {
            return None;
        }
        context.method(&self.callee_name(class), method)
    }
}

/// The identifier a dotted callee starts with: `helpers` in `helpers.util.clean`.
fn leftmost_name(mut node: Node<'_>) -> Option<Node<'_>> {
    loop {
        match node.kind_name() {
            "identifier" => return Some(node),
            "attribute" => node = node.child_by_field_id(fields().object)?,
            _ => return None,
        }
    }
}
