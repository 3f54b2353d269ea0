//! Incident alerts to a webhook: an HTTP POST of the incident as JSON, its body signed with
//! HMAC-SHA256 (`X-Emguard-Signature: sha256=<hex>`, as GitHub signs its webhooks, so
//! receivers can reuse their checks), retried with exponential backoff on errors and non-2xx
//! answers. Every attempt is reported to the caller, who records it in the incident.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::playbook::Webhook;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-emguard-signature";

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `payload` until an attempt gets a 2xx answer or the attempts run out; `record` is
/// called after each attempt with `{time, attempt, status | error}`. True when delivered.
pub async fn deliver(
    client: &reqwest::Client,
    hook: &Webhook,
    payload: &Value,
    mut record: impl FnMut(Value),
) -> bool {
    let body = serde_json::to_vec(payload).unwrap_or_default();
    let signed = signature(&hook.secret, &body);
    for attempt in 1..=hook.max_attempts {
        if attempt > 1 {
            let wait = hook.backoff_ms.saturating_mul(1 << (attempt - 2).min(10));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let sent = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &signed)
            .body(body.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let time = crate::unix_now();
        match sent {
            Ok(res) if res.status().is_success() => {
                record(json!({"time": time, "attempt": attempt, "status": res.status().as_u16()}));
                return true;
            }
            Ok(res) => {
                record(json!({"time": time, "attempt": attempt, "status": res.status().as_u16()}))
            }
            Err(e) => record(json!({"time": time, "attempt": attempt, "error": e.to_string()})),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
