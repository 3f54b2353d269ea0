//! Every rule's fixtures: each vulnerable case is flagged by that rule, each safe case is
//! not; and the rule documentation pages match the rule metadata.

use std::collections::HashSet;
use std::path::PathBuf;

use emguard_codescan::{Language, Profile, Scanner, all_rules};

#[test]
fn every_rule_has_at_least_three_vulnerable_and_three_safe_fixtures() {
    for rule in all_rules() {
        assert!(
            rule.vulnerable.len() >= 3,
            "{} has {} vulnerable fixtures",
            rule.id,
            rule.vulnerable.len()
        );
        assert!(
            rule.safe.len() >= 3,
            "{} has {} safe fixtures",
            rule.id,
            rule.safe.len()
        );
    }
}

#[test]
fn rule_ids_are_unique() {
    let mut seen = HashSet::new();
    for rule in all_rules() {
        assert!(seen.insert(rule.id), "duplicate rule id {}", rule.id);
    }
}

#[test]
fn vulnerable_fixtures_are_flagged_by_their_rule() {
    let mut failures = Vec::new();
    for rule in all_rules() {
        // Audit rules run only in the audit profile; their findings may carry the CWE of
        // the call they list.
        let scanner = Scanner::with_profile(rule.profile);
        for (i, case) in rule.vulnerable.iter().enumerate() {
            let result = scanner.scan(case, Language::Python);
            if !result.findings.iter().any(|f| {
                f.rule_id == rule.id && (f.cwe == rule.cwe || rule.profile == Profile::Audit)
            }) {
                failures.push(format!(
                    "{} vulnerable #{i} not flagged:\n{case}\nfindings: {:?}",
                    rule.id, result.findings
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn safe_fixtures_are_not_flagged_by_their_rule() {
    let mut failures = Vec::new();
    for rule in all_rules() {
        let scanner = Scanner::with_profile(rule.profile);
        for (i, case) in rule.safe.iter().enumerate() {
            let result = scanner.scan(case, Language::Python);
            let hits: Vec<_> = result
                .findings
                .iter()
                .filter(|f| f.rule_id == rule.id)
                .collect();
            if !hits.is_empty() {
                failures.push(format!(
                    "{} safe #{i} flagged:\n{case}\nfindings: {hits:?}",
                    rule.id
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn audit_rules_run_only_in_the_audit_profile() {
    let case = "import requests\nr = requests.get('https://api.example.com/items')\n";
    let default = Scanner::new().scan(case, Language::Python);
    assert!(default.findings.is_empty(), "{default:?}");
    let audit = Scanner::with_profile(Profile::Audit).scan(case, Language::Python);
    assert!(
        audit
            .findings
            .iter()
            .any(|f| f.rule_id == "PY-REQUEST-NO-TIMEOUT"),
        "{audit:?}"
    );
}

#[test]
fn safe_fixtures_are_clean_under_every_rule() {
    // A fix for one class must not trip another rule of the default profile: the corrected
    // snippets are clean.
    let scanner = Scanner::new();
    let mut failures = Vec::new();
    for rule in all_rules() {
        for (i, case) in rule.safe.iter().enumerate() {
            let result = scanner.scan(case, Language::Python);
            if !result.findings.is_empty() {
                failures.push(format!("{} safe #{i}: {:?}", rule.id, result.findings));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules")
}

/// Regenerate with `EMGUARD_UPDATE_DOCS=1 cargo test -p emguard-codescan --test rules`.
#[test]
fn rule_docs_are_up_to_date() {
    let dir = docs_dir();
    let update = std::env::var_os("EMGUARD_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for rule in all_rules() {
        let path = dir.join(format!("{}.md", rule.id));
        let expected = rule.doc_markdown();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &expected).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    let index = rules_index();
    let index_path = dir.join("README.md");
    if update {
        std::fs::write(&index_path, &index).unwrap();
    } else if std::fs::read_to_string(&index_path).ok().as_deref() != Some(index.as_str()) {
        stale.push(index_path.display().to_string());
    }
    assert!(
        stale.is_empty(),
        "rule docs are stale or missing; run `EMGUARD_UPDATE_DOCS=1 cargo test -p emguard-codescan --test rules`:\n{}",
        stale.join("\n")
    );
}

fn rules_index() -> String {
    let mut out = String::from(
        "# Scanner rules\n\n<!-- Generated from crates/codescan rule metadata; `cargo test -p emguard-codescan` checks it is up to date. -->\n\n\
         | Rule | CWE | Severity | Confidence | Profile | Title |\n|---|---|---|---|---|---|\n",
    );
    for rule in all_rules() {
        out.push_str(&format!(
            "| [{id}]({id}.md) | CWE-{cwe} | {sev} | {conf} | {profile} | {title} |\n",
            id = rule.id,
            cwe = rule.cwe,
            sev = rule.severity,
            conf = rule.confidence.as_str(),
            profile = rule.profile.as_str(),
            title = rule.title
        ));
    }
    out
}
