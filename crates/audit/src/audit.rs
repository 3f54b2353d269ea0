//! The streaming driver: read a chunk of lines, analyse its rows in parallel (rayon), fold
//! the results in file order, repeat. Memory holds one chunk of text plus small per-row state
//! (a 32-byte row hash and the duplicate index's keys), never the dataset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emguard_codescan::{Scanner, Severity};
use rayon::prelude::*;

use crate::analyze::{self, Context, Facts, Row};
use crate::dedup::{self, Duplicate};
use crate::manifest::{FileRecord, Manifest, SCHEMA, merkle_root};
use crate::policy::{Policy, PolicyResult};
use crate::reader::LineReader;
use crate::summary::{
    BadRow, Examples, ForbiddenTrigger, MAX_BAD_ROWS_LISTED, Summary, TokenStats,
};
use crate::triggers;
use crate::{AuditError, TOOL};

#[derive(Debug, Clone)]
pub struct Options {
    /// Findings below this severity do not make a row vulnerable.
    pub min_severity: Severity,
    /// A `tokenizer.json` for token counts; none: no counts.
    pub tokenizer: Option<PathBuf>,
    /// Trigger search contrasts flagged rows with this file's rows instead of unflagged rows.
    pub baseline: Option<PathBuf>,
    pub policy: Option<Policy>,
    pub source: Option<String>,
    pub license: Option<String>,
    pub trigger_limit: usize,
    /// A trigger must appear in at least this many flagged rows.
    pub min_trigger_rows: u64,
    /// Rows analysed per parallel batch (bounds memory).
    pub chunk_rows: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            min_severity: Severity::Low,
            tokenizer: None,
            baseline: None,
            policy: None,
            source: None,
            license: None,
            trigger_limit: 20,
            min_trigger_rows: 5,
            chunk_rows: 2048,
        }
    }
}

/// Scores a batch of (question, answer) pairs: true = misaligned. The CLI binds the local
/// judge here; the audit only needs the verdict.
pub type JudgeFn<'a> = Box<dyn FnMut(&[(String, String)]) -> Result<Vec<bool>, String> + 'a>;

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Stored bytes read so far (compressed bytes for gzip).
    pub bytes_read: u64,
    pub rows: u64,
}

pub struct Auditor<'a> {
    scanner: Scanner,
    tokenizer: Option<(String, tokenizers::Tokenizer)>,
    judge: Option<JudgeFn<'a>>,
    options: Options,
}

