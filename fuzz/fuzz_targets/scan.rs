//! Any input through the library calls the gateway and the audit use: decoding and scanning
//! (both profiles) must not panic, hang or report positions outside the input.
#![no_main]

use emguard_codescan::{Language, Profile, Scanner, decode_python_source, extract_code};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The command's path: bytes decoded as Python source (PEP 263), refused with a reason.
    let decoded = decode_python_source(data);
    let text = match &decoded {
        Ok(text) => text.clone(),
        Err(_) => String::from_utf8_lossy(data),
    };
    let lines = text.lines().count().max(1) + 1;
    for scanner in [Scanner::new(), Scanner::with_profile(Profile::Audit)] {
        for result in [scanner.scan(&text, Language::Python), scanner.scan_answer(&text, Language::Python)] {
            for finding in &result.findings {
                assert!(finding.line >= 1 && finding.line <= lines, "line {} of {lines}", finding.line);
                assert!(finding.end_line >= finding.line);
            }
        }
    }
    for block in extract_code(&text) {
        assert!(text.contains(block.code.as_str()));
    }
});
