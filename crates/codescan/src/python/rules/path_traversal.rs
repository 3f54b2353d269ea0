//! File paths built from user input without confinement.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::fields::fields;
use crate::python::syntax::KindName;
use crate::python::{Ctx, Module, ScopeId, Taint};
use crate::rule::{Profile, Rule};
use tree_sitter::Node;

use super::scope_mentions;
use crate::python::flows::SinkKind;

pub static RULE: Rule = Rule {
    id: "PY-PATH-TRAVERSAL",
    title: "File path from user input",
    language: Language::Python,
    cwe: 22,
    severity: Severity::High,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "a file path comes from user input (request data or an uploaded file name) without confinement: `../` reaches files outside the intended directory",
    fix: "Reduce the name with `werkzeug.utils.secure_filename` or `os.path.basename`, or resolve the path and check it stays inside the base directory (`os.path.realpath(p).startswith(base + os.sep)`); `send_from_directory` does this for downloads.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/bad_05.py"),
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/bad_06.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/good_01.py"),
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/good_02.py"),
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/good_03.py"),
        include_str!("../../../tests/fixtures/PY-PATH-TRAVERSAL/good_04.py"),
    ],
    check,
};

/// Methods that write the receiver to the path in their first argument (werkzeug uploads).
const SAVE_METHODS: &[&str] = &["save"];

/// Confinement checks: a function doing one of these is treated as checking its paths.
const CONFINEMENT: &[&str] = &[
    "startswith(",
    "commonpath",
    "is_relative_to",
    "'..' in",
    "\"..\" in",
    "safe_join",
];

/// Methods that read, write or delete the file their receiver names (`pathlib`'s names,
/// distinctive enough to count on any call's result).
const PATH_METHODS: &[&str] = &[
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "unlink",
];

/// `pathlib.Path` methods whose names other objects share: they count only on a value
/// known to be a path.
const PATH_OBJECT_METHODS: &[&str] = &[
    "open", "exists", "is_file", "is_dir", "stat", "touch", "mkdir", "rmdir", "iterdir",
];

/// Constructors of `pathlib` paths.
const PATH_TYPES: &[&str] = &[
    "Path",
    "PurePath",
    "PosixPath",
    "WindowsPath",
    "PurePosixPath",
    "PureWindowsPath",
];

/// Whether `node` is a `pathlib` path: a constructor call, `base / part` of one, or a name
/// bound to either.
fn is_path_object(m: &Module<'_>, node: Node<'_>, scope: ScopeId, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    match node.kind_name() {
        "call" => node.child_by_field_id(fields().function).is_some_and(|f| {
            PATH_TYPES.contains(&m.callee_name(f).rsplit('.').next().unwrap_or(""))
        }),
        "binary_operator" => {
            node.child_by_field_id(fields().operator)
                .is_some_and(|o| m.text(o) == "/")
                && node
                    .child_by_field_id(fields().left)
                    .is_some_and(|l| is_path_object(m, l, scope, depth + 1))
        }
        "parenthesized_expression" => node
            .named_child(0)
            .is_some_and(|inner| is_path_object(m, inner, scope, depth + 1)),
        "identifier" => m
            .binding(m.text(node), scope, node.start_byte())
            .and_then(|b| b.value)
            .is_some_and(|v| v.id() != node.id() && is_path_object(m, v, scope, depth + 1)),
        _ => false,
    }
}

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        // Exact names: `Image.open` or `tarfile.open` are not the builtin `open`.
        let path = if let Some(sink) = call.sink.filter(|s| s.kind == SinkKind::File) {
            call.arg(sink.position, sink.keyword, m.src)
        } else if SAVE_METHODS.contains(&call.method())
            && call
                .receiver()
                .is_some_and(|r| m.taint(r, call.scope).any())
        {
            call.arg(0, "dst", m.src)
        } else if PATH_METHODS.contains(&call.method())
            && call
                .receiver()
                .is_some_and(|r| r.kind_name() == "call" || is_path_object(m, r, call.scope, 0))
            || PATH_OBJECT_METHODS.contains(&call.method())
                && call
                    .receiver()
                    .is_some_and(|r| is_path_object(m, r, call.scope, 0))
        {
            call.receiver()
        } else {
            None
        };
        let Some(path) = path else { continue };
        if m.taint(path, call.scope).has(Taint::PATH) && !scope_mentions(m, call.scope, CONFINEMENT)
        {
            cx.report(call.node);
        }
    }
}
