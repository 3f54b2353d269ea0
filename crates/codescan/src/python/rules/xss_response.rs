//! User input placed into an HTML response without escaping.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::syntax::KindName;
use crate::python::{Ctx, Taint};
use crate::rule::{Profile, Rule};

use super::{has_markup, is_built_string, name_is};

pub static RULE: Rule = Rule {
    id: "PY-XSS-RESPONSE",
    title: "User input in an HTML response",
    language: Language::Python,
    cwe: 79,
    severity: Severity::High,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "user-controlled data is placed into an HTML response without escaping (cross-site scripting)",
    fix: "Render through an autoescaping template (`render_template`), or escape each value with `markupsafe.escape`/`html.escape` before building HTML; return JSON with `jsonify`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/good_01.py"),
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/good_02.py"),
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/good_03.py"),
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/good_04.py"),
        include_str!("../../../tests/fixtures/PY-XSS-RESPONSE/good_05.py"),
    ],
    check,
};

/// Calls that send their first argument to the browser as markup.
const HTML_SINKS: &[&str] = &[
    "make_response",
    "Response",
    "HttpResponse",
    "HTMLResponse",
    "Markup",
    "mark_safe",
    "SafeString",
    "web.Response",
];

/// Calls that declare their argument to be markup (no tag needs to be visible).
const MARKUP_DECLARATIONS: &[&str] = &["Markup", "mark_safe", "SafeString"];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for &(value, scope) in &m.returns {
        if !m.scopes[scope].is_handler {
            continue;
        }
        // `return html, 200` returns the body first; dicts and lists become JSON.
        let body = if matches!(value.kind_name(), "expression_list" | "tuple") {
            value.named_child(0)
        } else {
            Some(value)
        };
        let Some(body) = body else { continue };
        if matches!(
            body.kind_name(),
            "dictionary" | "list" | "dictionary_comprehension" | "list_comprehension"
        ) {
            continue;
        }
        if body.kind_name() == "call"
            && m.calls
                .iter()
                .any(|c| c.node.id() == body.id() && name_is(&c.name, HTML_SINKS))
        {
            continue; // reported as a sink call below
        }
        // Flask serves a returned string as text/html: markup, or text assembled from
        // input, or the input itself, is rendered by the browser.
        if m.taint(body, scope).has(Taint::HTML)
            && (has_markup(m, body, scope, 0)
                || is_built_string(m, body, scope, 0)
                || m.is_raw_input(body, scope, 0))
        {
            cx.report(body);
        }
    }
    for call in &m.calls {
        if !name_is(&call.name, HTML_SINKS) {
            continue;
        }
        if let Some(arg) = call
            .arg(0, "response", m.src)
            .or_else(|| call.keyword("content", m.src))
            && m.taint(arg, call.scope).has(Taint::HTML)
            && (name_is(&call.name, MARKUP_DECLARATIONS)
                || has_markup(m, arg, call.scope, 0)
                || m.is_raw_input(arg, call.scope, 0))
        {
            cx.report(call.node);
        }
    }
    // An HTML fragment built from input and shipped inside JSON is inserted into a page by
    // the client (`innerHTML`): the escaping must happen here.
    for call in &m.calls {
        if name_is(&call.name, &["jsonify", "JsonResponse"]) {
            for value in call.arg_values() {
                if m.taint(value, call.scope).has(Taint::HTML)
                    && has_markup(m, value, call.scope, 0)
                {
                    cx.report(call.node);
                }
            }
        }
    }
}
