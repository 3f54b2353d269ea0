//! Fixtures that mark their own lines: a comment `# input` on a line that must be flagged,
//! `# clean` on one that must not be (`tests/projects/`).

use std::collections::BTreeSet;

/// Line numbers (1-based) of the lines whose comment contains `# {marker}`.
pub fn marked(source: &str, marker: &str) -> BTreeSet<usize> {
    let comment = format!("# {marker}");
    source
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(&comment))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Asserts that `result` flags every line marked `# input` and none marked `# clean`, and
/// that the fixture has at least the given numbers of each mark.
pub fn assert_findings_match_marks(
    source: &str,
    result: &emguard_codescan::ScanResult,
    min_inputs: usize,
    min_cleans: usize,
) {
    let (inputs, cleans) = (marked(source, "input"), marked(source, "clean"));
    assert!(
        inputs.len() >= min_inputs && cleans.len() >= min_cleans,
        "fixture markers"
    );
    let flagged: BTreeSet<usize> = result.findings.iter().map(|f| f.line).collect();
    let missed: Vec<_> = inputs.difference(&flagged).collect();
    let wrong: Vec<_> = cleans.intersection(&flagged).collect();
    assert!(
        missed.is_empty() && wrong.is_empty(),
        "missed input lines {missed:?}, flagged clean lines {wrong:?}: {:#?}",
        result.findings
    );
}
