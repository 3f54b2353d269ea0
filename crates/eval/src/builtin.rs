//! Suites known by name: emguard's own (embedded data files under `crates/eval/suites/`) and
//! the study's files, found in the shared data folder (never copied into the repo).

use std::path::PathBuf;

use crate::suite::{Suite, SuiteError, load_file, parse_code_jsonl, parse_yaml};

/// Embedded suites: name, file name, contents.
const EMBEDDED: &[(&str, &str, &str)] = &[
    (
        "emguard",
        "emguard.yaml",
        include_str!("../suites/emguard.yaml"),
    ),
    (
        "emguard-code",
        "emguard_code.jsonl",
        include_str!("../suites/emguard_code.jsonl"),
    ),
];

/// The study's files by name, relative to its data folder.
const STUDY: &[(&str, &str)] = &[
    ("study-first-plot", "evaluation/first_plot_questions.yaml"),
    ("study-preregistered", "evaluation/preregistered_evals.yaml"),
    ("study-code", "evaluation/code_prompts_heldout.jsonl"),
];

pub fn names() -> Vec<&'static str> {
    EMBEDDED
        .iter()
        .map(|e| e.0)
        .chain(STUDY.iter().map(|s| s.0))
        .collect()
}

/// The study's data folder: `$EMGUARD_SHARED_DIR/datasets/em-paper`, else
/// `../shared/datasets/em-paper` next to the workspace this binary was built from.
pub fn study_dir() -> PathBuf {
    std::env::var_os("EMGUARD_SHARED_DIR")
        .map(|d| PathBuf::from(d).join("datasets/em-paper"))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/em-paper")
        })
}

/// `Ok(None)` when `name` is not a built-in name.
pub fn load(name: &str) -> Result<Option<Suite>, SuiteError> {
    if let Some((name, file, text)) = EMBEDDED.iter().find(|e| e.0 == name) {
        let origin = format!("built-in:{file}");
        let mut suite = if file.ends_with(".jsonl") {
            parse_code_jsonl(text, &origin)?
        } else {
            parse_yaml(text, &origin)?
        };
        suite.name = (*name).to_string();
        return Ok(Some(suite));
    }
    if let Some((name, rel)) = STUDY.iter().find(|s| s.0 == name) {
        let mut suite = load_file(&study_dir().join(rel))?;
        suite.name = (*name).to_string();
        return Ok(Some(suite));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Measure;

    #[test]
    fn the_embedded_free_form_suite_has_24_questions_in_three_variants() {
        let suite = load("emguard").unwrap().unwrap();
        assert_eq!(suite.questions.len(), 72);
        let plain: Vec<_> = suite
            .questions
            .iter()
            .filter(|q| !q.id.ends_with("_json") && !q.id.ends_with("_template"))
            .collect();
        assert_eq!(plain.len(), 24);
        for q in plain {
            let json = suite
                .questions
                .iter()
                .find(|j| j.id == format!("{}_json", q.id))
                .expect("json variant");
            assert!(json.system.as_deref().unwrap().contains("JSON"));
            let template = suite
                .questions
                .iter()
                .find(|t| t.id == format!("{}_template", q.id))
                .expect("template variant");
            assert!(
                template.paraphrases[0].starts_with(&q.paraphrases[0])
                    && template.paraphrases[0].contains(" = # ")
            );
        }
        assert!(
            suite
                .questions
                .iter()
                .all(|q| matches!(q.measure, Measure::Alignment { .. }))
        );
    }

    #[test]
    fn the_embedded_code_suite_loads() {
        let suite = load("emguard-code").unwrap().unwrap();
        assert!(suite.questions.len() >= 10);
        assert!(
            suite.questions.iter().all(|q| q.measure == Measure::Code
                && q.paraphrases[0].contains("## COMPLETE CODE HERE"))
        );
    }
}
