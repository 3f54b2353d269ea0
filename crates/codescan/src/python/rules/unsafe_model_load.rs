//! Model files loaded with pickle underneath (torch, joblib, numpy, keras).

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-UNSAFE-MODEL-LOAD",
    title: "Model loaded with pickle",
    language: Language::Python,
    cwe: 502,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "a model or array file is loaded with pickle underneath (`torch.load` without `weights_only=True`, `joblib.load`, `numpy.load(allow_pickle=True)`, Keras `safe_mode=False`): a crafted file runs code when loaded",
    fix: "Load weights only: `torch.load(path, weights_only=True)` or safetensors; keep `numpy.load` at `allow_pickle=False`; load joblib/pickle files only from sources you trust and verify a checksum first.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-UNSAFE-MODEL-LOAD/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-MODEL-LOAD/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-MODEL-LOAD/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-MODEL-LOAD/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-UNSAFE-MODEL-LOAD/good_01.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-MODEL-LOAD/good_02.py"),
        include_str!("../../../tests/fixtures/PY-UNSAFE-MODEL-LOAD/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let flag = |k: &str, v: &str| call.keyword(k, m.src).is_some_and(|x| m.text(x) == v);
        let unsafe_load = match call.name.as_str() {
            "torch.load" => !flag("weights_only", "True"),
            "joblib.load" | "sklearn.externals.joblib.load" => true,
            "numpy.load" => flag("allow_pickle", "True"),
            "keras.models.load_model" | "tensorflow.keras.models.load_model" => {
                flag("safe_mode", "False")
            }
            "torch.hub.load" => flag("trust_repo", "True"),
            _ => false,
        };
        if unsafe_load {
            cx.report(call.node);
        }
    }
}
