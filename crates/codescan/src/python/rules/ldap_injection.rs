//! LDAP filters built from request data.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::{Ctx, Taint};
use crate::rule::{Profile, Rule};

use super::{is_built_string, scope_mentions};

pub static RULE: Rule = Rule {
    id: "PY-LDAP-INJECTION",
    title: "LDAP filter from user input",
    language: Language::Python,
    cwe: 90,
    severity: Severity::High,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "an LDAP search filter (or DN) is built from request data without escaping: `*`, `(` and `)` in it change which entries match (LDAP injection)",
    fix: "Escape each value: `ldap.filter.escape_filter_chars(value)` / `ldap3.utils.conv.escape_filter_chars(value)` (and `escape_dn_chars` for DNs).",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-LDAP-INJECTION/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-LDAP-INJECTION/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-LDAP-INJECTION/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-LDAP-INJECTION/good_01.py"),
        include_str!("../../../tests/fixtures/PY-LDAP-INJECTION/good_02.py"),
        include_str!("../../../tests/fixtures/PY-LDAP-INJECTION/good_03.py"),
    ],
    check,
};

const ESCAPES: &[&str] = &["escape_filter_chars", "escape_dn_chars"];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let filter = match call.method() {
            "search_s" | "search_st" | "search_ext" | "search_ext_s" | "search" => {
                if call.name.starts_with("re.") || call.name.starts_with("regex.") {
                    continue;
                }
                call.keyword("search_filter", m.src)
                    .or_else(|| call.keyword("filterstr", m.src))
                    .or_else(|| {
                        // python-ldap: (base, scope, filter); ldap3: (base, filter).
                        if call.method() == "search" {
                            call.positional(1)
                        } else {
                            call.positional(2)
                        }
                    })
            }
            _ => None,
        };
        let Some(filter) = filter else { continue };
        let taint = m.taint(filter, call.scope);
        if taint.has(Taint::SHELL)
            && taint.is_remote()
            && (is_built_string(m, filter, call.scope, 0) || m.is_raw_input(filter, call.scope, 0))
            && !scope_mentions(m, call.scope, ESCAPES)
        {
            cx.report(call.node);
        }
    }
}
