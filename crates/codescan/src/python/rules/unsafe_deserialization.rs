//! Deserialising with formats that can run code: pickle, marshal, unsafe YAML loaders.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::fields::fields;
use crate::python::model::Call;
use crate::python::syntax::KindName;
use crate::python::{Ctx, Module};
use crate::rule::{Profile, Rule};

use super::name_is;

pub static RULE: Rule = Rule {
    id: "PY-UNSAFE-DESERIALIZATION",
    title: "Unsafe deserialization",
    language: Language::Python,
    cwe: 502,
    severity: Severity::Critical,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "data is deserialised with a format that can construct arbitrary objects (pickle, marshal, yaml.load without a safe loader): untrusted input runs code",
    fix: "Use a data-only format: `json.loads`, or `yaml.safe_load` / `yaml.load(s, Loader=yaml.SafeLoader)`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/bad_05.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/good_01.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/good_02.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/good_03.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-DESERIALIZATION/good_04.py"),
    ],
    check,
};

const ALWAYS_UNSAFE: &[&str] = &[
    "pickle.loads",
    "pickle.load",
    "pickle.Unpickler",
    "cPickle.loads",
    "cPickle.load",
    "_pickle.loads",
    "_pickle.load",
    "dill.loads",
    "dill.load",
    "cloudpickle.loads",
    "cloudpickle.load",
    "marshal.loads",
    "marshal.load",
    "shelve.open",
    "jsonpickle.decode",
    "pandas.read_pickle",
    "yaml.unsafe_load",
    "yaml.unsafe_load_all",
    "yaml.full_load",
    "yaml.full_load_all",
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if ALWAYS_UNSAFE.contains(&call.name.as_str())
            || name_is(&call.name, &["pickle.loads", "pickle.load"])
        {
            if !handler_data_is_its_own(m, call) {
                cx.report(call.node);
            }
            continue;
        }
        if matches!(call.name.as_str(), "yaml.load" | "yaml.load_all") {
            let loader = call.arg(1, "Loader", m.src).map(|l| m.text(l));
            let safe =
                loader.is_some_and(|l| l.ends_with("SafeLoader") || l.ends_with("BaseLoader"));
            if !safe && !handler_data_is_its_own(m, call) {
                cx.report(call.node);
            }
        }
    }
}

/// In a request handler every source of request data is in view: a deserializer there
/// whose input carries none (a constant, the server's own files) is not fed by the
/// client. Outside handlers the data's origin is unknown, so the call is reported.
fn handler_data_is_its_own(m: &Module<'_>, call: &Call<'_>) -> bool {
    if !m.scopes[call.scope].is_handler {
        return false;
    }
    let Some(data) = call
        .positional(0)
        .or_else(|| call.arg_values().first().copied())
    else {
        return false;
    };
    // `pickle.load(open(request.args["f"], "rb"))`, or a name bound to such a file
    // (`with open(...) as f`): the file is the client's choice.
    let file = if data.kind_name() == "identifier" {
        m.binding(m.text(data), call.scope, data.start_byte())
            .and_then(|b| b.value)
            .unwrap_or(data)
    } else {
        data
    };
    let opened = (file.kind_name() == "call")
        .then(|| file.child_by_field_id(fields().arguments))
        .flatten()
        .and_then(|a| a.named_child(0));
    !m.taint(data, call.scope).any() && !opened.is_some_and(|p| m.taint(p, call.scope).any())
}
