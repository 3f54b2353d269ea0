//! Calls between a module's own functions. Read one function at a time, a helper looks clean
//! twice over: `def run(cmd): os.system(cmd)` takes a parameter nobody tainted, and
//! `def user_query(): return request.args["q"]` is called with nothing tainted, so its
//! result looks clean at the call. The module is therefore built again once its calls are
//! known:
//! - a parameter starts with the taint its module's own call sites pass to it (the union over
//!   the sites), so a sink inside the helper sees the request that reaches it;
//! - a call to one of the module's functions adds what that function returns of its own, as
//!   read in the first build (parameters as the function's own kind gives them: a route's
//!   are input, a helper's are not), so the result of `user_query()` is input while
//!   `strip(x)` called once with a constant and once with input stays clean at the first.
//!
//! Rebuilt until nothing new is learnt, at most [`MAX_BUILDS`] builds in all; a module whose
//! own functions are not called with anything tainted, and return nothing tainted of their
//! own, is built once.

use std::collections::HashMap;

use tree_sitter::Node;

use super::fields::fields;
use super::model::{Module, ScopeId};
use super::summary::ImportContext;
use super::syntax::{KindName, named_children};
use super::taint::Taint;

/// Builds of one module at most: the first, then one per round of calls learnt (a chain
/// of helpers passing input along needs one round per link).
const MAX_BUILDS: usize = 4;

/// Call sites looked at per round at most (hostile input: many calls).
const MAX_CALL_SITES: usize = 2_048;

/// What a build learnt about the module's own functions, for the next build.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalCalls {
    /// Function node id -> parameter name -> taint its call sites pass in.
    params: HashMap<usize, HashMap<String, Taint>>,
    /// Function node id -> taint it returns of its own.
    returns: HashMap<usize, Taint>,
}

impl LocalCalls {
    pub fn param_taint(&self, function: Node<'_>, param: &str) -> Taint {
        self.params
            .get(&function.id())
            .and_then(|p| p.get(param))
            .copied()
            .unwrap_or_default()
    }

    pub fn returned(&self, function: Node<'_>) -> Taint {
        self.returns
            .get(&function.id())
            .copied()
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.returns.is_empty()
    }
}

/// The module's top-level functions (`f`) and the methods of its top-level classes (`C.f`).
pub fn local_functions<'t>(src: &'t str, root: Node<'t>) -> HashMap<String, Node<'t>> {
    let mut functions = HashMap::new();
    let name_of = |n: Node<'_>| {
        n.child_by_field_id(fields().name)
            .and_then(|name| src.get(name.byte_range()))
    };
    for statement in named_children(root) {
        let definition = undecorated(statement);
        match definition.kind_name() {
            "function_definition" => {
                if let Some(name) = name_of(definition) {
                    functions.insert(name.to_string(), definition);
                }
            }
            "class_definition" => {
                let (Some(class), Some(body)) = (
                    name_of(definition),
                    definition.child_by_field_id(fields().body),
                ) else {
                    continue;
                };
                for member in named_children(body).map(undecorated) {
                    if member.kind_name() == "function_definition"
                        && let Some(name) = name_of(member)
                    {
                        functions.insert(format!("{class}.{name}"), member);
                    }
                }
            }
            _ => {}
        }
    }
    functions
}

