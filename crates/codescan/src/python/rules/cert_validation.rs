//! TLS certificate or host-key checks turned off.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::fields::fields;
use crate::python::syntax::KindName;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-CERT-VALIDATION-DISABLED",
    title: "Certificate or host-key check disabled",
    language: Language::Python,
    cwe: 295,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "certificate (or SSH host key) verification is turned off: anyone on the network path can impersonate the server",
    fix: "Keep verification on (the default): pass a CA bundle with `verify='/path/ca.pem'` or `cafile=` when the server uses a private CA, and load known SSH host keys instead of auto-adding them.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-CERT-VALIDATION-DISABLED/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-CERT-VALIDATION-DISABLED/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-CERT-VALIDATION-DISABLED/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-CERT-VALIDATION-DISABLED/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-CERT-VALIDATION-DISABLED/bad_05.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-CERT-VALIDATION-DISABLED/good_01.py"),
        include_str!("../../../tests/fixtures/PY-CERT-VALIDATION-DISABLED/good_02.py"),
        include_str!("../../../tests/fixtures/PY-CERT-VALIDATION-DISABLED/good_03.py"),
    ],
    check,
};

/// Calls that turn verification off by themselves.
const UNVERIFIED: &[&str] = &[
    "ssl._create_unverified_context",
    "ssl._create_stdlib_context",
    "_create_unverified_context",
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if UNVERIFIED.contains(&call.name.as_str()) {
            cx.report(call.node);
            continue;
        }
        let verify_off = ["verify", "verify_ssl", "ssl"]
            .iter()
            .any(|k| call.keyword_is(k, "False", m.src));
        let cert_none = ["cert_reqs", "verify_mode"].iter().any(|k| {
            call.keyword(k, m.src)
                .is_some_and(|v| m.text(v).ends_with("CERT_NONE"))
        });
        let auto_add = call.method() == "set_missing_host_key_policy"
            && call.positional(0).is_some_and(|p| {
                let t = m.text(p);
                t.contains("AutoAddPolicy") || t.contains("WarningPolicy")
            });
        if verify_off || cert_none || auto_add {
            cx.report(call.node);
        }
    }
    // `ctx.check_hostname = False`, `ctx.verify_mode = ssl.CERT_NONE`, `session.verify = False`.
    for &(assignment, _) in &m.assignments {
        let (Some(left), Some(right)) = (
            assignment.child_by_field_id(fields().left),
            assignment.child_by_field_id(fields().right),
        ) else {
            continue;
        };
        if left.kind_name() != "attribute" {
            continue;
        }
        let target = m.text(left);
        let value = m.text(right);
        if (target.ends_with(".check_hostname") || target.ends_with(".verify")) && value == "False"
            || target.ends_with(".verify_mode") && value.ends_with("CERT_NONE")
        {
            cx.report(assignment);
        }
    }
}
