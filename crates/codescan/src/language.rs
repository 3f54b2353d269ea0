//! Languages the scanner knows. Each language brings its tree-sitter grammar and its rule
//! set through [`LanguageSupport`]; Python is complete, the others are future rule sets.

use serde::{Deserialize, Serialize};

use crate::rule::Rule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
}

impl Language {
    pub const ALL: [Language; 1] = [Language::Python];

    pub fn name(self) -> &'static str {
        match self {
            Self::Python => "python",
        }
    }

    /// The language of a Markdown fence info string (```` ```py ````) or a file extension.
    pub fn from_tag(tag: &str) -> Option<Self> {
        match tag.trim().to_ascii_lowercase().as_str() {
            "py" | "python" | "python3" | "py3" | "pyw" => Some(Self::Python),
            _ => None,
        }
    }

    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Self::from_tag)
    }

    pub(crate) fn support(self) -> &'static dyn LanguageSupport {
        match self {
            Self::Python => &crate::python::Python,
        }
    }

    /// The rules of this language, in registry order.
    pub fn rules(self) -> &'static [&'static Rule] {
        self.support().rules()
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a language contributes: how to scan a source text and which rules it runs. A new
/// language (JS/TS, shell, C) implements this and gets a variant in [`Language`].
pub(crate) trait LanguageSupport: Sync {
    fn rules(&self) -> &'static [&'static Rule];
    /// Scans `source`; with `project`, calls into the project's own modules are read through
    /// their summaries (the file is in the directory given).
    fn scan(
        &self,
        source: &str,
        profile: crate::Profile,
        project: Option<(&crate::Project, &std::path::Path)>,
    ) -> crate::ScanResult;
}
