//! Node kinds by table: `Node::kind` goes through the grammar's C string for the symbol and
//! checks it is UTF-8 on every call (a tenth of the scan time when measured); the names
//! are looked up once here and indexed by kind id.

use std::sync::OnceLock;

use tree_sitter::Node;

pub(crate) trait KindName {
    /// The node's kind, the same string as `Node::kind`.
    fn kind_name(&self) -> &'static str;
}

impl KindName for Node<'_> {
    #[inline]
    fn kind_name(&self) -> &'static str {
        names()
            .get(usize::from(self.kind_id()))
            .copied()
            .unwrap_or("")
    }
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

    #[test]
    fn kind_names_match_the_grammar() {
        let source = "import os\nx: int = f'{a!r}' if b else [y for y in z]\n@d\ndef g(*a, **k): return\n";
        let mut parser = tree_sitter::Parser::new();
        parser
            .set_language(&tree_sitter_python::LANGUAGE.into())
            .expect("grammar loads");
        let tree = parser.parse(source, None).expect("parses");
        let mut cursor = tree.walk();
        let mut seen = 0;
        loop {
            let node = cursor.node();
            assert_eq!(node.kind_name(), node.kind());
            seen += 1;
            if cursor.goto_first_child() {
                continue;
            }
            while !cursor.goto_next_sibling() {
                if !cursor.goto_parent() {
                    assert!(seen > 40, "walked only {seen} nodes");
                    return;
                }
            }
        }
    }
}
