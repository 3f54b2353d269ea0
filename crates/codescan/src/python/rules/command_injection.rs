//! Shell commands built from user input.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::syntax::KindName;
use tree_sitter::Node;

use crate::python::{Ctx, Module, ScopeId, Taint};
use crate::rule::Rule;

use super::{is_built_string, name_is};

pub static RULE: Rule = Rule {
    id: "PY-COMMAND-INJECTION",
    title: "Shell command from user input",
    language: Language::Python,
    cwe: 78,
    severity: Severity::Critical,
    confidence: Confidence::High,
    message: "a shell command is built from user-controlled data: shell metacharacters in it run other commands (command injection)",
    fix: "Pass an argument list without a shell: `subprocess.run(['convert', path, out], check=True)`; if a shell is unavoidable, quote each value with `shlex.quote`.",
    vulnerable: &[
        "import os\nfrom flask import request\ndef ping():\n    host = request.args['host']\n    os.system('ping -c 1 ' + host)\n",
        "import subprocess, sys\nsubprocess.call(f'tar czf backup.tgz {sys.argv[1]}', shell=True)\n",
        "import subprocess\ndef convert(name):\n    cmd = 'convert %s out.png' % name\n    subprocess.run(cmd, shell=True)\n",
        "import os\nfilename = input('File: ')\nout = os.popen('cat ' + filename).read()\n",
        "import os, glob\nfor f in glob.glob('*.wav'):\n    os.system(f'sox {f} out.mp3')\n",
    ],
    safe: &[
        "import subprocess\nfrom flask import request\ndef ping():\n    host = request.args['host']\n    subprocess.run(['ping', '-c', '1', host], check=True)\n",
        "import subprocess, sys, shlex\nsubprocess.call(f'tar czf backup.tgz {shlex.quote(sys.argv[1])}', shell=True)\n",
        "import os\nos.system('ls -la /tmp')\n",
        "import subprocess, shlex\ndef convert(name):\n    cmd = 'convert %s out.png' % shlex.quote(name)\n    subprocess.run(cmd, shell=True)\n",
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

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let shell_call = name_is(
            &call.name,
            &[
                "os.system",
                "os.popen",
                "subprocess.getoutput",
                "subprocess.getstatusoutput",
                "commands.getoutput",
                "os.popen2",
                "os.popen3",
            ],
        ) || (call.name.starts_with("subprocess.")
            || call.name.starts_with("asyncio.create_subprocess_shell"))
            && (call.name.ends_with("_shell")
                || call
                    .keyword("shell", m.src)
                    .is_some_and(|v| m.text(v) != "False"));
        if !shell_call {
            continue;
        }
        let Some(cmd) = call
            .arg(0, "args", m.src)
            .or_else(|| call.keyword("cmd", m.src))
        else {
            continue;
        };
        // User input reaches the shell, or the command is assembled from values nobody
        // quoted: a file name or argument with `;` or `$(...)` in it runs as a command.
        if m.taint(cmd, call.scope).has(Taint::SHELL)
            || is_built_string(m, cmd, call.scope, 0) && !quoted(m, cmd, call.scope)
        {
            cx.report(call.node);
        }
    }
}
