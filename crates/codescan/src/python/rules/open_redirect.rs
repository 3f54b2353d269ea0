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
        "from flask import request, redirect\ndef login_done():\n    return redirect(request.args.get('next'))\n",
        "from flask import Flask, redirect\napp = Flask(__name__)\n\n@app.route('/go/<path:target>')\ndef go(target):\n    return redirect(target)\n",
        "from django.http import HttpResponseRedirect\ndef back(request):\n    return HttpResponseRedirect(request.GET['url'])\n",
    ],
    safe: &[
        "from flask import request, redirect, url_for\ndef login_done():\n    return redirect(url_for('home'))\n",
        "from flask import Flask, redirect\napp = Flask(__name__)\n\n@app.route('/p/<pid>')\ndef go(pid):\n    return redirect(f'/project/{pid}')\n",
        "from urllib.parse import urlparse\nfrom flask import Flask, redirect, abort\napp = Flask(__name__)\n\n@app.route('/go/<path:target>')\ndef go(target):\n    if urlparse(target).netloc not in ('example.com',):\n        abort(400)\n    return redirect(target)\n",
        "from django.http import HttpResponseRedirect\nfrom django.utils.http import url_has_allowed_host_and_scheme\ndef back(request):\n    url = request.GET['url']\n    if not url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}):\n        url = '/'\n    return HttpResponseRedirect(url)\n",
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
