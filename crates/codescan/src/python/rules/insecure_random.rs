//! Predictable random numbers used for secrets.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::fields::fields;
use crate::python::syntax::KindName;
use crate::python::{Ctx, Module, ScopeId};
use crate::rule::{Profile, Rule};

use super::names_secret;

pub static RULE: Rule = Rule {
    id: "PY-INSECURE-RANDOM",
    title: "Predictable randomness for secrets",
    language: Language::Python,
    cwe: 338,
    severity: Severity::Medium,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "a token, password, key or salt is generated with `random`, whose output is predictable",
    fix: "Use the `secrets` module (`secrets.token_urlsafe()`, `secrets.choice`) or `os.urandom` for anything an attacker must not guess.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-INSECURE-RANDOM/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-RANDOM/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-RANDOM/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-RANDOM/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-INSECURE-RANDOM/good_01.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-RANDOM/good_02.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-RANDOM/good_03.py"),
    ],
    check,
};

const RANDOM_CALLS: &[&str] = &[
    "random.random",
    "random.randint",
    "random.randrange",
    "random.choice",
    "random.choices",
    "random.sample",
    "random.getrandbits",
    "random.uniform",
    "random.randbytes",
    "random.triangular",
    "random.normalvariate",
    "random.gauss",
    "random.betavariate",
    "random.expovariate",
    "random.gammavariate",
    "random.lognormvariate",
    "random.vonmisesvariate",
    "random.paretovariate",
    "random.weibullvariate",
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if !RANDOM_CALLS.contains(&call.name.as_str()) {
            continue;
        }
        // What the value becomes: the assignment target, else the enclosing function's name.
        let mut node = call.node;
        let mut purpose = "";
        let mut assigned = "";
        while let Some(parent) = node.parent() {
            match parent.kind_name() {
                "assignment" if purpose.is_empty() => {
                    purpose = parent
                        .child_by_field_id(fields().left)
                        .map(|l| m.text(l))
                        .unwrap_or("");
                    assigned = purpose;
                }
                "function_definition" => {
                    if purpose.is_empty() || !names_secret(purpose) {
                        purpose = parent
                            .child_by_field_id(fields().name)
                            .map(|n| m.text(n))
                            .unwrap_or("");
                    }
                    break;
                }
                _ => {}
            }
            node = parent;
        }
        let lower = purpose.to_ascii_lowercase();
        if names_secret(purpose)
            || ["salt", "nonce", "otp", "session", "key", "code"]
                .iter()
                .any(|w| lower.contains(w))
            || becomes_session_value(m, call.scope, assigned)
        {
            cx.report(call.node);
        }
    }
}

/// Whether the value named `name` is stored as a cookie or session value in the function
/// (`resp.set_cookie('id', name)`, `session['id'] = name`): it identifies a user.
fn becomes_session_value(m: &Module<'_>, scope: ScopeId, name: &str) -> bool {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return false;
    }
    m.text(m.scopes[scope].node).lines().any(|line| {
        (line.contains("set_cookie(") || line.contains("session[") || line.contains("cookies["))
            && line
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word == name)
    })
}
