//! Server-side request forgery: the server fetches a URL the user chose.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::flows::SinkKind;
use crate::python::syntax::{KindName, named_children};
use crate::python::{Ctx, Module, ScopeId, Taint};
use crate::rule::{Profile, Rule};
use tree_sitter::Node;

use super::scope_mentions;

pub static RULE: Rule = Rule {
    id: "PY-SSRF",
    title: "Server-side request to a user-chosen URL",
    language: Language::Python,
    cwe: 918,
    severity: Severity::High,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "the server fetches a URL (or host) taken from the request: an attacker makes it reach internal services or cloud metadata (server-side request forgery)",
    fix: "Fix the scheme and host in code and let the user choose only a path or query value, or check the parsed host against an allow-list before fetching.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-SSRF/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-SSRF/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-SSRF/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-SSRF/good_01.py"),
        include_str!("../../../tests/fixtures/PY-SSRF/good_02.py"),
        include_str!("../../../tests/fixtures/PY-SSRF/good_03.py"),
    ],
    check,
};

/// Signs that the function checks the host it fetches from.
const HOST_CHECKS: &[&str] = &[
    "hostname",
    "netloc",
    "ALLOWED",
    "allowed_hosts",
    "allowlist",
];

/// Whether the URL's scheme and host are written in the code: a string whose literal
/// start reaches past `scheme://host/` (or a bare path).
fn host_is_fixed(m: &Module<'_>, url: Node<'_>, scope: ScopeId, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    match url.kind_name() {
        "string" => {
            let mut prefix = String::new();
            for part in named_children(url) {
                match part.kind_name() {
                    "string_start" => {}
                    "string_content" | "escape_sequence" => prefix.push_str(m.text(part)),
                    _ => break,
                }
            }
            match prefix.split_once("://") {
                Some((_, rest)) => rest.contains('/'),
                None => prefix.starts_with('/') && !prefix.starts_with("//"),
            }
        }
        "binary_operator" => url
            .named_child(0)
            .is_some_and(|left| host_is_fixed(m, left, scope, depth + 1)),
        "call" => {
            // `'https://api.example.com/{}'.format(x)`, `urljoin(BASE, x)` with a fixed base.
            let func = url.named_child(0);
            let receiver = func.and_then(|f| f.named_child(0));
            func.is_some_and(|f| m.text(f).ends_with("urljoin"))
                || receiver.is_some_and(|r| {
                    r.kind_name() == "string" && host_is_fixed(m, r, scope, depth + 1)
                })
        }
        "identifier" => m
            .binding(m.text(url), scope, url.start_byte())
            .and_then(|b| b.value)
            .is_some_and(|v| v.id() != url.id() && host_is_fixed(m, v, scope, depth + 1)),
        _ => false,
    }
}

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let Some(sink) = call.sink.filter(|s| s.kind == SinkKind::Fetch) else {
            continue;
        };
        let Some(url) = call.arg(sink.position, sink.keyword, m.src) else {
            continue;
        };
        let taint = m.taint(url, call.scope);
        // Request data (not the environment or command line: choosing where a tool
        // connects is their ordinary job).
        if taint.has(Taint::URL)
            && taint.is_remote()
            && !host_is_fixed(m, url, call.scope, 0)
            && !scope_mentions(m, call.scope, HOST_CHECKS)
        {
            cx.report(call.node);
        }
    }
}
