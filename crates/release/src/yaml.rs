//! The user's YAML files (gate policies, card sections): unknown fields are errors, and every
//! error names the file, line and column, and the field when the parser knows it.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::ReleaseError;

pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, ReleaseError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReleaseError::io(path, e))?;
    parse(path, &text)
}

/// Parses `text` as if read from `path` (the path is only named in errors).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ReleaseError> {
    serde_saphyr::from_str(text).map_err(|error| {
        let (line, column) = error
            .location()
            .map_or((0, 0), |at| (at.line(), at.column()));
        ReleaseError::Yaml {
            path: path.to_path_buf(),
            line,
            column,
            message: first_line(&error.without_snippet().to_string()),
        }
    })
}

/// The parser's message without its own location suffix and source snippet (ours is in front).
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}
