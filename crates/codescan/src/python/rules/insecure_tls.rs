//! SSL 2/3 and TLS 1.0/1.1 chosen as protocol or minimum version.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::fields::fields;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-INSECURE-TLS",
    title: "Insecure SSL/TLS version",
    language: Language::Python,
    cwe: 327,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "the connection allows SSL 2/3 or TLS 1.0/1.1, protocol versions with known attacks (POODLE, BEAST)",
    fix: "Use `ssl.create_default_context()` (TLS 1.2+ by default) or set `ctx.minimum_version = ssl.TLSVersion.TLSv1_2`; with pyOpenSSL use `SSL.TLS_METHOD` and disable the old versions.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-INSECURE-TLS/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TLS/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TLS/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TLS/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-INSECURE-TLS/good_01.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TLS/good_02.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TLS/good_03.py"),
    ],
    check,
};

/// Names of protocol versions with known attacks, as the last segment of a constant.
const OLD_VERSIONS: &[&str] = &[
    "PROTOCOL_SSLv2",
    "PROTOCOL_SSLv3",
    "PROTOCOL_TLSv1",
    "PROTOCOL_TLSv1_1",
    "SSLv2_METHOD",
    "SSLv3_METHOD",
    "TLSv1_METHOD",
    "TLSv1_1_METHOD",
];

const OLD_MINIMUMS: &[&str] = &["SSLv3", "TLSv1", "TLSv1_1"];

fn last(text: &str) -> &str {
    text.rsplit('.').next().unwrap_or(text)
}

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if call
            .arg_values()
            .iter()
            .any(|a| OLD_VERSIONS.contains(&last(m.text(*a))))
        {
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
        let target = m.text(left);
        let value = m.text(right);
        if (target.ends_with(".minimum_version") && OLD_MINIMUMS.contains(&last(value)))
            || (target.ends_with(".protocol") || target.ends_with("ssl_version"))
                && OLD_VERSIONS.contains(&last(value))
        {
            cx.report(assignment);
        }
    }
}
