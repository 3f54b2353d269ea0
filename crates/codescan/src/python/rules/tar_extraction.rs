//! Tar archives extracted without checking member paths (path traversal, "tar slip").

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::fields::fields;
use crate::python::syntax::KindName;
use crate::rule::{Profile, Rule};

use tree_sitter::Node;

use crate::python::Module;

pub static RULE: Rule = Rule {
    id: "PY-TAR-EXTRACT",
    title: "Tar extraction without member checks",
    language: Language::Python,
    cwe: 22,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "a tar archive is extracted without checking member paths: members named `../x` or absolute paths are written outside the target directory",
    fix: "Pass `filter='data'` (Python 3.12+), or pass `members=` a list filtered to names that stay inside the destination (no absolute paths, no `..`, no links outside).",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/bad_05.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/good_01.py"),
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/good_02.py"),
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/good_03.py"),
        include_str!("../../../tests/fixtures/PY-TAR-EXTRACT/good_04.py"),
    ],
    check,
};

/// Signs that member names are confined: a `..` check, an absolute-path check, or a
/// resolved-path containment check.
const DOTDOT_CHECKS: &[&str] = &[
    "'..' not in",
    "\"..\" not in",
    "'..' in",
    "\"..\" in",
    "'../' in",
    "\"../\" in",
];
const ABSOLUTE_CHECKS: &[&str] = &[
    "isabs",
    "startswith('/')",
    "startswith(\"/\")",
    "startswith(os.sep)",
];
const CONTAINMENT_CHECKS: &[&str] = &[
    "realpath",
    "abspath",
    "commonpath",
    "is_relative_to",
    ".resolve(",
];

fn confines(text: &str) -> bool {
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    (has(DOTDOT_CHECKS) && has(ABSOLUTE_CHECKS)) || has(CONTAINMENT_CHECKS)
}

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    let tar_in_use = m.imports.values().any(|q| q.starts_with("tarfile")) || m.src.contains("tar");
    if !tar_in_use {
        return;
    }
    for call in &m.calls {
        let method = call.method();
        if method != "extractall" && method != "extract" {
            continue;
        }
        let receiver = call.receiver().map(|r| m.text(r)).unwrap_or("");
        if receiver.contains("zip")
            || receiver.contains("Zip")
            || call.name.starts_with("tldextract")
        {
            continue; // zipfile sanitises member names itself; tldextract is not an archive
        }
        if call
            .keyword("filter", m.src)
            .is_some_and(|f| m.text(f) != "None")
        {
            continue;
        }
        let checked = if method == "extractall" {
            // `members=` is a check only when what selects them confines the names.
            call.keyword("members", m.src)
                .or_else(|| call.positional(1))
                .is_some_and(|members| {
                    // `members=ok` where `ok = [...]`: judge the value.
                    let members = match members.kind_name() {
                        "identifier" => m
                            .binding(m.text(members), call.scope, members.start_byte())
                            .and_then(|b| b.value)
                            .unwrap_or(members),
                        _ => members,
                    };
                    confines(m.text(members))
                        || members_function(m, members).is_some_and(|body| confines(m.text(body)))
                })
        } else {
            confines(m.text(m.scopes[call.scope].node))
        };
        if !checked {
            cx.report(call.node);
        }
    }
}

/// For `members=safe_members(tar)`, the body of `safe_members` when this module defines it.
fn members_function<'t>(m: &Module<'t>, members: Node<'_>) -> Option<Node<'t>> {
    let func = members
        .child_by_field_id(fields().function)
        .filter(|_| members.kind_name() == "call")?;
    let name = m.text(func);
    m.scopes.iter().skip(1).map(|s| s.node).find(|def| {
        def.child_by_field_id(fields().name)
            .is_some_and(|n| m.text(n) == name)
    })
}