fn undecorated(node: Node<'_>) -> Node<'_> {
    if node.kind_name() == "decorated_definition" {
        node.child_by_field_id(fields().definition).unwrap_or(node)
    } else {
        node
    }
}

impl<'t> Module<'t> {
    /// Builds the module, then again while its own calls teach something new.
    pub(super) fn build_following_calls(
        src: &'t str,
        root: Node<'t>,
        imports: Option<ImportContext<'t>>,
    ) -> Self {
        let mut module = Self::build_with(src, root, imports, None, LocalCalls::default());
        if module.local_functions.is_empty() {
            return module;
        }
        // What functions return of their own is read once, from the first build: later
        // builds give parameters the taint of every call site, which is not their own.
        let returns = module.own_returns();
        for _ in 1..MAX_BUILDS {
            let learnt = LocalCalls {
                params: module.params_from_calls(),
                returns: returns.clone(),
            };
            if learnt.is_empty() || learnt == module.local_calls {
                break;
            }
            module = Self::build_with(src, root, imports, None, learnt);
        }
        module
    }

    /// The module function or method a call reaches: `f(...)` for a top-level `def f` (not
    /// shadowed by a local name or an import), `self.f(...)` inside a method of the class
    /// that defines `f`. The second value is the parameters a call's positional arguments
    /// skip (1 for `self`).
    pub(super) fn local_callee(&self, func: Node<'_>, scope: ScopeId) -> Option<(Node<'t>, usize)> {
        match func.kind_name() {
            "identifier" => {
                let name = self.text(func);
                if self.imports.contains_key(name)
                    || self.binding(name, scope, usize::MAX).is_some()
                {
                    return None;
                }
                self.local_functions.get(name).map(|&f| (f, 0))
            }
            "attribute" => {
                let object = func.child_by_field_id(fields().object)?;
                let method = self.text(func.child_by_field_id(fields().attribute)?);
                let class = if self.text(object) == "self" {
                    self.enclosing_class(scope)?
                } else {
                    self.instance_class(object, scope)?
                };
                self.local_functions
                    .get(&format!("{class}.{method}"))
                    .map(|&f| (f, 1))
            }
            _ => None,
        }
    }

    /// The module class that `object` is an instance of: `Store()` or a name bound to it.
    fn instance_class(&self, object: Node<'_>, scope: ScopeId) -> Option<&'t str> {
        let constructor = match object.kind_name() {
            "call" => object,
            "identifier" => self
                .binding(self.text(object), scope, object.start_byte())?
                .value
                .filter(|v| v.kind_name() == "call")?,
            _ => return None,
        };
        let class = constructor.child_by_field_id(fields().function)?;
        if class.kind_name() != "identifier" {
            return None;
        }
        let name = self
            .local_functions
            .get_key_value(&format!("{}.__init__", self.text(class)));
        let defines_methods = name.is_some()
            || self.local_functions.keys().any(|k| {
                k.strip_prefix(self.text(class))
                    .is_some_and(|m| m.starts_with('.'))
            });
        defines_methods.then(|| self.text(class))
    }

    /// The name of the class whose method `scope` is (directly).
    fn enclosing_class(&self, scope: ScopeId) -> Option<&'t str> {
        let function = self.scopes.get(scope)?.node;
        let mut outer = function.parent()?;
        if outer.kind_name() == "decorated_definition" {
            outer = outer.parent()?;
        }
        let class = outer
            .parent()
            .filter(|c| c.kind_name() == "class_definition")?;
        Some(self.text(class.child_by_field_id(fields().name)?))
    }

    /// For each module function called in this build with tainted arguments: the taint of
    /// each parameter, joined over the call sites (and over what earlier builds learnt).
    fn params_from_calls(&self) -> HashMap<usize, HashMap<String, Taint>> {
        let mut params = self.local_calls.params.clone();
        for call in self.calls.iter().take(MAX_CALL_SITES) {
            let Some(func) = call.node.child_by_field_id(fields().function) else {
                continue;
            };
            let Some((function, skipped)) = self.local_callee(func, call.scope) else {
                continue;
            };
            let names = parameter_names(self, function);
            let Some(args) = call.args else { continue };
            let mut position = skipped;
            for arg in named_children(args).filter(|a| a.kind_name() != "comment") {
                let (name, value) = if arg.kind_name() == "keyword_argument" {
                    let Some(key) = arg.child_by_field_id(fields().name) else {
                        continue;
                    };
                    (Some(self.text(key)), arg.child_by_field_id(fields().value))
                } else if matches!(arg.kind_name(), "list_splat" | "dictionary_splat") {
                    break; // positions after `*args` are unknown
                } else {
                    position += 1;
                    (names.get(position - 1).copied(), Some(arg))
                };
                let (Some(name), Some(value)) = (name, value) else {
                    continue;
                };
                let taint = self.taint(value, call.scope);
                if taint.any() {
                    *params
                        .entry(function.id())
                        .or_default()
                        .entry(name.to_string())
                        .or_default() |= taint;
                }
            }
        }
        params
    }

    /// For each module function: the taint of what it returns in this build.
    fn own_returns(&self) -> HashMap<usize, Taint> {
        let mut returns: HashMap<usize, Taint> = HashMap::new();
        for &(value, scope) in &self.returns {
            let function = self.scopes[scope].node;
            if function.kind_name() != "function_definition" {
                continue;
            }
            let taint = self.taint(value, scope);
            if taint.any() {
                *returns.entry(function.id()).or_default() |= taint;
            }
        }
        returns
    }
}

/// The names of a function's parameters, in order.
fn parameter_names<'t>(module: &Module<'t>, function: Node<'t>) -> Vec<&'t str> {
    function
        .child_by_field_id(fields().parameters)
        .map(|p| {
            named_children(p)
                .filter_map(super::model::param_name)
                .map(|(n, _)| module.text(n))
                .collect()
        })
        .unwrap_or_default()
}
