//! Jinja2 with autoescaping off, or left at its default (off).

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::fields::fields;
use crate::python::syntax::KindName;
use crate::rule::{Profile, Rule};

use super::{name_is, string_literal};

pub static RULE: Rule = Rule {
    id: "PY-JINJA2-AUTOESCAPE",
    title: "Jinja2 autoescaping disabled",
    language: Language::Python,
    cwe: 79,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "Jinja2 renders without autoescaping (off explicitly or by default), so any value in the template can inject HTML",
    fix: "Create the environment with `autoescape=True` or `autoescape=select_autoescape(['html', 'xml'])`; pass `autoescape=True` to `Template(...)`; never set `autoescape = False`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-JINJA2-AUTOESCAPE/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-JINJA2-AUTOESCAPE/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-JINJA2-AUTOESCAPE/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-JINJA2-AUTOESCAPE/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-JINJA2-AUTOESCAPE/good_01.py"),
        include_str!("../../../tests/fixtures/PY-JINJA2-AUTOESCAPE/good_02.py"),
        include_str!("../../../tests/fixtures/PY-JINJA2-AUTOESCAPE/good_03.py"),
        include_str!("../../../tests/fixtures/PY-JINJA2-AUTOESCAPE/good_04.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    let jinja_imported = m
        .imports
        .values()
        .any(|q| q == "jinja2" || q.starts_with("jinja2."));
    for call in &m.calls {
        let is_jinja = call.name == "jinja2.Environment"
            || call.name == "jinja2.Template"
            || call.name == "jinja2.sandbox.SandboxedEnvironment"
            || (jinja_imported && matches!(call.name.as_str(), "Environment" | "Template"));
        if !is_jinja {
            continue;
        }
        match call.keyword("autoescape", m.src) {
            None => cx.report(call.node),
            Some(value) if matches!(value.kind_name(), "false" | "none") => cx.report(value),
            Some(_) => {}
        }
    }
    for &(assignment, _) in &m.assignments {
        let (Some(left), Some(right)) = (
            assignment.child_by_field_id(fields().left),
            assignment.child_by_field_id(fields().right),
        ) else {
            continue;
        };
        if m.text(left).ends_with(".autoescape") && matches!(right.kind_name(), "false" | "none") {
            cx.report(assignment);
        }
    }
    for call in &m.calls {
        // `env = Environment(...); env.autoescape = ...` aside, `{% autoescape false %}` in a
        // template string rendered by Flask turns escaping off for its block.
        if name_is(&call.name, &["render_template_string", "from_string"])
            && let Some(source) = call.positional(0).and_then(|s| string_literal(m, s))
            && source.replace(' ', "").contains("{%autoescapefalse%}")
        {
            cx.report(call.node);
        }
    }
}
