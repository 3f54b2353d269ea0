//! Every rule's fixture files (`tests/fixtures/<RULE-ID>/{bad,good}_NN.py`, real Python
//! source): each `bad` file is flagged by its rule, no `good` file is, and the findings of
//! the rule's profile on all of them are pinned in a snapshot (`tests/snapshots/`), so a
//! finding that appears, disappears or moves fails the test. Review a change with
//! `cargo insta review` (or `INSTA_UPDATE=always`) and commit the `.snap` file.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use emguard_codescan::{Language, Scanner, all_rules};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The `.py` files of one rule's folder, by name.
fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_rule_has_a_fixture_folder_and_every_folder_a_rule() {
    let rules: Vec<&str> = all_rules().map(|r| r.id).collect();
    for id in &rules {
        let dir = fixtures_dir().join(id);
        let files = fixture_files(&dir);
        let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            files.iter().filter(|p| name(p).starts_with("bad_")).count() >= 3
                && files
                    .iter()
                    .filter(|p| name(p).starts_with("good_"))
                    .count()
                    >= 3,
            "{id}: fewer than three bad and three good fixture files"
        );
    }
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let folder = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            rules.contains(&folder.as_str()),
            "fixture folder {folder} names no rule"
        );
    }
}

#[test]
fn fixture_findings_match_their_snapshots() {
    let mut wrong = Vec::new();
    for rule in all_rules() {
        let scanner = Scanner::with_profile(rule.profile);
        let mut snapshot = String::new();
        for path in fixture_files(&fixtures_dir().join(rule.id)) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).unwrap();
            let findings = scanner.scan(&source, Language::Python).findings;
            let own = findings.iter().filter(|f| f.rule_id == rule.id).count();
            if name.starts_with("bad_") && own == 0 {
                wrong.push(format!("{}/{name}: not flagged by its rule", rule.id));
            }
            if name.starts_with("good_") && own > 0 {
                wrong.push(format!("{}/{name}: flagged by its rule", rule.id));
            }
            writeln!(snapshot, "{name}:").unwrap();
            if findings.is_empty() {
                writeln!(snapshot, "  (no findings)").unwrap();
            }
            for f in &findings {
                writeln!(
                    snapshot,
                    "  {}:{} {} CWE-{} `{}`",
                    f.line,
                    f.column,
                    f.rule_id,
                    f.cwe,
                    f.snippet.lines().next().unwrap_or("").trim()
                )
                .unwrap();
            }
        }
        insta::assert_snapshot!(rule.id, snapshot);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