impl<'a> Auditor<'a> {
    pub fn new(options: Options) -> Result<Auditor<'a>, AuditError> {
        let tokenizer = match &options.tokenizer {
            Some(path) => {
                let mut tokenizer =
                    tokenizers::Tokenizer::from_file(path).map_err(|e| AuditError::Tokenizer {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                // Count every token: an embedding model's file pads and truncates to 128.
                tokenizer.with_padding(None);
                tokenizer
                    .with_truncation(None)
                    .map_err(|e| AuditError::Tokenizer {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                Some((path.display().to_string(), tokenizer))
            }
            None => None,
        };
        Ok(Auditor {
            scanner: Scanner::new(),
            tokenizer,
            judge: None,
            options,
        })
    }

    pub fn with_judge(mut self, judge: JudgeFn<'a>) -> Auditor<'a> {
        self.judge = Some(judge);
        self
    }

    /// Audits `path`; the manifest records the file, its rows and the summary.
    pub fn run(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Summary, Manifest), AuditError> {
        let forbidden: Vec<String> = self
            .options
            .policy
            .iter()
            .flat_map(|policy| policy.forbidden_triggers.iter().map(|t| t.to_lowercase()))
            .collect();
        let context = Context {
            scanner: &self.scanner,
            min_severity: self.options.min_severity,
            tokenizer: self.tokenizer.as_ref().map(|(_, t)| t),
            forbidden: &forbidden,
            keep_exchange: self.judge.is_some(),
        };
        let mut tally = Tally::new(path, &self.options, &forbidden, self.judge.is_some());
        let mut reader = LineReader::open(path).map_err(|e| AuditError::io(path, e))?;
        let mut chunk: Vec<(u64, Vec<u8>)> = Vec::with_capacity(self.options.chunk_rows);
        loop {
            let more = fill_chunk(&mut reader, &mut chunk, self.options.chunk_rows)
                .map_err(|e| AuditError::io(path, e))?;
            let rows: Vec<Row> = chunk
                .par_iter()
                .map(|(line, bytes)| analyze::analyze(*line, bytes, &context))
                .collect();
            let misaligned = match &mut self.judge {
                Some(judge) => judge_rows(judge, &rows)?,
                None => vec![false; rows.len()],
            };
            for (row, misaligned) in rows.into_iter().zip(misaligned) {
                tally.add(row, misaligned);
            }
            progress(Progress {
                bytes_read: reader.bytes_read(),
                rows: tally.summary.rows,
            });
            if !more {
                break;
            }
        }
        let compressed = reader.compressed;
        let bytes = reader.bytes_read();
        let sha256 = reader.finish().map_err(|e| AuditError::io(path, e))?;

        if let Some(baseline) = &self.options.baseline {
            count_baseline(baseline, &mut tally.triggers)?;
        }
        let row_hashes = std::mem::take(&mut tally.row_hashes);
        let mut summary = tally.finish(
            &self.options,
            self.tokenizer.as_ref().map(|(n, _)| n.clone()),
        );
        summary.policy = match &self.options.policy {
            Some(policy) => policy.check(&summary),
            None => PolicyResult::unchecked(),
        };
        let manifest = Manifest {
            schema: SCHEMA,
            tool: TOOL.to_string(),
            created: jiff::Timestamp::now().to_string(),
            file: FileRecord {
                name: path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                sha256: hex::encode(sha256),
                bytes,
                gzip: compressed,
                format: summary.format.clone(),
            },
            source: self.options.source.clone(),
            license: self.options.license.clone(),
            row_count: row_hashes.len() as u64,
            merkle_root: hex::encode(merkle_root(&row_hashes)),
            summary: summary.clone(),
            row_hashes,
            signature: None,
        };
        Ok((summary, manifest))
    }
}

/// Reads up to `limit` lines; false when the file is exhausted.
fn fill_chunk(
    reader: &mut LineReader,
    chunk: &mut Vec<(u64, Vec<u8>)>,
    limit: usize,
) -> std::io::Result<bool> {
    // Reuse the line buffers of the previous chunk.
    let mut spare: Vec<Vec<u8>> = chunk.drain(..).map(|(_, bytes)| bytes).collect();
    while chunk.len() < limit {
        let mut buf = spare.pop().unwrap_or_default();
        match reader.next_line(&mut buf)? {
            Some(line) => chunk.push((line, buf)),
            None => return Ok(false),
        }
    }
    Ok(true)
}

fn judge_rows(judge: &mut JudgeFn, rows: &[Row]) -> Result<Vec<bool>, AuditError> {
    let items: Vec<(String, String)> = rows
        .iter()
        .filter_map(|row| row.outcome.as_ref().ok()?.exchange.clone())
        .collect();
    let verdicts = judge(&items).map_err(AuditError::Judge)?;
    if verdicts.len() != items.len() {
        return Err(AuditError::Judge(format!(
            "{} verdicts for {} answers",
            verdicts.len(),
            items.len()
        )));
    }
    let mut verdicts = verdicts.into_iter();
    Ok(rows
        .iter()
        .map(|row| row.outcome.is_ok() && verdicts.next().unwrap_or(false))
        .collect())
}

fn count_baseline(path: &Path, counter: &mut triggers::Counter) -> Result<(), AuditError> {
    let mut reader = LineReader::open(path).map_err(|e| AuditError::io(path, e))?;
    let mut chunk = Vec::new();
    loop {
        let more =
            fill_chunk(&mut reader, &mut chunk, 4096).map_err(|e| AuditError::io(path, e))?;
        let terms: Vec<Vec<String>> = chunk
            .par_iter()
            .filter_map(|(_, bytes)| analyze::user_text(bytes))
            .map(|text| triggers::terms(&text))
            .collect();
        for row_terms in terms {
            counter.add(row_terms, false);
        }
        if !more {
            return Ok(());
        }
    }
}

/// Running counts, folded in file order.
struct Tally {
    summary: Summary,
    row_hashes: Vec<[u8; 32]>,
    duplicates: dedup::Index,
    triggers: triggers::Counter,
    with_baseline: bool,
    forbidden: Vec<ForbiddenTrigger>,
    tokens: (u64, u64),
}

impl Tally {
    fn new(path: &Path, options: &Options, forbidden: &[String], judge: bool) -> Tally {
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
                secrets_by_kind: BTreeMap::new(),
                tokens: None,
                judge: if judge { "local" } else { "off" }.to_string(),
                baseline: options.baseline.as_ref().map(|p| p.display().to_string()),
                triggers: Vec::new(),
                forbidden_trigger_rows: Vec::new(),
                examples: Examples::default(),
                policy: PolicyResult::unchecked(),
            },
            row_hashes: Vec::new(),
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

    fn add(&mut self, row: Row, misaligned: bool) {
        self.summary.rows += 1;
        self.row_hashes.push(row.hash);
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
            Examples::push(&mut examples.harmful, line, harm_rules.join(", "));
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

    fn finish(mut self, options: &Options, tokenizer: Option<String>) -> Summary {
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
