//! XML parsers that resolve external entities on untrusted input.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::syntax::KindName;
use crate::python::{Ctx, Taint};
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
        "from lxml import etree\nparser = etree.XMLParser(resolve_entities=True)\ntree = etree.parse('data.xml', parser)\n",
        "import xml.sax\nfrom xml.sax.handler import feature_external_ges\nparser = xml.sax.make_parser()\nparser.setFeature(feature_external_ges, True)\n",
        "from lxml import etree\nfrom flask import request\ndef upload():\n    doc = etree.fromstring(request.data)\n    return doc.findtext('name')\n",
    ],
    safe: &[
        "from lxml import etree\nparser = etree.XMLParser(resolve_entities=False, no_network=True)\ntree = etree.parse('data.xml', parser)\n",
        "import defusedxml.ElementTree as ET\nfrom flask import request\ndef upload():\n    return ET.fromstring(request.data).findtext('name')\n",
        "from lxml import etree\nfrom flask import request\ndef upload():\n    parser = etree.XMLParser(resolve_entities=False)\n    doc = etree.fromstring(request.data, parser)\n    return doc.findtext('name')\n",
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
            && call
                .keyword("resolve_entities", m.src)
                .is_some_and(|v| m.text(v) == "True");
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
        if resolving_parser || sax_external || default_parser_on_input {
            cx.report(call.node);
        }
    }
}
