//! Shell commands built from user input.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::syntax::KindName;
use tree_sitter::Node;

use crate::python::{Ctx, Module, ScopeId, Taint};
use crate::rule::{Profile, Rule};

use crate::python::flows::SinkKind;

use super::{is_built_string, string_value};

pub static RULE: Rule = Rule {
    id: "PY-COMMAND-INJECTION",
    title: "Shell command from user input",
    language: Language::Python,
    cwe: 78,
    severity: Severity::Critical,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "a shell command is built from user-controlled data: shell metacharacters in it run other commands (command injection)",
    fix: "Pass an argument list without a shell: `subprocess.run(['convert', path, out], check=True)`; if a shell is unavoidable, quote each value with `shlex.quote`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_05.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_06.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_07.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_08.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/bad_09.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/good_01.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/good_02.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/good_03.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/good_04.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/good_05.py"),
        include_str!("../../../tests/fixtures/PY-COMMAND-INJECTION/good_06.py"),
    ],
    check,
};

/// Whether the command's values are shell-quoted (`shlex.quote`) where it is assembled.
fn quoted(m: &Module<'_>, cmd: Node<'_>, scope: ScopeId) -> bool {
    let mentions_quote = |n: Node<'_>| m.text(n).contains("quote(");
    mentions_quote(cmd)
        || cmd.kind_name() == "identifier"
            && m.bindings_before(m.text(cmd), scope, cmd.start_byte())
                .iter()
                .any(|b| b.value.is_some_and(mentions_quote))
}

/// Programs that run their `-c` argument as shell code: `["sh", "-c", cmd]` is a shell.
const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "zsh",
    "dash",
    "ksh",
    "/bin/sh",
    "/bin/bash",
    "/usr/bin/bash",
    "/bin/zsh",
    "cmd",
    "cmd.exe",
    "powershell",
    "pwsh",
];

/// The program of an argument list: its first element when it is a list or tuple literal,
/// or the value itself when it is a single string (no shell: the whole string is the path).
fn program<'t>(m: &Module<'t>, args: Node<'t>, scope: ScopeId) -> Option<Node<'t>> {
    let list = match args.kind_name() {
        "list" | "tuple" => Some(args),
        "identifier" => m
            .binding(m.text(args), scope, args.start_byte())
            .and_then(|b| b.value)
            .filter(|v| matches!(v.kind_name(), "list" | "tuple")),
        _ => None,
    };
    match list {
        Some(list) => list.named_child(0),
        None => Some(args),
    }
}

/// Whether an argument list starts a shell on code it is given (`["bash", "-c", cmd]`).
fn runs_shell(m: &Module<'_>, args: Node<'_>, scope: ScopeId) -> bool {
    program(m, args, scope)
        .filter(|p| p.id() != args.id())
        .and_then(|p| string_value(m, p, scope))
        .is_some_and(|p| SHELLS.contains(&p.as_str()))
}

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let Some(sink) = call.sink else { continue };
        let with_shell = match sink.kind {
            SinkKind::Shell => true,
            SinkKind::Exec => call
                .keyword("shell", m.src)
                .is_some_and(|v| !matches!(m.text(v), "False" | "0" | "None")),
            _ => continue,
        };
        let Some(cmd) = call
            .arg(sink.position, sink.keyword, m.src)
            .or_else(|| call.keyword("cmd", m.src))
        else {
            continue;
        };
        let flagged = if with_shell || runs_shell(m, cmd, call.scope) {
            // User input reaches the shell, or the command is assembled from values nobody
            // quoted: a file name or argument with `;` or `$(...)` in it runs as a command.
            // In a request handler every source is in view, so an untainted command is the
            // server's own.
            m.taint(cmd, call.scope).has(Taint::SHELL)
                || !m.scopes[call.scope].is_handler
                    && is_built_string(m, cmd, call.scope, 0)
                    && !quoted(m, cmd, call.scope)
        } else {
            // No shell: the danger is the program itself being chosen by a request
            // (arguments to a fixed program are data to it). Whoever runs the program
            // choosing one (`$EDITOR`, `sys.argv`) is its ordinary job.
            program(m, cmd, call.scope).is_some_and(|p| {
                let taint = m.taint(p, call.scope);
                taint.has(Taint::SHELL) && taint.is_remote()
            })
        };
        if flagged {
            cx.report(call.node);
        }
    }
}
