//! Files read with their project (`Scanner::scan_file` with a `Project`): calls into the
//! project's own modules are read through what those functions return.
//!
//! The fixture `tests/projects/flask_helpers` is a small Flask project (real source files):
//! `app/views/pages.py` calls helpers of `helpers/wrap.py` (absolute imports, a class and
//! its instances) and of `app/views/util.py` (relative imports). Each line of `pages.py`
//! that reaches a sink is marked with a comment: `# input` must be flagged, `# clean` must
//! not be.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use emguard_codescan::{Language, Project, ScanResult, Scanner};

#[path = "support/markers.rs"]
mod markers;
use markers::{assert_findings_match_marks, marked};

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/projects/flask_helpers")
}

fn pages() -> (PathBuf, String) {
    let path = project_dir().join("app/views/pages.py");
    let source = std::fs::read_to_string(&path).expect("fixture");
    (path, source)
}

fn flagged(result: &ScanResult) -> BTreeSet<usize> {
    result.findings.iter().map(|f| f.line).collect()
}

fn scan_with_project(path: &Path, source: &str) -> ScanResult {
    Scanner::new().scan_file(source, Language::Python, path, &Project::new())
}

#[test]
fn every_line_marked_input_is_flagged_and_none_marked_clean() {
    let (path, source) = pages();
    let result = scan_with_project(&path, &source);
    assert_findings_match_marks(&source, &result, 6, 5);
}

/// The same file read on its own cannot tell: the constant helpers' results look like the
/// request they were given, and a helper that reads the request itself looks clean.
#[test]
fn read_alone_the_same_file_gets_the_helpers_wrong() {
    let (_, source) = pages();
    let lines = flagged(&Scanner::new().scan(&source, Language::Python));
    let cleans = marked(&source, "clean");
    let flagged_clean = cleans.intersection(&lines).count();
    assert!(
        flagged_clean >= 4,
        "only {flagged_clean} clean lines flagged"
    );
    let query_param_line = source
        .lines()
        .position(|l| l.contains("query_param(\"cmd\")"))
        .expect("fixture line")
        + 1;
    assert!(!lines.contains(&query_param_line));
}

#[test]
fn a_project_shared_by_threads_gives_each_file_the_same_findings() {
    let (path, source) = pages();
    let alone = scan_with_project(&path, &source);
    let project = Project::new();
    let results: Vec<ScanResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| Scanner::new().scan_file(&source, Language::Python, &path, &project))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for result in results {
        assert_eq!(result.findings, alone.findings);
    }
}

/// A helper module that does not parse, or is not Python text, leaves the default reading
/// (the result carries what the call was given); the importing file is still scanned.
#[test]
fn a_broken_or_binary_helper_module_falls_back_to_the_default_reading() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.py"),
        "def clean(x:\n    return 'a'\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("binary.py"),
        b"def clean(x):\x00 return 'a'\n",
    )
    .unwrap();
    let app = "import os\nfrom flask import request\nimport broken, binary\n\n\
               @app.route('/')\ndef f():\n    os.system(broken.clean(request.args['a']))\n    \
               os.system(binary.clean(request.args['a']))\n";
    let path = dir.path().join("app.py");
    let result = Scanner::new().scan_file(app, Language::Python, &path, &Project::new());
    assert_eq!(flagged(&result), BTreeSet::from([7, 8]), "{result:#?}");
}
