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
        "from flask import request\ndef calc():\n    return str(eval(request.args['expr']))\n",
        "expr = input('> ')\nprint(eval(expr))\n",
        "import sys\nexec(sys.argv[1])\n",
        "import flask\napp = flask.Flask(__name__)\n\n@app.route('/calc', methods=['POST'])\ndef calc():\n    param = flask.request.form.get('expr', '')\n    return str(eval(param))\n",
        "def lambda_handler(event, context):\n    return {'result': eval(event['expression'])}\n",
        "from flask import request\ndef calc():\n    num = 86\n    if 7 * 42 - num > 200:\n        expr = request.args['e']\n    else:\n        expr = '1'\n    return str(eval(expr))\n",
    ],
    safe: &[
        "import ast\nfrom flask import request\ndef calc():\n    return str(ast.literal_eval(request.args['expr']))\n",
        "expr = input('> ')\nprint(int(expr) * 2)\n",
        "print(eval('1 + 2'))\n",
        "from flask import request\ndef calc():\n    expr = '1 + 2'\n    if 'never' in expr:\n        expr = request.args['expr']\n    return str(eval(expr))\n",
        "from flask import request\ndef calc():\n    num = 86\n    expr = '1 + 2' if 7 * 18 + num > 200 else request.args['expr']\n    return str(eval(expr))\n",
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
