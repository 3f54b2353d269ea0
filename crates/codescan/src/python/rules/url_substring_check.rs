//! URL or host validated by substring, suffix or prefix without a boundary.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::python::syntax::children;
use crate::rule::{Profile, Rule};

use super::string_literal;

pub static RULE: Rule = Rule {
    id: "PY-URL-SUBSTRING-CHECK",
    title: "Incomplete URL substring check",
    language: Language::Python,
    cwe: 20,
    severity: Severity::Medium,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "a URL or host is validated by substring: `'example.com' in url` also accepts `https://example.com.evil.net` and `https://evil.net/?example.com`",
    fix: "Parse the URL (`urllib.parse.urlparse(url).hostname`) and compare the host exactly or by `== 'example.com' or .endswith('.example.com')`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-URL-SUBSTRING-CHECK/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-URL-SUBSTRING-CHECK/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-URL-SUBSTRING-CHECK/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-URL-SUBSTRING-CHECK/good_01.py"),
        include_str!("../../../tests/fixtures/PY-URL-SUBSTRING-CHECK/good_02.py"),
        include_str!("../../../tests/fixtures/PY-URL-SUBSTRING-CHECK/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for &(cmp, _) in &m.comparisons {
        let is_in = children(cmp).any(|c| m.text(c) == "in");
        let Some(left) = cmp.named_child(0) else {
            continue;
        };
        // `'.example.com' in url` is as bypassable as `'example.com' in url`.
        if is_in
            && string_literal(m, left).is_some_and(|s| {
                looks_like_host(s.trim_start_matches('.')) || host_prefix(&s).is_some()
            })
        {
            cx.report(cmp);
        }
    }
    for call in &m.calls {
        let method = call.method();
        if method != "endswith" && method != "startswith" {
            continue;
        }
        let Some(arg) = call.positional(0).and_then(|a| string_literal(m, a)) else {
            continue;
        };
        let bad = if method == "endswith" {
            looks_like_host(&arg) && !arg.starts_with('.')
        } else {
            // `https://example.com` as a prefix also matches `https://example.com.evil.net`.
            host_prefix(&arg).is_some_and(|rest| !rest.contains('/') && !rest.contains(':'))
        };
        if bad {
            cx.report(call.node);
        }
    }
}

/// `example.com`, `api.example.co.uk`: dotted labels ending in letters.
fn looks_like_host(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
        && !matches!(
            labels.last().copied(),
            Some(
                "py" | "txt"
                    | "json"
                    | "html"
                    | "csv"
                    | "jpg"
                    | "png"
                    | "pdf"
                    | "log"
                    | "yaml"
                    | "yml"
                    | "xml"
                    | "zip"
                    | "gz"
                    | "tar"
                    | "js"
                    | "css"
                    | "md"
                    | "exe"
                    | "sh"
            )
        )
}

/// For `http(s)://host...`, what follows the scheme when the host looks like one.
fn host_prefix(s: &str) -> Option<&str> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))?;
    let host = rest.split(['/', ':']).next().unwrap_or("");
    looks_like_host(host).then_some(rest)
}
