//! MD5 and SHA-1 used where a reader cannot tell the use is not about security.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

use super::{scope_mentions, string_literal};

pub static RULE: Rule = Rule {
    id: "PY-WEAK-HASH-ALGORITHM",
    title: "Broken hash algorithm (MD5, SHA-1)",
    language: Language::Python,
    cwe: 328,
    severity: Severity::Low,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "data is hashed with MD5 or SHA-1, whose collisions can be made at will: unfit for signatures, integrity checks against an attacker, or stored secrets",
    fix: "Use SHA-256 or better (`hashlib.sha256`); for passwords a salted slow KDF; if the hash is not about security (cache keys, file de-duplication), say so with `usedforsecurity=False`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-WEAK-HASH-ALGORITHM/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH-ALGORITHM/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH-ALGORITHM/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH-ALGORITHM/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-WEAK-HASH-ALGORITHM/good_01.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH-ALGORITHM/good_02.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH-ALGORITHM/good_03.py"),
    ],
    check,
};

/// Functions whose name says the hash is a checksum or a cache key, not a security control.
const NOT_SECURITY: &[&str] = &["checksum", "etag", "cache", "fingerprint_file", "dedup"];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let weak = match call.name.as_str() {
            "hashlib.md5"
            | "hashlib.sha1"
            | "Crypto.Hash.MD5.new"
            | "Crypto.Hash.SHA.new"
            | "Crypto.Hash.SHA1.new"
            | "Cryptodome.Hash.MD5.new"
            | "Cryptodome.Hash.SHA1.new"
            | "cryptography.hazmat.primitives.hashes.MD5"
            | "cryptography.hazmat.primitives.hashes.SHA1" => true,
            "hashlib.new" => call
                .positional(0)
                .and_then(|a| string_literal(m, a))
                .is_some_and(|alg| {
                    matches!(
                        alg.to_ascii_lowercase().as_str(),
                        "md5" | "sha1" | "md4" | "sha"
                    )
                }),
            _ => false,
        };
        if !weak {
            continue;
        }
        let declared_harmless = call.keyword_is("usedforsecurity", "False", m.src);
        // Hashing a file's bytes is de-duplication or a download check.
        let file_digest = call
            .positional(0)
            .is_some_and(|a| m.text(a).contains(".read("));
        if !declared_harmless && !file_digest && !scope_mentions(m, call.scope, NOT_SECURITY) {
            cx.report(call.node);
        }
    }
}
