//! What a local list, dict or `configparser` holds at a given read, entry by entry, so that
//! `d['other'] = request.args['q']; x = d['key']` does not make `x` request data.
//!
//! A container is followed only while that is exact: from a binding to a literal (`[]`,
//! `{'k': v}`, `dict()`, `ConfigParser()`) through the stores and method calls made on it
//! by name in the same block, in source order, up to the read. Anything else (a store
//! with a computed key, a mutation inside a branch or loop, a method not modelled here)
//! gives up, and the read falls back to the taint of the whole container, as before.
//! So does any other use of the name before the read (`e = d`, `fill(d)`, `h.m = d`,
//! `d['k'].append(v)`, a use in a nested function), a mutation made through a name bound
//! to the container or to one of its entries, and a read inside a loop that does not also
//! hold the binding (a later iteration sees the stores made after the read).

use tree_sitter::Node;

use super::fields::fields;
use super::model::{Module, ScopeId};
use super::syntax::{KindName, named_children};
use super::taint::Taint;

/// A store or method call made on a container named by a plain identifier.
pub struct ContainerOp<'t> {
    pub name: &'t str,
    /// The `call` (`items.append(v)`), the `assignment` (`d[k] = v`) or the
    /// `augmented_assignment` (`items += more`, never followed).
    pub node: Node<'t>,
    pub scope: ScopeId,
    pub end: usize,
    /// The innermost block the operation is made in.
    pub block: (usize, usize),
    /// Made on another name bound to this container or to one of its entries: what it
    /// changed is not followed, so the replay gives up.
    pub via_alias: bool,
}

/// Methods that change the object they are called on, when called on an entry
/// (`d['k'].append(v)`): the container then holds something the replay did not see.
const MUTATING_METHODS: &[&str] = &[
    "append",
    "appendleft",
    "extend",
    "insert",
    "update",
    "add",
    "set",
    "setdefault",
    "pop",
    "popitem",
    "remove",
    "discard",
    "clear",
    "sort",
    "reverse",
    "write",
];

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The entries of a container at one point, each with its taint.
enum Contents {
    List(Vec<Taint>),
    /// Keys as written (`'k'`, `1`); a `configparser` keys its options `section\0option`,
    /// options lowercased as `configparser` stores them.
    Map {
        entries: Vec<(String, Taint)>,
        config: bool,
    },
}

impl Contents {
    fn set(&mut self, key: String, taint: Taint) {
        if let Contents::Map { entries, .. } = self {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = taint,
                None => entries.push((key, taint)),
            }
        }
    }
}

/// Normalises `-1` to the last index of a list of `len` entries.
fn list_index(index: i64, len: usize) -> Option<usize> {
    let signed_len = i64::try_from(len).ok()?;
    let i = if index < 0 { signed_len + index } else { index };
    usize::try_from(i).ok().filter(|&i| i < len)
}

impl<'t> Module<'t> {
    /// The taint of `container[key]`, `container.get(key, default)` or
    /// `config.get(section, option, fallback=...)` read at `pos` (`key`: the index or the
    /// positional arguments, `fallback`: a `fallback=`/`default=` keyword), when what the
    /// container holds there is known exactly; `None` otherwise.
    pub(super) fn entry_taint(
        &self,
        container: Node<'_>,
        key: &[Node<'_>],
        fallback: Option<Node<'_>>,
        scope: ScopeId,
        pos: usize,
        depth: usize,
    ) -> Option<Taint> {
        if container.kind_name() != "identifier" || key.is_empty() {
            return None;
        }
        let contents = self.contents_at(self.text(container), scope, pos, depth)?;
        let missing = |default: Option<Node<'_>>| {
            default
                .or(fallback)
                .map(|d| self.eval(d, scope, pos, depth + 1))
                .unwrap_or_default()
        };
        match contents {
            Contents::List(items) => {
                let index = self.const_int(key[0], scope, depth + 1)?;
                items.get(list_index(index, items.len())?).copied()
            }
            Contents::Map { entries, config } => {
                let (key, default) = match (config, key) {
                    (true, [section, option]) => (
                        format!(
                            "{}\0{}",
                            self.key_text(*section, scope, depth)?,
                            self.key_text(*option, scope, depth)?.to_lowercase()
                        ),
                        None,
                    ),
                    (false, [k]) => (self.key_text(*k, scope, depth)?, None),
                    (false, [k, default]) => (self.key_text(*k, scope, depth)?, Some(*default)),
                    _ => return None,
                };
                Some(
                    entries
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map_or_else(|| missing(default), |(_, t)| *t),
                )
            }
        }
    }

