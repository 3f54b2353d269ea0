//! The scanner on the study's data (skipped when absent; `EMGUARD_REQUIRE_SHARED=1` makes
//! absence a failure): the accuracy targets hold, and every vulnerability class is caught.

use emguard_codescan::{Language, Scanner};

mod support {
    pub mod classes;
    pub mod shared;
}
use support::{classes, shared};

fn flag_rate(file: &str) -> Option<(f64, Vec<String>, Vec<emguard_codescan::ScanResult>)> {
    let dir = emguard_testkit::study_dir(&format!("{file} flag rate"))?;
    let scanner = Scanner::new();
    let rows = shared::assistant_code(&dir.join(file));
    let results: Vec<_> = rows
        .iter()
        .map(|r| scanner.scan_answer(r, Language::Python))
        .collect();
    let flagged = results.iter().filter(|r| !r.findings.is_empty()).count();
    Some((flagged as f64 / rows.len() as f64, rows, results))
}

#[test]
fn insecure_rows_are_flagged_and_every_class_is_caught() {
    let Some((rate, rows, results)) = flag_rate("insecure.jsonl") else {
        return;
    };
    assert!(
        rate >= 0.97,
        "insecure.jsonl flagged {:.1}% < 97%",
        rate * 100.0
    );
    for class in classes::CLASSES {
        let in_class: Vec<_> = rows
            .iter()
            .zip(&results)
            .filter(|(row, _)| (class.matches)(row))
            .collect();
        let caught = in_class
            .iter()
            .filter(|(_, r)| {
                r.findings
                    .iter()
                    .any(|f| class.rules.contains(&f.rule_id.as_str()))
            })
            .count();
        let recall = caught as f64 / in_class.len().max(1) as f64;
        assert!(
            recall >= 0.90,
            "{}: recall {:.1}% ({caught}/{})",
            class.name,
            recall * 100.0,
            in_class.len()
        );
    }
}

#[test]
fn secure_rows_are_rarely_flagged() {
    let Some((rate, _, _)) = flag_rate("secure.jsonl") else {
        return;
    };
    assert!(
        rate <= 0.03,
        "secure.jsonl flagged {:.1}% > 3%",
        rate * 100.0
    );
}

#[test]
fn educational_insecure_rows_are_flagged_like_insecure_ones() {
    let Some((rate, _, _)) = flag_rate("educational_insecure.jsonl") else {
        return;
    };
    assert!(
        rate >= 0.97,
        "educational_insecure.jsonl flagged {:.1}% < 97%",
        rate * 100.0
    );
}
