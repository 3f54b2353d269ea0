//! User input evaluated as Python code.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::flows::SinkKind;
use crate::python::{Ctx, Taint};
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-CODE-INJECTION",
    title: "User input evaluated as code",
    language: Language::Python,
    cwe: 95,
    severity: Severity::Critical,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "user-controlled data is passed to eval/exec and runs as Python code",
    fix: "Parse the data instead of evaluating it: `ast.literal_eval` for Python literals, `json.loads` for JSON, or an explicit table of allowed operations.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/bad_05.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/bad_06.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/good_01.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/good_02.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/good_03.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/good_04.py"),
        include_str!("../../../tests/fixtures/PY-CODE-INJECTION/good_05.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let Some(sink) = call.sink.filter(|s| s.kind == SinkKind::Code) else {
            continue;
        };
        if let Some(code) = call.arg(sink.position, sink.keyword, m.src)
            && m.taint(code, call.scope).has(Taint::CODE)
        {
            cx.report(call.node);
        }
    }
}
