//! Cheap access to syntax nodes, for the hot paths of the walk, taint and the rules:
//! - kinds by table: `Node::kind` goes through the grammar's C string for the symbol and
//!   checks it is UTF-8 on every call (7% of the scan when measured); the names are
//!   looked up once here and indexed by kind id;
//! - children by index: iterating with a `TreeCursor` allocates the cursor and, in this
//!   grammar's deeply hidden trees, costs about twice as many instructions per step.

use std::sync::OnceLock;

use tree_sitter::Node;

pub(crate) trait KindName {
    /// The node's kind, the same string as `Node::kind`.
    fn kind_name(&self) -> &'static str;
}

impl KindName for Node<'_> {
    #[inline]
    fn kind_name(&self) -> &'static str {
        match names().get(usize::from(self.kind_id())) {
            Some(name) => name,
            // `ERROR` nodes carry built-in ids past the grammar's symbols.
            None if self.is_error() => "ERROR",
            None => "",
        }
    }
}

/// The named children of `node`, in order (what `Node::named_children` yields).
pub(crate) fn named_children<'t>(node: Node<'t>) -> impl Iterator<Item = Node<'t>> {
    (0..node.named_child_count()).filter_map(move |i| node.named_child(u32::try_from(i).ok()?))
}

/// All children of `node`, named and anonymous, in order (what `Node::children` yields).
pub(crate) fn children<'t>(node: Node<'t>) -> impl Iterator<Item = Node<'t>> {
    (0..node.child_count()).filter_map(move |i| node.child(i))
}

fn names() -> &'static [&'static str] {
    static LANGUAGE: OnceLock<tree_sitter::Language> = OnceLock::new();
    static NAMES: OnceLock<Box<[&'static str]>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let language: &'static tree_sitter::Language =
            LANGUAGE.get_or_init(|| tree_sitter_python::LANGUAGE.into());
        (0..language.node_kind_count())
            .map(|id| {
                u16::try_from(id)
                    .ok()
                    .and_then(|id| language.node_kind_for_id(id))
                    .unwrap_or("")
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exercises most of the grammar, error recovery included.
    const SOURCE: &str = r#"import os.path as p
from a import (b, c as d)
x: int = f'{a!r:>{w}}' 'y' if b else [y for y in z if y not in q]
@d(1)
async def g(s, /, *a, k=2, **kw) -> None:
    """doc"""
    with open(p) as f, q() as (r, t):
        return {**kw, 'k': [*a]} or lambda v: v is not None  # comment
match x:
    case [1, *rest] if rest: pass
    case {'k': v}: pass
def broken(:
  x = (1,
"#;

    fn parse(source: &str) -> tree_sitter::Tree {
        let mut parser = tree_sitter::Parser::new();
        parser
            .set_language(&tree_sitter_python::LANGUAGE.into())
            .expect("grammar loads");
        parser.parse(source, None).expect("parses")
    }

    /// Every node, walked with a cursor (the reference the helpers must agree with).
    fn all_nodes(tree: &tree_sitter::Tree) -> Vec<Node<'_>> {
        let mut nodes = Vec::new();
        let mut cursor = tree.walk();
        loop {
            nodes.push(cursor.node());
            if cursor.goto_first_child() {
                continue;
            }
            while !cursor.goto_next_sibling() {
                if !cursor.goto_parent() {
                    return nodes;
                }
            }
        }
    }

    #[test]
    fn kind_names_match_the_grammar() {
        let tree = parse(SOURCE);
        for node in all_nodes(&tree) {
            assert_eq!(node.kind_name(), node.kind());
        }
    }

    #[test]
    fn children_by_index_match_the_cursor() {
        let tree = parse(SOURCE);
        let nodes = all_nodes(&tree);
        assert!(nodes.len() > 150, "walked only {} nodes", nodes.len());
        assert!(
            tree.root_node().has_error(),
            "the source should include a syntax error"
        );
        for node in nodes {
            let mut cursor = node.walk();
            let expected: Vec<Node<'_>> = node.children(&mut cursor).collect();
            assert_eq!(children(node).collect::<Vec<_>>(), expected);
            let expected: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
            assert_eq!(named_children(node).collect::<Vec<_>>(), expected);
        }
    }
}
