//! DSSE envelopes (Dead Simple Signing Envelope v1): the signature covers the payload type
//! and the payload through PAE, so neither can be swapped without breaking it.
//! <https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md>

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature as Ed25519Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 (standard alphabet, padded) of the payload bytes.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Hex sha256 of the signer's 32-byte ed25519 public key (a hint: trust comes from the
    /// key the verifier is given).
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the 64-byte signature over [`pae`].
    pub sig: String,
}

/// Pre-Authentication Encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`, lengths
/// in ASCII decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The key id written into signatures.
pub fn key_id(key: &VerifyingKey) -> String {
    crate::digest::bytes_sha256(key.as_bytes())
}

impl Envelope {
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
        let signature = key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_string(),
            payload: STANDARD.encode(payload),
            signatures: vec![Signature {
                keyid: key_id(&key.verifying_key()),
                sig: STANDARD.encode(signature.to_bytes()),
            }],
        }
    }

    /// The payload bytes; an error names what is malformed.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, String> {
        STANDARD
            .decode(&self.payload)
            .map_err(|e| format!("payload is not base64: {e}"))
    }

    /// Whether any signature verifies with `key` over PAE(payloadType, payload).
    pub fn verify(&self, key: &VerifyingKey) -> Result<bool, String> {
        let message = pae(&self.payload_type, &self.payload_bytes()?);
        for signature in &self.signatures {
            let bytes = STANDARD
                .decode(&signature.sig)
                .map_err(|e| format!("signature is not base64: {e}"))?;
            let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
                return Err(format!(
                    "signature is {} bytes; ed25519 signatures are 64",
                    bytes.len()
                ));
            };
            if key
                .verify(&message, &Ed25519Signature::from_bytes(&bytes))
                .is_ok()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_specs_test_vector() {
        // DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world").
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn a_signature_covers_the_payload_and_its_type() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let envelope = Envelope::sign("application/vnd.in-toto+json", b"{\"a\":1}", &key);
        assert_eq!(envelope.verify(&key.verifying_key()), Ok(true));
        let mut retyped = envelope.clone();
        retyped.payload_type = "text/plain".into();
        assert_eq!(retyped.verify(&key.verifying_key()), Ok(false));
        let mut edited = envelope.clone();
        edited.payload = STANDARD.encode(b"{\"a\":2}");
        assert_eq!(edited.verify(&key.verifying_key()), Ok(false));
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert_eq!(envelope.verify(&other.verifying_key()), Ok(false));
    }
}
