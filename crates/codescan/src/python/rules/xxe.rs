//! XML parsers that resolve external entities on untrusted input.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::syntax::KindName;
use crate::python::{Ctx, Module, ScopeId, Taint};
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-XXE",
    title: "XML external entities enabled",
    language: Language::Python,
    cwe: 611,
    severity: Severity::High,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "an XML parser resolves external entities (or parses request data with lxml's entity-resolving default): a document can read local files or reach internal hosts (XXE)",
    fix: "Parse untrusted XML with `defusedxml`, or with `lxml.etree.XMLParser(resolve_entities=False, no_network=True)`; never enable `feature_external_ges` on a SAX parser.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-XXE/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-XXE/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-XXE/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-XXE/good_01.py"),
        include_str!("../../../tests/fixtures/PY-XXE/good_02.py"),
        include_str!("../../../tests/fixtures/PY-XXE/good_03.py"),
    ],
    check,
};

/// lxml entry points whose default parser resolves entities.
const LXML_PARSE: &[&str] = &[
    "lxml.etree.fromstring",
    "lxml.etree.XML",
    "lxml.etree.parse",
    "lxml.etree.iterparse",
    "lxml.etree.XMLID",
];

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        let name = call.name.as_str();
        let resolving_parser = name.ends_with("XMLParser")
            && name.contains("lxml")
            && call.keyword_is("resolve_entities", "True", m.src);
        let sax_external = call.method() == "setFeature"
            && call.positional(0).is_some_and(|f| {
                m.text(f).ends_with("feature_external_ges")
                    || m.text(f).ends_with("feature_external_pes")
            })
            && call
                .positional(1)
                .is_some_and(|v| matches!(m.text(v), "True" | "1"));
        let default_parser_on_input = LXML_PARSE.contains(&name)
            && call.arg(1, "parser", m.src).is_none_or(|p| {
                // A parser built in place with resolve_entities=True is reported above.
                p.kind_name() == "none"
            })
            && call.positional(0).is_some_and(|doc| {
                m.taint(doc, call.scope).has(Taint::PATH) && m.taint(doc, call.scope).is_remote()
            });
        if default_parser_on_input
            || (resolving_parser || sax_external)
                && (!m.scopes[call.scope].is_handler || parses_request_data(m, call.scope))
        {
            cx.report(call.node);
        }
    }
}

/// Whether a request handler hands request data to an XML parser (a parser that resolves
/// entities is harmless on the server's own documents, and in a handler every source of
/// request data is in view).
fn parses_request_data(m: &Module<'_>, scope: ScopeId) -> bool {
    m.calls.iter().any(|call| {
        call.scope == scope
            && matches!(
                call.method(),
                "parse" | "parseString" | "fromstring" | "XML" | "feed" | "iterparse" | "XMLID"
            )
            && call.positional(0).is_some_and(|doc| {
                let taint = m.taint(doc, scope);
                taint.any() && taint.is_remote()
            })
    })
}
