//! SARIF 2.1.0 output: one run, the rules that ran, one result per finding.

use serde_json::{Value, json};

use crate::finding::{Finding, Severity};
use crate::rule::{Rule, all_rules};

pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// A SARIF log for the findings of each artifact (a path or URI, and its findings).
pub fn sarif_log<'a>(artifacts: impl IntoIterator<Item = (&'a str, &'a [Finding])>) -> Value {
    let rules: Vec<&Rule> = all_rules().collect();
    let mut results = Vec::new();
    for (uri, findings) in artifacts {
        for finding in findings {
            results.push(result(uri, finding, &rules));
        }
    }
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "emguard",
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://cwe.mitre.org/",
                    "rules": rules.iter().map(|r| rule_descriptor(r)).collect::<Vec<_>>(),
                }
            },
            "results": results,
        }]
    })
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub code scanning reads `security-severity` (0-10) to rank alerts.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

fn rule_descriptor(rule: &Rule) -> Value {
    json!({
        "id": rule.id,
        "name": rule.title,
        "shortDescription": { "text": rule.title },
        "fullDescription": { "text": rule.message },
        "help": { "text": rule.fix },
        "helpUri": format!("https://cwe.mitre.org/data/definitions/{}.html", rule.cwe),
        "defaultConfiguration": { "level": level(rule.severity) },
        "properties": {
            "tags": ["security", format!("external/cwe/cwe-{}", rule.cwe)],
            "precision": rule.confidence.as_str(),
            "security-severity": security_severity(rule.severity),
        }
    })
}

fn result(uri: &str, finding: &Finding, rules: &[&Rule]) -> Value {
    let mut value = json!({
        "ruleId": finding.rule_id,
        "level": level(finding.severity),
        "message": { "text": finding.message },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": { "uri": uri },
                "region": {
                    "startLine": finding.line,
                    "startColumn": finding.column,
                    "endLine": finding.end_line,
                    "endColumn": finding.end_column,
                    "snippet": { "text": finding.snippet },
                }
            }
        }],
        "properties": {
            "tags": ["security", format!("CWE-{}", finding.cwe), format!("external/cwe/cwe-{}", finding.cwe)],
            "severity": finding.severity.as_str(),
            "confidence": finding.confidence.as_str(),
        }
    });
    if let Some(index) = rules.iter().position(|r| r.id == finding.rule_id) {
        value["ruleIndex"] = json!(index);
    }
    value
}
