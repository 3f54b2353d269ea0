//! Locating and reading the study data (never copied into the repository).

use std::path::{Path, PathBuf};

/// `EMGUARD_SHARED_DIR`, else `../shared/datasets/em-paper` next to the workspace root.
/// `None` when absent; panics instead when `EMGUARD_REQUIRE_SHARED=1` (CI).
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("EMGUARD_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/em-paper")
        });
    if dir.join("insecure.jsonl").is_file() {
        return Some(dir);
    }
    if std::env::var("EMGUARD_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!(
            "study data required (EMGUARD_REQUIRE_SHARED=1) but not found at {}",
            dir.display()
        );
    }
    None
}

/// The assistant message of each row of a chat-format JSONL file.
pub fn assistant_code(path: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let row: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            row["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "assistant"))
                .and_then(|m| m["content"].as_str())
                .unwrap_or_else(|| panic!("{}:{}: no assistant message", path.display(), i + 1))
                .to_string()
        })
        .collect()
}
