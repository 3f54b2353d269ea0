//! User input in the source of a template (server-side template injection).

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::{Ctx, Taint};
use crate::rule::{Profile, Rule};

use super::name_is;

pub static RULE: Rule = Rule {
    id: "PY-TEMPLATE-INJECTION",
    title: "User input in a template source",
    language: Language::Python,
    cwe: 1336,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "user-controlled data becomes part of a template's source, so it can inject markup and template code",
    fix: "Keep the template source constant and pass user data as render variables: `render_template_string('<p>{{ name }}</p>', name=name)`.",
    vulnerable: &[
        "from flask import Flask, request, render_template_string\napp = Flask(__name__)\n\n@app.route('/')\ndef index():\n    name = request.args.get('name', '')\n    return render_template_string(f'<h1>Hi {name}</h1>')\n",
        "from flask import Flask, request, render_template_string\napp = Flask(__name__)\n\n@app.route('/p', methods=['POST'])\ndef preview():\n    template = '<div>' + request.form['bio'] + '</div>'\n    return render_template_string(template)\n",
        "import jinja2\nfrom flask import request\n\ndef page():\n    src = request.args['t']\n    return jinja2.Template(src, autoescape=True).render()\n",
    ],
    safe: &[
        "from flask import Flask, request, render_template_string\napp = Flask(__name__)\n\n@app.route('/')\ndef index():\n    name = request.args.get('name', '')\n    return render_template_string('<h1>Hi {{ name }}</h1>', name=name)\n",
        "from flask import Flask, request, render_template\napp = Flask(__name__)\n\n@app.route('/p', methods=['POST'])\ndef preview():\n    return render_template('bio.html', bio=request.form['bio'])\n",
        "import jinja2\nfrom flask import request\n\ndef page():\n    return jinja2.Template('{{ t }}', autoescape=True).render(t=request.args['t'])\n",
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if call.name == "string.Template"
            || !name_is(
                &call.name,
                &[
                    "render_template_string",
                    "from_string",
                    "jinja2.Template",
                    "Template",
                ],
            )
        {
            continue;
        }
        if let Some(source) = call.arg(0, "source", m.src)
            && m.taint(source, call.scope).has(Taint::HTML)
        {
            cx.report(call.node);
        }
    }
}
