//! Calls between a module's own functions (`src/python/calls.rs`): a sink inside a helper
//! sees the input its callers pass, and a helper that reads the request itself taints its
//! result at the call. The fixture `tests/projects/local_calls/app.py` (real source) marks
//! every line that reaches a sink `# input` (must be flagged) or `# clean` (must not be).

use emguard_codescan::{Language, Scanner};

#[path = "support/markers.rs"]
mod markers;
use markers::assert_findings_match_marks;

#[test]
fn every_line_marked_input_is_flagged_and_none_marked_clean() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/projects/local_calls/app.py"
    );
    let source = std::fs::read_to_string(path).expect("fixture");
    let result = Scanner::new().scan(&source, Language::Python);
    assert_findings_match_marks(&source, &result, 4, 2);
}
