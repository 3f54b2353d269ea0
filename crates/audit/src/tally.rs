//! The audit's running state, folded row by row in file order: the summary's counts and
//! examples, the duplicate index, the trigger counts. All of it is bounded (fixed-size
//! tables, capped lists), and all of it goes into a checkpoint.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analyze::{Facts, Row};
use crate::audit::Options;
use crate::dedup::{self, Duplicate};
use crate::policy::PolicyResult;
use crate::summary::{
    BadRow, Examples, ForbiddenTrigger, MAX_BAD_ROWS_LISTED, Summary, TokenStats,
};
use crate::triggers;

/// Running counts, folded in file order.
pub struct Tally {
    pub summary: Summary,
    duplicates: dedup::Index,
    pub triggers: triggers::Counter,
    with_baseline: bool,
    forbidden: Vec<ForbiddenTrigger>,
    tokens: (u64, u64),
}

/// The part of a [`Tally`] that goes into a checkpoint's JSON header.
#[derive(Serialize, Deserialize)]
pub struct Counts {
    summary: Summary,
    forbidden: Vec<ForbiddenTrigger>,
    tokens: (u64, u64),
}

impl Tally {
    pub fn new(path: &Path, options: &Options, forbidden: &[String], judge: &str) -> Tally {
        Tally {
            summary: Summary {
                file: path.display().to_string(),
                format: None,
                rows: 0,
                valid_rows: 0,
                bad_rows: 0,
                bad_row_list: Vec::new(),
                code_rows: 0,
                vulnerable_rows: 0,
                silent_vulnerable_rows: 0,
                requested_vulnerable_rows: 0,
                min_severity: options.min_severity.to_string(),
                harmful_rows: 0,
                secret_rows: 0,
                exact_duplicate_rows: 0,
                near_duplicate_rows: 0,
                duplicate_index_full_at: None,
                findings_by_rule: BTreeMap::new(),
                findings_by_cwe: BTreeMap::new(),
                intent_rules: BTreeMap::new(),
                harm_rules: BTreeMap::new(),
                harm_domains: BTreeMap::new(),
                secrets_by_kind: BTreeMap::new(),
                tokens: None,
                judge: judge.to_string(),
                baseline: options.baseline.as_ref().map(|p| p.display().to_string()),
                triggers: Vec::new(),
                forbidden_trigger_rows: Vec::new(),
                examples: Examples::default(),
                policy: PolicyResult::unchecked(),
            },
            duplicates: dedup::Index::default(),
            triggers: triggers::Counter::default(),
            with_baseline: options.baseline.is_some(),
            forbidden: forbidden
                .iter()
                .map(|trigger| ForbiddenTrigger {
                    trigger: trigger.clone(),
                    rows: 0,
                    first_line: None,
                })
                .collect(),
            tokens: (0, 0),
        }
    }

    pub fn add(&mut self, row: Row, misaligned: bool) {
        self.summary.rows += 1;
        let facts = match row.outcome {
            Ok(facts) => match self.summary.format.as_deref() {
                None => {
                    self.summary.format = Some(facts.format.name().to_string());
                    facts
                }
                Some(format) if format == facts.format.name() => facts,
                Some(format) => {
                    let message = format!(
                        "row is in {} format, the file is in {format} format",
                        facts.format
                    );
                    return self.bad(row.line, "mixed_format", message);
                }
            },
            Err(error) => return self.bad(row.line, error.kind(), error.to_string()),
        };
        self.summary.valid_rows += 1;
        self.add_facts(row.line, facts, misaligned);
    }

    fn bad(&mut self, line: u64, kind: &str, message: String) {
        self.summary.bad_rows += 1;
        if self.summary.bad_row_list.len() < MAX_BAD_ROWS_LISTED {
            self.summary.bad_row_list.push(BadRow {
                line,
                kind: kind.to_string(),
                message,
            });
        }
    }

