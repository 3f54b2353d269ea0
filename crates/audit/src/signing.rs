//! ed25519 signing of manifests. Key files are hex text: the secret key file holds the
//! 32-byte seed, the public key file the 32-byte verifying key (`keygen` writes both).

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::manifest::Manifest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSignature {
    pub algorithm: String,
    /// Hex verifying key of the signer (informational: trust comes from the key you pass).
    pub public_key: String,
    /// Hex signature over [`Manifest::signed_digest`].
    pub value: String,
}

pub fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// Writes `path` (secret, mode 0600 on Unix) and `path.pub`.
pub fn write_keypair(key: &SigningKey, path: &Path) -> Result<(), AuditError> {
    write_secret(path, &hex::encode(key.to_bytes()))?;
    let public = path.with_extension(match path.extension() {
        Some(ext) => format!("{}.pub", ext.to_string_lossy()),
        None => "pub".to_string(),
    });
    std::fs::write(&public, hex::encode(key.verifying_key().to_bytes()) + "\n")
        .map_err(|e| AuditError::io(&public, e))
}

fn write_secret(path: &Path, text: &str) -> Result<(), AuditError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| AuditError::io(path, e))?;
    writeln!(file, "{text}").map_err(|e| AuditError::io(path, e))
}

fn read_key_bytes(path: &Path) -> Result<[u8; 32], AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| AuditError::Key {
        path: path.to_path_buf(),
        message: "expected 64 hex digits (32 bytes)".into(),
    })?;
    Ok(bytes)
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    Ok(SigningKey::from_bytes(&read_key_bytes(path)?))
}

pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    VerifyingKey::from_bytes(&read_key_bytes(path)?).map_err(|e| AuditError::Key {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Signs the manifest in place (any previous signature is replaced).
pub fn sign(manifest: &mut Manifest, key: &SigningKey) {
    manifest.signature = None;
    let signature = key.sign(&manifest.signed_digest());
    manifest.signature = Some(ManifestSignature {
        algorithm: "ed25519".into(),
        public_key: hex::encode(key.verifying_key().to_bytes()),
        value: hex::encode(signature.to_bytes()),
    });
}

pub fn verify(manifest: &Manifest, signature: &ManifestSignature, key: &VerifyingKey) -> bool {
    let mut bytes = [0u8; 64];
    signature.algorithm == "ed25519"
        && hex::decode_to_slice(&signature.value, &mut bytes).is_ok()
        && key
            .verify(&manifest.signed_digest(), &Signature::from_bytes(&bytes))
            .is_ok()
}
