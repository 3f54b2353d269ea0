//! Reading the study data (found by `emguard_testkit::study_dir`, never copied into the
//! repository).

use std::path::Path;

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
