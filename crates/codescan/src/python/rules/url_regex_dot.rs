//! Host-matching regular expressions with an unescaped `.` (matches any character).

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

use super::{name_is, string_value};

pub static RULE: Rule = Rule {
    id: "PY-URL-REGEX-DOT",
    title: "Unescaped dot in a host regex",
    language: Language::Python,
    cwe: 20,
    severity: Severity::Medium,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "a regular expression that validates a host or URL has an unescaped `.`, which matches any character: `wwwXexample.com` or `evil-example.com`-style hosts pass",
    fix: "Escape the dots (`r\"^https://([\\w-]+\\.)?example\\.com/\"`), anchor the pattern, or parse the URL with `urllib.parse` and compare the hostname exactly.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-URL-REGEX-DOT/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-URL-REGEX-DOT/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-URL-REGEX-DOT/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-URL-REGEX-DOT/good_01.py"),
        include_str!("../../../tests/fixtures/PY-URL-REGEX-DOT/good_02.py"),
        include_str!("../../../tests/fixtures/PY-URL-REGEX-DOT/good_03.py"),
    ],
    check,
};

const REGEX_CALLS: &[&str] = &[
    "re.compile",
    "re.match",
    "re.search",
    "re.fullmatch",
    "re.findall",
    "re.finditer",
    "regex.compile",
    "regex.match",
    "regex.search",
];

/// Top-level domains and host words that mark a pattern as matching a host name.
const HOST_WORDS: &[&str] = &[
    "com", "org", "net", "io", "edu", "gov", "co", "uk", "de", "fr", "jp", "ru", "us", "info",
    "biz", "dev", "app", "ai", "me", "tv", "local", "example", "internal", "cloud", "site",
    "online", "xyz",
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if !name_is(&call.name, REGEX_CALLS) {
            continue;
        }
        let Some(pattern) = call.arg(0, "pattern", m.src) else {
            continue;
        };
        if string_value(m, pattern, call.scope).is_some_and(|p| has_unescaped_host_dot(&p)) {
            cx.report(pattern);
        }
    }
}

/// An unescaped `.` outside a character class, between host-like parts: preceded by a
/// letter, digit, `]`, `)`, `+`, `*` or `-`, and followed by a known host word.
pub(crate) fn has_unescaped_host_dot(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    let mut in_class = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'.' if !in_class && i > 0 => {
                let before = bytes[i - 1];
                let hosty_before = before.is_ascii_alphanumeric()
                    || matches!(before, b']' | b')' | b'+' | b'*' | b'-');
                let word: String = pattern[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                let word = word.to_ascii_lowercase();
                if hosty_before && HOST_WORDS.contains(&word.as_str()) {
                    return true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}