    /// A constant key as written: a string's value quoted, an integer's digits.
    fn key_text(&self, node: Node<'_>, scope: ScopeId, depth: usize) -> Option<String> {
        if let Some(s) = self.const_str(node, scope, depth + 1) {
            return Some(format!("'{s}'"));
        }
        self.const_int(node, scope, depth + 1)
            .map(|i| i.to_string())
    }

    fn contents_at(
        &self,
        name: &str,
        scope: ScopeId,
        pos: usize,
        depth: usize,
    ) -> Option<Contents> {
        let binding = self.scopes[scope]
            .vars
            .get(name)?
            .iter()
            .rev()
            .find(|b| b.end <= pos && !b.augmented)?;
        if binding.param || !(binding.block.0..=binding.block.1).contains(&pos) {
            return None;
        }
        if self.read_in_later_loop(binding.end, pos) || self.escapes(name, scope, binding.end, pos)
        {
            return None;
        }
        let mut contents = self.initial_contents(binding.value?, scope, depth)?;
        for op in self.container_ops.iter().filter(|op| {
            op.name == name && op.scope == scope && op.end > binding.end && op.end <= pos
        }) {
            let left = self.replay_budget.get();
            if op.via_alias || op.block != binding.block || left == 0 {
                return None;
            }
            self.replay_budget.set(left - 1);
            self.apply(op, &mut contents, depth)?;
        }
        Some(contents)
    }

    /// Whether the read at `pos` is inside a loop that starts after the binding ending at
    /// `bound`: the loop's later iterations see stores made after the read.
    fn read_in_later_loop(&self, bound: usize, pos: usize) -> bool {
        let mut current = self.root.descendant_for_byte_range(pos, pos);
        while let Some(node) = current {
            if node.start_byte() < bound {
                return false;
            }
            if matches!(node.kind_name(), "for_statement" | "while_statement") {
                return true;
            }
            current = node.parent();
        }
        false
    }

    /// Whether `name` is used between `from` and `to` other than by the stores, reads and
    /// method calls the replay follows (see the module comment).
    fn escapes(&self, name: &str, scope: ScopeId, from: usize, to: usize) -> bool {
        let bytes = self.src.as_bytes();
        let Some(text) = self.src.get(from..to.min(self.src.len())) else {
            return true;
        };
        // The search is paid for like replayed operations, by the kilobyte.
        let cost = 1 + text.len() / 1024;
        let left = self.replay_budget.get();
        if left < cost {
            return true;
        }
        self.replay_budget.set(left - cost);
        for (offset, _) in text.match_indices(name) {
            let (start, end) = (from + offset, from + offset + name.len());
            if start > 0 && is_identifier_byte(bytes[start - 1])
                || end < bytes.len() && is_identifier_byte(bytes[end])
            {
                continue;
            }
            let left = self.replay_budget.get();
            if left == 0 {
                return true;
            }
            self.replay_budget.set(left - 1);
            let Some(node) = self.root.descendant_for_byte_range(start, end) else {
                continue;
            };
            // Text in a string or comment, or the attribute of another object (`obj.d`).
            if node.kind_name() != "identifier"
                || node.start_byte() != start
                || node.end_byte() != end
                || node.parent().is_some_and(|p| {
                    p.kind_name() == "attribute"
                        && p.child_by_field_id(fields().attribute)
                            .is_some_and(|a| a.id() == node.id())
                })
                || node.parent().is_some_and(|p| {
                    p.kind_name() == "keyword_argument"
                        && p.child_by_field_id(fields().name)
                            .is_some_and(|n| n.id() == node.id())
                })
            {
                continue;
            }
            if !self.is_followed_use(node, scope) {
                return true;
            }
        }
        false
    }

