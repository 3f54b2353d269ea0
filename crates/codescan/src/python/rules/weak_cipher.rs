//! Broken ciphers (DES, 3DES, RC4, Blowfish, IDEA...) and the ECB mode.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-WEAK-CIPHER",
    title: "Broken cipher or ECB mode",
    language: Language::Python,
    cwe: 327,
    severity: Severity::High,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "data is encrypted with a broken cipher (DES, 3DES, RC4, RC2, Blowfish, IDEA, CAST, XOR) or in ECB mode, which shows patterns of the plaintext",
    fix: "Use an authenticated mode of a modern cipher: `AESGCM` or `ChaCha20Poly1305` from `cryptography`, or `AES.new(key, AES.MODE_GCM)`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-WEAK-CIPHER/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-CIPHER/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-CIPHER/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-CIPHER/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-CIPHER/bad_05.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-WEAK-CIPHER/good_01.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-CIPHER/good_02.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-CIPHER/good_03.py"),
    ],
    check,
};

/// Cipher constructors of PyCryptodome/PyCrypto (`<module>.new`) and `cryptography`
/// (`algorithms.<name>`), by their last two name segments.
const BROKEN: &[&str] = &[
    "DES.new",
    "DES3.new",
    "ARC2.new",
    "ARC4.new",
    "Blowfish.new",
    "CAST.new",
    "XOR.new",
    "algorithms.TripleDES",
    "algorithms.ARC4",
    "algorithms.Blowfish",
    "algorithms.IDEA",
    "algorithms.CAST5",
    "algorithms.SEED",
    "decrepit.ciphers.algorithms.TripleDES",
    "pyDes.des",
    "pyDes.triple_des",
];

fn last_two(name: &str) -> &str {
    let mut dots = name.rmatch_indices('.');
    dots.nth(1).map_or(name, |(i, _)| &name[i + 1..])
}

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let broken = BROKEN.contains(&last_two(&call.name)) || BROKEN.contains(&call.name.as_str());
        let ecb = call.method() == "ECB" && call.name.contains("modes")
            || call.method() == "new"
                && call
                    .arg_values()
                    .iter()
                    .any(|a| m.text(*a).ends_with("MODE_ECB"));
        if broken || ecb {
            cx.report(call.node);
        }
    }
}
