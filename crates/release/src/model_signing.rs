//! The OpenSSF model signature (the format of the PyPI package `model-signing`, key-based
//! mode), so that its verifier accepts what emguard signs and emguard verifies what it signs.
//!
//! A Sigstore bundle v0.3 (JSON) holding a DSSE envelope of an in-toto Statement whose
//! predicate (`https://model_signing/signature/v1.0`) lists every file of the model with its
//! sha256 (a single-file model is the one resource `.`); the subject's digest is sha256 over
//! the resources' digests in path order. The signature is ECDSA P-256 with SHA-256 (DER) over
//! the envelope's PAE; the bundle's key hint is sha256 of the public key's PEM. model-signing's
//! key mode accepts only P-256/384/521 ECDSA keys, so this uses a PEM EC key, not the audit's
//! ed25519 key; emguard supports P-256.

use std::path::{Component, Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ReleaseError;
use crate::digest::file_sha256;
use crate::dsse::{Envelope, Signature as EnvelopeSignature, pae};
use crate::statement::{PAYLOAD_TYPE, STATEMENT_TYPE, Statement, Subject};

pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// Paths model-signing leaves out of a model folder by default (git metadata).
const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: VerificationMaterial,
    dsse_envelope: Envelope,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(default)]
    public_key: Option<KeyHint>,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyHint {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Predicate {
    serialization: Serialization,
    resources: Vec<Resource>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Serialization {
    method: String,
    hash_type: String,
    allow_symlinks: bool,
    #[serde(default)]
    ignore_paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Resource {
    algorithm: String,
    name: String,
    digest: String,
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, ReleaseError> {
    let pem = std::fs::read_to_string(path).map_err(|e| ReleaseError::io(path, e))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        ReleaseError::invalid(path, format!("not a PKCS#8 PEM P-256 private key: {e}"))
    })
}

pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, ReleaseError> {
    let pem = std::fs::read_to_string(path).map_err(|e| ReleaseError::io(path, e))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
        ReleaseError::invalid(
            path,
            format!("not a PEM P-256 public key (SubjectPublicKeyInfo): {e}"),
        )
    })
}

/// sha256 of the public key's PEM, as model-signing writes it into the bundle.
fn key_hint(key: &VerifyingKey) -> String {
    let pem = key
        .to_public_key_pem(LineEnding::LF)
        .expect("a P-256 public key encodes");
    crate::digest::bytes_sha256(pem.as_bytes())
}

/// The model's files and their sha256, in model-signing's order (path components).
fn resources(model: &Path, ignored: &[String]) -> Result<Vec<Resource>, ReleaseError> {
    let meta = std::fs::symlink_metadata(model).map_err(|e| ReleaseError::io(model, e))?;
    if meta.file_type().is_symlink() {
        return Err(ReleaseError::invalid(
            model,
            "is a symbolic link (model-signing refuses them)",
        ));
    }
    if meta.is_file() {
        return Ok(vec![Resource {
            algorithm: "sha256".into(),
            name: ".".into(),
            digest: file_sha256(model)?,
        }]);
    }
    let mut files = Vec::new();
    collect_files(model, model, ignored, &mut files)?;
    files.sort_by(|a, b| {
        let parts = |p: &PathBuf| -> Vec<String> {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect()
        };
        parts(a).cmp(&parts(b))
    });
    files
        .into_iter()
        .map(|relative| {
            Ok(Resource {
                algorithm: "sha256".into(),
                digest: file_sha256(&model.join(&relative))?,
                name: relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/"),
            })
        })
        .collect()
}

fn collect_files(
    root: &Path,
    dir: &Path,
    ignored: &[String],
    out: &mut Vec<PathBuf>,
) -> Result<(), ReleaseError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ReleaseError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ReleaseError::io(dir, e))?;
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let name = relative.to_string_lossy().replace('\\', "/");
        if ignored
            .iter()
            .any(|i| name == *i || name.starts_with(&format!("{i}/")))
        {
            continue;
        }
        let kind = entry.file_type().map_err(|e| ReleaseError::io(&path, e))?;
        if kind.is_symlink() {
            return Err(ReleaseError::invalid(
                &path,
                "is a symbolic link (model-signing refuses them)",
            ));
        } else if kind.is_dir() {
            collect_files(root, &path, ignored, out)?;
        } else if kind.is_file() {
            out.push(relative);
        }
    }
    Ok(())
}

