//! Deserialising with formats that can run code: pickle, marshal, unsafe YAML loaders.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
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
        "import pickle\nfrom flask import request\ndef load():\n    return pickle.loads(request.data)\n",
        "import yaml\ndef parse(text):\n    return yaml.load(text)\n",
        "import yaml\ndef parse(text):\n    return yaml.load(text, Loader=yaml.Loader)\n",
        "import marshal\ndef restore(blob):\n    return marshal.loads(blob)\n",
        "import cPickle as pickle\nobj = pickle.load(open('state.pkl', 'rb'))\n",
    ],
    safe: &[
        "import json\nfrom flask import request\ndef load():\n    return json.loads(request.data)\n",
        "import yaml\ndef parse(text):\n    return yaml.safe_load(text)\n",
        "import yaml\ndef parse(text):\n    return yaml.load(text, Loader=yaml.SafeLoader)\n",
        "import pickle\ndef save(obj):\n    return pickle.dumps(obj)\n",
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
            cx.report(call.node);
            continue;
        }
        if matches!(call.name.as_str(), "yaml.load" | "yaml.load_all") {
            let loader = call.arg(1, "Loader", m.src).map(|l| m.text(l));
            let safe =
                loader.is_some_and(|l| l.ends_with("SafeLoader") || l.ends_with("BaseLoader"));
            if !safe {
                cx.report(call.node);
            }
        }
    }
}
