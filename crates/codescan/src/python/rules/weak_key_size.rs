//! RSA/DSA keys under 2048 bits and elliptic curves under 224 bits.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

use super::int_value;

pub static RULE: Rule = Rule {
    id: "PY-WEAK-KEY-SIZE",
    title: "Key too small",
    language: Language::Python,
    cwe: 326,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "an RSA or DSA key is generated with fewer than 2048 bits (or an elliptic curve under 224 bits): it can be factored or broken",
    fix: "Generate RSA and DSA keys of at least 2048 bits (3072 for use past 2030) and use curves of at least 224 bits such as SECP256R1 or Ed25519.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-WEAK-KEY-SIZE/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-KEY-SIZE/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-KEY-SIZE/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-KEY-SIZE/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-WEAK-KEY-SIZE/good_01.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-KEY-SIZE/good_02.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-KEY-SIZE/good_03.py"),
    ],
    check,
};

const WEAK_CURVES: &[&str] = &["SECP192R1", "SECT163K1", "SECT163R2", "P192", "NIST192p"];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let name = call.name.as_str();
        let bits = if name.ends_with("rsa.generate_private_key")
            || name.ends_with("dsa.generate_private_key")
        {
            call.arg(1, "key_size", m.src)
                .or_else(|| call.keyword("key_size", m.src))
        } else if name.ends_with("RSA.generate") || name.ends_with("DSA.generate") {
            call.arg(0, "bits", m.src)
        } else if name.ends_with("rsa.newkeys") {
            call.arg(0, "nbits", m.src)
        } else {
            None
        };
        // `dsa.generate_private_key(1024)` passes the size first.
        let bits = bits.or_else(|| {
            name.ends_with("dsa.generate_private_key")
                .then(|| call.positional(0))
                .flatten()
        });
        if let Some(bits) = bits
            && int_value(m, bits, call.scope, 0).is_some_and(|b| b < 2048)
        {
            cx.report(call.node);
            continue;
        }
        if name.ends_with("ec.generate_private_key") || name.ends_with("SigningKey.generate") {
            let curve = call.arg(0, "curve", m.src).map(|c| m.text(c)).unwrap_or("");
            if WEAK_CURVES.iter().any(|w| curve.contains(w)) {
                cx.report(call.node);
            }
        }
    }
}
