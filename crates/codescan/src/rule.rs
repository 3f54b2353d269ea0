//! A rule is a small self-contained unit: its metadata, its fixtures and a check function.
//! Each language lists its rules in one registry (`python::rules::REGISTRY`).

use serde::{Deserialize, Serialize};

use crate::finding::{Confidence, Severity};
use crate::language::Language;

/// Which scans run a rule. The default profile keeps to findings that are vulnerabilities
/// as written (few false alarms); `audit` adds bandit-style checks of dangerous calls and
/// settings even with constant input, for a reviewer who wants every use listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Default,
    Audit,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Audit => "audit",
        }
    }

    /// Whether a scan with this profile runs `rule`: audit runs every rule.
    pub fn runs(self, rule: &Rule) -> bool {
        self == Profile::Audit || rule.profile == Profile::Default
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "default" => Ok(Self::Default),
            "audit" => Ok(Self::Audit),
            _ => Err(format!("unknown profile `{s}` (expected default or audit)")),
        }
    }
}

pub struct Rule {
    /// Stable id, e.g. `PY-SQL-INJECTION`.
    pub id: &'static str,
    /// Short title for listings.
    pub title: &'static str,
    pub language: Language,
    pub cwe: u32,
    pub severity: Severity,
    pub confidence: Confidence,
    /// The profile that runs the rule (`audit` rules run only when asked for).
    pub profile: Profile,
    /// The message a finding carries.
    pub message: &'static str,
    /// How to fix it, one or two sentences.
    pub fix: &'static str,
    /// Snippets the rule must flag (tests check each one).
    pub vulnerable: &'static [&'static str],
    /// Snippets the rule must not flag: the corrected forms of the vulnerable ones.
    pub safe: &'static [&'static str],
    pub(crate) check: fn(&mut crate::python::Ctx<'_, '_>),
}

impl Rule {
    /// The rule's documentation page (`docs/rules/<ID>.md`), generated from its metadata so
    /// the page cannot drift from the code.
    pub fn doc_markdown(&self) -> String {
        let mut out = format!(
            "# {id}: {title}\n\n<!-- Generated from crates/codescan rule metadata; `cargo test -p emguard-codescan` checks it is up to date. -->\n\n\
             | | |\n|---|---|\n| Language | {lang} |\n| CWE | [CWE-{cwe}](https://cwe.mitre.org/data/definitions/{cwe}.html) |\n| Severity | {sev} |\n| Confidence | {conf} |\n| Profile | {profile} |\n\n\
             ## What it finds\n\n{msg}\n\n## How to fix\n\n{fix}\n\n## Flagged\n\n",
            id = self.id,
            title = self.title,
            lang = self.language,
            cwe = self.cwe,
            sev = self.severity,
            conf = self.confidence.as_str(),
            profile = self.profile.as_str(),
            msg = self.message,
            fix = self.fix,
        );
        for case in self.vulnerable {
            out.push_str(&format!("```python\n{}\n```\n\n", case.trim_end()));
        }
        out.push_str("## Not flagged\n\n");
        for case in self.safe {
            out.push_str(&format!("```python\n{}\n```\n\n", case.trim_end()));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Every rule of every language, in registry order.
pub fn all_rules() -> impl Iterator<Item = &'static Rule> {
    Language::ALL
        .into_iter()
        .flat_map(|lang| lang.rules().iter().copied())
}

/// Look a rule up by id.
pub fn rule_by_id(id: &str) -> Option<&'static Rule> {
    all_rules().find(|r| r.id.eq_ignore_ascii_case(id))
}
