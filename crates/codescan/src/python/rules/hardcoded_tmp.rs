//! Temporary files at predictable paths.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::flows::SinkKind;
use crate::rule::{Profile, Rule};

use super::string_value;

pub static RULE: Rule = Rule {
    id: "PY-INSECURE-TEMP-FILE",
    title: "Predictable temporary file",
    language: Language::Python,
    cwe: 377,
    severity: Severity::Medium,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "a temporary file is created at a predictable name (`tempfile.mktemp`, a fixed `/tmp/...` path written to): another local user can create or link it first and read or redirect what is written",
    fix: "Create temporary files with `tempfile.NamedTemporaryFile()`, `tempfile.mkstemp()` or in `tempfile.mkdtemp()`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-INSECURE-TEMP-FILE/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TEMP-FILE/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TEMP-FILE/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-INSECURE-TEMP-FILE/good_01.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TEMP-FILE/good_02.py"),
        include_str!("../../../tests/fixtures/PY-INSECURE-TEMP-FILE/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if matches!(
            call.name.as_str(),
            "tempfile.mktemp" | "os.tempnam" | "os.tmpnam"
        ) {
            cx.report(call.node);
            continue;
        }
        // Writing to a fixed path in a shared temporary directory.
        let Some(sink) = call
            .sink
            .filter(|s| s.kind == SinkKind::File && s.name == "open")
        else {
            continue;
        };
        let writes = call
            .arg(1, "mode", m.src)
            .and_then(|mode| string_value(m, mode, call.scope))
            .is_some_and(|mode| mode.contains(['w', 'a', 'x']));
        if writes
            && call
                .arg(sink.position, sink.keyword, m.src)
                .and_then(|p| string_value(m, p, call.scope))
                .is_some_and(|p| {
                    p.starts_with("/tmp/")
                        || p.starts_with("/var/tmp/")
                        || p.starts_with("/dev/shm/")
                })
        {
            cx.report(call.node);
        }
    }
}
