//! Request data put in the server-side session, where later code trusts it as the
//! server's own (CWE-501, trust boundary violation).

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::fields::fields;
use crate::python::syntax::KindName;
use crate::python::{Ctx, Module};
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-TRUST-BOUNDARY",
    title: "Request data stored in the session",
    language: Language::Python,
    cwe: 501,
    severity: Severity::Medium,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "request data is stored in the session unchecked: later requests read it back as the server's own, trusted data (trust boundary violation)",
    fix: "Store only values the server decided or checked: compare against a list of allowed values, convert (`int()`), or look the value up server-side before putting it in the session.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-TRUST-BOUNDARY/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-TRUST-BOUNDARY/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-TRUST-BOUNDARY/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-TRUST-BOUNDARY/good_01.py"),
        include_str!("../../../tests/fixtures/PY-TRUST-BOUNDARY/good_02.py"),
        include_str!("../../../tests/fixtures/PY-TRUST-BOUNDARY/good_03.py"),
    ],
    check,
};

/// Session objects of web frameworks, as resolved through imports.
const SESSIONS: &[&str] = &["flask.session", "quart.session", "bottle.request.session"];

/// Session objects reached through the request (Django, Pyramid).
const REQUEST_SESSIONS: &[&str] = &["request.session", "self.request.session"];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for &(assignment, scope) in &m.assignments {
        let (Some(target), Some(value)) = (
            assignment.child_by_field_id(fields().left),
            assignment.child_by_field_id(fields().right),
        ) else {
            continue;
        };
        if target.kind_name() != "subscript"
            || !target
                .child_by_field_id(fields().value)
                .is_some_and(|s| is_session(m, s))
        {
            continue;
        }
        let key = target.child_by_field_id(fields().subscript);
        let from_request = [Some(value), key].into_iter().flatten().any(|part| {
            let taint = m.taint(part, scope);
            taint.any() && taint.is_remote()
        });
        if from_request {
            cx.report(assignment);
        }
    }
}

fn is_session(m: &Module<'_>, node: tree_sitter::Node<'_>) -> bool {
    let text = m.text(node);
    REQUEST_SESSIONS.contains(&text)
        || matches!(node.kind_name(), "identifier" | "attribute")
            && SESSIONS.contains(&m.callee_name(node).as_str())
}
