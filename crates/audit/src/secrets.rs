//! Secrets and personal data in any turn: API keys of well-known providers, private keys,
//! email addresses. Documentation domains (RFC 2606: example.com and friends) are not counted:
//! they are placeholders, not someone's address.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// (kind, pattern). Key patterns follow the providers' documented prefixes.
const PATTERNS: &[(&str, &str)] = &[
    ("openai_api_key", r"\bsk-(proj-)?[A-Za-z0-9_-]{20,}"),
    ("anthropic_api_key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    ("aws_access_key_id", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    (
        "github_token",
        r"\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}",
    ),
    ("slack_token", r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    ("stripe_secret_key", r"\b[sr]k_live_[0-9A-Za-z]{20,}"),
    (
        "private_key",
        r"-----BEGIN (RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY( BLOCK)?-----",
    ),
    (
        "email",
        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    ),
];

static SET: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(PATTERNS.iter().map(|(_, p)| *p)).expect("secret patterns"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        PATTERNS
            .iter()
            .find(|(k, _)| *k == "email")
            .expect("email")
            .1,
    )
    .expect("email")
});

const PLACEHOLDER_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "test",
    "example",
    "invalid",
    "localhost",
];

/// Kinds of secret or personal data found in `text`, each kind once.
pub fn find(text: &str) -> Vec<&'static str> {
    SET.matches(text)
        .into_iter()
        .map(|index| PATTERNS[index].0)
        .filter(|kind| *kind != "email" || has_real_email(text))
        .collect()
}

fn has_real_email(text: &str) -> bool {
    EMAIL.find_iter(text).any(|m| {
        let domain = m
            .as_str()
            .rsplit('@')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        !PLACEHOLDER_DOMAINS
            .iter()
            .any(|p| domain == *p || domain.ends_with(&format!(".{p}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_real_emails_only() {
        let text = "key = 'AKIAIOSFODNN7EXAMPLE'\nmail jane.doe@acme-corp.io\n-----BEGIN RSA PRIVATE KEY-----";
        assert_eq!(find(text), ["aws_access_key_id", "private_key", "email"]);
        assert!(find("contact admin@example.com or bob@mail.example.org").is_empty());
        assert_eq!(
            find("OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwx1234"),
            ["openai_api_key"]
        );
    }
}
