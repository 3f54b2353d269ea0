//! Calls between a module's own functions (`src/python/calls.rs`): a sink inside a helper
//! sees the input its callers pass, and a helper that reads the request itself taints its
//! result at the call. The fixture `tests/projects/local_calls/app.py` (real source) marks
//! every line that reaches a sink `# input` (must be flagged) or `# clean` (must not be).

use std::collections::BTreeSet;

use emguard_codescan::{Language, Scanner};

#[path = "support/markers.rs"]
mod markers;
use markers::marked;

#[test]
fn every_line_marked_input_is_flagged_and_none_marked_clean() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/projects/local_calls/app.py"
    );
    let source = std::fs::read_to_string(path).expect("fixture");
    let (inputs, cleans) = (marked(&source, "input"), marked(&source, "clean"));
    assert!(inputs.len() >= 4 && cleans.len() >= 2, "fixture markers");
    let result = Scanner::new().scan(&source, Language::Python);
    let flagged: BTreeSet<usize> = result.findings.iter().map(|f| f.line).collect();
    let missed: Vec<_> = inputs.difference(&flagged).collect();
    let wrong: Vec<_> = cleans.intersection(&flagged).collect();
    assert!(
        missed.is_empty() && wrong.is_empty(),
        "missed input lines {missed:?}, flagged clean lines {wrong:?}: {:#?}",
        result.findings
    );
}
