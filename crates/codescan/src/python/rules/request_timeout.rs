//! HTTP requests that can wait forever.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-REQUEST-NO-TIMEOUT",
    title: "HTTP request without a timeout",
    language: Language::Python,
    cwe: 400,
    severity: Severity::Low,
    confidence: Confidence::High,
    profile: Profile::Audit,
    message: "an HTTP request is made without a timeout: a slow or silent server holds the caller (a worker, a thread) forever",
    fix: "Pass `timeout=` (seconds, or a (connect, read) pair) on every call, e.g. `requests.get(url, timeout=10)`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-REQUEST-NO-TIMEOUT/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-REQUEST-NO-TIMEOUT/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-REQUEST-NO-TIMEOUT/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-REQUEST-NO-TIMEOUT/good_01.py"),
        include_str!("../../../tests/fixtures/PY-REQUEST-NO-TIMEOUT/good_02.py"),
        include_str!("../../../tests/fixtures/PY-REQUEST-NO-TIMEOUT/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if matches!(
            call.name.as_str(),
            "requests.get"
                | "requests.post"
                | "requests.put"
                | "requests.patch"
                | "requests.delete"
                | "requests.head"
                | "requests.options"
                | "requests.request"
        ) && call.keyword("timeout", m.src).is_none()
            && !m.text(call.node).contains("**")
        {
            cx.report(call.node);
        }
    }
}
