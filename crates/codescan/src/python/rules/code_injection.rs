//! User input evaluated as Python code.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::{Ctx, Taint};
use crate::rule::Rule;

pub static RULE: Rule = Rule {
    id: "PY-CODE-INJECTION",
    title: "User input evaluated as code",
    language: Language::Python,
    cwe: 95,
    severity: Severity::Critical,
    confidence: Confidence::High,
    message: "user-controlled data is passed to eval/exec and runs as Python code",
    fix: "Parse the data instead of evaluating it: `ast.literal_eval` for Python literals, `json.loads` for JSON, or an explicit table of allowed operations.",
    vulnerable: &[
        "from flask import request\ndef calc():\n    return str(eval(request.args['expr']))\n",
        "expr = input('> ')\nprint(eval(expr))\n",
        "import sys\nexec(sys.argv[1])\n",
    ],
    safe: &[
        "import ast\nfrom flask import request\ndef calc():\n    return str(ast.literal_eval(request.args['expr']))\n",
        "expr = input('> ')\nprint(int(expr) * 2)\n",
        "print(eval('1 + 2'))\n",
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if !matches!(
            call.name.as_str(),
            "eval" | "exec" | "compile" | "builtins.eval" | "builtins.exec"
        ) {
            continue;
        }
        if let Some(code) = call.positional(0)
            && m.taint(code, call.scope).has(Taint::CODE)
        {
            cx.report(call.node);
        }
    }
}
