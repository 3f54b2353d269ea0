//! Cookies sent without `Secure`/`HttpOnly`, or with `SameSite=None`.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::fields::fields;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-INSECURE-COOKIE",
    title: "Cookie without Secure or HttpOnly",
    language: Language::Python,
    cwe: 614,
    severity: Severity::Medium,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "a cookie is set with `secure=False`, `httponly=False` or `samesite='None'` (or a framework setting turns the flag off): it travels over plain HTTP, is readable by scripts, or is sent on cross-site requests",
    fix: "Set cookies with `secure=True, httponly=True, samesite='Lax'` (Django: `SESSION_COOKIE_SECURE = True`, `CSRF_COOKIE_SECURE = True`).",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-INSECURE-COOKIE/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-COOKIE/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-COOKIE/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-COOKIE/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-INSECURE-COOKIE/good_01.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-COOKIE/good_02.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-COOKIE/good_03.py"),
    ],
    check,
};

/// Settings that turn a cookie flag off when set to `False` (Django, Flask).
const FLAG_SETTINGS: &[&str] = &[
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_HTTPONLY",
    "REMEMBER_COOKIE_SECURE",
    "REMEMBER_COOKIE_HTTPONLY",
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if !matches!(call.method(), "set_cookie" | "set_signed_cookie") {
            continue;
        }
        let off = |k: &str| call.keyword_is(k, "False", m.src);
        let samesite_none = call.keyword("samesite", m.src).is_some_and(|v| {
            let t = m.text(v);
            t.eq_ignore_ascii_case("'none'") || t.eq_ignore_ascii_case("\"none\"")
        });
        if off("secure") || off("httponly") || samesite_none {
            cx.report(call.node);
        }
    }
    for &(assignment, _) in &m.assignments {
        let (Some(left), Some(right)) = (
            assignment.child_by_field_id(fields().left),
            assignment.child_by_field_id(fields().right),
        ) else {
            continue;
        };
        let target = m
            .text(left)
            .trim_start_matches("app.config[")
            .trim_matches(|c| c == '\'' || c == '"' || c == ']');
        if FLAG_SETTINGS.contains(&target) && m.text(right) == "False" {
            cx.report(assignment);
        }
    }
}
