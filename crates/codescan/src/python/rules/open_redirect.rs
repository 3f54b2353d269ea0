//! Redirects to a URL taken from the request.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::syntax::{KindName, named_children};
use tree_sitter::Node;

use crate::python::{Ctx, Module, Taint};
use crate::rule::{Profile, Rule};

use super::{name_is, scope_mentions};

pub static RULE: Rule = Rule {
    id: "PY-OPEN-REDIRECT",
    title: "Redirect to a user-supplied URL",
    language: Language::Python,
    cwe: 601,
    severity: Severity::Medium,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "the redirect target comes from the request unchecked: an attacker's link can send users to any site (open redirect)",
    fix: "Redirect only to relative paths or allow-listed hosts: parse with `urllib.parse.urlparse` and check `netloc` against the allow-list, or map a key to a known URL.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-OPEN-REDIRECT/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-OPEN-REDIRECT/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-OPEN-REDIRECT/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-OPEN-REDIRECT/good_01.py"),
        include_str!("../../../tests/fixtures/PY-OPEN-REDIRECT/good_02.py"),
        include_str!("../../../tests/fixtures/PY-OPEN-REDIRECT/good_03.py"),
        include_str!("../../../tests/fixtures/PY-OPEN-REDIRECT/good_04.py"),
    ],
    check,
};

/// Signs that the function checks where it redirects.
const TARGET_CHECKS: &[&str] = &[
    "netloc",
    "hostname",
    "urlparse",
    "url_has_allowed_host_and_scheme",
    "is_safe_url",
    "startswith(",
    " in ALLOWED",
    "allowed",
];

/// Targets that cannot leave the site: the current request's own URL, or a string that
/// starts with a single `/` (a path on this host; `//host` would be another site).
fn stays_on_site(m: &Module<'_>, target: Node<'_>) -> bool {
    let text = m.text(target);
    if matches!(
        text,
        "request.url"
            | "request.path"
            | "request.full_path"
            | "request.base_url"
            | "request.referrer_path"
    ) {
        return true;
    }
    if target.kind_name() != "string" {
        return false;
    }
    let first = named_children(target).find(|c| c.kind_name() != "string_start");
    first.is_some_and(|c| {
        c.kind_name() == "string_content" && {
            let t = m.text(c);
            t.starts_with('/') && !t.starts_with("//") && !t.starts_with("/\\")
        }
    })
}

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if !name_is(
            &call.name,
            &[
                "redirect",
                "HttpResponseRedirect",
                "RedirectResponse",
                "HttpResponsePermanentRedirect",
            ],
        ) {
            continue;
        }
        if let Some(target) = call.arg(0, "location", m.src)
            && !stays_on_site(m, target)
            && m.taint(target, call.scope).has(Taint::URL)
            && !scope_mentions(m, call.scope, TARGET_CHECKS)
        {
            cx.report(call.node);
        }
    }
}
