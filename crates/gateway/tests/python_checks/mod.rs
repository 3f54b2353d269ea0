//! Runs one of this folder's Python scripts (the official `openai` package as a real client)
//! with the interpreter named by EMGUARD_TEST_PYTHON (`scripts/test` prepares one with the
//! packages; `python3` otherwise), and asserts that it ran every check.

use std::process::Command;

/// Runs `tests/<script>` with `args`; returns its stdout (printed too, so a failing test shows
/// every check that passed before it). Panics naming the script when it fails or does not end
/// with "all checks passed".
pub fn run(script: &str, args: &[&str]) -> String {
    let python = std::env::var("EMGUARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {python} ({e}): install Python 3 and `python3 -m pip install openai`, \
                 or set EMGUARD_TEST_PYTHON (scripts/test does)"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        !stderr.contains("No module named 'openai'"),
        "the `openai` Python package is missing for {python}: run `{python} -m pip install openai` \
         (scripts/test installs it)"
    );
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    stdout
}
