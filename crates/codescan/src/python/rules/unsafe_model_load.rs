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
        "import torch\nmodel = torch.load('model.pt')\n",
        "import joblib\nclf = joblib.load(path)\n",
        "import numpy as np\narr = np.load(upload, allow_pickle=True)\n",
        "import torch\nstate = torch.load(path, map_location='cpu', weights_only=False)\n",
    ],
    safe: &[
        "import torch\nstate = torch.load('model.pt', weights_only=True)\n",
        "import numpy as np\narr = np.load('data.npy')\n",
        "from safetensors.torch import load_file\nstate = load_file('model.safetensors')\n",
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
