//! User input in the source of a template (server-side template injection).

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::{Ctx, Taint};
use crate::rule::{Profile, Rule};

use super::name_is;

pub static RULE: Rule = Rule {
    id: "PY-TEMPLATE-INJECTION",
    title: "User input in a template source",
    language: Language::Python,
    cwe: 1336,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "user-controlled data becomes part of a template's source, so it can inject markup and template code",
    fix: "Keep the template source constant and pass user data as render variables: `render_template_string('<p>{{ name }}</p>', name=name)`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-TEMPLATE-INJECTION/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-TEMPLATE-INJECTION/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-TEMPLATE-INJECTION/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-TEMPLATE-INJECTION/good_01.py"),
        include_str!("../../../tests/fixtures/PY-TEMPLATE-INJECTION/good_02.py"),
        include_str!("../../../tests/fixtures/PY-TEMPLATE-INJECTION/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if call.name == "string.Template"
            || !name_is(
                &call.name,
                &[
                    "render_template_string",
                    "from_string",
                    "jinja2.Template",
                    "Template",
                ],
            )
        {
            continue;
        }
        if let Some(source) = call.arg(0, "source", m.src)
            && m.taint(source, call.scope).has(Taint::HTML)
        {
            cx.report(call.node);
        }
    }
}
