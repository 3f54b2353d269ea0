//! Any input through the library calls the gateway and the audit use: scanning must not
//! panic, hang or report positions outside the input.
#![no_main]

use emguard_codescan::{Language, Scanner, extract_code};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let scanner = Scanner::new();
    let lines = text.lines().count().max(1) + 1;
    for result in [scanner.scan(&text, Language::Python), scanner.scan_answer(&text, Language::Python)] {
        for finding in &result.findings {
            assert!(finding.line >= 1 && finding.line <= lines, "line {} of {lines}", finding.line);
            assert!(finding.end_line >= finding.line);
        }
    }
    for block in extract_code(&text) {
        assert!(text.contains(block.code.as_str()));
    }
});
