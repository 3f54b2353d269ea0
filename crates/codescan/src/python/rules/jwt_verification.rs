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
        include_str!("../../../tests/fixtures/PY-JWT-NO-VERIFY/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-JWT-NO-VERIFY/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-JWT-NO-VERIFY/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-JWT-NO-VERIFY/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-JWT-NO-VERIFY/bad_05.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-JWT-NO-VERIFY/good_01.py"),
        include_str!("../../../tests/fixtures/PY-JWT-NO-VERIFY/good_02.py"),
        include_str!("../../../tests/fixtures/PY-JWT-NO-VERIFY/good_03.py"),
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
                && (call.keyword_is("verify", "False", m.src)
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
