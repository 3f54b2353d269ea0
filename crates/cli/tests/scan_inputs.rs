//! `emguard scan` on inputs that are not plain UTF-8 Python: encoding declarations (PEP 263),
//! binary and undecodable files (skipped with a reason, the run goes on), and named files
//! that are not Python. The real binary on real files.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("emguard-scan-inputs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn emguard(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emguard"))
        .arg("scan")
        .args(args)
        .output()
        .expect("run emguard")
}

const VULNERABLE: &[u8] = b"import os, sys\nos.system('ls ' + sys.argv[1])\n";
/// Latin-1 bytes (`\xe9` is e-acute) under a declaration, with a finding after them.
const LATIN1: &[u8] =
    b"# -*- coding: latin-1 -*-\n# caf\xe9\nimport os, sys\nos.system('rm ' + sys.argv[1])\n";

#[test]
fn one_bad_file_in_a_folder_is_skipped_with_its_reason_and_the_rest_is_scanned() {
    let dir = TempDir::new("mixed");
    dir.file("good.py", VULNERABLE);
    dir.file("latin1.py", LATIN1);
    dir.file("binary.py", b"\x7fELF\x02\x01\x01\x00\x00\x00\x00");
    dir.file("undeclared.py", b"x = 1\nname = 'caf\xe9'\n");
    let out = emguard(&[dir.0.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("good.py:2:1: PY-COMMAND-INJECTION"),
        "{stdout}"
    );
    // Lines count in the decoded text: the finding is on line 4 of the latin-1 file.
    assert!(
        stdout.contains("latin1.py:4:1: PY-COMMAND-INJECTION"),
        "{stdout}"
    );
    assert!(
        stderr.contains("binary.py: skipped: binary data (a NUL byte at offset 7)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("undeclared.py: skipped: line 2: not valid UTF-8 (byte 0xe9)"),
        "{stderr}"
    );
    assert!(stderr.contains("in 2 inputs (2 skipped)"), "{stderr}");

    let json = emguard(&[
        std::ffi::OsStr::new("--format"),
        std::ffi::OsStr::new("json"),
        dir.0.as_os_str(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["files"].as_array().unwrap().len(), 2, "{report}");
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{report}");
    assert!(skipped[0]["path"].as_str().unwrap().ends_with("binary.py"));
    assert!(
        skipped[1]["reason"].as_str().unwrap().contains("PEP 263"),
        "{report}"
    );
}

#[test]
fn a_named_file_that_is_not_python_is_said_to_be_so() {
    let dir = TempDir::new("named");
    let notes = dir.file("notes.txt", b"rm -rf / ; os.system(input())\n");
    let script = dir.file(
        "deploy",
        b"#!/usr/bin/env python3\nimport os\nos.system(input())\n",
    );
    let out = emguard(&[notes.as_os_str(), script.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notes.txt: skipped: not a Python file"),
        "{stderr}"
    );
    // An extension-less script with a Python shebang is Python, and is still reported; a
    // file named on the command line that cannot be scanned makes the run exit 2.
    assert!(
        stdout.contains("deploy:3:1: PY-COMMAND-INJECTION"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(2));
    // `--answers` reads any file as a model answer.
    let answers = emguard(&[std::ffi::OsStr::new("--answers"), notes.as_os_str()]);
    assert!(
        !String::from_utf8_lossy(&answers.stderr).contains("skipped: not a Python file"),
        "{}",
        String::from_utf8_lossy(&answers.stderr)
    );
}