fn root_digest(resources: &[Resource]) -> Result<String, String> {
    let mut hasher = Sha256::new();
    for r in resources {
        hasher.update(
            hex::decode(&r.digest)
                .map_err(|_| format!("resource `{}`: digest is not hex", r.name))?,
        );
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The model's name as model-signing records it: the file or folder name.
fn model_name(model: &Path) -> String {
    model
        .canonicalize()
        .ok()
        .as_deref()
        .unwrap_or(model)
        .file_name()
        .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned())
}

/// Signs `model` (a file or a folder); returns the bundle's JSON.
pub fn sign(model: &Path, key: &SigningKey) -> Result<String, ReleaseError> {
    let ignored: Vec<String> = GIT_PATHS.iter().map(|p| p.to_string()).collect();
    let resources = resources(model, &ignored)?;
    let predicate = Predicate {
        serialization: Serialization {
            method: "files".into(),
            hash_type: "sha256".into(),
            allow_symlinks: false,
            ignore_paths: ignored,
        },
        resources,
    };
    let statement = Statement::new(
        Subject::sha256(
            model_name(model),
            root_digest(&predicate.resources).expect("our digests are hex"),
        ),
        PREDICATE_TYPE,
        serde_json::to_value(&predicate).expect("predicate serialises"),
    );
    let payload = serde_json::to_vec(&statement).expect("statement serialises");
    let signature: Signature = key.sign(&pae(PAYLOAD_TYPE, &payload));
    let bundle = Bundle {
        media_type: MEDIA_TYPE.into(),
        verification_material: VerificationMaterial {
            public_key: Some(KeyHint {
                hint: Some(key_hint(key.verifying_key())),
            }),
            tlog_entries: Vec::new(),
        },
        dsse_envelope: Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            payload: STANDARD.encode(&payload),
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig: STANDARD.encode(signature.to_der().as_bytes()),
            }],
        },
    };
    Ok(serde_json::to_string(&bundle).expect("bundle serialises"))
}

/// Checks `model` against the bundle at `signature`: Ok(problems), empty when it verifies.
/// Errors are bad input (unreadable files, a bundle that is not model-signing's format).
pub fn verify(
    model: &Path,
    signature: &Path,
    key: &VerifyingKey,
) -> Result<Vec<String>, ReleaseError> {
    let text = std::fs::read_to_string(signature).map_err(|e| ReleaseError::io(signature, e))?;
    let invalid = |message: String| ReleaseError::invalid(signature, message);
    let bundle: Bundle =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not a Sigstore bundle: {e}")))?;
    if bundle.media_type != MEDIA_TYPE {
        return Err(invalid(format!(
            "media type `{}`, expected `{MEDIA_TYPE}`",
            bundle.media_type
        )));
    }
    let envelope = &bundle.dsse_envelope;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(invalid(format!(
            "payloadType `{}`, expected `{PAYLOAD_TYPE}`",
            envelope.payload_type
        )));
    }
    let payload = envelope.payload_bytes().map_err(invalid)?;
    let first = envelope
        .signatures
        .first()
        .ok_or_else(|| invalid("the envelope has no signatures".into()))?;
    let der = STANDARD
        .decode(&first.sig)
        .map_err(|e| invalid(format!("signature is not base64: {e}")))?;
    let sig = Signature::from_der(&der)
        .map_err(|e| invalid(format!("signature is not a DER ECDSA signature: {e}")))?;

    let mut problems = Vec::new();
    if let Some(hint) = bundle
        .verification_material
        .public_key
        .as_ref()
        .and_then(|k| k.hint.as_ref())
        && *hint != key_hint(key)
    {
        problems.push(format!(
            "signed by another key (the bundle's key hint is {hint}; this key's is {})",
            key_hint(key)
        ));
        return Ok(problems);
    }
    if key.verify(&pae(PAYLOAD_TYPE, &payload), &sig).is_err() {
        problems.push("the signature does not verify with the given public key".into());
        return Ok(problems);
    }
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| invalid(format!("payload is not an in-toto Statement: {e}")))?;
    if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(invalid(format!(
            "statement `{}` with predicate `{}`, expected {STATEMENT_TYPE} with {PREDICATE_TYPE}",
            statement.statement_type, statement.predicate_type
        )));
    }
    let predicate: Predicate = serde_json::from_value(statement.predicate)
        .map_err(|e| invalid(format!("predicate: {e}")))?;
    if predicate.serialization.method != "files" || predicate.serialization.hash_type != "sha256" {
        return Err(invalid(format!(
            "serialization `{}` with `{}`: emguard verifies `files` with `sha256`",
            predicate.serialization.method, predicate.serialization.hash_type
        )));
    }
    let subject_digest = statement
        .subject
        .first()
        .and_then(|s| s.sha256_digest().map(str::to_string));
    if subject_digest != Some(root_digest(&predicate.resources).map_err(invalid)?) {
        problems.push(
            "the signed manifest is inconsistent: its subject digest does not cover its resources"
                .into(),
        );
        return Ok(problems);
    }
    let mut ignored = predicate.serialization.ignore_paths.clone();
    ignored.extend(GIT_PATHS.iter().map(|p| p.to_string()));
    let actual = resources(model, &ignored)?;
    for expected in &predicate.resources {
        match actual.iter().find(|a| a.name == expected.name) {
            None => problems.push(format!(
                "{}: signed file `{}` is missing",
                model.display(),
                expected.name
            )),
            Some(a) if a.digest != expected.digest => problems.push(format!(
                "{}: file `{}` has sha256 {}; the signature says {}",
                model.display(),
                expected.name,
                a.digest,
                expected.digest
            )),
            Some(_) => {}
        }
    }
    for extra in actual
        .iter()
        .filter(|a| !predicate.resources.iter().any(|e| e.name == a.name))
    {
        problems.push(format!(
            "{}: file `{}` is not in the signature",
            model.display(),
            extra.name
        ));
    }
    Ok(problems)
}
