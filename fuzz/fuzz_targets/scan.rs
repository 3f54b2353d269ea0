//! Any input through the library calls the gateway and the audit use: decoding and scanning
//! (both profiles) must not panic, hang or report positions outside the input. The input is
//! also a project module (`helper.py` in a scratch folder): summarised for a file that calls
//! into it, and itself scanned with its project (its `import helper` finds itself).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use emguard_codescan::{Language, Profile, Project, Scanner, decode_python_source, extract_code};
use libfuzzer_sys::fuzz_target;

/// Calls into every shape of project function the summaries cover.
const IMPORTER: &str = "import os\nfrom flask import request\nimport helper\nfrom helper import f\n\n\
@app.route('/')\ndef view():\n    x = request.args['a']\n    w = helper.C(x)\n    \
os.system(f(x) + helper.g(x) + w.m(x) + helper.C(x).n())\n";

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("emguard-fuzz-project-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

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
    let dir = scratch();
    std::fs::write(dir.join("helper.py"), data).expect("write helper.py");
    let project = Project::new();
    let scanner = Scanner::new();
    for (source, name) in [(IMPORTER, "app.py"), (&*text, "helper.py")] {
        let result = scanner.scan_file(source, Language::Python, &dir.join(name), &project);
        let lines = source.lines().count().max(1) + 1;
        for finding in &result.findings {
            assert!(finding.line >= 1 && finding.line <= lines, "line {} of {lines}", finding.line);
        }
    }
    for block in extract_code(&text) {
        assert!(text.contains(block.code.as_str()));
    }
});
