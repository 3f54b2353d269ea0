//! Servers listening on every network interface.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::syntax::KindName;
use crate::rule::{Profile, Rule};

use super::string_value;

pub static RULE: Rule = Rule {
    id: "PY-BIND-ALL-INTERFACES",
    title: "Server bound to all interfaces",
    language: Language::Python,
    cwe: 605,
    severity: Severity::Low,
    confidence: Confidence::Medium,
    profile: Profile::Audit,
    message: "a server listens on all network interfaces (`0.0.0.0`, `::` or an empty host): it is reachable from every network the machine is on, not only where it is meant to be",
    fix: "Bind to the interface that should serve (`127.0.0.1` behind a reverse proxy), or take the address from configuration.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-BIND-ALL-INTERFACES/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-BIND-ALL-INTERFACES/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-BIND-ALL-INTERFACES/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-BIND-ALL-INTERFACES/good_01.py"),
        include_str!("../../../tests/fixtures/PY-BIND-ALL-INTERFACES/good_02.py"),
        include_str!("../../../tests/fixtures/PY-BIND-ALL-INTERFACES/good_03.py"),
    ],
    check,
};

const ALL_INTERFACES: &[&str] = &["0.0.0.0", "::", ""];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let host = match call.method() {
            "bind" => call
                .positional(0)
                .filter(|a| a.kind_name() == "tuple")
                .and_then(|t| t.named_child(0)),
            "run" | "run_simple" | "serve" | "make_server" | "run_app" => {
                call.keyword("host", m.src).or_else(|| {
                    (call.method() != "run")
                        .then(|| call.positional(0))
                        .flatten()
                })
            }
            _ => None,
        };
        if let Some(host) = host
            && string_value(m, host, call.scope)
                .is_some_and(|h| ALL_INTERFACES.contains(&h.as_str()))
        {
            cx.report(call.node);
        }
    }
}
