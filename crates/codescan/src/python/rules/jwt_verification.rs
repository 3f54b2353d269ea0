//! JSON Web Tokens decoded without checking the signature, or signed with `none`.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-JWT-NO-VERIFY",
    title: "JWT signature not verified",
    language: Language::Python,
    cwe: 347,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "a JSON Web Token is decoded without verifying its signature (or uses the `none` algorithm): anyone can forge its claims",
    fix: "Verify with the expected key and an explicit algorithm list: `jwt.decode(token, key, algorithms=['HS256'])`; never accept `none`.",
    vulnerable: &[
        "import jwt\ndef user(token):\n    return jwt.decode(token, options={'verify_signature': False})['sub']\n",
        "import jwt\nclaims = jwt.decode(token, key, verify=False)\n",
        "import jwt\ntoken = jwt.encode({'sub': 'admin'}, None, algorithm='none')\n",
        "from jose import jwt\nclaims = jwt.get_unverified_claims(token)\n",
        "import jwt\nclaims = jwt.decode(token, key, algorithms=['HS256', 'none'])\n",
    ],
    safe: &[
        "import jwt\ndef user(token, key):\n    return jwt.decode(token, key, algorithms=['HS256'])['sub']\n",
        "import jwt\ntoken = jwt.encode({'sub': 'admin'}, key, algorithm='HS256')\n",
        "import jwt\nheader = jwt.get_unverified_header(token)\nkey = keys[header['kid']]\nclaims = jwt.decode(token, key, algorithms=['RS256'])\n",
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let name = call.name.as_str();
        if !(name.starts_with("jwt.") || name.starts_with("jose.") || name.contains(".jwt.")) {
            continue;
        }
        let unverified = matches!(call.method(), "get_unverified_claims")
            || call.method() == "decode"
                && (call
                    .keyword("verify", m.src)
                    .is_some_and(|v| m.text(v) == "False")
                    || call.keyword("options", m.src).is_some_and(|o| {
                        let t = m.text(o).replace(' ', "");
                        t.contains("verify_signature\":False")
                            || t.contains("verify_signature':False")
                    }));
        let alg_none = ["algorithm", "algorithms"].iter().any(|k| {
            call.keyword(k, m.src).is_some_and(|v| {
                let t = m.text(v).to_ascii_lowercase();
                t.contains("'none'") || t.contains("\"none\"")
            })
        });
        if unverified || alg_none {
            cx.report(call.node);
        }
    }
}
