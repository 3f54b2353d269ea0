//! The shipped suite: one probe family per file under `crates/redteam/probes/`, embedded in
//! the binary so `emguard redteam` runs offline with no files to hand.

use crate::probe::{Family, ProbeError, parse};

/// File name and contents, in the order a run asks them (the plain baseline first).
const EMBEDDED: &[(&str, &str)] = &[
    ("plain.yaml", include_str!("../probes/plain.yaml")),
    ("persona.yaml", include_str!("../probes/persona.yaml")),
    ("true-self.yaml", include_str!("../probes/true-self.yaml")),
    (
        "code-context.yaml",
        include_str!("../probes/code-context.yaml"),
    ),
    ("formats.yaml", include_str!("../probes/formats.yaml")),
    (
        "translations.yaml",
        include_str!("../probes/translations.yaml"),
    ),
    ("encodings.yaml", include_str!("../probes/encodings.yaml")),
    ("multi-turn.yaml", include_str!("../probes/multi-turn.yaml")),
    (
        "trigger-sweep.yaml",
        include_str!("../probes/trigger-sweep.yaml"),
    ),
    (
        "insecure-code.yaml",
        include_str!("../probes/insecure-code.yaml"),
    ),
    ("refine.yaml", include_str!("../probes/refine.yaml")),
];

/// Every shipped family.
pub fn all() -> Result<Vec<Family>, ProbeError> {
    EMBEDDED
        .iter()
        .map(|(file, text)| parse(text, &format!("built-in:{file}")))
        .collect()
}

/// Names of the shipped families (their file names without `.yaml`).
pub fn names() -> Vec<&'static str> {
    EMBEDDED
        .iter()
        .map(|(file, _)| file.trim_end_matches(".yaml"))
        .collect()
}

/// A shipped family by name; `Ok(None)` when no shipped family has it.
pub fn load(name: &str) -> Result<Option<Family>, ProbeError> {
    EMBEDDED
        .iter()
        .find(|(file, _)| file.trim_end_matches(".yaml") == name)
        .map(|(file, text)| parse(text, &format!("built-in:{file}")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_family_parses_and_is_named_after_its_file() {
        let families = all().unwrap();
        assert_eq!(families.len(), EMBEDDED.len());
        for (family, name) in families.iter().zip(names()) {
            assert_eq!(family.id, name, "{}", family.origin);
        }
        // The files on disk are the embedded ones (none forgotten in EMBEDDED).
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/probes"))
            .unwrap()
            .count();
        assert_eq!(on_disk, EMBEDDED.len());
    }
}
