//! Interoperability with the OpenSSF `model-signing` package (PyPI, key-based mode), both
//! ways: what `emguard attest model-sign` writes, `model_signing` verifies; what
//! `model_signing` signs, `emguard attest model-verify` verifies; a changed byte fails both.
//! Keys are P-256, made by Python's `cryptography` (model-signing's key mode is ECDSA only).

mod release_support;

use std::path::Path;

use release_support::{TempDir, code, emguard, expect, stderr, stdout};

const PYTHON_SIDE: &str = r#"
import sys, pathlib
import model_signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
command, *args = sys.argv[1:]
if command == "keygen":
    key = ec.generate_private_key(ec.SECP256R1())
    pathlib.Path(args[0]).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pathlib.Path(args[1]).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
elif command == "sign":
    model, signature, key = args
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key).sign(model, signature)
elif command == "verify":
    model, signature, key = args
    try:
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key).verify(model, signature)
        print("VERIFIED")
    except ValueError as error:
        print("FAILED", error)
"#;

fn python_side(python: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    release_support::run_python(python, PYTHON_SIDE, args)
}

/// A model folder: a config and a "weights" file of 64 KiB.
fn model_folder(dir: &TempDir) -> std::path::PathBuf {
    let model = dir.path("model");
    std::fs::create_dir_all(model.join("tokenizer")).unwrap();
    std::fs::write(model.join("config.json"), "{\"layers\": 30}\n").unwrap();
    std::fs::write(model.join("tokenizer/vocab.txt"), "a\nb\n").unwrap();
    let weights: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(model.join("model.gguf"), weights).unwrap();
    model
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn model_signing_verifies_what_emguard_signs_and_emguard_what_it_signs() {
    let python = release_support::python("model_signing");
    let dir = TempDir::new();
    let (key, public) = (dir.path("key.pem"), dir.path("key.pub.pem"));
    python_side(&python, &[&"keygen", &key, &public]);
    let folder = model_folder(&dir);
    let single = dir.path("single.gguf");
    std::fs::copy(folder.join("model.gguf"), &single).unwrap();

    for model in [&folder, &single] {
        // emguard signs, model-signing verifies.
        let ours = dir.path("emguard.sig");
        expect(
            0,
            &[
                &"attest",
                &"model-sign",
                &"--ec-key",
                &key,
                &"--model",
                model,
                &"--out",
                &ours,
            ],
        );
        let verdict = python_side(&python, &[&"verify", model, &ours, &public]);
        assert_eq!(verdict.trim(), "VERIFIED", "{}", model.display());

        // model-signing signs, emguard verifies.
        let theirs = dir.path("model-signing.sig");
        python_side(&python, &[&"sign", model, &theirs, &key]);
        let output = expect(
            0,
            &[
                &"attest",
                &"model-verify",
                &"--ec-public-key",
                &public,
                &"--model",
                model,
                &"--signature",
                &theirs,
            ],
        );
        assert!(stdout(&output).contains("VERIFIED"));
    }

    // One byte of the weights changed after signing: both refuse, and emguard names the file.
    let before = dir.path("before.sig");
    expect(
        0,
        &[
            &"attest",
            &"model-sign",
            &"--ec-key",
            &key,
            &"--model",
            &folder,
            &"--out",
            &before,
        ],
    );
    flip_a_byte(&folder.join("model.gguf"));
    let verdict = python_side(&python, &[&"verify", &folder, &before, &public]);
    assert!(verdict.starts_with("FAILED"), "{verdict}");
    let output = emguard(&[
        &"attest",
        &"model-verify",
        &"--ec-public-key",
        &public,
        &"--model",
        &folder,
        &"--signature",
        &before,
    ]);
    assert_eq!(code(&output), 1, "{}{}", stdout(&output), stderr(&output));
    assert!(
        stdout(&output).contains("file `model.gguf` has sha256"),
        "{}",
        stdout(&output)
    );
    let ours = dir.path("emguard.sig");

    // Another key: refused by emguard (exit 1), and a non-key file is bad input (exit 2).
    let (other, other_public) = (dir.path("other.pem"), dir.path("other.pub.pem"));
    python_side(&python, &[&"keygen", &other, &other_public]);
    let output = emguard(&[
        &"attest",
        &"model-verify",
        &"--ec-public-key",
        &other_public,
        &"--model",
        &single,
        &"--signature",
        &ours,
    ]);
    assert_eq!(code(&output), 1);
    assert!(
        stdout(&output).contains("signed by another key"),
        "{}",
        stdout(&output)
    );
    let output = emguard(&[
        &"attest",
        &"model-verify",
        &"--ec-public-key",
        &ours,
        &"--model",
        &single,
        &"--signature",
        &ours,
    ]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("not a PEM P-256 public key"),
        "{}",
        stderr(&output)
    );
}
