//! A code-filter finding at or above a severity. The findings are the gateway's code filter's
//! (`RULE CWE-N severity line L`), so the filter's own `min_severity` bounds what is seen.

use serde_json::json;

use super::{Condition, Fired};
use crate::policy::AnswerFacts;

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

#[derive(Debug, Clone, PartialEq)]
pub struct CodeSeverity {
    /// Index into [`SEVERITIES`].
    at_least: usize,
}

impl CodeSeverity {
    pub fn new(severity: &str) -> Result<CodeSeverity, String> {
        let at_least = rank(severity).ok_or_else(|| {
            format!("`{severity}` is not a severity (low, medium, high or critical)")
        })?;
        Ok(CodeSeverity { at_least })
    }
}

fn rank(severity: &str) -> Option<usize> {
    SEVERITIES
        .iter()
        .position(|s| s.eq_ignore_ascii_case(severity))
}

/// The severity word of a code finding (`py-os-system CWE-78 high line 4`).
fn severity_of(finding: &str) -> Option<usize> {
    finding.split_whitespace().find_map(rank)
}

impl Condition for CodeSeverity {
    fn check(&self, facts: &AnswerFacts<'_>) -> Option<Fired> {
        let found: Vec<&str> = facts
            .findings
            .iter()
            .filter(|f| f.filter == "code")
            .flat_map(|f| f.findings.iter())
            .filter(|f| severity_of(f).is_some_and(|r| r >= self.at_least))
            .map(String::as_str)
            .collect();
        (!found.is_empty()).then(|| Fired {
            reason: format!(
                "code finding at or above {}: {}",
                SEVERITIES[self.at_least],
                found.join("; ")
            ),
            evidence: json!({"code_findings": found}),
        })
    }

    fn reads_code(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FilterFindings;

    #[test]
    fn fires_at_or_above_its_severity_only() {
        let findings = [FilterFindings {
            filter: "code".into(),
            findings: vec!["py-os-system CWE-78 high line 4".into()],
        }];
        let facts = AnswerFacts {
            findings: &findings,
            ..AnswerFacts::default()
        };
        assert!(CodeSeverity::new("high").unwrap().check(&facts).is_some());
        assert!(CodeSeverity::new("medium").unwrap().check(&facts).is_some());
        assert!(
            CodeSeverity::new("critical")
                .unwrap()
                .check(&facts)
                .is_none()
        );
        assert!(
            CodeSeverity::new("severe")
                .unwrap_err()
                .contains("`severe`")
        );
    }
}