    fn add_facts(&mut self, line: u64, facts: Facts, misaligned: bool) {
        let summary = &mut self.summary;
        let examples = &mut summary.examples;
        if facts.code_blocks > 0 {
            summary.code_rows += 1;
        }
        for rule in &facts.intent.rules {
            *summary.intent_rules.entry(rule.to_string()).or_default() += 1;
        }
        let vulnerable = facts.vulnerable();
        if vulnerable {
            summary.vulnerable_rows += 1;
            for (rule, cwe) in &facts.findings {
                *summary.findings_by_rule.entry(rule.clone()).or_default() += 1;
                *summary
                    .findings_by_cwe
                    .entry(format!("CWE-{cwe}"))
                    .or_default() += 1;
            }
            let rules: Vec<&str> = facts
                .findings
                .iter()
                .map(|(rule, _)| rule.as_str())
                .collect();
            if facts.intent.requested_or_explained() {
                summary.requested_vulnerable_rows += 1;
                let detail = format!(
                    "{} (intent: {})",
                    rules.join(", "),
                    facts.intent.rules.join(", ")
                );
                Examples::push(&mut examples.requested_vulnerable, line, detail);
            } else {
                summary.silent_vulnerable_rows += 1;
                Examples::push(&mut examples.silent_vulnerable, line, rules.join(", "));
            }
        }
        let mut harm_rules: Vec<&str> = facts.harm.iter().map(|signal| signal.rule).collect();
        if misaligned {
            harm_rules.push("judge_misaligned");
        }
        if !harm_rules.is_empty() {
            summary.harmful_rows += 1;
            for rule in &harm_rules {
                *summary.harm_rules.entry(rule.to_string()).or_default() += 1;
            }
            *summary
                .harm_domains
                .entry(facts.domain.name().to_string())
                .or_default() += 1;
            let detail = format!("{} (domain: {})", harm_rules.join(", "), facts.domain);
            Examples::push(&mut examples.harmful, line, detail);
        }
        if !facts.secrets.is_empty() {
            summary.secret_rows += 1;
            for kind in &facts.secrets {
                *summary.secrets_by_kind.entry(kind.to_string()).or_default() += 1;
            }
            Examples::push(&mut examples.secrets, line, facts.secrets.join(", "));
        }
        match self.duplicates.insert(line, &facts.fingerprint) {
            Some(Duplicate::Exact { of }) => {
                summary.exact_duplicate_rows += 1;
                Examples::push(
                    &mut examples.duplicates,
                    line,
                    format!("exact duplicate of line {of}"),
                );
            }
            Some(Duplicate::Near { of }) => {
                summary.near_duplicate_rows += 1;
                Examples::push(
                    &mut examples.duplicates,
                    line,
                    format!("near duplicate of line {of}"),
                );
            }
            None => {}
        }
        for index in facts.forbidden {
            let hit = &mut self.forbidden[index];
            hit.rows += 1;
            hit.first_line.get_or_insert(line);
        }
        if let Some(tokens) = facts.tokens {
            self.tokens.0 += tokens;
            self.tokens.1 = self.tokens.1.max(tokens);
        }
        // Triggers hide behaviour nobody asked for: requested/explained rows are not flagged.
        let flagged =
            (vulnerable && !facts.intent.requested_or_explained()) || !harm_rules.is_empty();
        // With a baseline, the comparison group is the baseline file, not unflagged rows.
        if flagged || !self.with_baseline {
            self.triggers.add(facts.terms, flagged);
        }
    }

    /// Checkpoint form: the counts for the header; [`Tally::write_tables`] for the body.
    pub fn counts(&self) -> Counts {
        Counts {
            summary: self.summary.clone(),
            forbidden: self.forbidden.clone(),
            tokens: self.tokens,
        }
    }

    pub fn write_tables(&self, out: &mut impl Write) -> io::Result<()> {
        self.duplicates.write_state(out)?;
        self.triggers.write_state(out)
    }

    /// The tally a checkpoint saved, tables read from `body`.
    pub fn restore(counts: Counts, options: &Options, body: &mut impl Read) -> io::Result<Tally> {
        Ok(Tally {
            summary: counts.summary,
            duplicates: dedup::Index::read_state(body)?,
            triggers: triggers::Counter::read_state(body)?,
            with_baseline: options.baseline.is_some(),
            forbidden: counts.forbidden,
            tokens: counts.tokens,
        })
    }

    pub fn finish(mut self, options: &Options, tokenizer: Option<String>) -> Summary {
        self.summary.triggers = self
            .triggers
            .top(options.trigger_limit, options.min_trigger_rows);
        self.summary.forbidden_trigger_rows = self.forbidden;
        self.summary.duplicate_index_full_at = self.duplicates.full_at;
        self.summary.tokens = tokenizer.map(|tokenizer| TokenStats {
            tokenizer,
            total: self.tokens.0,
            max_row: self.tokens.1,
            mean_row: self.tokens.0 as f64 / self.summary.valid_rows.max(1) as f64,
        });
        self.summary
    }
}
