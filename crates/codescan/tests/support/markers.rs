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
