//! XPath expressions built from request data.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::{Ctx, Taint};
use crate::rule::{Profile, Rule};

use super::is_built_string;

pub static RULE: Rule = Rule {
    id: "PY-XPATH-INJECTION",
    title: "XPath query from user input",
    language: Language::Python,
    cwe: 643,
    severity: Severity::High,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "an XPath expression is built from request data: quotes in it change the query and expose other nodes (XPath injection)",
    fix: "Keep the expression constant and pass values as XPath variables: `tree.xpath('//user[@name=$name]', name=value)`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-XPATH-INJECTION/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-XPATH-INJECTION/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-XPATH-INJECTION/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-XPATH-INJECTION/good_01.py"),
        include_str!("../../../tests/fixtures/PY-XPATH-INJECTION/good_02.py"),
        include_str!("../../../tests/fixtures/PY-XPATH-INJECTION/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let query = match call.method() {
            "xpath" | "XPath" | "ETXPath" | "evaluate" => call.arg(0, "_path", m.src),
            // ElementTree's ElementPath (not `str.find`, whose receiver is the text).
            "findall" | "iterfind" | "findtext"
                if call
                    .receiver()
                    .is_some_and(|r| !m.taint(r, call.scope).any()) =>
            {
                call.positional(0)
            }
            "select" | "iter_select" | "select_nodes" if call.name.starts_with("elementpath") => {
                call.arg(1, "path", m.src)
            }
            _ => None,
        };
        let Some(query) = query else { continue };
        let taint = m.taint(query, call.scope);
        // Escaped for markup, or checked to hold no quote, it cannot leave its literal.
        if taint.has(Taint::HTML)
            && taint.has(Taint::QUOTE)
            && taint.is_remote()
            && (is_built_string(m, query, call.scope, 0) || m.is_raw_input(query, call.scope, 0))
        {
            cx.report(call.node);
        }
    }
}
