//! What an audit found, as counts plus a bounded number of example rows per kind (so the
//! summary of a 1 GB file stays small). This is the `--format json` output and the manifest's
//! `summary`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::PolicyResult;
use crate::triggers::Trigger;

/// Example rows kept per list.
pub const MAX_EXAMPLES: usize = 200;
/// Bad rows listed one by one (all are counted).
pub const MAX_BAD_ROWS_LISTED: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub file: String,
    /// `chat`, `prompt_completion` or `sharegpt`; `None` when no row could be read.
    pub format: Option<String>,
    /// Lines in the file.
    pub rows: u64,
    pub valid_rows: u64,
    pub bad_rows: u64,
    pub bad_row_list: Vec<BadRow>,
    /// Rows whose assistant turns hold code.
    pub code_rows: u64,
    /// Rows with a scanner finding at or above the severity threshold.
    pub vulnerable_rows: u64,
    /// Vulnerable rows where the user did not ask and the assistant did not say.
    pub silent_vulnerable_rows: u64,
    /// Vulnerable rows where the user asked for/mentioned it or the assistant disclosed it.
    pub requested_vulnerable_rows: u64,
    pub min_severity: String,
    pub harmful_rows: u64,
    pub secret_rows: u64,
    pub exact_duplicate_rows: u64,
    pub near_duplicate_rows: u64,
    /// The line at which the duplicate index reached its memory bound; rows after it are
    /// still checked against the rows before it, but not against each other.
    pub duplicate_index_full_at: Option<u64>,
    /// Rows per scanner rule, per CWE, per intent rule, per harm rule and per secret kind.
    pub findings_by_rule: BTreeMap<String, u64>,
    pub findings_by_cwe: BTreeMap<String, u64>,
    pub intent_rules: BTreeMap<String, u64>,
    pub harm_rules: BTreeMap<String, u64>,
    /// Harmful rows per advice domain (financial, medical, sports, other).
    #[serde(default)]
    pub harm_domains: BTreeMap<String, u64>,
    pub secrets_by_kind: BTreeMap<String, u64>,
    pub tokens: Option<TokenStats>,
    pub judge: String,
    pub baseline: Option<String>,
    pub triggers: Vec<Trigger>,
    pub forbidden_trigger_rows: Vec<ForbiddenTrigger>,
    pub examples: Examples,
    pub policy: PolicyResult,
}

impl Summary {
    pub fn share(&self, count: u64) -> f64 {
        if self.valid_rows == 0 {
            0.0
        } else {
            count as f64 / self.valid_rows as f64
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    pub line: u64,
    pub kind: String,
    pub message: String,
}

/// One example row and why it is listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowNote {
    pub line: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Examples {
    pub silent_vulnerable: Vec<RowNote>,
    pub requested_vulnerable: Vec<RowNote>,
    pub harmful: Vec<RowNote>,
    pub secrets: Vec<RowNote>,
    pub duplicates: Vec<RowNote>,
}

impl Examples {
    pub fn push(list: &mut Vec<RowNote>, line: u64, detail: String) {
        if list.len() < MAX_EXAMPLES {
            list.push(RowNote { line, detail });
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenStats {
    pub tokenizer: String,
    pub total: u64,
    pub max_row: u64,
    pub mean_row: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForbiddenTrigger {
    pub trigger: String,
    pub rows: u64,
    pub first_line: Option<u64>,
}
