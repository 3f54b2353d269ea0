//! The audit profile's list of dangerous calls: each use, whatever its arguments, for a
//! reviewer to look at (what bandit reports). Off by default: most uses are fine.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-AUDIT-DANGEROUS-CALL",
    title: "Dangerous call to review (audit)",
    language: Language::Python,
    cwe: 676,
    severity: Severity::Low,
    confidence: Confidence::Low,
    profile: Profile::Audit,
    message: "a call that is dangerous with untrusted input, listed for review",
    fix: "Check where the arguments come from; prefer the safe alternative named in the finding.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/bad_05.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/good_01.py"),
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/good_02.py"),
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/good_03.py"),
        include_str!("../../../tests/fixtures/PY-AUDIT-DANGEROUS-CALL/good_04.py"),
    ],
    check,
};

/// (callee, CWE, what to use instead).
const DANGEROUS: &[(&str, u32, &str)] = &[
    (
        "eval",
        95,
        "`eval`: use `ast.literal_eval` or `json.loads` for data",
    ),
    ("exec", 95, "`exec` runs code"),
    (
        "os.system",
        78,
        "`os.system` runs a shell: use `subprocess.run([...])`",
    ),
    (
        "os.popen",
        78,
        "`os.popen` runs a shell: use `subprocess.run([...], capture_output=True)`",
    ),
    (
        "subprocess.getoutput",
        78,
        "`subprocess.getoutput` runs a shell",
    ),
    (
        "random.random",
        330,
        "`random` is predictable: use `secrets` for tokens and keys",
    ),
    (
        "random.randint",
        330,
        "`random` is predictable: use `secrets` for tokens and keys",
    ),
    (
        "random.randrange",
        330,
        "`random` is predictable: use `secrets` for tokens and keys",
    ),
    (
        "random.choice",
        330,
        "`random` is predictable: use `secrets` for tokens and keys",
    ),
    (
        "random.choices",
        330,
        "`random` is predictable: use `secrets` for tokens and keys",
    ),
    (
        "random.getrandbits",
        330,
        "`random` is predictable: use `secrets` for tokens and keys",
    ),
    (
        "random.uniform",
        330,
        "`random` is predictable: use `secrets` for tokens and keys",
    ),
    (
        "random.sample",
        330,
        "`random` is predictable: use `secrets` for tokens and keys",
    ),
    (
        "xml.etree.ElementTree.parse",
        611,
        "the standard XML parsers are open to entity expansion: use `defusedxml`",
    ),
    (
        "xml.etree.ElementTree.fromstring",
        611,
        "the standard XML parsers are open to entity expansion: use `defusedxml`",
    ),
    (
        "xml.etree.ElementTree.iterparse",
        611,
        "the standard XML parsers are open to entity expansion: use `defusedxml`",
    ),
    (
        "xml.dom.minidom.parse",
        611,
        "the standard XML parsers are open to entity expansion: use `defusedxml`",
    ),
    (
        "xml.dom.minidom.parseString",
        611,
        "the standard XML parsers are open to entity expansion: use `defusedxml`",
    ),
    (
        "xml.sax.parse",
        611,
        "the standard XML parsers are open to entity expansion: use `defusedxml`",
    ),
    (
        "xml.sax.parseString",
        611,
        "the standard XML parsers are open to entity expansion: use `defusedxml`",
    ),
    (
        "xml.sax.make_parser",
        611,
        "the standard XML parsers are open to entity expansion: use `defusedxml`",
    ),
    (
        "lxml.etree.parse",
        611,
        "lxml resolves entities by default: use `defusedxml` or `XMLParser(resolve_entities=False)`",
    ),
    (
        "lxml.etree.fromstring",
        611,
        "lxml resolves entities by default: use `defusedxml` or `XMLParser(resolve_entities=False)`",
    ),
    (
        "ssl.wrap_socket",
        327,
        "`ssl.wrap_socket` does not check host names: use `SSLContext.wrap_socket`",
    ),
    (
        "urllib.request.urlopen",
        939,
        "`urlopen` also opens `file://` URLs: check the scheme",
    ),
    ("mark_safe", 79, "`mark_safe` turns escaping off"),
    (
        "django.utils.safestring.mark_safe",
        79,
        "`mark_safe` turns escaping off",
    ),
    ("markupsafe.Markup", 79, "`Markup` turns escaping off"),
    ("flask.Markup", 79, "`Markup` turns escaping off"),
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if let Some(&(_, cwe, why)) = DANGEROUS.iter().find(|(name, ..)| *name == call.name) {
            cx.report_as(call.node, cwe, why.to_string());
            continue;
        }
        if call.name.starts_with("subprocess.") && call.keyword_is("shell", "True", m.src) {
            cx.report_as(
                call.node,
                78,
                "`shell=True` runs a shell: pass an argument list".into(),
            );
        }
    }
}
