//! Web servers started with the interactive debugger on.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::fields::fields;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-DEBUG-MODE",
    title: "Debug mode in a web server",
    language: Language::Python,
    cwe: 489,
    severity: Severity::Medium,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "the web server runs with debug mode on: Werkzeug's debugger lets anyone who reaches an error page run Python code, and tracebacks expose internals",
    fix: "Run without debug in anything reachable (`app.run()`, debug from an environment variable for local work only), behind a production server such as gunicorn.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-DEBUG-MODE/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-DEBUG-MODE/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-DEBUG-MODE/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-DEBUG-MODE/good_01.py"),
        include_str!("../../../tests/fixtures/PY-DEBUG-MODE/good_02.py"),
        include_str!("../../../tests/fixtures/PY-DEBUG-MODE/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let on = |k: &str| call.keyword_is(k, "True", m.src);
        let debug = match call.method() {
            "run" => on("debug") && !call.name.starts_with("subprocess"),
            "run_simple" => on("use_debugger") || on("use_evalex"),
            _ => false,
        };
        if debug {
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
        if matches!(m.text(left), "app.debug" | "application.debug") && m.text(right) == "True" {
            cx.report(assignment);
        }
    }
}
