//! File paths built from user input without confinement.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::syntax::KindName;
use crate::python::{Ctx, Taint};
use crate::rule::Rule;

use super::{name_is, scope_mentions};

pub static RULE: Rule = Rule {
    id: "PY-PATH-TRAVERSAL",
    title: "File path from user input",
    language: Language::Python,
    cwe: 22,
    severity: Severity::High,
    confidence: Confidence::Medium,
    message: "a file path comes from user input (request data or an uploaded file name) without confinement: `../` reaches files outside the intended directory",
    fix: "Reduce the name with `werkzeug.utils.secure_filename` or `os.path.basename`, or resolve the path and check it stays inside the base directory (`os.path.realpath(p).startswith(base + os.sep)`); `send_from_directory` does this for downloads.",
    vulnerable: &[
        "from flask import Flask, request, send_file\napp = Flask(__name__)\n\n@app.route('/download')\ndef download():\n    name = request.args.get('file')\n    return send_file('/srv/files/' + name)\n",
        "import os\nfrom flask import request\ndef upload():\n    f = request.files['doc']\n    f.save(os.path.join('uploads', f.filename))\n",
        "from flask import Flask\napp = Flask(__name__)\n\n@app.route('/read/<path:name>')\ndef read(name):\n    with open(name) as fh:\n        return fh.read()\n",
        "import os, sys\nos.remove(os.path.join('/var/data', sys.argv[1]))\n",
    ],
    safe: &[
        "from flask import Flask, request, send_from_directory\napp = Flask(__name__)\n\n@app.route('/download')\ndef download():\n    return send_from_directory('/srv/files', request.args.get('file'))\n",
        "import os\nfrom flask import request\nfrom werkzeug.utils import secure_filename\ndef upload():\n    f = request.files['doc']\n    f.save(os.path.join('uploads', secure_filename(f.filename)))\n",
        "import os\nfrom flask import Flask, abort\napp = Flask(__name__)\nBASE = '/srv/files'\n\n@app.route('/read/<path:name>')\ndef read(name):\n    path = os.path.realpath(os.path.join(BASE, name))\n    if not path.startswith(BASE + os.sep):\n        abort(403)\n    with open(path) as fh:\n        return fh.read()\n",
        "import os, sys\nos.remove(os.path.join('/var/data', os.path.basename(sys.argv[1])))\n",
    ],
    check,
};

/// Calls that read, write or delete the file named by their first argument.
const FILE_SINKS: &[&str] = &[
    "open",
    "io.open",
    "codecs.open",
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.rename",
    "os.replace",
    "shutil.rmtree",
    "shutil.copy",
    "shutil.copyfile",
    "shutil.copy2",
    "shutil.move",
    "send_file",
    "flask.send_file",
    "FileResponse",
    "os.listdir",
    "os.makedirs",
];

/// Methods that write the receiver to the path in their first argument (werkzeug uploads).
const SAVE_METHODS: &[&str] = &["save"];

/// Confinement checks: a function doing one of these is treated as checking its paths.
const CONFINEMENT: &[&str] = &[
    "startswith(",
    "commonpath",
    "is_relative_to",
    "'..' in",
    "\"..\" in",
    "safe_join",
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        // Exact names: `Image.open` or `tarfile.open` are not the builtin `open`.
        let path = if FILE_SINKS.contains(&call.name.as_str())
            || name_is(&call.name, &["send_file", "FileResponse"])
        {
            call.arg(0, "path", m.src)
        } else if SAVE_METHODS.contains(&call.method())
            && call
                .receiver()
                .is_some_and(|r| m.taint(r, call.scope).any())
        {
            call.arg(0, "dst", m.src)
        } else if matches!(
            call.method(),
            "read_text" | "read_bytes" | "write_text" | "write_bytes" | "unlink"
        ) && call.receiver().is_some_and(|r| r.kind_name() == "call")
        {
            call.receiver()
        } else {
            None
        };
        let Some(path) = path else { continue };
        if m.taint(path, call.scope).has(Taint::PATH) && !scope_mentions(m, call.scope, CONFINEMENT)
        {
            cx.report(call.node);
        }
    }
}
