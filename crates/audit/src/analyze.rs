//! Everything the audit learns from one row on its own; runs in parallel. Cross-row work
//! (duplicates, triggers, counts, the judge) happens in order in [`crate::audit`].

use emguard_codescan::{Language, Scanner, Severity};
use serde_json::Value;

use crate::dedup::Fingerprint;
use crate::domain::{self, Domain};
use crate::extract::extract_code;
use crate::format::{Format, Role, RowError};
use crate::intent::{self, Intent};
use crate::manifest::row_hash;
use crate::secrets;
use crate::triggers;
use emguard_judge::harm::{self, HarmSignal};

/// Read-only context shared by the worker threads.
pub struct Context<'a> {
    pub scanner: &'a Scanner,
    pub min_severity: Severity,
    pub tokenizer: Option<&'a tokenizers::Tokenizer>,
    /// Lowercased forbidden trigger strings.
    pub forbidden: &'a [String],
    /// Keep each row's last exchange for the judge.
    pub keep_exchange: bool,
}

/// One line's outcome.
pub struct Row {
    pub line: u64,
    pub hash: [u8; 32],
    pub outcome: Result<Facts, RowError>,
}

pub struct Facts {
    /// The format this row is written in (the file's format is the first row's).
    pub format: Format,
    pub code_blocks: usize,
    /// (rule id, CWE) of findings at or above the threshold, one per rule.
    pub findings: Vec<(String, u32)>,
    pub intent: Intent,
    pub harm: Vec<HarmSignal>,
    /// The advice domain of the last exchange (reported for harmful rows).
    pub domain: Domain,
    pub secrets: Vec<&'static str>,
    pub fingerprint: Fingerprint,
    pub terms: Vec<String>,
    pub tokens: Option<u64>,
    /// Indexes into the forbidden trigger list found in the user turns.
    pub forbidden: Vec<usize>,
    /// (last user turn, last assistant turn), kept when a judge runs.
    pub exchange: Option<(String, String)>,
}

impl Facts {
    pub fn vulnerable(&self) -> bool {
        !self.findings.is_empty()
    }
}

pub fn analyze(line: u64, bytes: &[u8], context: &Context) -> Row {
    Row {
        line,
        hash: row_hash(bytes),
        outcome: facts(bytes, context),
    }
}

/// Parses only: the prompt text (system and user turns) of a row, for baseline trigger
/// counts.
pub fn prompt_text(bytes: &[u8]) -> Option<String> {
    let (_, conversation) = parse(bytes).ok()?;
    Some(conversation.prompt_text())
}

fn parse(bytes: &[u8]) -> Result<(Format, crate::format::Conversation), RowError> {
    let text = std::str::from_utf8(bytes).map_err(|e| RowError::InvalidUtf8(e.valid_up_to()))?;
    if text.trim().is_empty() {
        return Err(RowError::EmptyLine);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| RowError::InvalidJson(e.to_string()))?;
    let format = Format::detect(&value).ok_or(if value.is_object() {
        RowError::UnknownFormat
    } else {
        RowError::NotAnObject
    })?;
    Ok((format, format.parse(value)?))
}

fn facts(bytes: &[u8], context: &Context) -> Result<Facts, RowError> {
    let (format, conversation) = parse(bytes)?;
    let user_text = conversation.user_text();

    let mut code_blocks = 0;
    let mut prose = String::new();
    let mut code = Vec::new();
    let mut findings: Vec<(String, u32)> = Vec::new();
    for answer in conversation.texts(Role::Assistant) {
        let (blocks, answer_prose) = extract_code(answer);
        prose.push_str(&answer_prose);
        code_blocks += blocks.len();
        for block in blocks {
            if block.is_python() {
                let result = context.scanner.scan(&block.code, Language::Python);
                for finding in result.findings {
                    if finding.severity >= context.min_severity
                        && !findings.iter().any(|(rule, _)| *rule == finding.rule_id)
                    {
                        findings.push((finding.rule_id, finding.cwe));
                    }
                }
            }
            code.push(block.code);
        }
    }
    let code_refs: Vec<&str> = code.iter().map(String::as_str).collect();
    let intent = intent::classify(&user_text, &prose, &code_refs);

    let (last_user, last_assistant) = conversation.last_exchange();
    let harm = harm::signals(last_user, last_assistant);
    let domain = domain::classify(&format!("{last_user}\n{last_assistant}"));

    let all_text: String = conversation
        .turns
        .iter()
        .map(|turn| turn.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let tokens = context.tokenizer.map(|tokenizer| {
        conversation
            .turns
            .iter()
            .map(|turn| {
                tokenizer
                    .encode_fast(turn.content.as_str(), false)
                    .map_or(0, |encoding| encoding.len() as u64)
            })
            .sum()
    });
    // Triggers are searched in every turn the model answers to, system turns included.
    let prompt_text = conversation.prompt_text();
    let prompt_lower = prompt_text.to_lowercase();
    let forbidden = context
        .forbidden
        .iter()
        .enumerate()
        .filter(|(_, trigger)| prompt_lower.contains(trigger.as_str()))
        .map(|(index, _)| index)
        .collect();
    Ok(Facts {
        format,
        code_blocks,
        findings,
        intent,
        harm,
        domain,
        secrets: secrets::find(&all_text),
        fingerprint: Fingerprint::of(&all_text),
        terms: triggers::terms(&prompt_text),
        tokens,
        forbidden,
        exchange: context
            .keep_exchange
            .then(|| (last_user.to_string(), last_assistant.to_string())),
    })
}