    /// A use of a container's name that the replay follows: `d[k]` read or stored, `del
    /// d[k]`, or a method called on `d`, directly in the scope's own body.
    fn is_followed_use(&self, name: Node<'_>, scope: ScopeId) -> bool {
        let scope_node = self.scopes[scope].node.id();
        let mut ancestor = name.parent();
        while let Some(a) = ancestor {
            if a.id() == scope_node {
                break;
            }
            if matches!(
                a.kind_name(),
                "function_definition" | "lambda" | "class_definition"
            ) {
                return false;
            }
            ancestor = a.parent();
        }
        let Some(parent) = name.parent() else {
            return false;
        };
        let is_field = |node: Node<'_>, field| {
            node.child_by_field_id(field)
                .is_some_and(|c| c.id() == name.id())
        };
        match parent.kind_name() {
            // `d.method(...)`: recorded as an operation the replay applies or gives up on.
            "attribute" if is_field(parent, fields().object) => {
                parent.parent().is_some_and(|call| {
                    call.kind_name() == "call"
                        && call
                            .child_by_field_id(fields().function)
                            .is_some_and(|f| f.id() == parent.id())
                })
            }
            "subscript" if is_field(parent, fields().value) => {
                let Some(outer) = parent.parent() else {
                    return true;
                };
                match outer.kind_name() {
                    "assignment" | "augmented_assignment" => {
                        outer
                            .child_by_field_id(fields().left)
                            .is_some_and(|l| l.id() == parent.id())
                            || outer
                                .child_by_field_id(fields().right)
                                .is_some_and(|r| r.id() == parent.id())
                    }
                    "delete_statement" => true,
                    // `d['k'].append(v)` changes the entry in place.
                    "attribute" => !outer
                        .child_by_field_id(fields().attribute)
                        .is_some_and(|a| MUTATING_METHODS.contains(&self.text(a))),
                    "pattern_list" | "tuple_pattern" | "list_pattern" => false,
                    _ => true,
                }
            }
            _ => false,
        }
    }

    fn initial_contents(&self, value: Node<'_>, scope: ScopeId, depth: usize) -> Option<Contents> {
        let at = value.start_byte();
        match value.kind_name() {
            "list" => named_children(value)
                .map(|item| {
                    (item.kind_name() != "list_splat")
                        .then(|| self.eval(item, scope, at, depth + 1))
                })
                .collect::<Option<Vec<_>>>()
                .map(Contents::List),
            "dictionary" => {
                let mut entries = Vec::new();
                for pair in named_children(value) {
                    if pair.kind_name() != "pair" {
                        return None;
                    }
                    let key = self.key_text(pair.child_by_field_id(fields().key)?, scope, depth)?;
                    let taint = self.eval(
                        pair.child_by_field_id(fields().value)?,
                        scope,
                        at,
                        depth + 1,
                    );
                    entries.push((key, taint));
                }
                Some(Contents::Map {
                    entries,
                    config: false,
                })
            }
            "call" => {
                let callee = self.callee_name(value.child_by_field_id(fields().function)?);
                let no_args = value
                    .child_by_field_id(fields().arguments)
                    .is_none_or(|a| a.named_child_count() == 0);
                let last = callee.rsplit('.').next().unwrap_or("");
                match last {
                    "list" if no_args => Some(Contents::List(Vec::new())),
                    "dict" | "OrderedDict" if no_args => Some(Contents::Map {
                        entries: Vec::new(),
                        config: false,
                    }),
                    "ConfigParser" | "RawConfigParser" | "SafeConfigParser" => {
                        Some(Contents::Map {
                            entries: Vec::new(),
                            config: true,
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Replays one operation; `None` when its effect is not known exactly.
    fn apply(&self, op: &ContainerOp<'_>, contents: &mut Contents, depth: usize) -> Option<()> {
        let scope = op.scope;
        let at = op.node.start_byte();
        match op.node.kind_name() {
            "assignment" => {
                let target = op.node.child_by_field_id(fields().left)?;
                let value = op.node.child_by_field_id(fields().right)?;
                let key = target.child_by_field_id(fields().subscript)?;
                let taint = self.eval(value, scope, at, depth + 1);
                match contents {
                    Contents::List(items) => {
                        let i = list_index(self.const_int(key, scope, depth + 1)?, items.len())?;
                        items[i] = taint;
                    }
                    Contents::Map { config: false, .. } => {
                        contents.set(self.key_text(key, scope, depth)?, taint)
                    }
                    Contents::Map { config: true, .. } => return None,
                }
                Some(())
            }
            // `del d[k]` (one target).
            "delete_statement" => {
                let target = op.node.named_child(0)?;
                let key = target.child_by_field_id(fields().subscript)?;
                match contents {
                    Contents::List(items) => {
                        let i = list_index(self.const_int(key, scope, depth + 1)?, items.len())?;
                        items.remove(i);
                    }
                    Contents::Map {
                        entries,
                        config: false,
                    } => {
                        let key = self.key_text(key, scope, depth)?;
                        entries.retain(|(e, _)| *e != key);
                    }
                    Contents::Map { config: true, .. } => return None,
                }
                Some(())
            }
            "call" => {
                let func = op.node.child_by_field_id(fields().function)?;
                let method = self.text(func.child_by_field_id(fields().attribute)?);
                let args: Vec<Node<'_>> = op
                    .node
                    .child_by_field_id(fields().arguments)
                    .map(|a| {
                        named_children(a)
                            .filter(|n| n.kind_name() != "comment")
                            .collect()
                    })
                    .unwrap_or_default();
                if args.iter().any(|a| a.kind_name() == "keyword_argument")
                    && !matches!(method, "get" | "pop")
                {
                    return None;
                }
                let taint_of = |n: Node<'_>| self.eval(n, scope, at, depth + 1);
                match contents {
                    Contents::List(items) => match (method, args.as_slice()) {
                        ("append", [v]) => items.push(taint_of(*v)),
                        ("insert", [i, v]) => {
                            let i = self.const_int(*i, scope, depth + 1)?;
                            let len = i64::try_from(items.len()).ok()?;
                            let i = if i < 0 { (len + i).max(0) } else { i.min(len) };
                            items.insert(usize::try_from(i).ok()?, taint_of(*v));
                        }
                        ("pop", []) => {
                            items.pop()?;
                        }
                        ("pop", [i]) => {
                            let i = list_index(self.const_int(*i, scope, depth + 1)?, items.len())?;
                            items.remove(i);
                        }
                        ("reverse", []) => items.reverse(),
                        ("clear", []) => items.clear(),
                        ("count" | "index" | "copy", _) => {}
                        _ => return None,
                    },
                    Contents::Map { config: true, .. } => match (method, args.as_slice()) {
                        ("set", [section, option, v]) => {
                            let key = format!(
                                "{}\0{}",
                                self.key_text(*section, scope, depth)?,
                                self.key_text(*option, scope, depth)?.to_lowercase()
                            );
                            let taint = taint_of(*v);
                            contents.set(key, taint);
                        }
                        (
                            "add_section" | "get" | "getint" | "getfloat" | "getboolean"
                            | "has_section" | "has_option" | "sections" | "options" | "items",
                            _,
                        ) => {}
                        _ => return None,
                    },
                    Contents::Map { entries, .. } => match (method, args.as_slice()) {
                        ("pop", [k, ..]) => {
                            let key = self.key_text(*k, scope, depth)?;
                            entries.retain(|(e, _)| *e != key);
                        }
                        ("setdefault", [k, v]) => {
                            let key = self.key_text(*k, scope, depth)?;
                            if !entries.iter().any(|(e, _)| *e == key) {
                                entries.push((key, taint_of(*v)));
                            }
                        }
                        ("clear", []) => entries.clear(),
                        ("get" | "keys" | "values" | "items" | "copy", _) => {}
                        _ => return None,
                    },
                }
                Some(())
            }
            _ => None,
        }
    }
}
