//! Files or directories created or chmod-ed writable by every user.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

use super::{int_value, name_is};

pub static RULE: Rule = Rule {
    id: "PY-WORLD-WRITABLE",
    title: "World-writable permissions",
    language: Language::Python,
    cwe: 732,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "file permissions let every user on the system write (mode includes the others-write bit, e.g. 0o777 or 0o666)",
    fix: "Grant only the owner write access: `0o600` for files, `0o700` or `0o755` for directories.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/bad_05.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/bad_06.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/bad_07.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/good_01.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/good_02.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/good_03.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/good_04.py"),
        include_str!("../../../tests/fixtures/PY-WORLD-WRITABLE/good_05.py"),
    ],
    check,
};

/// Others may write.
const OTHERS_WRITE: u32 = 0o002;

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let mode = if name_is(
            &call.name,
            &[
                "os.chmod",
                "os.lchmod",
                "os.fchmod",
                "os.makedirs",
                "os.mkdir",
                "os.mkfifo",
            ],
        ) {
            call.arg(1, "mode", m.src)
        } else if call.name == "os.open" {
            call.arg(2, "mode", m.src)
        } else if call.method() == "chmod" || call.method() == "mkdir" && call.receiver().is_some()
        {
            // pathlib: `Path(p).chmod(mode)`, `path.mkdir(mode=...)`.
            call.arg(0, "mode", m.src)
        } else if call.name == "os.umask" {
            // A umask without the others-write bit leaves new files world-writable.
            if let Some(mask) = call
                .positional(0)
                .and_then(|a| int_value(m, a, call.scope, 0))
                && mask & OTHERS_WRITE == 0
            {
                cx.report(call.node);
            }
            continue;
        } else {
            continue;
        };
        if let Some(mode) = mode
            && int_value(m, mode, call.scope, 0).is_some_and(|v| v & OTHERS_WRITE != 0)
        {
            cx.report(call.node);
        }
    }
    // An octal permission literal granting others write, handed to any helper
    // (`create_file(path, 0o777)`) or given as a parameter default (`perms=0o666`).
    // Only an `0o` literal can match here: without one, skip looking at every argument.
    if !m.src.contains("0o") && !m.src.contains("0O") {
        return;
    }
    for call in &m.calls {
        // A umask is the inverse of a mode (`umask(0o077)` is strict); it is judged above.
        if call.name != "os.umask"
            && call
                .arg_values()
                .into_iter()
                .any(|a| is_world_writable_octal(m.text(a)))
        {
            cx.report(call.node);
        }
    }
}

fn is_world_writable_octal(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower
        .strip_prefix("0o")
        .and_then(|digits| u32::from_str_radix(digits, 8).ok())
        .is_some_and(|v| v <= 0o7777 && v & OTHERS_WRITE != 0)
}
