//! Values declared safe HTML (`mark_safe`, `Markup`) without escaping, and Mako templates
//! without an escaping filter.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::{Ctx, Taint};
use crate::rule::{Profile, Rule};

use super::{is_built_string, name_is};

pub static RULE: Rule = Rule {
    id: "PY-MARKUP-XSS",
    title: "Unescaped value declared safe HTML",
    language: Language::Python,
    cwe: 79,
    severity: Severity::High,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "a value assembled at run time (or user input) is declared safe HTML with `mark_safe`/`Markup`/`SafeString`, or rendered by a Mako template that does not escape: markup in it runs in the reader's browser (XSS)",
    fix: "Let the template escape, or build markup with `format_html('<b>{}</b>', value)` / `Markup('<b>{}</b>').format(value)`; give Mako templates `default_filters=['h']`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-MARKUP-XSS/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-MARKUP-XSS/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-MARKUP-XSS/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-MARKUP-XSS/good_01.py"),
        include_str!("../../../tests/fixtures/PY-MARKUP-XSS/good_02.py"),
        include_str!("../../../tests/fixtures/PY-MARKUP-XSS/good_03.py"),
        include_str!("../../../tests/fixtures/PY-MARKUP-XSS/good_04.py"),
    ],
    check,
};

const SAFE_DECLARATIONS: &[&str] = &[
    "mark_safe",
    "Markup",
    "SafeString",
    "SafeText",
    "markupsafe.Markup",
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if name_is(&call.name, SAFE_DECLARATIONS) {
            if let Some(value) = call.positional(0)
                && (is_built_string(m, value, call.scope, 0)
                    || m.taint(value, call.scope).has(Taint::HTML)
                        && m.taint(value, call.scope).is_remote())
            {
                cx.report(call.node);
            }
            continue;
        }
        if matches!(
            call.name.as_str(),
            "mako.template.Template" | "mako.lookup.TemplateLookup"
        ) && call.keyword("default_filters", m.src).is_none()
        {
            cx.report(call.node);
        }
    }
}
