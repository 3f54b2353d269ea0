//! MD5 or SHA-1 (or an unsalted fast hash) protecting passwords or secrets.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::fields::fields;
use crate::python::syntax::KindName;
use crate::rule::{Profile, Rule};

use super::{names_secret, string_literal};

pub static RULE: Rule = Rule {
    id: "PY-WEAK-HASH",
    title: "Weak hash for secrets",
    language: Language::Python,
    cwe: 328,
    severity: Severity::Medium,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "a password or secret is hashed with MD5/SHA-1 (broken, fast to brute-force)",
    fix: "Hash passwords with a slow salted KDF (`hashlib.scrypt`, `hashlib.pbkdf2_hmac`, bcrypt, argon2); use SHA-256 or better for other integrity needs.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-WEAK-HASH/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-WEAK-HASH/good_01.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH/good_02.py"),
        include_str!("../../../tests/fixtures/PY-WEAK-HASH/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let weak = match call.name.as_str() {
            "hashlib.md5"
            | "hashlib.sha1"
            | "md5"
            | "sha1"
            | "Crypto.Hash.MD5.new"
            | "MD5.new"
            | "SHA.new" => true,
            "hashlib.new" => call
                .positional(0)
                .and_then(|a| string_literal(m, a))
                .is_some_and(|alg| {
                    matches!(alg.to_ascii_lowercase().as_str(), "md5" | "sha1" | "md4")
                }),
            _ => false,
        };
        if !weak {
            continue;
        }
        // Hashing a secret, or assigning to a name that holds one.
        let hashes_secret = call.arg_values().iter().any(|a| names_secret(m.text(*a)));
        let stored_as_secret = {
            let mut node = call.node;
            let mut found = false;
            while let Some(parent) = node.parent() {
                if parent.kind_name() == "assignment" {
                    found = parent
                        .child_by_field_id(fields().left)
                        .is_some_and(|l| names_secret(m.text(l)));
                    break;
                }
                if matches!(parent.kind_name(), "block" | "module") {
                    break;
                }
                node = parent;
            }
            found
        };
        if hashes_secret || stored_as_secret {
            cx.report(call.node);
        }
    }
}
